"""Dry runs: the caps reach the training and evaluation loops, missing ImageNet weights become a
recorded random initialization (only in a dry run), a failure names its notebook and cell, and
(slow) `make dry-run` on the quick profile and on a full-size FER2013 CSV, end to end."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from emolib import models
from emolib.research import runner
from emolib.training import evaluate
from emolib.core import dryrun, paths
from emolib.data import synthetic
from emolib.training.loader import FaceLoader
from emolib.training.loop import TrainConfig, fit

ROOT = paths.home()
sys.path.insert(0, str(Path(__file__).parent))
from fixtures_fer import FER2013_BLANK_TRAINING, FER2013_COUNTS, write_full_size_fer2013  # noqa: E402

CAPS = dryrun.Caps(epochs=2, batches=3, batch_size=5, samples=4)


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv(dryrun.ENV, CAPS.to_json())
    return CAPS


def _loaders(n=400):
    faces = synthetic.generate(n, seed=0)
    net = models.create("cnn_fer")
    return net, faces, FaceLoader(faces.split("train"), net.spec, 32, train=True), FaceLoader(faces.split("val"), net.spec, 64)


def test_caps_come_from_the_environment_and_are_checked(monkeypatch):
    monkeypatch.delenv(dryrun.ENV, raising=False)
    assert dryrun.active() is None and dryrun.cap_epochs(100) == 100 and dryrun.capped_len(9) == 9
    monkeypatch.setenv(dryrun.ENV, CAPS.to_json())
    assert dryrun.active() == CAPS and dryrun.cap_epochs(100) == 2 and dryrun.cap_epochs(1) == 1
    monkeypatch.setenv(dryrun.ENV, '{"epochs": 2, "batchez": 1}')
    with pytest.raises(ValueError, match="batchez"):
        dryrun.active()
    monkeypatch.setenv(dryrun.ENV, '{"epochs": 0}')
    with pytest.raises(ValueError, match=">= 1"):
        dryrun.active()


def test_training_and_evaluation_loops_honour_the_caps(capped):
    net, faces, train_loader, val_loader = _loaders()
    assert len(train_loader) > CAPS.batches and train_loader.batch_size > CAPS.batch_size
    steps = []
    cfg = TrainConfig(epochs=50, scheduler="onecycle", progress=False, device="cpu")
    history = fit(net, train_loader, val_loader, cfg, on_epoch_end=lambda h: steps.append(h["completed_epochs"]))
    assert history["completed_epochs"] == 2 and len(history["val_acc"]) == 2
    probs, labels = evaluate.predict(net, faces.split("test"))     # one batch of 41 rows: 3 batches of 5 rows
    assert probs.shape == (CAPS.batches * CAPS.batch_size, 7)
    np.testing.assert_array_equal(labels, faces.split("test").labels[:len(labels)])   # the first rows, in order
    assert evaluate.evaluate(net, faces.split("test"), tta="tencrop", batch_size=4)["n"] == CAPS.batches * 4


def test_a_real_run_is_not_capped(monkeypatch):
    monkeypatch.delenv(dryrun.ENV, raising=False)
    net, faces, _, _ = _loaders()
    assert len(evaluate.predict(net, faces.split("test"))[1]) == len(faces.split("test"))


def test_missing_imagenet_weights_become_a_recorded_random_init_in_a_dry_run_only(capped, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_ASSETS", str(tmp_path / "empty-assets"))       # no weights file anywhere
    monkeypatch.setenv("EMOLIB_REPORT_STAGING", str(tmp_path / "stage"))
    net = models.create("resnet18", num_classes=7, pretrained=True, input_size=32)   # would need a download
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    recorded = dryrun.substitutions(tmp_path / "stage")
    assert len(recorded) == 1 and "resnet18" in recorded[0] and "RANDOM INITIALIZATION" in recorded[0]
    models.create("fer2013-mini-xception", pretrained=True)   # not ImageNet: never substituted (it is present)
    assert dryrun.substitutions(tmp_path / "stage") == recorded
    monkeypatch.delenv(dryrun.ENV)
    assert not dryrun.substitute_missing_weights("resnet18", tmp_path / "empty-assets" / "x.pth", "ImageNet")


def test_cam_samples_are_capped_through_overrides():
    assert dryrun.cap_overrides("05_error_analysis", {"cam_samples": 500, "gallery_size": 24}, CAPS) == {"cam_samples": 4}
    assert dryrun.cap_overrides("05_error_analysis", {"cam_samples": 3}, CAPS) == {}
    assert dryrun.cap_overrides("02_cnn_baseline", {"cam_samples": 500}, CAPS) == {}


def test_a_failing_dry_run_names_the_notebook_and_cell(scratch_home, capsys):
    book = nbformat.read(scratch_home / "notebooks" / "01_data_exploration.ipynb", as_version=4)
    book.cells.insert(4, nbformat.v4.new_code_cell('raise RuntimeError("deliberate dry-run failure")'))
    nbformat.write(book, scratch_home / "notebooks" / "01_data_exploration.ipynb")
    assert runner.main(["dry-run", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "DRY RUN: 01_data_exploration.ipynb FAILED in cell" in err and "deliberate dry-run failure" in err
    assert not (paths.reports_dir() / "html").exists(), "a dry run never writes the real reports"


# ----------------------------------------------------------------------------------------- end to end

def _dry_run(profile, env, timeout):
    t0 = time.perf_counter()
    out = subprocess.run(["make", "--no-print-directory", "dry-run", f"PROFILE={profile}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return time.perf_counter() - t0


def _check_dry_run(tmp_path, profile) -> dict:
    """Every report in the dry-run root with the banner; nothing in the real roots; the metrics."""
    root = tmp_path / "reports" / "dry-run" / profile
    assert "DRY RUN of profile" in (root / "index.html").read_text()
    metrics = {}
    for nb in runner.NOTEBOOKS:
        page = (root / "html" / f"{nb}.html").read_text(encoding="utf-8")
        assert page.index("DRY RUN of profile") < page.index(f"{nb[:2]} ·"), f"{nb}: the banner must come first"
        metrics[nb] = json.loads((root / "metrics" / f"{nb}.json").read_text())
        assert metrics[nb]["dry_run"]["caps"] == json.loads(dryrun.Caps().to_json())
    assert not (tmp_path / "reports" / "html").exists() and not (tmp_path / "models" / profile).exists()
    assert list((tmp_path / "models" / "dry-run" / profile / "02_cnn_baseline").glob("*/best.pt"))
    return metrics


def _env(tmp_path):
    env = {**os.environ, "EMOLIB_REPORTS": str(tmp_path / "reports"), "EMOLIB_MODELS": str(tmp_path / "models")}
    for var in ("EMOLIB_REPORT_STAGING", "EMOLIB_RUN_KIND", dryrun.ENV):
        env.pop(var, None)
    return env


@pytest.mark.slow
def test_make_dry_run_quick(tmp_path):
    _dry_run("quick", _env(tmp_path), timeout=600)
    m = _check_dry_run(tmp_path, "quick")
    assert len(m["02_cnn_baseline"]["metrics"]["history"]["val_acc"]) == 2


@pytest.mark.slow
def test_make_dry_run_fer2013_on_a_full_size_csv(tmp_path):
    """The real profile's every code path on a 35,887-row fer2013.csv found where the real run looks
    (data/raw/fer2013 under $EMOLIB_DATA), in at most 15 minutes."""
    csv = write_full_size_fer2013(tmp_path / "data" / "raw" / "fer2013" / "fer2013.csv")
    env = {**_env(tmp_path), "EMOLIB_DATA": str(tmp_path / "data"), "EMOLIB_CACHE": str(tmp_path / "cache"),
           "EMOLIB_ASSETS": str(paths.assets_dir())}
    seconds = _dry_run("fer2013", env, timeout=900)
    assert seconds <= 900
    m = _check_dry_run(tmp_path, "fer2013")
    head = m["01_data_exploration"]["headline"]
    assert head["images"] == 35_887 and head["blank_images"] == FER2013_BLANK_TRAINING
    counts = m["01_data_exploration"]["metrics"]["counts"]
    assert [sum(counts[s].values()) for s in ("train", "val", "test")] == [sum(c) for c in FER2013_COUNTS.values()]
    assert str(csv.name) in m["02_cnn_baseline"]["data"]["source"]
    # ImageNet weights absent from disk are listed as substituted, by name, in their reports.
    for nb, archs in {"03_transfer_learning": ("resnet50", "mobilenet_v3_large"), "04_vit_finetune": ("vit_b_16",)}.items():
        for arch in archs:
            listed = any(line.startswith(arch + ":") for line in m[nb]["dry_run"]["substituted"])
            assert listed == (not (paths.assets_dir() / models.entry(arch).weights.filename).exists()), (nb, arch)
    assert set(m["05_error_analysis"]["headline"]) >= {"vgg_fer_test_accuracy", "vit_b_16_test_accuracy",
                                                       "fer2013-mini-xception_test_accuracy"}
