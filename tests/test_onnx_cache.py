"""The default model's cached ONNX export (emolib.onnx_cache): `backend="auto"` runs it when it is up to date, with
the torch model's outputs; a stale or missing file means torch, and `source` says which runs."""
import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from emolib import EmotionRecognizer, onnx_cache
from emolib.recognizer import DEFAULT_MODEL, load_classifier


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_cache, "folder", lambda: tmp_path / "onnx")
    return tmp_path / "onnx"


def test_auto_runs_the_up_to_date_export_with_the_torch_outputs(cache, astronaut):
    assert EmotionRecognizer().backend == "torch"                      # nothing exported yet
    path = onnx_cache.build()
    assert path.parent == cache and path.name.startswith(DEFAULT_MODEL + "-")
    assert onnx_cache.build() == path                                  # built once
    rec, ref = EmotionRecognizer(), EmotionRecognizer(backend="torch")
    assert rec.backend == "onnx" and str(path) in rec.source and ref.backend == "torch"
    assert EmotionRecognizer.live().backend == "onnx"
    got, want = rec.recognize(astronaut), ref.recognize(astronaut)
    assert [r.label for r in got] == [r.label for r in want] == ["happy"]
    np.testing.assert_allclose(list(got[0].probs.values()), list(want[0].probs.values()), atol=1e-4)
    assert rec.spec == ref.spec and rec.framing == ref.framing


def test_a_changed_model_never_uses_an_old_export(cache):
    onnx_cache.build()
    model, classes, _ = load_classifier(DEFAULT_MODEL)
    assert onnx_cache.cached(DEFAULT_MODEL, model, classes) is not None
    model.spec = dataclasses.replace(model.spec, input_size=model.spec.input_size + 8)   # another spec
    assert onnx_cache.cached(DEFAULT_MODEL, model, classes) is None
    model, classes, _ = load_classifier(DEFAULT_MODEL)
    with __import__("torch").no_grad():
        next(model.parameters()).add_(1e-3)                            # other weights
    assert onnx_cache.cached(DEFAULT_MODEL, model, classes) is None
    assert onnx_cache.cached(DEFAULT_MODEL, model, classes[::-1]) is None


def test_only_listed_models_and_no_explicit_choice_use_it(cache):
    onnx_cache.build()
    assert EmotionRecognizer(backend="torch").backend == "torch"
    model, classes, _ = load_classifier(DEFAULT_MODEL)
    assert EmotionRecognizer(model=model).backend == "torch"           # a module passed in runs as given
    assert onnx_cache.cached("cnn_fer", model, classes) is None
