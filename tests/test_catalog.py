"""Issue 16 §2: the checkpoints under the models root in `emolib models`, and `--model` by short name."""
import json

import cv2
import pytest
import torch

from emolib import models
from emolib.cli import main
from emolib.core.paths import candidates, short_name
from emolib.models.catalog import find_trained
from emolib.models.checkpoint import load_checkpoint, record_evaluation, save_checkpoint

FIVE = ["angry", "fear", "happy", "sad", "neutral"]


@pytest.fixture
def models_root(tmp_path, monkeypatch):
    """A models root laid out as `make reproduce`, a dry run and a scratch run leave it."""
    root = tmp_path / "models"
    monkeypatch.setenv("EMOLIB_MODELS", str(root))
    torch.manual_seed(0)
    net = models.create("cnn_fer", num_classes=5)
    published = root / "quick" / "02_cnn_baseline" / "cnn_fer"
    save_checkpoint(published / "best.pt", net, classes=FIVE, config={}, metrics={"val_acc": 0.75})
    save_checkpoint(published / "last.pt", net, classes=FIVE, config={}, metrics={"val_acc": 0.70})
    record_evaluation(published / "best.pt", {"accuracy": 0.8125, "macro_f1": 0.8, "ece": 0.0625, "ms_per_face": 0.5},
                      data={"source": "synthetic(n=3000,seed=0,v1)", "fingerprint": "3dc666c5", "n": 3000},
                      parameters=1_234_567, best_epoch=6)
    # evaluated before emolib recorded more than the accuracy (an older checkpoint): the others read as "-"
    old = root / "scratch" / "quick" / "02_cnn_baseline" / "cnn_fer" / "best.pt"
    save_checkpoint(old, net, classes=FIVE, config={}, metrics={"val_acc": 0.5})
    record_evaluation(old, {"accuracy": 0.5})
    vit = models.create("vit_small_48")
    save_checkpoint(root / "dry-run" / "quick" / "04_vit_finetune" / "vit_small_48" / "best.pt", vit,
                    classes=models_classes7(), config={}, metrics={"val_acc": 0.25})
    (root / "broken.pt").write_bytes(b"not a checkpoint")
    return root


def models_classes7():
    from emolib.core.labels import EMOTIONS
    return list(EMOTIONS)


def test_find_trained_reads_layout_metadata_and_recorded_evaluation(models_root):
    found = {t.short_name: t for t in find_trained()}
    assert set(found) == {"quick/02_cnn_baseline/cnn_fer", "dry-run/quick/04_vit_finetune/vit_small_48", "broken",
                          "scratch/quick/02_cnn_baseline/cnn_fer"}
    cnn = found["quick/02_cnn_baseline/cnn_fer"]
    assert (cnn.model_name, cnn.classes, cnn.input) == ("cnn_fer", tuple(FIVE), "48x48 gray")
    assert (cnn.kind, cnn.profile, cnn.test_accuracy, cnn.val_accuracy) == ("published", "quick", 0.8125, 0.75)
    assert (cnn.test_macro_f1, cnn.test_ece, cnn.ms_per_face, cnn.parameters, cnn.best_epoch) == (
        0.8, 0.0625, 0.5, 1_234_567, 6)
    old = found["scratch/quick/02_cnn_baseline/cnn_fer"]
    assert (old.kind, old.test_accuracy, old.test_macro_f1, old.test_ece, old.parameters, old.best_epoch) == (
        "scratch", 0.5, None, None, None, None)
    assert cnn.data == "synthetic(n=3000,seed=0,v1) (3dc666c5)"
    vit = found["dry-run/quick/04_vit_finetune/vit_small_48"]
    assert (vit.kind, vit.profile, vit.test_accuracy, vit.input) == ("dry-run", "quick", None, "48x48 RGB")
    assert found["broken"].error and "not a readable emolib checkpoint" in found["broken"].error
    assert models_root / "quick" / "02_cnn_baseline" / "cnn_fer" / "best.pt" in candidates("quick/02_cnn_baseline/cnn_fer")


def test_record_evaluation_keeps_the_weights_and_the_training_metrics(models_root):
    path = models_root / "quick" / "02_cnn_baseline" / "cnn_fer" / "best.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["metrics"] == {"val_acc": 0.75, "test_accuracy": 0.8125, "test_macro_f1": 0.8, "test_ece": 0.0625,
                               "ms_per_face": 0.5, "parameters": 1_234_567, "best_epoch": 6}
    last = load_checkpoint(path.with_name("last.pt"))
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in last["state_dict"].items())
    assert short_name(path) == "quick/02_cnn_baseline/cnn_fer"


