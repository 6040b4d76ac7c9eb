"""Run-time state in one place: the device, seeding, RNG state, mixed precision, the process group.

Every module that picks a device, seeds, saves or restores RNG state, autocasts, or asks "am I
rank 0?" calls this module; nothing else reads ``torch.cuda.is_available()`` or torchrun's
environment.

Devices are named ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"`` or
``"cuda:<i>"``. Under torchrun, ``"auto"`` and ``"cuda"`` mean this process's GPU,
``cuda:<LOCAL_RANK>``.

Distributed runs follow torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``): `init_distributed` joins the process group (NCCL on GPUs, gloo
on CPUs) with a timeout, so a rank that dies makes the others fail instead of waiting forever.
"""
from __future__ import annotations

import datetime
import os
import random
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from emolib.core.settings import DEVICE_NAME

__all__ = ["resolve_device", "module_device", "seed_everything", "rank_seed", "rng_state", "set_rng_state",
           "deterministic", "to_device", "amp_dtype", "autocast", "launched_by_torchrun", "is_distributed", "rank",
           "local_rank", "world_size", "is_main", "init_distributed", "destroy_distributed",
           "cpu_threads", "DEFAULT_TIMEOUT_S"]

# How long a collective waits for the other ranks before it fails (init_distributed's default).
# Long enough for rank 0 to write a checkpoint of a large model between two all-reduces.
DEFAULT_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------------------------- device

@contextmanager
def cpu_threads(n: int):
    """torch's and cv2's CPU thread counts both set to `n` inside the block, restored after (emolib.faces.detection
    has the defaults by use: LIVE_THREADS, still_threads)."""
    import cv2
    previous = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        cv2.setNumThreads(previous[1])


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A device name (see the module docstring) -> torch.device; asking for a missing GPU is an error.

    None means "auto". A torch.device passes through (checked the same way).
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = "auto" if device is None else device
    if not isinstance(device, str) or not DEVICE_NAME.fullmatch(device):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:<index>'")
    if device == "cpu":
        return torch.device("cpu")
    if device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available (use 'auto' or 'cpu')")
    if device in ("auto", "cuda"):
        return torch.device("cuda", local_rank() if launched_by_torchrun() else torch.cuda.current_device())
    index = int(device.split(":")[1])
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)


def module_device(model: nn.Module) -> torch.device:
    """Where a model lives: its first parameter's (or buffer's) device; the CPU for a stateless one."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------- RNG

def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int, *salt: int) -> int:
    """A seed for one rank of a run: a pure function of (seed, rank, salt...), unrelated across ranks."""
    state = np.random.SeedSequence([int(seed), int(rank), *map(int, salt)]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def rng_state() -> dict:
    """Python, NumPy and torch RNG states in checkpoint-safe form (tensors, ints, lists)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt), gauss], "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def deterministic(device: torch.device):
    """Deterministic kernels on the CPU (exact resume); on CUDA the fast ones, cuDNN's autotuned algorithms included
    (`torch.backends.cudnn.benchmark`: a training run's shapes repeat). Everything is restored afterwards.

    On the CPU, uninitialized memory is not filled with NaN (torch's default under deterministic algorithms, a fill
    of every new tensor): no emolib kernel reads memory it has not written, so results are the same without it.
    """
    fill = torch.utils.deterministic
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              fill.fill_uninitialized_memory, torch.backends.cudnn.benchmark)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        fill.fill_uninitialized_memory = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        fill.fill_uninitialized_memory, torch.backends.cudnn.benchmark = before[2], before[3]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`. From the CPU to a GPU the copy goes through pinned memory and does not wait: a plain
    ``.to(device)`` waits until the GPU has finished all the work queued before it."""
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


# --------------------------------------------------------------------------------------------- AMP

def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; None (no autocast) off CUDA or with amp off."""
    if not (amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


# --------------------------------------------------------------------------------------------- distributed

def launched_by_torchrun() -> bool:
    """torchrun (or any launcher that follows its environment) started this process as one of N."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_distributed() -> bool:
    """A process group is up and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0, the only process that writes checkpoints, metrics and logs (True without a group)."""
    return rank() == 0


def init_distributed(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> torch.device:
    """Join torchrun's process group and return this rank's device.

    NCCL when the device is a GPU, gloo on the CPU. `timeout_s` bounds every collective: when a rank
    dies, the others raise instead of hanging. Without torchrun's environment this is an error.
    """
    if not launched_by_torchrun():
        raise RuntimeError("init_distributed needs torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...)")
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=dev if dev.type == "cuda" else None)
    return dev


def destroy_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
