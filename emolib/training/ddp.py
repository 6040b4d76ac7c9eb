"""Data-parallel training pieces: per-rank shards of a FaceLoader, and the collectives `fit` needs.

`emolib.training.loop.fit` uses these only when a process group with more than one rank is up (torchrun,
see `emolib.core.runtime.init_distributed`); a single process never touches them.

Sharding. One optimizer step averages over a *global* batch of ``batch_size * world_size`` rows.
Every rank computes the same epoch order (`FaceLoader.epoch_indices`, a pure function of seed and
epoch), pads it with its first rows to a multiple of the world size (as
`torch.utils.data.DistributedSampler` does, so every rank takes the same number of steps), cuts it
into global batches, and takes every N-th row of each, starting at its rank. The shards are disjoint
and together cover the epoch, and the global batches hold the same rows as a single process's
batches of the global size. Augmentation draws come from a per-rank stream of (seed, epoch, rank).
Evaluation loaders are split the same way without padding; their outputs are gathered.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from emolib.core import runtime

__all__ = ["ShardedLoader", "shard", "wrap", "all_sum", "all_gather_rows", "broadcast_object", "all_gather_object", "main_first",
           "sync_buffers"]


def _generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(epoch), int(rank), 0xDD9]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class ShardedLoader:
    """This rank's share of a FaceLoader's epoch (see the module docstring); same interface as the loader.

    `batch_size` stays the per-process batch; `global_batch_size` is what one step averages over.
    """

    def __init__(self, loader, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.loader, self.rank, self.world_size = loader, int(rank), int(world_size)
        self.batch_size = loader.batch_size
        self.global_batch_size = loader.batch_size * world_size
        # What fit and the criterion read from a loader: the whole split's labels and classes.
        self.labels, self.classes, self.num_classes = loader.labels, loader.classes, loader.num_classes
        self.train = loader.train

    @property
    def epoch(self) -> int:
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def _padded_length(self) -> int:
        return math.ceil(len(self.labels) / self.world_size) * self.world_size

    def __len__(self) -> int:
        if not self.train:
            return math.ceil(len(range(self.rank, len(self.labels), self.world_size)) / self.batch_size)
        n = self._padded_length()
        return n // self.global_batch_size if self.loader.drop_last else math.ceil(n / self.global_batch_size)

    def step_rows(self) -> list[torch.Tensor]:
        """The rows of each of this rank's batches this epoch (CPU int64): a pure function of (seed, epoch)."""
        order = self.loader.epoch_indices()
        if not self.train:
            return list(torch.split(order[self.rank::self.world_size], self.batch_size))
        if len(order) < self.world_size:
            raise ValueError(f"{len(order)} training rows cannot be shared by {self.world_size} processes")
        order = torch.cat([order, order[:self._padded_length() - len(order)]])
        g = self.global_batch_size
        return [order[b * g:(b + 1) * g][self.rank::self.world_size] for b in range(len(self))]

    def __iter__(self):
        base = self.loader
        g = _generator(base.seed, base.epoch, self.rank)
        for idx in self.step_rows():
            idx = runtime.to_device(idx, base.device)
            yield base.make_batch(idx, g), base.batch_targets(idx, g)

    def __repr__(self) -> str:
        return f"ShardedLoader(rank {self.rank} of {self.world_size}, {self.loader!r})"


def shard(loader):
    """`loader` split for this rank when a multi-rank process group is up; the loader itself otherwise."""
    if not runtime.is_distributed():
        return loader
    return ShardedLoader(loader, runtime.rank(), runtime.world_size())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (already on `device`): gradients averaged over the ranks.

    DDP also copies rank 0's parameters and buffers to every rank here, so all ranks start equal.
    """
    if not runtime.is_distributed():
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over the ranks (each rank gets the totals)."""
    if not runtime.is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows of `t` (any length per rank), on every rank."""
    if not runtime.is_distributed():
        return t
    parts = [p for p in all_gather_object(t.cpu()) if len(p)]   # a rank may hold no rows (tiny splits)
    return torch.cat(parts) if parts else t


def all_gather_object(obj) -> list:
    if not runtime.is_distributed():
        return [obj]
    out = [None] * runtime.world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (others pass anything, e.g. None)."""
    if not runtime.is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first():
    """Rank 0 runs the block first, then the others (e.g. rank 0 writes a cache that the others read)."""
    if runtime.is_distributed() and not runtime.is_main():
        dist.barrier()
    yield
    if runtime.is_distributed() and runtime.is_main():
        dist.barrier()


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank.

    DDP copies them from rank 0 before each training forward, so after the last step every rank holds
    its own update; evaluating with those would score each shard with slightly different statistics
    than the checkpoint rank 0 writes.
    """
    if not runtime.is_distributed():
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
