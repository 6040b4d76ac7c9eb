"""emolib.core.runtime (device, RNG, process-group facts) and emolib.training.ddp's shards, in one process."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from emolib.core import runtime
from emolib.core.settings import TrainConfig
from emolib.core.spec import grayscale_spec
from emolib.data.synthetic import generate
from emolib.training import ddp
from emolib.training.evaluate import predict
from emolib.training.loader import FaceLoader
from emolib.training.loop import evaluate_loss


def test_resolve_device_names():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected and runtime.resolve_device(None).type == expected
    for bad in ("gpu", "cuda:x", "CPU", "", 0):
        with pytest.raises(ValueError, match="unknown device"):
            runtime.resolve_device(bad)
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(RuntimeError, match="CUDA is not available"):
                runtime.resolve_device(name)


def test_device_names_are_validated_in_settings():
    assert TrainConfig(device="cuda:1").device == "cuda:1"      # valid spelling; resolved only when training
    with pytest.raises(TypeError, match="'device'.*'cuda:<index>'"):
        TrainConfig(device="gpu")


def test_module_device_of_stateless_and_buffer_only_modules():
    assert runtime.module_device(nn.ReLU()) == torch.device("cpu")
    bn = nn.BatchNorm2d(3, affine=False)                         # buffers, no parameters
    assert runtime.module_device(bn) == torch.device("cpu")


def test_rng_state_round_trip():
    runtime.seed_everything(3)
    state = runtime.rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(99)
    runtime.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_no_process_group_means_one_main_process():
    assert (runtime.rank(), runtime.world_size(), runtime.is_main(), runtime.is_distributed()) == (0, 1, True, False)
    loader = object()
    assert ddp.shard(loader) is loader
    assert ddp.all_sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="torchrun"):
        runtime.init_distributed("cpu")


def test_rank_seeds_differ_and_repeat():
    seeds = [runtime.rank_seed(0, r) for r in range(4)]
    assert len(set(seeds)) == 4 and seeds == [runtime.rank_seed(0, r) for r in range(4)]


@pytest.fixture(scope="module")
def faces():
    return generate(n=400, seed=0)


@pytest.mark.parametrize("world,batch,balanced", [(2, 16, False), (3, 8, False), (2, 16, True)])
def test_shards_are_disjoint_and_rebuild_the_global_batches(faces, world, batch, balanced):
    spec = grayscale_spec(48, "x")
    train = faces.split("train")                                 # 320 rows: not a multiple of 3 * 8
    single = FaceLoader(train, spec, batch * world, train=True, seed=5, balanced=balanced)
    shards = [ddp.ShardedLoader(FaceLoader(train, spec, batch, train=True, seed=5, balanced=balanced), r, world)
              for r in range(world)]
    for epoch in (0, 1):
        single.set_epoch(epoch)
        for s in shards:
            s.set_epoch(epoch)
        order = single.epoch_indices()
        steps = [s.step_rows() for s in shards]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(single)   # same steps everywhere
        assert len({len(st) for st in steps}) == 1
        for b in range(len(single)):
            global_rows = torch.cat([st[b] for st in steps])
            expected = order[b * single.batch_size:(b + 1) * single.batch_size]
            pad = len(global_rows) - len(expected)                # the last batch is padded to a multiple of N
            assert 0 <= pad < world
            assert sorted(global_rows.tolist()) == sorted(torch.cat([expected, order[:pad]]).tolist())
            assert len({len(st[b]) for st in steps}) == 1         # equal shares: DDP's mean is the global mean
        # a pure function of (seed, epoch): rebuilt loaders give the same rows
        again = ddp.ShardedLoader(FaceLoader(train, spec, batch, train=True, seed=5, balanced=balanced), 1, world)
        again.set_epoch(epoch)
        assert all(torch.equal(a, b) for a, b in zip(again.step_rows(), steps[1]))
    xs = [next(iter(s))[0] for s in shards]                        # augmentation differs between ranks
    assert not torch.equal(xs[0], xs[1])


def test_evaluation_shards_cover_every_row_once(faces):
    spec = grayscale_spec(48, "x")
    val = faces.split("val")
    rows = [torch.cat(ddp.ShardedLoader(FaceLoader(val, spec, 7), r, 3).step_rows()) for r in range(3)]
    assert sorted(torch.cat(rows).tolist()) == list(range(len(val)))


def test_evaluate_loss_and_predict_agree(faces):
    """One evaluation loop: the accuracy of train.evaluate_loss is predict's, the loss its NLL."""
    torch.manual_seed(0)
    spec = grayscale_spec(48, "x")
    model = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 11 * 11, 7))
    model.spec = spec
    loader = FaceLoader(faces.split("val"), spec, 32)
    out = evaluate_loss(model, loader)
    probs, labels = predict(model, loader)
    assert out["acc"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    nll = -np.log(probs[np.arange(len(labels)), labels]).mean()
    assert out["loss"] == pytest.approx(float(nll), rel=1e-4)
