"""emolib.training.evaluate: metrics against hand-computed cases, ROC/AUC shapes, TTA, evaluate()."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from emolib.core.spec import grayscale_spec
from emolib.data.arrays import FaceArrays
from emolib.training.evaluate import (
    _as_loader,
    calibration,
    evaluate,
    metrics_from_probs,
    most_confused_pairs,
    predict,
    run_batches,
)

CLASSES = ["happy", "sad", "neutral"]


def one_hot(idx, c=3):
    return np.eye(c)[np.asarray(idx)]


def test_perfect_predictions():
    labels = np.array([0, 1, 2, 0, 1, 2, 2])
    m = metrics_from_probs(one_hot(labels), labels, CLASSES)
    assert m["n"] == 7 and m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)   # confidence 1, accuracy 1
    assert m["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]]
    assert m["confusion_normalized"] == [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    assert m["macro_auc"] == 1.0 and set(m["roc"]["auc"]) == set(CLASSES)
    assert m["top_k"] == {"top1": 1.0, "top2": 1.0}    # top3 is meaningless with 3 classes
    assert all(v["precision"] == v["recall"] == v["f1"] == 1.0 for v in m["per_class"].values())
    assert m["nll"] == pytest.approx(0.0, abs=1e-9)
    json.dumps(m, allow_nan=False)                       # plain, strict JSON


def test_known_confusion_matrix_and_pairs():
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 2, 2])
    m = metrics_from_probs(one_hot(preds) * 0.7 + 0.1, labels, CLASSES)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_allclose(m["confusion_normalized"], [[2 / 3, 1 / 3, 0], [0, .5, .5], [0, 0, 1]])
    assert m["accuracy"] == pytest.approx(4 / 6)
    happy = m["per_class"]["happy"]
    assert (happy["precision"], happy["recall"], happy["support"]) == (1.0, pytest.approx(2 / 3), 3)
    # F1: happy 0.8, sad 0.5, neutral 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    pairs = most_confused_pairs(m["confusion"], CLASSES, k=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("sad", "neutral", 1), ("happy", "sad", 1)]
    assert pairs[0]["rate"] == 0.5
    assert most_confused_pairs(m["confusion"], CLASSES, k=1) == pairs[:1]


def test_ece_hand_computed():
    # every prediction has confidence 0.8 and 3 of 4 are right: ECE = |0.75 - 0.8| = 0.05
    probs = np.array([[.8, .1, .1], [.8, .1, .1], [.1, .8, .1], [.1, .1, .8]])
    labels = np.array([0, 0, 1, 0])
    c = calibration(probs, labels)
    assert c["ece"] == pytest.approx(0.05)
    assert sum(c["bin_count"]) == 4 and len(c["bin_count"]) == 15 and len(c["bin_edges"]) == 16
    full = [i for i, k in enumerate(c["bin_count"]) if k]
    assert len(full) == 1
    assert c["bin_confidence"][full[0]] == pytest.approx(0.8) and c["bin_accuracy"][full[0]] == 0.75
    assert all(c["bin_confidence"][i] is None for i in range(15) if i not in full)


def test_top_k_hand_computed():
    probs = np.array([[.5, .3, .2, 0], [.1, .6, .3, 0], [.1, .2, .3, .4]])
    labels = np.array([1, 1, 0])   # 2nd choice, 1st choice, 4th choice
    m = metrics_from_probs(probs, labels, ["angry", "happy", "sad", "neutral"])
    assert m["top_k"] == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3), "top3": pytest.approx(2 / 3)}


def test_roc_shapes_and_absent_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)                 # class 2 ("neutral") never occurs
    probs = rng.dirichlet(np.ones(3), 50)
    m = metrics_from_probs(probs, labels, CLASSES)
    roc = m["roc"]
    assert set(roc["curves"]) == {"happy", "sad"} and "neutral" not in roc["auc"]
    assert any("neutral" in note for note in m["notes"])
    for curve in roc["curves"].values():
        assert len(curve["fpr"]) == len(curve["tpr"]) >= 2
        assert curve["fpr"][0] == curve["tpr"][0] == 0.0 and curve["fpr"][-1] == curve["tpr"][-1] == 1.0
        assert np.all(np.diff(curve["fpr"]) >= 0)
    assert m["macro_auc"] == pytest.approx(np.mean(list(roc["auc"].values())))
    assert 0.2 < m["macro_auc"] < 0.8                # random scores: AUC near 0.5
    json.dumps(m, allow_nan=False)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="3 columns but 2 classes"):
        metrics_from_probs(one_hot([0, 1]), np.array([0, 1]), ["happy", "sad"])
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        metrics_from_probs(one_hot([0, 1]), np.array([0, 3]), CLASSES)
    with pytest.raises(ValueError, match="2 rows of probabilities but 3 labels"):
        metrics_from_probs(one_hot([0, 1]), np.array([0, 1, 1]), CLASSES)


class TinyNet(nn.Module):
    """Fast stand-in for a registry model: conv, global pool, linear (carries a ModelSpec)."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(8 * 10 * 10, num_classes))
        self.spec = grayscale_spec(48, "net.2")

    def forward(self, x):
        return self.net(x)


