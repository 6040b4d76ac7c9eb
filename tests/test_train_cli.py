"""`emolib train`: overrides validated like a profile, the notebook's code path, interruption and --resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emolib.cli import main
from emolib.cli.train import parse_sets
from emolib.models.checkpoint import load_checkpoint, load_model

EMOLIB = [sys.executable, "-m", "emolib"]


def test_parse_sets_builds_nested_overrides():
    assert parse_sets(["train.epochs=3", "train.lr=1.0e-3", "tta=flip", "balanced=true", "data_path=null",
                       "augment.crop_scale=[0.7, 1.0]"]) == {
        "train": {"epochs": 3, "lr": 1e-3}, "tta": "flip", "balanced": True, "data_path": None,
        "augment": {"crop_scale": [0.7, 1.0]}}
    for bad in ("epochs", "=3", "train.=3", "a=[1,"):
        with pytest.raises(ValueError, match="--set"):
            parse_sets([bad])


@pytest.mark.parametrize("sets,named", [
    (["train.epochz=3"], "epochz"),                 # unknown TrainConfig field
    (["train.epochs=three"], "epochs"),             # wrong type inside a nested section
    (["balanced=maybe"], "balanced"),               # wrong type at the top
    (["learning_rate=0.1"], "learning_rate"),       # unknown key of the notebook's section
    (["device=gpu"], "device"),
])
def test_bad_overrides_are_usage_errors_that_name_the_key(sets, named, capsys, tmp_path):
    args = ["train", "02", "--profile", "smoke", "--out", str(tmp_path)]
    for s in sets:
        args += ["--set", s]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert named in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing may be written before the config is valid"


def test_only_training_notebooks(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "05", "--profile", "smoke"])
    assert e.value.code == 2 and "trains nothing" in capsys.readouterr().err


def test_trains_like_the_notebook(tmp_path, capsys):
    """One epoch of 02 on the smoke profile: checkpoints, and the notebook's metrics JSON."""
    assert main(["train", "02", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "global batch 32" in out and "test accuracy" in out
    net, ckpt = load_model(tmp_path / "cnn_fer" / "best.pt")
    assert ckpt["model_name"] == "cnn_fer" and ckpt["config"]["epochs"] == 1
    metrics = json.loads((tmp_path / "metrics" / "02_cnn_baseline.json").read_text())
    assert metrics["notebook"] == "02_cnn_baseline" and metrics["profile"] == "smoke"
    assert set(metrics["metrics"]) == {"results", "test", "history"}   # results: the index's results-table row
    assert set(metrics["headline"]) == {"test_accuracy", "test_macro_f1", "test_ece", "best_val_accuracy"}
    assert metrics["metrics"]["history"]["processes"] == 1


@pytest.mark.slow
def test_sigterm_leaves_last_pt_and_resume_finishes(tmp_path):
    """A kill mid-run ends it like Ctrl-C (exit 130, last.pt = last completed epoch); --resume finishes it."""
    args = [*EMOLIB, "train", "02", "--profile", "smoke", "--set", "train.epochs=6", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "cnn_fer" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    done = load_checkpoint(last)["state"]["epoch"]
    assert 1 <= done < 6
    r = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    history = load_checkpoint(last)["state"]["history"]
    assert history["resumed_from_epoch"] == done and history["completed_epochs"] == 6


def test_out_is_an_argument_not_an_environment_change(tmp_path):
    before = dict(os.environ)
    assert main(["train", "02", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    assert dict(os.environ) == before
    assert (tmp_path / "metrics" / "02_cnn_baseline.json").is_file() and (tmp_path / "cnn_fer" / "best.pt").is_file()


# The child process: only the distributions `emolib train` declares (and what they require) can be imported, and
# those named in $LEAN_ALSO (e.g. what an option declares in emolib.cli.train.LOGGER_REQUIRES).
LEAN = r'''
import importlib.abc, importlib.metadata as md, json, os, re, sys
from importlib.machinery import PathFinder
from packaging.requirements import Requirement
from emolib.cli.train import REQUIRES

norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
allowed, todo = set(), [norm(n) for n in (*REQUIRES, *os.environ.get("LEAN_ALSO", "").split())]
while todo:
    name = todo.pop()
    if name in allowed:
        continue
    allowed.add(name)
    for text in md.distribution(name).requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(norm(req.name))
blocked = {top for top, dists in md.packages_distributions().items()
           if not {norm(d) for d in dists} & allowed and top not in sys.stdlib_module_names and top != "emolib"}

class Lean(importlib.abc.MetaPathFinder):
    """The path finder, blind to the blocked packages: to importers and find_spec alike, they are not installed."""
    def find_spec(self, name, path=None, target=None):
        return None if name.split(".")[0] in blocked else PathFinder.find_spec(name, path, target)

    def invalidate_caches(self):
        PathFinder.invalidate_caches()

sys.meta_path[:] = [Lean() if f is PathFinder else f for f in sys.meta_path]
print(json.dumps(sorted(blocked)), file=sys.stderr)
from emolib.cli import main
raise SystemExit(main(sys.argv[1:]))
'''


def test_trains_where_only_the_declared_packages_are_installed(tmp_path):
    """A cluster image: torch, torchvision, scikit-learn, opencv, pyyaml, pandas... and no notebook packages."""
    proc = subprocess.run([sys.executable, "-c", LEAN, "train", "02", "--profile", "smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    blocked = set(json.loads(proc.stderr.splitlines()[0]))
    assert {"IPython", "ipywidgets", "papermill", "nbconvert", "matplotlib", "seaborn", "jupyter_core"} <= blocked
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics" / "02_cnn_baseline.json").read_text())
    assert metrics["headline"]["test_accuracy"] is not None


def test_a_log_holds_the_epoch_lines_not_progress_bar_frames(tmp_path):
    """Output to a file or pipe (a cluster's job log): one line an epoch, no carriage-return frames."""
    proc = subprocess.run([*EMOLIB, "train", "02", "--profile", "smoke", "--set", "train.epochs=2",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "\r" not in log, log[:2000]
    assert [line.split(":")[0].strip() for line in log.splitlines() if line.strip().startswith("epoch ")] == \
        ["epoch 1", "epoch 2"]
