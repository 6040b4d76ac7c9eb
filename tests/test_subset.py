"""A seven-class model scored on a class subset through its own outputs; the loop's best checkpoint."""
import numpy as np
import pytest
import torch

from emolib import cam, models
from emolib.core.labels import EMOTIONS, FIVE_CLASS
from emolib.models.checkpoint import save_checkpoint
from emolib.models.subset import restrict_classes
from emolib.research import profiles, reporting


def _faces(n=6):
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize("name", ["fer2013-mini-xception", "cnn_fer"])   # a Conv2d and a Linear class layer
def test_restricted_probabilities_are_the_seven_renormalized(name):
    torch.manual_seed(0)
    full = models.create(name, pretrained=name == "fer2013-mini-xception").eval()
    from emolib.models.preprocess import to_model_input
    x = to_model_input(torch.from_numpy(_faces()), full.spec)
    with torch.no_grad():
        p7 = full(x).softmax(1)
        five = restrict_classes(full, FIVE_CLASS)
        p5 = five(x).softmax(1)
    keep = [EMOTIONS.index(c) for c in FIVE_CLASS]
    torch.testing.assert_close(p5, p7[:, keep] / p7[:, keep].sum(1, keepdim=True))
    assert five.classes == FIVE_CLASS and five.num_classes == 5 and five.restricted_from == EMOTIONS
    assert cam.compute_cam(five, _faces(2)).shape == (2, 48, 48)           # its Grad-CAM layer still resolves
    assert models.untrained_like(five)(x).shape == (6, 5)


def test_restrict_refuses_classes_the_model_lacks_and_keeps_an_equal_set():
    net = models.create("cnn_fer", num_classes=5)
    with pytest.raises(ValueError, match="cannot restrict"):
        restrict_classes(net, EMOTIONS, FIVE_CLASS)
    assert restrict_classes(net, FIVE_CLASS, FIVE_CLASS) is net and not hasattr(net, "restricted_from")


def test_best_trained_checkpoint_is_the_highest_validation_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_MODELS", str(tmp_path))
    cfg = profiles.validate("06", profiles.load_section("smoke", "06"))
    run = reporting.start(cfg, {"source": "unit-test", "fingerprint": "x"})
    with pytest.raises(FileNotFoundError, match="run notebooks"):
        run.best_trained_checkpoint()
    net = models.create("cnn_fer")
    for rel, acc in [("02_cnn_baseline/cnn_fer", 0.61), ("03_transfer_learning/mobilenet_v2-head", 0.72),
                     ("04_vit_finetune/vit_small_48", 0.55), ("05_error_analysis/cnn_fer", 0.99)]:
        save_checkpoint(tmp_path / "smoke" / rel / "best.pt", net, classes=EMOTIONS, config={},
                        metrics={"epoch": 1, "val_acc": acc})
    best, rows = run.best_trained_checkpoint()
    assert best == tmp_path / "smoke" / "03_transfer_learning" / "mobilenet_v2-head" / "best.pt"
    assert [r["val_acc"] for r in rows] == [0.72, 0.61, 0.55]             # 05 trains nothing: not a candidate
