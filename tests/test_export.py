"""ONNX export (issue 14 §3): every registered architecture, parity on real face crops, the metadata,
the onnx backend of EmotionRecognizer, and the clear errors for ONNX files emolib did not write."""
import inspect
import json
import subprocess
import sys

import cv2
import numpy as np
import onnx  # a dependency (pyproject): a missing install fails here, never skips
import pytest
import torch
from skimage import data as skimage_data

from emolib import models
from emolib.core.labels import EMOTIONS
from emolib.inference.export import ExportError, check_parity, export_onnx, parity_crops
from emolib.inference.onnx import OnnxClassifier, OnnxModelError

SLOW = {"vgg16", "vit_b_16"}           # 134M / 86M parameters: seconds to trace even at 32 px


def small_kwargs(name: str) -> dict:
    """The smallest input a builder allows when it takes one (32 px: a multiple of ViT-B's 16 px patches)."""
    return {"input_size": 32} if "input_size" in inspect.signature(models.entry(name).builder).parameters else {}


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in models.list_models()])
def test_every_registered_architecture_exports_with_parity(name, tmp_path):
    torch.manual_seed(0)
    model = models.create(name, num_classes=5, **small_kwargs(name))
    classes = ["angry", "fear", "happy", "sad", "neutral"]
    crops = parity_crops(model.spec.input_size, n_lfw=40)
    parity = export_onnx(model, classes, tmp_path / f"{name}.onnx", source="test", crops=crops)
    assert parity.crops == 41 and parity.max_abs_prob_diff <= 1e-4 and parity.top1_disagreements == 0
    assert 1 in parity.batch_sizes and max(parity.batch_sizes) > 1          # the batch dimension is dynamic
    exported = OnnxClassifier(tmp_path / f"{name}.onnx")
    assert exported.spec == model.spec and exported.spec.to_dict() == model.spec.to_dict()
    assert exported.classes == tuple(classes) and exported.model_name == name
    assert json.loads(exported.metadata["emolib.model_kwargs"]) == small_kwargs(name)
    assert [f.name for f in tmp_path.iterdir()] == [f"{name}.onnx"]           # no temporary file left


def test_metadata_carries_the_whole_spec_generically(tmp_path):
    from emolib.core.spec import ModelSpec
    model = models.create("cnn_fer")
    # A spec field the exporter has never heard of travels like the others (framing, patch size, ...).
    model.spec = ModelSpec(**{**model.spec.to_dict(), "extra": {"patch_size": 6, "anything": [1, 2]}})
    export_onnx(model, EMOTIONS, tmp_path / "m.onnx", crops=parity_crops(48, n_lfw=8))
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["emolib.spec"]) == json.loads(json.dumps(model.spec.to_dict()))
    assert OnnxClassifier(tmp_path / "m.onnx").spec.extra == {"patch_size": 6, "anything": [1, 2]}
    assert json.loads(props["emolib.classes"]) == list(EMOTIONS) and props["emolib.format"] == "emolib-onnx"


def test_parity_crops_are_real_faces():
    crops = parity_crops(64)
    assert crops.shape == (101, 64, 64) and crops.dtype == np.uint8
    assert crops.std(axis=(1, 2)).min() > 10          # textured faces, not blank frames


def test_a_failed_parity_check_is_an_error_and_writes_nothing(tmp_path, monkeypatch):
    model = models.create("fer2013-mini-xception", pretrained=True)
    crops = parity_crops(64, n_lfw=20)
    with pytest.raises(ExportError, match="disagrees with PyTorch"):     # real float differences exist
        export_onnx(model, EMOTIONS, tmp_path / "strict.onnx", crops=crops, tolerance=0.0)
    import emolib.inference.export as export_module
    real = export_module._probabilities

    def broken(m):       # an exporter bug: a graph that computes something else than the model
        graph = real(m)
        graph.model = torch.nn.Sequential(m, torch.nn.Hardtanh(-1, 1))
        return graph

    monkeypatch.setattr(export_module, "_probabilities", broken)
    with pytest.raises(ExportError, match=r"top-1 differs|max \|Δp\|"):
        export_onnx(model, EMOTIONS, tmp_path / "broken.onnx", crops=crops)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def fer_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "fer.onnx"
    from emolib.inference.classifier import load_classifier
    from emolib.inference.export import export_onnx
    model, classes, source = load_classifier("fer2013-mini-xception")
    parity = export_onnx(model, classes, path, source=source)
    assert source == "pretrained fer2013-mini-xception" and parity.top1_disagreements == 0
    return path


