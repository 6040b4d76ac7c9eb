"""emolib.training.loop: config validation, learning, exact resume, weighted loss, checkpoints, early stopping."""
import numpy as np
import pytest
import torch
from tiny_net import TinyNet

from emolib.data.synthetic import generate
from emolib.models import create
from emolib.models.checkpoint import load_checkpoint, load_model
from emolib.training.evaluate import predict
from emolib.training.loader import AugmentConfig, FaceLoader
from emolib.training.loop import TrainConfig, build_optimizer, fit

# Happy, sad and surprise differ in mouth curve, brows and eyes: an easy 3-class problem.
EASY = ["happy", "sad", "surprise"]


@pytest.fixture(scope="module")
def easy():
    return generate(n=2000, seed=0).subset(EASY)


@pytest.fixture(scope="module")
def small(easy):
    """192 train / 48 val faces: enough rows for a few optimizer steps per epoch."""
    tr, va = easy.split("train"), easy.split("val")
    return tr._take(np.arange(192)), va._take(np.arange(48))


def loaders(train, val, spec, batch_size=64, augment=None):
    return (FaceLoader(train, spec, batch_size, train=True, augment=augment, seed=0),
            FaceLoader(val, spec, 256))


# --------------------------------------------------------------------------- config

def test_config_from_dict_validates():
    cfg = TrainConfig.from_dict({"epochs": 3, "lr": 1, "optimizer": "sgd", "early_stopping_patience": None})
    assert cfg.epochs == 3 and cfg.lr == 1 and cfg.optimizer == "sgd"
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    for key, bad in [("epochs", "3"), ("epochs", 2.5), ("lr", "1e-3"), ("amp", 1), ("weighted_loss", "yes"),
                     ("early_stopping_patience", 2.0), ("optimizer", "adam"), ("monitor", "accuracy"),
                     ("scheduler", "linear"), ("clip_grad_norm", True)]:
        with pytest.raises(TypeError, match=key):
            TrainConfig.from_dict({key: bad})
    with pytest.raises(ValueError, match="resume=True needs an out_dir"):
        TrainConfig(resume=True)


def test_optimizer_skips_frozen_parameters():
    model = TinyNet()
    model.net[0].requires_grad_(False)
    opt = build_optimizer(model, TrainConfig(weight_decay=0.1))
    got = {id(p) for g in opt.param_groups for p in g["params"]}
    assert got == {id(p) for p in model.net[3].parameters()}
    # weight decay on the weight matrix only, not on the bias
    assert {(tuple(p.shape), g["weight_decay"]) for g in opt.param_groups for p in g["params"]} == \
        {((3, 484), 0.1), ((3,), 0.0)}



@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_fused_optimizer_steps_as_the_for_loop_one(name):
    """build_optimizer fuses the update on a CPU; three steps land where torch's per-tensor loop lands."""
    torch.manual_seed(0)
    model, twin = TinyNet(), TinyNet()
    twin.load_state_dict(model.state_dict())
    cfg = TrainConfig(optimizer=name, lr=0.01, weight_decay=0.1, momentum=0.9, nesterov=True)
    fused = build_optimizer(model, cfg)
    assert fused.defaults["fused"] is True
    loop = build_optimizer(twin, cfg)
    for group in loop.param_groups:
        group["fused"], group["foreach"] = False, False
    for step in range(3):
        grads = [torch.randn_like(p) for p in model.parameters()]
        for net, opt in ((model, fused), (twin, loop)):
            for p, g in zip(net.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)
# --------------------------------------------------------------------------- learning

@pytest.mark.slow
def test_cnn_fer_learns_easy_synthetic_classes(easy):
    torch.manual_seed(0)
    model = create("cnn_fer", num_classes=3)
    train, val = loaders(easy.split("train"), easy.split("val"), model.spec, batch_size=32,
                         augment=AugmentConfig.none())
    history = fit(model, train, val, TrainConfig(epochs=6, lr=3e-3, progress=False))
    assert history["best_metric"] >= 0.90, history["val_acc"]
    assert history["train_loss"][-1] < history["train_loss"][0]