def mirrored_faces(n=40, seed=0):
    rng = np.random.default_rng(seed)
    half = rng.integers(0, 256, (n, 48, 24), dtype=np.uint8)
    images = np.concatenate([half, half[:, :, ::-1]], axis=2)   # left-right symmetric
    labels = rng.integers(0, 3, n)
    return FaceArrays(images, labels, np.full(n, "test"), classes=tuple(CLASSES))


@pytest.mark.parametrize("tta", [None, "flip", "tencrop"])
def test_predict_tta_gives_probabilities(tta):
    torch.manual_seed(0)
    model, data = TinyNet(), mirrored_faces()
    probs, labels = predict(model, data, tta=tta, batch_size=16)
    assert probs.shape == (40, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()
    np.testing.assert_array_equal(labels, data.labels)
    assert model.training   # predict restores the mode it found


def test_tta_views_are_what_they_claim():
    torch.manual_seed(0)
    model, data = TinyNet(), mirrored_faces()
    plain, _ = predict(model, data)
    flip, _ = predict(model, data, tta="flip")
    crop, _ = predict(model, data, tta="tencrop")
    np.testing.assert_allclose(flip, plain, atol=1e-6)   # the mirror of a symmetric face is itself
    assert np.abs(crop - plain).max() > 1e-4            # crops are different views
    with pytest.raises(ValueError, match="unknown tta"):
        predict(model, data, tta="mirror")


def test_evaluate_arrays_end_to_end():
    torch.manual_seed(0)
    model, data = TinyNet(), mirrored_faces()
    out = evaluate(model, data, tta="flip", batch_size=16)
    probs, labels = predict(model, data, tta="flip")
    assert out["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    assert out["classes"] == CLASSES and out["n"] == 40 and out["tta"] == "flip"
    assert out["ms_per_face"] > 0
    json.dumps(out, allow_nan=False)


def test_predict_runs_nhwc_on_the_cpu_and_leaves_the_model_as_it_was():
    """predict evaluates with channels-last weights (oneDNN's faster kernels), gives the NCHW probabilities to
    float rounding, and hands the model back in its layout, with the same parameter objects (an optimizer's)."""
    from emolib.data.synthetic import generate
    from emolib.models import create
    from emolib.models.inference import is_channels_last
    torch.manual_seed(0)
    net = create("cnn_fer", num_classes=7).eval()
    faces = generate(n=120, seed=0).split("test")
    conv = net.features[1][0]
    params = [id(p) for p in net.parameters()]
    layouts = []
    hook = conv.register_forward_pre_hook(lambda m, a: layouts.append(m.weight.is_contiguous(memory_format=torch.channels_last)))
    probs, _ = predict(net, faces)
    hook.remove()
    assert layouts and all(layouts) and not is_channels_last(net) and conv.weight.is_contiguous()
    assert [id(p) for p in net.parameters()] == params
    # the same pass in NCHW, through predict's own preprocessing
    plain = torch.softmax(run_batches(net, _as_loader(net, faces, 256, torch.device("cpu")))[0], 1).numpy()
    assert np.allclose(probs, plain, atol=1e-5)
    net.to(memory_format=torch.channels_last)             # a model already NHWC stays so
    predict(net, faces)
    assert is_channels_last(net)