def test_models_command_lists_the_trained_checkpoints(models_root, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("quick/02_cnn_baseline/cnn_fer ")]
    assert "cnn_fer" in row and "angry,fear,happy,sad,neutral" in row and "test 0.812" in row and "synthetic" in row
    listing = out.split("Trained checkpoints")[1].split("Use one")[0].splitlines()
    header = next(line for line in listing if line.startswith("SHORT NAME"))
    columns = ["ACCURACY", "MACRO-F1", "ECE", "PARAMS", "MS/FACE", "BEST EPOCH", "DATA"]
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)
    figures = {c: row[header.index(c):].split()[0] for c in columns[1:]}
    assert figures == {"MACRO-F1": "0.800", "ECE": "0.062", "PARAMS": "1.23M", "MS/FACE": "0.50", "BEST EPOCH": "6",
                       "DATA": "synthetic(n=3000,seed=0,v1)"}
    (row,) = [line for line in out.splitlines() if line.startswith("scratch/quick/02_cnn_baseline/cnn_fer ")]
    assert "quick (scratch)" in row and "test 0.500" in row
    assert {c: row[header.index(c):].split()[0] for c in columns[1:-1]} == dict.fromkeys(columns[1:-1], "-")
    (row,) = [line for line in out.splitlines() if line.startswith("dry-run/quick/04_vit_finetune/vit_small_48 ")]
    assert "all 7" in row and "quick (dry-run)" in row and "val 0.250" in row
    assert "last" not in "\n".join(listing)
    assert main(["models", "--json"]) == 0
    trained = {t["short_name"]: t for t in json.loads(capsys.readouterr().out)["trained"]}
    assert trained["quick/02_cnn_baseline/cnn_fer"]["test_accuracy"] == 0.8125
    assert {k: trained["quick/02_cnn_baseline/cnn_fer"][k] for k in ("test_ece", "parameters", "best_epoch")} == {
        "test_ece": 0.0625, "parameters": 1_234_567, "best_epoch": 6}
    assert trained["scratch/quick/02_cnn_baseline/cnn_fer"]["test_macro_f1"] is None


def test_predict_accepts_a_short_name(models_root, tmp_path, capsys):
    from skimage import data
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["predict", str(photo), "--model", "quick/02_cnn_baseline/cnn_fer", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert list(record["faces"][0]["probs"]) == FIVE
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(photo), "--model", "quick/02_cnn_baseline/nope"])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_an_empty_models_root_says_how_to_fill_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIB_MODELS", str(tmp_path / "none"))
    assert find_trained() == []
    assert main(["models"]) == 0
    assert "No trained checkpoints" in capsys.readouterr().out


def test_training_records_test_accuracy_and_data_in_best_pt(tmp_path, capsys):
    """`emolib train` (the notebooks' one training call) leaves a best.pt that `emolib models` can describe."""
    assert main(["train", "02", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    headline = json.loads((tmp_path / "metrics" / "02_cnn_baseline.json").read_text())["headline"]
    (item,) = [t for t in find_trained(tmp_path) if t.short_name == "cnn_fer"]
    assert item.test_accuracy == pytest.approx(headline["test_accuracy"], abs=5e-5)   # the headline is rounded
    assert item.data and item.data.startswith("synthetic")
    # the same figures as the metrics' results row (issue 25): one definition for the index and `emolib models`
    metrics = json.loads((tmp_path / "metrics" / "02_cnn_baseline.json").read_text())
    (row,) = metrics["metrics"]["results"]
    assert (row["model"], row["init"], row["checkpoint"]) == ("cnn_fer", "scratch", str(tmp_path / "cnn_fer" / "best.pt"))
    assert (item.test_macro_f1, item.test_ece, item.parameters, item.best_epoch) == (
        row["test_macro_f1"], row["test_ece"], row["parameters"], row["best_epoch"])
    assert row["parameters"] == sum(p.numel() for p in models.create("cnn_fer", num_classes=len(row["classes"])).parameters())
    assert item.ms_per_face is not None and "ms_per_face" not in row    # a timing: in the .run.json, not the metrics
