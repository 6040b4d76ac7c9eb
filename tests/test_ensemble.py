"""emolib.research.ensemble: notebook 05's ensemble is the mean of its members' probabilities, each member fed
its own preprocessing; its figures, TTA rows and results-table row come from those probabilities."""
import types

import numpy as np
import pytest
import torch
from torch import nn

from emolib import models
from emolib.core.spec import ModelSpec
from emolib.data.arrays import FaceArrays
from emolib.models.preprocess import fit_to_spec
from emolib.research import ensemble, profiles, results
from emolib.training.evaluate import evaluate, metrics_from_probs, predict

CLASSES = ("angry", "fear", "happy", "sad", "neutral")


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    n = 40
    return FaceArrays(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, len(CLASSES), n),
                      np.full(n, "test"), classes=CLASSES)


@pytest.fixture(scope="module")
def nets():
    """Two untrained registry models that preprocess differently: 64 px gray in [-1, 1], and 48 px RGB. Their
    class layers are drawn anew at a large scale: untrained, their probabilities would hardly depend on the face."""
    torch.manual_seed(0)
    nets = {name: models.create(name, num_classes=len(CLASSES)).eval() for name in ("mini_xception", "vit_small_48")}
    with torch.no_grad():
        for net in nets.values():
            torch.nn.init.normal_([m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1].weight)
    return nets


def test_probabilities_are_the_mean_of_the_members_each_preprocessed_its_own_way(nets, faces):
    assert {net.spec.input_size for net in nets.values()} == {48, 64}
    assert {net.spec.channels for net in nets.values()} == {1, 3}
    ens = ensemble.build(nets, "all", faces)
    for tta in (None, "flip"):          # the mirror commutes with each member's preprocessing
        alone = [predict(net, faces, tta=tta)[0] for net in nets.values()]
        assert np.abs(alone[0] - alone[1]).max() > 0.1, "the members must disagree for the mean to say anything"
        probs, labels = predict(ens, faces, tta=tta)
        np.testing.assert_allclose(probs, np.mean(alone, axis=0), atol=1e-6)
        assert np.array_equal(labels, faces.labels)
    # The check can fail: a member fed the other's preprocessing (here, no normalization) moves the mean.
    first = next(iter(nets.values()))
    unnormalized = ModelSpec(first.spec.input_size, 1, (0.0,), (1.0,), first.spec.target_layer)
    with torch.no_grad():
        x = torch.from_numpy(faces.images).float().div(255).unsqueeze(1)
        wrong = torch.softmax(first(fit_to_spec(x, unnormalized)), 1).numpy()
    assert np.abs(wrong - alone[0]).max() > 1e-3


def test_evaluate_scores_the_mean_probabilities(nets, faces):
    ens = ensemble.build(nets, "all", faces)
    mean = np.mean([predict(net, faces)[0] for net in nets.values()], axis=0)
    scored = evaluate(ens, faces)
    assert scored["accuracy"] == pytest.approx(float((mean.argmax(1) == faces.labels).mean()))
    expected = metrics_from_probs(mean, faces.labels, CLASSES)
    assert scored["macro_f1"] == pytest.approx(expected["macro_f1"]) and scored["confusion"] == expected["confusion"]
    assert scored["ece"] == pytest.approx(expected["ece"], abs=1e-5) and scored["ms_per_face"] > 0


def test_tta_rows_reuse_the_members_probabilities(nets, faces):
    faces = FaceArrays(faces.images[:12], faces.labels[:12], faces.splits[:12], classes=CLASSES)   # ten crops: fewer
    ens = ensemble.build(nets, ["vit_small_48", "mini_xception"], faces)
    plain = {name: evaluate(net, faces) for name, net in ensemble.with_ensemble(nets, ens).items()}
    table = ensemble.tta_accuracy(nets, ens, faces, ["flip", "tencrop"], plain)
    assert list(table) == ["mini_xception", "vit_small_48", ensemble.ENSEMBLE]
    for mode in ("flip", "tencrop"):
        alone = {name: predict(net, faces, tta=mode)[0] for name, net in nets.items()}
        for name, probs in alone.items():
            assert table[name][mode] == pytest.approx(float((probs.argmax(1) == faces.labels).mean()))
        mean = np.mean(list(alone.values()), axis=0)
        assert table[ensemble.ENSEMBLE][mode] == pytest.approx(float((mean.argmax(1) == faces.labels).mean()))
    assert table[ensemble.ENSEMBLE]["none"] == plain[ensemble.ENSEMBLE]["accuracy"]


