"""Grad-CAM machinery: hooks released, shapes and ranges per model family, the two measures."""
import copy

import numpy as np
import pytest
import torch

from emolib import cam, models
from emolib.core.spec import grayscale_spec
from emolib.models.preprocess import to_model_input

MODELS = ["cnn_fer", "mini_xception", "vit_small_48", "vit_conv_48"]


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def _faces(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


class BlobNet(torch.nn.Module):
    """A small conv net with a global-average-pooled head (where Grad-CAM is exact CAM)."""
    head_names = ("head",)
    stage_names = ("features",)

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 2))
        self.spec = grayscale_spec(48, "features.4")

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def blob_model():
    """A net trained for a few seconds to tell a bright square (class 0) from a dark one (1), anywhere."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 128
    labels = rng.integers(0, 2, n)
    images = rng.integers(40, 90, (n, 48, 48)).astype(np.uint8)
    masks = np.zeros((n, 48, 48), bool)
    for i, y in enumerate(labels):
        r, c = rng.integers(0, 36, 2)
        images[i, r:r + 12, c:c + 12] = 230 if y == 0 else 0
        masks[i, r:r + 12, c:c + 12] = True
    model = BlobNet()
    x = to_model_input(torch.from_numpy(images), model.spec)
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(20):
        idx = torch.from_numpy(np.random.default_rng(step).integers(0, n, 32))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95, "the blob task should be learnt"
    return model, images, masks, labels


@pytest.mark.parametrize("name", MODELS)
def test_shapes_ranges_and_hooks_released(name):
    torch.manual_seed(0)
    model = models.create(name)
    model.train()
    faces = _faces()
    for method in cam.METHODS:
        maps = cam.compute_cam(model, faces, method=method)
        assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        assert _hooks(model) == 0, f"{method} left hooks on {name}"
    assert model.training, "compute_cam must give the model its training mode back"
    # A preprocessed float input gives maps at the model's input size.
    x = to_model_input(torch.from_numpy(faces), model.spec)
    assert cam.compute_cam(model, x, targets=[0, 1, 2]).shape == (3, model.spec.input_size, model.spec.input_size)


def test_hooks_released_when_cam_raises():
    model = models.create("cnn_fer")
    with pytest.raises(ValueError, match="targets"):
        cam.compute_cam(model, _faces(), targets=[0, 1])
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam.compute_cam(model, _faces(), method="nope")
    assert _hooks(model) == 0


def test_frozen_backbone_still_gets_a_map(blob_model):
    model, images, _, _ = blob_model
    from emolib.models.transfer import freeze_backbone
    freeze_backbone(model)
    try:
        maps = cam.compute_cam(model, images[:4])
        assert maps.max() > 0, "a frozen backbone must not leave the hooked layer without gradients"
    finally:
        model.requires_grad_(True)


def test_vit_reshape_transform():
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)   # class token + 4×4 grid
    grid = cam.vit_reshape_transform(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[1, :, 0, 1], tokens[1, 2])      # token 1 of the grid (after the class token)
    with pytest.raises(ValueError, match="square"):
        cam.vit_reshape_transform(tokens[:, :16])


def test_gradcam_finds_the_evidence(blob_model):
    model, images, masks, labels = blob_model
    chance = cam.mask_area_share(masks[:32]).mean()
    for method in cam.METHODS:
        for smooth in (False, True):
            maps = cam.compute_cam(model, images[:32], targets=labels[:32], method=method, eigen_smooth=smooth)
            share = np.nanmean(cam.mask_energy_share(maps, masks[:32]))
            assert share > 3 * chance, f"{method} (eigen_smooth={smooth}): share in the blob {share:.3f} vs {chance:.3f}"


def test_mask_energy_share_by_hand():
    c = np.zeros((10, 10))
    c[0:2, 0:5] = 1.0            # mass 10 inside the mask
    c[5:10, 5:10] = 1.2          # mass 30 outside
    mask = np.zeros((10, 10), bool)
    mask[0:2, :] = True
    assert cam.mask_energy_share(c, mask) == pytest.approx(0.25)
    uniform = np.full((2, 10, 10), 0.3)
    masks = np.stack([mask, ~mask])
    np.testing.assert_allclose(cam.mask_energy_share(uniform, masks), cam.mask_area_share(masks))
    np.testing.assert_allclose(cam.mask_area_share(masks), [0.2, 0.8])
    assert np.isnan(cam.mask_energy_share(np.zeros((10, 10)), mask))
    with pytest.raises(ValueError, match="shape"):
        cam.mask_energy_share(c, mask[:5])


def test_deletion_curve_starts_at_the_original_confidence(blob_model):
    model, images, masks, labels = blob_model
    faces = images[:8]
    maps = cam.compute_cam(model, faces)
    fractions, conf = cam.deletion_curve(model, faces, maps, steps=4)
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1.0])
    assert conf.shape == (8, 5)
    with torch.no_grad():
        x = to_model_input(torch.from_numpy(faces), model.spec)
        probs = model(x).softmax(1)
        start = probs.max(1).values.numpy()
        end = model(cam.metrics._blurred(x)).softmax(1).gather(1, probs.argmax(1, keepdim=True))[:, 0].numpy()
    np.testing.assert_allclose(conf[:, 0], start, rtol=1e-5)
    np.testing.assert_allclose(conf[:, -1], end, rtol=1e-5)   # everything removed = the baseline
    auc = cam.deletion_auc(fractions, conf)
    assert auc.shape == (8,) and ((auc >= 0) & (auc <= 1)).all()
    # The blob model's maps point at the blob: deleting along them hurts more than along a random map.
    rand = np.random.default_rng(0).random(maps.shape).astype(np.float32)
    _, conf_rand = cam.deletion_curve(model, faces, rand, steps=4)
    assert cam.deletion_auc(fractions, conf).mean() < cam.deletion_auc(fractions, conf_rand).mean()


def test_deletion_auc_by_hand():
    assert cam.deletion_auc(np.array([0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)


def test_overlay():
    face = _faces(1)[0]
    out = cam.overlay(face, np.linspace(0, 1, 36, dtype=np.float32).reshape(6, 6))
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="gray uint8"):
        cam.overlay(face.astype(np.float32), np.zeros((48, 48)))


def test_guided_maps_find_the_evidence_and_leave_the_model_as_it_was(blob_model):
    model, images, masks, labels = blob_model
    modules = [(name, id(m)) for name, m in model.named_modules()]
    plain = cam.compute_cam(model, images[:16], targets=labels[:16])
    guided = cam.compute_cam(model, images[:16], targets=labels[:16], guided=True)
    assert guided.shape == (16, 48, 48) and guided.min() >= 0 and guided.max() <= 1
    np.testing.assert_allclose(guided.max(axis=(1, 2)), 1.0)        # every map peaks at 1
    chance = cam.mask_area_share(masks[:16]).mean()
    assert np.nanmean(cam.mask_energy_share(guided, masks[:16])) > 3 * chance
    # pytorch-grad-cam swaps the ReLUs and puts back one shared module: that must not happen to
    # the caller's model, or a later Grad-CAM would hook every ReLU at once.
    assert [(name, id(m)) for name, m in model.named_modules()] == modules
    np.testing.assert_array_equal(cam.compute_cam(model, images[:16], targets=labels[:16]), plain)
    assert _hooks(model) == 0
    # No targets: the predicted classes, as for the plain maps.
    np.testing.assert_allclose(cam.compute_cam(model, images[:4], guided=True), guided[:4], atol=1e-6)


def test_guided_saliency_needs_relus():
    model = models.create("mobilenet_v2", input_size=32)      # ReLU6 only
    x = to_model_input(torch.from_numpy(_faces(2)), model.spec)
    with pytest.raises(ValueError, match="needs nn.ReLU"):
        cam.guided_saliency(model, x)


def test_guided_saliency_of_a_batch_is_the_librarys_image_by_image():
    """One backward pass per batch gives each image the gradient pytorch-grad-cam's model computes for it alone."""
    from pytorch_grad_cam import GuidedBackpropReLUModel
    torch.manual_seed(0)
    model = models.create("cnn_fer").eval()
    x = to_model_input(torch.from_numpy(_faces(6)), model.spec)
    targets = np.array([0, 3, 6, 1, 1, 5])
    reference = GuidedBackpropReLUModel(copy.deepcopy(model), device="cpu")
    alone = np.stack([np.abs(reference(x[i:i + 1].clone(), target_category=int(t))).max(axis=-1)
                      for i, t in enumerate(targets)])
    np.testing.assert_allclose(cam.guided_saliency(model, x, targets, batch_size=4), alone, rtol=1e-4, atol=1e-7)