@pytest.mark.slow
def test_weighted_loss_raises_rare_class_recall(easy):
    tr = easy.split("train")
    rare = np.flatnonzero(tr.labels == 2)[:25]                       # 25 surprise vs 403 happy, 269 sad
    train = tr._take(np.sort(np.concatenate([np.flatnonzero(tr.labels != 2), rare])))
    assert np.bincount(train.labels).tolist() == [403, 269, 25]
    recall = {}
    for weighted in (False, True):
        torch.manual_seed(0)
        model = create("cnn_fer", num_classes=3)
        tl, vl = loaders(train, easy.split("val"), model.spec, batch_size=32, augment=AugmentConfig.none())
        fit(model, tl, vl, TrainConfig(epochs=4, lr=3e-3, weighted_loss=weighted, restore_best=False,
                                       progress=False))
        probs, labels = predict(model, vl)
        recall[weighted] = float((probs.argmax(1)[labels == 2] == 2).mean())
    assert recall[True] >= recall[False] + 0.3, recall


# --------------------------------------------------------------------------- resume

class Interrupting:
    """A loader that raises KeyboardInterrupt in the middle of epoch `at_epoch` (0-based)."""

    def __init__(self, loader, at_epoch):
        self.loader, self.at_epoch = loader, at_epoch

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if self.loader.epoch == self.at_epoch and i == 1:
                raise KeyboardInterrupt
            yield batch


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_identical(small, tmp_path):
    """cnn_fer (dropout + BatchNorm), AdamW + OneCycle + augmentation: 2 epochs, stop, resume to 4."""
    train, val = small

    def run(out, **kw):
        torch.manual_seed(0)
        model = create("cnn_fer", num_classes=3)
        tl, vl = loaders(train, val, model.spec)
        cfg = TrainConfig(epochs=4, lr=3e-3, out_dir=str(out), progress=False, restore_best=False, **kw.pop("cfg", {}))
        return model, fit(model, tl, vl, cfg, **kw)

    full_model, full = run(tmp_path / "full")
    _, first = run(tmp_path / "split", stop_after=2)
    assert first["completed_epochs"] == 2
    assert load_checkpoint(tmp_path / "split" / "last.pt")["state"]["epoch"] == 2
    resumed_model, resumed = run(tmp_path / "split", cfg={"resume": True})
    assert resumed["resumed_from_epoch"] == 2 and resumed["completed_epochs"] == 4
    _assert_same(_state(full_model), _state(resumed_model))
    for k in ("train_loss", "val_loss", "val_acc", "lr"):
        assert full[k] == resumed[k], k
    assert resumed["best_epoch"] == full["best_epoch"]


@pytest.mark.parametrize("recipe", [
    {"optimizer": "sgd", "scheduler": "cosine", "warmup_epochs": 1.0, "clip_grad_norm": 1.0},
    {"optimizer": "adamw", "scheduler": "plateau", "plateau_patience": 0, "monitor": "val_loss"},
    {"optimizer": "sgd", "scheduler": "step", "step_size": 1, "gamma": 0.5, "label_smoothing": 0.1},
    {"optimizer": "adamw", "scheduler": "none", "weighted_loss": True, "monitor": "val_macro_f1"},
])
def test_keyboard_interrupt_then_resume_is_exact(small, tmp_path, recipe):
    """Ctrl-C mid-epoch 3 leaves last.pt at epoch 2; resuming ends where an uninterrupted run ends."""
    train, val = small

    def run(out, interrupt_at=None, resume=False):
        torch.manual_seed(0)
        model = TinyNet()
        tl, vl = loaders(train, val, model.spec)
        if interrupt_at is not None:
            tl = Interrupting(tl, interrupt_at)
        cfg = TrainConfig(epochs=4, lr=0.01, out_dir=str(out), resume=resume, progress=False, **recipe)
        return model, fit(model, tl, vl, cfg)

    full_model, full = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", interrupt_at=2)
    last = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert last["state"]["epoch"] == 2 and len(last["state"]["history"]["val_loss"]) == 2
    resumed_model, resumed = run(tmp_path / "cut", resume=True)
    _assert_same(_state(full_model), _state(resumed_model))     # both restored their best epoch
    _assert_same(load_checkpoint(tmp_path / "full" / "last.pt")["state_dict"],
                 load_checkpoint(tmp_path / "cut" / "last.pt")["state_dict"])
    assert full["val_loss"] == resumed["val_loss"] and full["lr"] == resumed["lr"]


