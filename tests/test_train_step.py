"""The training step without waits for the device: `train_one_epoch` reads its sums once an epoch (a shown bar now
and then), the loader and augmentation copy to the device once an epoch / once a batch, evaluation reads its outputs
once, and `runtime.deterministic` sets cuDNN autotuning on CUDA and drops the NaN fill on the CPU. The figures stay
those of Python's per-step accumulation, bit for bit (tests/test_train.py keeps resume bit-identical)."""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_net import TinyNet
from torch import nn
from tqdm import tqdm

from emolib.core import progress, runtime
from emolib.data.synthetic import generate
from emolib.training import augment, evaluate, loader, loop
from emolib.training.loader import AugmentConfig, FaceLoader
from emolib.training.loop import TrainConfig, train_one_epoch

READS = ("item", "tolist", "__float__", "__int__", "__bool__")


@pytest.fixture(scope="module")
def faces():
    return generate(n=400, seed=0).split("train")


def _count_reads(monkeypatch) -> list[str]:
    """Every read of a tensor's value into Python (on a GPU, each one waits for the device) is recorded."""
    reads = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _original=original, _name=name, **kw):
            reads.append(_name)
            return _original(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads


def _epoch(faces, cfg, batch_size=4):
    torch.manual_seed(0)
    model = TinyNet(num_classes=7)
    tl = FaceLoader(faces, model.spec, batch_size, train=True, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)      # SGD reads no step counter back
    return model, train_one_epoch(model, tl, optimizer, nn.CrossEntropyLoss(), torch.amp.GradScaler("cpu", enabled=False),
                                  cfg, torch.device("cpu")), len(tl)


def test_an_epoch_reads_its_sums_once(faces, monkeypatch):
    reads = _count_reads(monkeypatch)
    _, record, batches = _epoch(faces, TrainConfig(progress=False))
    assert batches > 3 * loop.POSTFIX_EVERY
    assert reads == ["tolist"], reads          # one read an epoch, whatever the number of batches
    assert 0 < record["train_acc"] <= 1 and record["train_loss"] > 0


def test_a_shown_bar_reads_every_postfix_every_steps(faces, monkeypatch):
    bars = []

    def shown(iterable=None, *, show=True, **kw):
        bars.append(tqdm(iterable, file=io.StringIO(), disable=False, mininterval=0, **kw))
        return bars[-1]
    monkeypatch.setattr(progress, "bar", shown)
    reads = _count_reads(monkeypatch)
    _, record, batches = _epoch(faces, TrainConfig(progress=True))
    assert batches % loop.POSTFIX_EVERY, "the last step must not be a multiple of POSTFIX_EVERY here"
    assert len(reads) == batches // loop.POSTFIX_EVERY + 1 + 1, reads     # every k steps, the last one, the epoch's
    assert bars[0].postfix == f"acc={record['train_acc']:.3f}, loss={record['train_loss']:.3f}"   # the last step's


def test_the_figures_are_python_per_step_sums_bit_for_bit(faces):
    """The device-side float64 sums give exactly what `loss.item() * n` summed in Python gave."""
    model, record, _ = _epoch(faces, TrainConfig(progress=False))
    torch.manual_seed(0)
    ref = TinyNet(num_classes=7)
    tl = FaceLoader(faces, ref.spec, 4, train=True, seed=0)
    optimizer = torch.optim.SGD(ref.parameters(), lr=0.05)
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in tl:
        logits = ref(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    assert record["train_loss"] == loss_sum / seen and record["train_acc"] == correct / seen
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


def test_the_loader_copies_to_the_device_once_an_epoch_and_once_a_batch_per_augmentation(faces, monkeypatch):
    copies = []

    def recording(where):
        def to_device(t, device):
            copies.append((where, tuple(t.shape)))
            return t.to(device)
        return to_device
    monkeypatch.setattr(loader, "to_device", recording("order"))
    monkeypatch.setattr(augment, "to_device", recording("augment"))
    tl = FaceLoader(faces, TinyNet(num_classes=7).spec, 64, train=True, seed=0,
                    augment=AugmentConfig(perspective=0.3, erasing=0.5))
    batches = list(tl)
    n = len(faces)
    assert copies.count(("order", (n,))) == 1 and sum(w == "order" for w, _ in copies) == 1
    # per batch: the geometry (a 3x3 homography), brightness and contrast in one copy; the erasing boxes in another
    shapes = [s for w, s in copies if w == "augment"]
    assert len(shapes) == 2 * len(batches)
    assert shapes[:2] == [(64, 11), (5, 64)]


def test_to_device_pins_and_does_not_wait(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **kw: calls.append((a, kw)) or self)
    runtime.to_device(torch.zeros(3), torch.device("cuda", 0))
    assert calls == ["pin", ((torch.device("cuda", 0),), {"non_blocking": True})]
    calls.clear()
    runtime.to_device(torch.zeros(3), torch.device("cpu"))
    assert calls == [((torch.device("cpu"),), {})]


def test_evaluation_reads_its_outputs_once(faces, monkeypatch):
    model = TinyNet(num_classes=7)
    vl = FaceLoader(faces, model.spec, 16)
    assert len(vl) >= 5
    expected = torch.cat([model(x) for x, _ in vl]).detach()
    cpu_calls = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **kw: cpu_calls.append(1) or original(self, *a, **kw))
    outputs, labels = evaluate.run_batches(model, vl)
    assert len(cpu_calls) == 2                          # the outputs and the labels, once each
    assert torch.equal(outputs, expected) and np.array_equal(labels.numpy(), faces.labels)


def test_deterministic_turns_cudnn_autotuning_on_for_cuda_and_the_nan_fill_off_on_cpu():
    fill = torch.utils.deterministic
    before = torch.backends.cudnn.benchmark, fill.fill_uninitialized_memory, torch.are_deterministic_algorithms_enabled()
    with runtime.deterministic(torch.device("cuda", 0)):
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    assert (torch.backends.cudnn.benchmark, fill.fill_uninitialized_memory) == before[:2]
    with runtime.deterministic(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() and not fill.fill_uninitialized_memory
        assert torch.backends.cudnn.benchmark == before[0]
    assert (torch.backends.cudnn.benchmark, fill.fill_uninitialized_memory,
            torch.are_deterministic_algorithms_enabled()) == before