def test_map_grid():
    net = models.create("cnn_fer")
    assert cam.map_grid(net) == (6, 6)
    assert cam.map_grid(net, "features.1.2") == (24, 24)
    assert cam.map_grid(models.create("vit_small_48")) == (8, 8)        # 48 px in 6 px patches
    assert cam.map_grid(models.create("vit_conv_48")) == (6, 6)         # conv stem: three stride-2 blocks
    assert cam.map_grid(models.create("vit_conv_48", stem=[32, 64], pool="cls")) == (12, 12)   # class token dropped


def test_mask_share_ceiling_is_the_best_single_bump_and_bounds_every_map():
    import cv2
    rng = np.random.default_rng(0)
    masks = rng.random((4, 30, 40)) < 0.15
    grid = (5, 7)
    ceiling = cam.mask_share_ceiling(masks, grid)
    bumps = []
    for i in range(grid[0]):
        for j in range(grid[1]):
            cell = np.zeros(grid, np.float32)
            cell[i, j] = 1.0
            bumps.append(cv2.resize(cell, (40, 30)))
    best = np.max([(masks * b).sum(axis=(1, 2)) / b.sum() for b in bumps], axis=0)
    np.testing.assert_allclose(ceiling, best, rtol=1e-6)
    for _ in range(20):      # any map on that grid, resized like pytorch-grad-cam does, stays below
        maps = np.stack([cv2.resize(rng.random(grid).astype(np.float32) ** 4, (40, 30)) for _ in masks])
        assert (cam.mask_energy_share(maps, masks) <= ceiling + 1e-9).all()
    assert cam.mask_share_ceiling(masks[0], (30, 40)) == 1.0 or masks[0].sum() == 0   # pixel grid: a pixel inside
    with pytest.raises(ValueError, match="masks"):
        cam.mask_share_ceiling(masks[None], grid)