def test_results_row_sums_the_members_parameters_and_has_no_checkpoint(nets, faces):
    ens = ensemble.build(nets, "all", faces)
    scored = {ensemble.ENSEMBLE: evaluate(ens, faces)}
    [row] = ensemble.results_rows(ens, scored, CLASSES)
    assert tuple(row) == results.RESULT_KEYS
    assert row["parameters"] == sum(results.count_parameters(net) for net in nets.values()) > 0
    assert row["init"] == "ensemble" and row["best_epoch"] is None and row["checkpoint"] is None
    assert row["test_accuracy"] == scored[ensemble.ENSEMBLE]["accuracy"] and row["ms_per_face"] > 0
    assert "mini_xception" in row["model"] and "vit_small_48" in row["model"] and row["classes"] == list(CLASSES)
    assert ensemble.results_rows(None, {}, CLASSES) == []


def test_a_pretrained_model_restricted_to_the_data_classes_joins(faces):
    """05's pretrained model scores the data's classes through its own outputs; the ensemble takes it as it is."""
    from emolib.research import experiment
    cfg = types.SimpleNamespace(runs=[], pretrained_models=["fer2013-mini-xception"])
    nets = {"cnn_fer": models.create("cnn_fer", num_classes=len(CLASSES)).eval(),
            **experiment.compared_models(cfg, None, CLASSES, "cpu")}
    ens = ensemble.build(nets, "all", faces)
    assert ens.names == ["cnn_fer", "fer2013-mini-xception"]
    probs, _ = predict(ens, faces)
    np.testing.assert_allclose(probs, np.mean([predict(n, faces)[0] for n in nets.values()], axis=0), atol=1e-5)


def test_member_names_all_some_none_and_errors():
    compared = ["cnn_fer", "mobilenet_v2", "vit_conv_48"]
    assert ensemble.member_names("all", compared) == compared
    assert ensemble.member_names(["vit_conv_48", "cnn_fer"], compared) == ["vit_conv_48", "cnn_fer"]
    assert ensemble.member_names([], compared) == []
    assert ensemble.build({}, [], None) is None
    for setting, message in [(["cnn_fer", "resnet50"], r"\['resnet50'\], not among the compared models"),
                             (["cnn_fer", "cnn_fer"], r"\['cnn_fer'\] more than once"),
                             (["cnn_fer"], "two or more models")]:
        with pytest.raises(profiles.ConfigError, match=message):
            ensemble.member_names(setting, compared)
    with pytest.raises(profiles.ConfigError, match="two or more models"):
        ensemble.member_names("all", ["cnn_fer"])


@pytest.mark.parametrize("profile", ["quick", "smoke", "fer2013", "ferplus"])
def test_profiles_set_the_ensemble_and_its_type_is_checked(profile, tmp_path):
    assert profiles.load_section(profile, "05")["ensemble"] == "all"
    bad = tmp_path / "trial.yaml"
    bad.write_text("05_error_analysis: {ensemble: cnn_fer}\n")
    with pytest.raises(profiles.ConfigError, match=r"ensemble must be .*'cnn_fer'"):
        profiles.load_section(bad, "05")


def test_members_must_output_the_same_classes(faces):
    five, seven = (models.create("cnn_fer", num_classes=n) for n in (5, 7))
    five.classes, seven.classes = CLASSES, ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    with pytest.raises(ValueError, match="different classes"):
        ensemble.Ensemble({"a": five, "b": seven}, 48)
    with pytest.raises(ValueError, match="two or more models"):
        ensemble.Ensemble({"a": five}, 48)