def test_resume_refuses_a_changed_recipe(small, tmp_path):
    train, val = small
    model = TinyNet()
    tl, vl = loaders(train, val, model.spec)
    fit(model, tl, vl, TrainConfig(epochs=2, out_dir=str(tmp_path), progress=False), stop_after=1)
    with pytest.raises(ValueError, match=r"config changed in \['lr'\]"):
        fit(model, tl, vl, TrainConfig(epochs=2, lr=0.1, out_dir=str(tmp_path), resume=True, progress=False))


# --------------------------------------------------------------------------- checkpoints, stopping

def test_channels_last_trains_nhwc_on_the_cpu_to_the_same_figures(small, tmp_path):
    """channels_last is a memory layout, not a recipe: on a CPU too the batches and weights go NHWC (oneDNN's faster
    kernels), an epoch's figures follow the NCHW run's (its sums round otherwise, and the difference grows step by
    step), and the checkpoint loads into a plain model."""
    train, val = small
    runs, layouts = {}, []
    for cl in (False, True):
        torch.manual_seed(0)
        model = create("cnn_fer", num_classes=3)
        hook = model.features[1][0].register_forward_pre_hook(     # 32 channels in (a gray batch is both layouts)
            lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
        tl, vl = loaders(train, val, model.spec)
        cfg = TrainConfig(epochs=1, lr=3e-3, out_dir=str(tmp_path / str(cl)), progress=False, channels_last=cl)
        runs[cl] = fit(model, tl, vl, cfg)
        hook.remove()
        seen, layouts[:] = set(layouts[:len(tl)]), []
        assert seen == {cl}, f"channels_last={cl}: training batches in NHWC {seen}"
        assert model.features[1][0].weight.is_contiguous(memory_format=torch.channels_last) == cl
    for k in ("train_loss", "val_loss"):
        assert runs[True][k] == pytest.approx(runs[False][k], rel=5e-3), k
    loaded, _ = load_model(tmp_path / "True" / "best.pt")
    x = next(iter(FaceLoader(val, loaded.spec, 16)))[0]
    assert loaded(x).shape == (16, 3)


def test_a_model_torch_cannot_train_channels_last_on_the_cpu_is_refused_with_the_way_out(small):
    train, val = small
    model = create("mini_xception", num_classes=3)
    tl, vl = loaders(train, val, model.spec)
    with pytest.raises(ValueError, match="MiniXception cannot train channels-last on a CPU.*channels_last: false"):
        fit(model, tl, vl, TrainConfig(epochs=1, progress=False, channels_last=True, device="cpu"))


def test_best_and_last_checkpoints(small, tmp_path):
    train, val = small
    torch.manual_seed(0)
    model = create("cnn_fer", num_classes=3)
    tl, vl = loaders(train, val, model.spec)
    history = fit(model, tl, vl, TrainConfig(epochs=2, out_dir=str(tmp_path), progress=False))
    assert history["best_checkpoint"] == str(tmp_path / "best.pt")
    assert history["last_checkpoint"] == str(tmp_path / "last.pt")
    assert {len(history[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr",
                                      "epoch_time_s")} == {2}
    best, ckpt = load_model(tmp_path / "best.pt", expect_model="cnn_fer", expect_classes=EASY)
    assert ckpt["metrics"]["epoch"] == history["best_epoch"]
    assert ckpt["metrics"]["val_acc"] == history["val_acc"][history["best_epoch"] - 1] == history["best_metric"]
    assert ckpt["config"]["epochs"] == 2 and ckpt["state"] is None
    # restore_best=True: the model fit returns is the best epoch's, the one best.pt holds
    _assert_same({k: v for k, v in model.state_dict().items()}, {k: v for k, v in best.state_dict().items()})
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["state"]["epoch"] == 2 and set(last["state"]) >= {"optimizer", "scheduler", "rng", "history"}


def test_early_stopping_stops(small):
    train, val = small
    model = TinyNet()
    tl, vl = loaders(train, val, model.spec, augment=AugmentConfig.none())
    # An lr far below float32 resolution leaves the weights as they are: no epoch after the first improves.
    cfg = TrainConfig(epochs=10, optimizer="sgd", momentum=0.0, lr=1e-30, weight_decay=0.0, scheduler="none",
                      early_stopping_patience=2, progress=False)
    history = fit(model, tl, vl, cfg)
    assert history["stopped_early"] and history["completed_epochs"] == 3 and history["best_epoch"] == 1
    assert len(history["val_acc"]) == 3