@pytest.mark.parametrize("tta", [False, True])
def test_onnx_backend_matches_the_torch_recognizer(fer_onnx, astronaut, tta):
    from emolib import EmotionRecognizer
    torch_rec = EmotionRecognizer(tta_flip=tta)
    onnx_rec = EmotionRecognizer(model=str(fer_onnx), backend="onnx", tta_flip=tta)
    assert onnx_rec.backend == "onnx" and onnx_rec.classes == EMOTIONS and onnx_rec.spec == torch_rec.spec
    (a,), (b,) = torch_rec.recognize(astronaut), onnx_rec.recognize(astronaut)
    assert a.label == b.label == "happy" and a.box == b.box
    assert max(abs(a.probs[c] - b.probs[c]) for c in EMOTIONS) <= 1e-4
    assert EmotionRecognizer(model=fer_onnx).backend == "onnx"         # "auto" knows an .onnx file


def test_backend_choice_errors(fer_onnx):
    from emolib import EmotionRecognizer
    with pytest.raises(ValueError, match="emolib export"):
        EmotionRecognizer(backend="onnx")                               # the pretrained name is no .onnx file
    with pytest.raises(ValueError, match="backend='onnx'"):
        EmotionRecognizer(model=fer_onnx, backend="torch")
    with pytest.raises(ValueError, match="unknown backend"):
        EmotionRecognizer(backend="tensorrt")


def test_onnx_files_emolib_did_not_write_get_clear_errors(tmp_path, fer_onnx):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2).eval(), (torch.zeros(1, 4),), str(plain), dynamo=True,
                      external_data=False, verbose=False)
    with pytest.raises(OnnxModelError, match="not an emolib export"):
        OnnxClassifier(plain)
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(OnnxModelError, match="not a readable ONNX model"):
        OnnxClassifier(tmp_path / "garbage.onnx")
    proto = onnx.load(str(fer_onnx))
    kept = [p for p in proto.metadata_props if p.key != "emolib.classes"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "no_classes.onnx"))
    with pytest.raises(OnnxModelError, match="lacks emolib.classes"):
        OnnxClassifier(tmp_path / "no_classes.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_cli_exports_a_checkpoint_and_predicts_with_the_file(tmp_path):
    """The issue's "done when": export a trained checkpoint, classify a photo with the exported file."""
    from emolib.models.checkpoint import save_checkpoint
    five = ["angry", "fear", "happy", "sad", "neutral"]
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "best.pt", models.create("cnn_fer", num_classes=5), classes=five, config={}, metrics={})
    cv2.imwrite(str(tmp_path / "astronaut.png"), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    cmd = [sys.executable, "-m", "emolib"]
    out = tmp_path / "cnn.onnx"
    proc = subprocess.run([*cmd, "export", tmp_path / "best.pt", "--onnx", out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "same top-1 on every crop" in proc.stdout and out.is_file() and proc.stderr == ""
    proc = subprocess.run([*cmd, "predict", tmp_path / "astronaut.png", "--model", out, "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    (face,) = record["faces"]
    assert list(face["probs"]) == five                                   # classes from the file's metadata
    proc = subprocess.run([*cmd, "export", "cnn_fer", "--onnx", out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no emotion-trained weights" in proc.stderr


def test_check_parity_measures_a_real_difference(tmp_path, fer_onnx):
    """check_parity compares against the model it is given: another model's file fails it."""
    other = models.untrained_like(models.create("fer2013-mini-xception", pretrained=True)).eval()
    parity = check_parity(other, fer_onnx, parity_crops(64, n_lfw=20))
    assert parity.max_abs_prob_diff > 1e-3 and not parity.ok(1e-4)