def test_cam_variant_from_a_profile_mapping():
    v = cam.CamVariant.from_dict({"model": "cnn_fer", "method": "hirescam", "guided": True})
    assert v.options == {"method": "hirescam", "layer": None, "eigen_smooth": False, "guided": True}
    net = models.create("cnn_fer")
    assert v.label(net) == "cnn_fer/guided hirescam/features.3.2"
    assert cam.CamVariant("cnn_fer", "gradcam", "features.1.2", True).label(net) == \
        "cnn_fer/gradcam+eigen-smooth/features.1.2"
    with pytest.raises(ValueError, match="unknown CAM variant option"):
        cam.CamVariant.from_dict({"model": "cnn_fer", "smooth": True})
    with pytest.raises(TypeError, match="layer"):
        cam.CamVariant("cnn_fer", layer=3)


def test_evidence_row_references():
    from emolib.data import synthetic
    faces = synthetic.generate(40, seed=1)
    images, labels, masks = faces.images[:12], faces.labels[:12], faces.masks[:12]
    base = models.create("cnn_fer")
    torch.manual_seed(5)
    model = models.untrained_like(base)       # seeded like evidence_row's untrained twin below
    state = torch.random.get_rng_state()
    row, (fractions, conf) = cam.evidence_row(model, images, labels, cam.CamVariant("cnn_fer", "hirescam"), masks,
                                              steps=3, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state), "the untrained twin must not move the caller's RNG"
    assert conf.shape == (12, 4) and row["map_grid"] == "6×6" and row["maps"] == 12
    assert row["mask_energy_share"] <= row["ceiling"] + 1e-9
    assert row["untrained_mask_share"] == pytest.approx(row["mask_energy_share"])   # same seed: the same weights
    guided, _ = cam.evidence_row(model, images, labels, cam.CamVariant("cnn_fer", "hirescam", guided=True), masks, steps=3)
    assert guided["map_grid"] == "48×48" and guided["ceiling"] == pytest.approx(1.0)
    no_masks, _ = cam.evidence_row(model, images, labels, cam.CamVariant("cnn_fer"), None, steps=3)
    assert set(no_masks) == {"deletion_auc"}



def test_evidence_table_is_the_variants_rows_then_each_models_random_map(blob_model):
    model, images, _, labels = blob_model
    faces, targets = images[:6], labels[:6]
    variant = cam.CamVariant("blob", "gradcam")
    rows, curves = cam.evidence_table({"blob": model}, {"blob/gradcam": variant}, faces, targets, steps=2, seed=3)
    assert list(rows) == list(curves) == ["blob/gradcam", "blob/random map"]
    row, _ = cam.evidence_row(model, faces, targets, variant, steps=2, seed=3)
    assert rows["blob/gradcam"] == row
    noise = np.random.default_rng(3).random(faces.shape)
    assert rows["blob/random map"]["deletion_auc"] == pytest.approx(
        cam.deletion_auc(*cam.deletion_curve(model, faces, noise, steps=2)).mean())

def test_evidence_row_deletion_follows_the_maps_target(blob_model):
    """The deletion curve measures the class the maps were made for (the true labels), not the
    predicted class: here the targets are the class the model does not predict."""
    model, images, masks, labels = blob_model
    faces, other = images[:8], 1 - labels[:8]
    row, (fractions, conf) = cam.evidence_row(model, faces, other, cam.CamVariant("blob", "gradcam"), steps=2)
    with torch.no_grad():
        probs = model(to_model_input(torch.from_numpy(faces), model.spec)).softmax(1).numpy()
    np.testing.assert_allclose(conf[:, 0], probs[np.arange(8), other], atol=1e-5)
    assert (conf[:, 0] < 0.5).all(), "the model is confident in the labels, so the other class starts low"
