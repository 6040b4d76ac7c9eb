"""emolib.training.run_files: config.yaml and history.csv beside every run's checkpoints, resume included."""
import csv
import importlib.metadata
import itertools

import numpy as np
import pytest
import torch
import yaml
from tiny_net import TinyNet

from emolib.core import runtime
from emolib.data.synthetic import generate
from emolib.training import run_files
from emolib.training.ddp import ShardedLoader
from emolib.training.loader import FaceLoader
from emolib.training.loop import TrainConfig, fit, train_images_per_epoch
from emolib.training.state import HISTORY_KEYS

CLASSES = ["happy", "sad", "surprise"]


@pytest.fixture(scope="module")
def tiny():
    faces = generate(n=600, seed=0).subset(CLASSES)
    return faces.split("train")._take(np.arange(70)), faces.split("val")._take(np.arange(30))


def _fit(tiny, out, epochs=3, context=None, **kw):
    train, val = tiny
    torch.manual_seed(0)
    model = TinyNet()
    tl, vl = FaceLoader(train, model.spec, 16, train=True, seed=0), FaceLoader(val, model.spec, 64)
    cfg = TrainConfig(epochs=epochs, lr=3e-3, out_dir=str(out), progress=False, device="cpu", seed=3,
                      **kw.pop("cfg", {}))
    return fit(model, tl, vl, cfg, context=context, **kw)


def _rows(out) -> list[dict]:
    with open(out / run_files.HISTORY, newline="") as f:
        return list(csv.DictReader(f))


def _assert_rows_equal_history(rows: list[dict], history: dict):
    assert len(rows) == len(history["train_loss"]) == history["completed_epochs"]
    for i, row in enumerate(rows):
        assert int(row["epoch"]) == i + 1
        for k in HISTORY_KEYS:          # floats are written as repr: they read back exactly
            assert (float(row[k]) if row[k] else None) == history[k][i], (i, k)


def test_a_fit_writes_config_and_history_beside_its_checkpoints(tiny, tmp_path):
    context = {"notebook": "02_cnn_baseline", "section": {"model": "tiny", "train": {"epochs": 3}},
               "overrides": {"train.epochs": 3}}
    history = _fit(tiny, tmp_path, context=context)
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", "last.pt", "config.yaml", "history.csv"}
    assert tuple(_rows(tmp_path)[0]) == run_files.COLUMNS
    _assert_rows_equal_history(_rows(tmp_path), history)
    assert all(v > 0 for v in history["images_per_s"])

    config = yaml.safe_load((tmp_path / run_files.CONFIG).read_text())
    cfg = TrainConfig(epochs=3, lr=3e-3, out_dir=str(tmp_path), progress=False, device="cpu", seed=3)
    assert config["train"] == cfg.to_dict()
    assert config["section"] == context["section"] and config["overrides"] == context["overrides"]
    assert config["notebook"] == "02_cnn_baseline" and config["seed"] == 3 and config["device"] == "cpu"
    assert config["world_size"] == 1 and config["resumed_from_epoch"] is None
    assert config["versions"]["torch"] == importlib.metadata.version("torch")
    assert config["versions"]["numpy"] == np.__version__ and "emolib" in config["versions"]
    assert "git_commit" in config         # None where git does not answer (provenance.git_commit)


def test_a_resumed_run_keeps_the_earlier_rows_also_from_an_older_last_pt(tiny, tmp_path):
    """A run stopped after one epoch, its last.pt made older (no images_per_s yet), resumed to three epochs."""
    first = _fit(tiny, tmp_path, stop_after=1)
    first_row = _rows(tmp_path)[0]
    _assert_rows_equal_history([first_row], first)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    del last["state"]["history"]["images_per_s"]
    torch.save(last, tmp_path / "last.pt")

    resumed = _fit(tiny, tmp_path, cfg={"resume": True})
    rows = _rows(tmp_path)
    _assert_rows_equal_history(rows, resumed)
    assert len(rows) == 3 and resumed["resumed_from_epoch"] == 1
    assert {k: v for k, v in rows[0].items() if k != "images_per_s"} == \
        {k: v for k, v in first_row.items() if k != "images_per_s"}
    assert rows[0]["images_per_s"] == "" and resumed["images_per_s"][0] is None    # unknown, not made up
    assert yaml.safe_load((tmp_path / run_files.CONFIG).read_text())["resumed_from_epoch"] == 1


def test_an_interrupted_run_keeps_the_epochs_it_completed(tiny, tmp_path):
    def stop_in_epoch_two(history):
        if history["completed_epochs"] == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _fit(tiny, tmp_path, on_epoch_end=stop_in_epoch_two)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["state"]["history"]
    _assert_rows_equal_history(_rows(tmp_path), saved)
    assert len(_rows(tmp_path)) == 2


def test_only_rank_0_writes(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "is_main", lambda: False)
    _fit(tiny, tmp_path, epochs=1)
    assert not (tmp_path / run_files.CONFIG).exists() and not (tmp_path / run_files.HISTORY).exists()


@pytest.mark.parametrize("batch,drop_last,max_batches,world", [
    (16, False, None, 1), (16, True, None, 1), (16, False, 2, 1), (16, False, None, 3), (16, True, None, 3),
    (8, False, 2, 3)])
def test_train_images_per_epoch_counts_what_the_loaders_yield(tiny, batch, drop_last, max_batches, world):
    train, _ = tiny
    loader = FaceLoader(train, TinyNet().spec, batch, train=True, drop_last=drop_last)
    cfg = TrainConfig(max_batches=max_batches)
    shards = [ShardedLoader(loader, r, world) for r in range(world)] if world > 1 else [loader]
    seen = sum(len(y) for s in shards for _, y in itertools.islice(s, max_batches))
    assert train_images_per_epoch(shards[0], cfg) == seen
