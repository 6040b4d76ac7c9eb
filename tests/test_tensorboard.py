"""TensorBoard, opt-in and offline: `emolib train --logger tensorboard` writes event files TensorBoard reads back; without
the extra, asking for it is one line naming the extra."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_run_files import tiny  # noqa: F401 - a fixture
from test_train_cli import LEAN
from tiny_net import TinyNet

from emolib.cli.train import LOGGER_REQUIRES
from emolib.training import tensorboard
from emolib.training.loader import FaceLoader
from emolib.training.loop import TrainConfig, fit


def _events(folder) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


def _lean_train(tmp_path, also: tuple[str, ...]):
    """`emolib train 02 --profile smoke --logger tensorboard` where only REQUIRES and `also` can be imported."""
    return subprocess.run([sys.executable, "-c", LEAN, "train", "02", "--profile", "smoke", "--logger", "tensorboard",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LEAN_ALSO": " ".join(also)})


def test_emolib_train_logs_scalars_and_test_figures_tensorboard_reads(tmp_path):
    """In an image holding what `emolib train` and its logger declare (REQUIRES + LOGGER_REQUIRES), nothing else."""
    proc = _lean_train(tmp_path, LOGGER_REQUIRES["tensorboard"])
    blocked, *rest = proc.stderr.splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rest == [], f"nothing but the run may reach stderr (no warnings): {rest}"
    assert "IPython" in json.loads(blocked)
    metrics = json.loads((tmp_path / "metrics" / "02_cnn_baseline.json").read_text())["metrics"]
    timing = json.loads((tmp_path / "metrics" / "02_cnn_baseline.run.json").read_text())["timing"]
    history = {**metrics["history"], **timing["history"]}

    ea = _events(tmp_path / "cnn_fer" / tensorboard.FOLDER)
    for key, tag in tensorboard.SCALARS.items():      # TensorBoard keeps float32
        assert [(e.step, e.value) for e in ea.Scalars(tag)] == \
            [(i + 1, np.float32(v)) for i, v in enumerate(history[key])], tag
    assert ea.Scalars("test/accuracy")[0].value == np.float32(metrics["test"]["accuracy"])
    assert {"test/confusion", "test/gradcam"} <= set(ea.Tags()["images"])
    assert all(ea.Images(t)[0].width > 100 for t in ("test/confusion", "test/gradcam"))
    config = yaml.safe_load((tmp_path / "cnn_fer" / "config.yaml").read_text())
    assert config["train"]["logger"] == "tensorboard" and config["notebook"] == "02_cnn_baseline"
    assert config["profile"] == "smoke" and config["overrides"] == {}


def test_without_the_extra_asking_for_it_is_one_line_naming_the_extra(tmp_path):
    plotting = tuple(d for d in LOGGER_REQUIRES["tensorboard"] if d != "tensorboard")
    proc = _lean_train(tmp_path, plotting)
    blocked, *rest = proc.stderr.splitlines()
    assert "tensorboard" in json.loads(blocked)
    assert proc.returncode == 1 and len(rest) == 1, proc.stderr[-3000:]
    assert tensorboard.EXTRA in rest[0] and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written before the error"


def _fit_logged(tiny, out, epochs, **kw):  # noqa: F811 - tiny: the fixture's value
    train, val = tiny
    torch.manual_seed(0)
    model = TinyNet()
    cfg = TrainConfig(epochs=epochs, lr=3e-3, out_dir=None if out is None else str(out), progress=False, device="cpu", logger="tensorboard",
                      **kw.pop("cfg", {}))
    return fit(model, FaceLoader(train, model.spec, 16, train=True), FaceLoader(val, model.spec, 64), cfg, **kw)


def test_every_epoch_shows_once_after_a_resume_or_a_new_run_in_the_same_folder(tiny, tmp_path):  # noqa: F811
    _fit_logged(tiny, tmp_path, 3, stop_after=1)
    resumed = _fit_logged(tiny, tmp_path, 3, cfg={"resume": True})
    steps = [(e.step, e.value) for e in _events(tmp_path / "tensorboard").Scalars("loss/val")]
    assert steps == [(i + 1, np.float32(v)) for i, v in enumerate(resumed["val_loss"])]
    again = _fit_logged(tiny, tmp_path, 1, cfg={"seed": 5})          # a new run there: its one epoch only
    steps = [(e.step, e.value) for e in _events(tmp_path / "tensorboard").Scalars("loss/val")]
    assert steps == [(1, np.float32(again["val_loss"][0]))]
    assert again["tensorboard_dir"] == str(tmp_path / "tensorboard")


def test_the_logger_needs_an_out_dir(tiny):  # noqa: F811
    with pytest.raises(ValueError, match="set out_dir"):
        _fit_logged(tiny, None, 1)
