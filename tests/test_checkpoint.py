"""Checkpoints: what they carry, what they refuse, and that loading never unpickles objects."""
from __future__ import annotations

import dataclasses
import os
import random

import numpy as np
import pytest
import torch

import emolib
from emolib.core.labels import EMOTIONS, FIVE_CLASS
from emolib.models import create
from emolib.models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint


@dataclasses.dataclass
class Cfg:
    epochs: int = 3
    lr: float = 1e-3


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return create("cnn_fer", num_classes=5).eval()


def _save(path, model, **kw):
    args = dict(classes=FIVE_CLASS, config={"epochs": 3}, metrics={"val_acc": 0.5})
    return save_checkpoint(path, model, **(args | kw))


def test_checkpoint_carries_everything(cnn, tmp_path):
    opt = torch.optim.SGD(cnn.parameters(), lr=0.1, momentum=0.9)
    cnn.train()
    cnn(torch.randn(4, 1, 48, 48)).sum().backward()
    opt.step()
    cnn.eval()
    state = {"optimizer": opt.state_dict(), "epoch": 2, "numpy_rng": np.random.default_rng(0).bit_generator.state,
             "legacy_numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
             "torch_rng": torch.get_rng_state()}
    metrics = {"val_acc": np.float32(0.625), "confusion": np.eye(5, dtype=np.int64), "per_class": {"happy": 0.9}}
    path = _save(tmp_path / "run" / "best.pt", cnn, config=Cfg(), metrics=metrics, state=state)

    ckpt = load_checkpoint(path, expect_model="cnn_fer", expect_classes="five")
    assert ckpt["model_name"] == "cnn_fer" and ckpt["num_classes"] == 5
    assert ckpt["classes"] == list(FIVE_CLASS)
    assert ckpt["spec"] == cnn.spec.to_dict()
    assert ckpt["config"] == {"epochs": 3, "lr": 1e-3}
    assert ckpt["metrics"]["val_acc"] == pytest.approx(0.625) and type(ckpt["metrics"]["val_acc"]) is float
    assert ckpt["metrics"]["confusion"] == np.eye(5, dtype=int).tolist()
    assert ckpt["emolib_version"] == emolib.__version__
    assert "git_commit" in ckpt    # a sha in a checkout, None elsewhere; never an exception
    # The resume state survives weights_only loading and restores the optimizer and RNGs.
    opt2 = torch.optim.SGD(cnn.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt["state"]["optimizer"])
    assert opt2.state_dict()["state"][0]["momentum_buffer"].shape == cnn.features[0][0].weight.shape
    assert ckpt["state"]["epoch"] == 2
    random.setstate(ckpt["state"]["python_rng"])
    st = ckpt["state"]["legacy_numpy_rng"]
    np.random.set_state((st[0], np.asarray(st[1], dtype=np.uint32), *st[2:]))
    torch.set_rng_state(ckpt["state"]["torch_rng"])


def test_load_model_gives_the_same_outputs(cnn, tmp_path):
    path = _save(tmp_path / "m.pt", cnn)
    model, ckpt = load_model(path)
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), cnn(x), rtol=0, atol=0)
    assert model.model_name == "cnn_fer" and model.num_classes == 5


def test_save_is_atomic_and_overwrites(cnn, tmp_path):
    path = _save(tmp_path / "m.pt", cnn, metrics={"epoch": 1})
    _save(path, cnn, metrics={"epoch": 2})
    assert load_checkpoint(path)["metrics"]["epoch"] == 2
    assert os.listdir(tmp_path) == ["m.pt"]       # no temp file left behind


def test_refuses_another_model(cnn, tmp_path):
    path = _save(tmp_path / "m.pt", cnn)
    with pytest.raises(ValueError, match="expected a checkpoint of model 'mini_xception', found 'cnn_fer'"):
        load_checkpoint(path, expect_model="mini_xception")


def test_refuses_another_class_set(cnn, tmp_path):
    path = _save(tmp_path / "m.pt", cnn)
    with pytest.raises(ValueError, match="expected classes .*'disgust'.* found "):
        load_checkpoint(path, expect_classes="all")
    with pytest.raises(ValueError, match="expected classes"):
        load_model(path, expect_classes=EMOTIONS)
    # aliases name the same classes
    load_checkpoint(path, expect_classes=["anger", "fearful", "happiness", "sadness", "neutral"])


def test_garbage_and_bare_state_dict_are_clear_errors(cnn, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="garbage.pt is not a readable emolib checkpoint"):
        load_checkpoint(garbage)
    bare = tmp_path / "bare.pt"
    torch.save(cnn.state_dict(), bare)
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_checkpoint(bare)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_pickled_objects_are_not_loaded(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "emolib-checkpoint", "payload": Cfg()}, evil)   # a pickled class instance
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(evil)


def test_save_refuses_what_it_cannot_store(cnn, tmp_path):
    with pytest.raises(TypeError, match=r"config\['callback'\]"):
        _save(tmp_path / "m.pt", cnn, config={"callback": object()})
    with pytest.raises(ValueError, match="5 outputs but 7 class names"):
        _save(tmp_path / "m.pt", cnn, classes=EMOTIONS)
    assert not (tmp_path / "m.pt").exists()


def test_load_is_strict(cnn, tmp_path):
    path = _save(tmp_path / "m.pt", cnn)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["classifier.1.weight"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="classifier.1.weight"):
        load_model(path)


def test_load_model_rebuilds_keywords_without_downloading(tmp_path, monkeypatch):
    import emolib.models.transfer as transfer
    model = create("resnet18", num_classes=7, input_size=64).eval()
    path = save_checkpoint(tmp_path / "r.pt", model, classes=EMOTIONS, config={}, metrics={})

    def no_download(arch):
        raise AssertionError(f"load_model fetched ImageNet weights for {arch}")
    monkeypatch.setattr(transfer, "imagenet_weights_file", no_download)
    loaded, ckpt = load_model(path)
    assert ckpt["model_kwargs"] == {"input_size": 64} and loaded.spec.input_size == 64


def test_the_checkpoint_carries_its_framing(cnn, tmp_path):
    """Training on synthetic faces stamps their framing on the spec; the checkpoint brings it back, and a
    spec saved before framing existed reads as FER2013's."""
    from emolib.core.spec import FER2013_FRAMING, SYNTHETIC_FRAMING, ModelSpec, stamp_framing
    from emolib.data.synthetic import generate
    assert cnn.spec.framing == FER2013_FRAMING
    stamp_framing(cnn, generate(64, seed=0))
    assert cnn.spec.framing == SYNTHETIC_FRAMING
    model, _ = load_model(_save(tmp_path / "f.pt", cnn))
    assert model.spec.framing == SYNTHETIC_FRAMING
    old = {k: v for k, v in cnn.spec.to_dict().items() if k != "framing"}
    assert ModelSpec.from_dict(old).framing == FER2013_FRAMING
    from emolib import EmotionRecognizer
    assert EmotionRecognizer(tmp_path / "f.pt", classes=None).framing == SYNTHETIC_FRAMING


def test_load_model_attaches_the_checkpoints_classes(cnn, tmp_path):
    model, ckpt = load_model(_save(tmp_path / "m.pt", cnn))
    assert model.classes == FIVE_CLASS == tuple(ckpt["classes"])
    from emolib.inference.recognizer import EmotionRecognizer
    assert EmotionRecognizer(model, optimize=False).classes == FIVE_CLASS   # not the seven emotions
