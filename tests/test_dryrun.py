"""Dry runs: the caps reach training as its sections' values and evaluation as the first rows of its splits,
missing ImageNet weights become a recorded random initialization (only in a dry run), a failure names its notebook and cell, and
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
from emolib.core import paths
from emolib.data import synthetic
from emolib.research import dryrun, experiment, profiles, runner, session
from emolib.training.loader import FaceLoader
from emolib.training.loop import TrainConfig, fit

ROOT = paths.home()
sys.path.insert(0, str(Path(__file__).parent))
from fixtures_fer import FER2013_BLANK_TRAINING, FER2013_COUNTS, write_full_size_fer2013  # noqa: E402

CAPS = dryrun.Caps(epochs=2, batches=3, batch_size=5, samples=4)


def test_caps_are_checked():
    assert dryrun.Caps.from_dict(CAPS.to_dict()) == CAPS
    with pytest.raises(ValueError, match="batchez"):
        dryrun.Caps.from_dict({"epochs": 2, "batchez": 1})
    with pytest.raises(ValueError, match=">= 1"):
        dryrun.Caps.from_dict({"epochs": 0})


def test_the_runner_caps_training_sections_and_sample_counts_through_overrides():
    capped = {"epochs": 2, "batch_size": 5, "max_batches": 3}
    assert dryrun.cap_overrides("02_cnn_baseline", profiles.resolve("02", "quick"), CAPS) == {"train": capped}
    assert dryrun.cap_overrides("03_transfer_learning", profiles.resolve("03", "quick"), CAPS) == {
        "head_train": {**capped, "epochs": 1}, "finetune_train": capped}        # 1 head epoch stays 1
    assert dryrun.cap_overrides("05_error_analysis", {"cam_samples": 500, "gallery_size": 24}, CAPS) == {"cam_samples": 4}
    assert dryrun.cap_overrides("05_error_analysis", {"cam_samples": 3}, CAPS) == {}
    assert dryrun.cap_overrides("02_cnn_baseline", {"cam_samples": 500}, CAPS) == {}


def test_max_batches_caps_the_epochs_steps_and_the_schedule():
    faces = synthetic.generate(400, seed=0)
    net = models.create("cnn_fer")
    train = FaceLoader(faces.split("train"), net.spec, 5, train=True)
    seen = []
    counted = type("Counted", (), {"__iter__": lambda self: (seen.append(1) or b for b in train),
                                   "__len__": lambda self: len(train), "__getattr__": lambda self, k: getattr(train, k)})()
    cfg = TrainConfig(epochs=2, max_batches=3, scheduler="onecycle", progress=False, device="cpu")  # onecycle: exact steps
    history = fit(net, counted, FaceLoader(faces.split("val"), net.spec, 64), cfg)
    assert history["completed_epochs"] == 2 and len(seen) == 2 * 3


def _dry_session(monkeypatch, tmp_path, nb):
    monkeypatch.setenv(session.RUNNER_ENV, json.dumps({"kind": "dry-run", "output_root": str(tmp_path / "stage"),
                                                       "caps": CAPS.to_dict()}))
    return session.setup(nb, "smoke")


def test_a_dry_run_session_evaluates_the_first_rows_and_knows_its_caps(monkeypatch, tmp_path):
    cfg, full, _ = session.setup("02", "smoke")                            # outside the runner: everything
    cfg, data, run = _dry_session(monkeypatch, tmp_path, "02")
    assert run.kind == "dry-run" and run.caps == CAPS and run.headless and run.output_root == tmp_path / "stage"
    for split in ("val", "test"):
        np.testing.assert_array_equal(data.split(split).labels, full.split(split).labels[:CAPS.batches * CAPS.batch_size])
    assert len(data.split("train")) == len(full.split("train"))             # training is capped by its section
    assert len(_dry_session(monkeypatch, tmp_path, "01")[1]) == len(full)   # 01 shows the data as they are


def test_missing_imagenet_weights_become_a_recorded_random_init_in_a_dry_run_only(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_ASSETS", str(tmp_path / "empty-assets"))       # no weights file anywhere
    _, _, run = _dry_session(monkeypatch, tmp_path, "03")
    net = experiment.create_model("resnet18", 7, seed=0, pretrained=True, input_size=32, substitute=run.substitute)
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)               # would have needed a download
    recorded = dryrun.substitutions(tmp_path / "stage")
    assert len(recorded) == 1 and "resnet18" in recorded[0] and "RANDOM INITIALIZATION" in recorded[0]
    experiment.create_model("fer2013-mini-xception", 7, seed=0, pretrained=True, substitute=run.substitute)
    assert dryrun.substitutions(tmp_path / "stage") == recorded              # not ImageNet: never substituted
    monkeypatch.delenv(session.RUNNER_ENV)
    assert session.setup("03", "smoke")[2].substitute is None                 # a real run fetches or fails


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


def _check_dry_run(tmp_path, profile, caps=dryrun.Caps()) -> dict:
    """Every report in the dry-run root with the banner; nothing in the real roots; the metrics."""
    root = tmp_path / "reports" / "dry-run" / profile
    assert "DRY RUN of profile" in (root / "index.html").read_text()
    metrics = {}
    for nb in runner.NOTEBOOKS:
        page = (root / "html" / f"{nb}.html").read_text(encoding="utf-8")
        assert page.index("DRY RUN of profile") < page.index(f"{nb[:2]} ·"), f"{nb}: the banner must come first"
        metrics[nb] = json.loads((root / "metrics" / f"{nb}.json").read_text())
        assert metrics[nb]["dry_run"]["caps"] == caps.to_dict()
    assert not (tmp_path / "reports" / "html").exists() and not (tmp_path / "models" / profile).exists()
    assert list((tmp_path / "models" / "dry-run" / profile / "02_cnn_baseline").glob("*/best.pt"))
    return metrics


def _env(tmp_path):
    env = {**os.environ, "EMOLIB_REPORTS": str(tmp_path / "reports"), "EMOLIB_MODELS": str(tmp_path / "models")}
    env.pop(session.RUNNER_ENV, None)
    return env


@pytest.mark.slow
def test_make_dry_run_quick(tmp_path):
    _dry_run("quick", _env(tmp_path), timeout=600)
    m = _check_dry_run(tmp_path, "quick")
    assert len(m["02_cnn_baseline"]["metrics"]["history"]["val_acc"]) == 2


@pytest.mark.slow
def test_a_dry_run_of_fer2013_on_a_full_size_csv(tmp_path, monkeypatch):
    """The real profile's every code path on a 35,887-row fer2013.csv found where the real run looks
    (data/raw/fer2013 under $EMOLIB_DATA). The smallest caps: what this proves is the profile and the data's
    size and layout, not the make target (test_make_dry_run_quick runs that) or the models' speed on a CPU."""
    csv = write_full_size_fer2013(tmp_path / "data" / "raw" / "fer2013" / "fer2013.csv")
    for var, sub in [("EMOLIB_DATA", "data"), ("EMOLIB_CACHE", "cache"), ("EMOLIB_REPORTS", "reports"),
                     ("EMOLIB_MODELS", "models")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv(session.RUNNER_ENV, raising=False)
    caps = dryrun.Caps(epochs=1, batches=1, batch_size=4, samples=2)
    runner.dry_run("fer2013", caps=caps)
    m = _check_dry_run(tmp_path, "fer2013", caps)
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
