"""The default model's cached ONNX export (emolib.inference.onnx_cache): `backend="auto"` runs it when it is up to date, with
the torch model's outputs; a stale or missing file means torch, and `source` says which runs."""
import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from emolib import EmotionRecognizer
from emolib.inference import onnx_cache
from emolib.inference.classifier import DEFAULT_MODEL, load_classifier


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


def test_a_changed_record_never_uses_an_old_export(cache, monkeypatch):
    from emolib.inference import onnx
    from emolib.models import registry
    onnx_cache.build()
    assert onnx_cache.cached(DEFAULT_MODEL) is not None
    e = registry.entry(DEFAULT_MODEL)
    changes = {"weights": dataclasses.replace(e, weights=dataclasses.replace(e.weights, sha256="0" * 64)),
               "spec": dataclasses.replace(e, spec=dataclasses.replace(e.spec, input_size=e.spec.input_size + 8)),
               "classes": dataclasses.replace(e, weights=dataclasses.replace(e.weights, classes=e.weights.classes[::-1]))}
    for what, changed in changes.items():
        with monkeypatch.context() as m:
            m.setitem(registry._REGISTRY, DEFAULT_MODEL, changed)
            assert onnx_cache.cached(DEFAULT_MODEL) is None, what
    with monkeypatch.context() as m:                                   # a format bump
        m.setattr(onnx, "FORMAT_VERSION", onnx.FORMAT_VERSION + 1)
        assert onnx_cache.cached(DEFAULT_MODEL) is None
    assert onnx_cache.cached(DEFAULT_MODEL) is not None


def test_the_fingerprint_reads_the_architecture_source_and_no_other(cache, monkeypatch):
    """Editing an unrelated module does not re-export; editing the architecture's module does."""
    from pathlib import Path

    from emolib.models import mini_xception
    read, original = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or original(self))
    before = onnx_cache.fingerprint(DEFAULT_MODEL)
    assert read == [Path(mini_xception.__file__)]
    monkeypatch.setattr(Path, "read_bytes", lambda self: original(self) + b"# edited\n")
    assert onnx_cache.fingerprint(DEFAULT_MODEL) != before


def test_the_current_export_builds_no_torch_model(cache, monkeypatch, astronaut, tmp_path, capsys):
    """`emolib predict` on the default model runs the cached file: no Keras weights read, no module built."""
    from emolib.cli import main
    from emolib.models import registry
    onnx_cache.build()
    def refuse(*args, **kwargs):
        raise AssertionError("a torch model was built although the ONNX export is current")
    monkeypatch.setattr(registry, "create", refuse)
    monkeypatch.setattr("emolib.models.mini_xception.load_keras_weights", refuse)
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut)
    assert main(["predict", str(photo), "--json"]) == 0
    assert '"happy"' in capsys.readouterr().out
    assert EmotionRecognizer().backend == "onnx"


def test_only_listed_models_and_no_explicit_choice_use_it(cache):
    onnx_cache.build()
    assert EmotionRecognizer(backend="torch").backend == "torch"
    model, classes, _ = load_classifier(DEFAULT_MODEL)
    assert EmotionRecognizer(model=model).backend == "torch"           # a module passed in runs as given
    assert onnx_cache.cached("cnn_fer") is None
