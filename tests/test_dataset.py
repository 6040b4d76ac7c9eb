"""FaceLoader, preprocessing from a ModelSpec, batched augmentation, class weights, splits."""
import numpy as np
import pytest
import torch

from emolib.core.labels import EMOTIONS, FIVE_CLASS
from emolib.core.spec import grayscale_spec, imagenet_spec
from emolib.data.arrays import FaceArrays
from emolib.data.splits import stratified_split
from emolib.models.preprocess import to_model_input
from emolib.training.augment import AugmentConfig, augment_batch
from emolib.training.loader import FaceLoader, class_weights, epoch_generator

GRAY48 = grayscale_spec(48, "features")
RGB64 = imagenet_spec(64, "features")


def make_arrays(n=700, seed=0, counts=None):
    """Random faces with skewed class counts (class i has weight i+1; disgust rare)."""
    rng = np.random.default_rng(seed)
    p = np.array(counts if counts is not None else [8, 1, 8, 14, 10, 6, 10], float)
    labels = rng.choice(7, size=n, p=p / p.sum()).astype(np.int64)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    splits = np.where(rng.random(n) < 0.8, "train", "test")
    return FaceArrays(images=images, labels=labels, splits=splits, source="test-random")


def test_to_model_input_gray_and_rgb():
    imgs = torch.tensor([[[0, 255], [128, 255]]], dtype=torch.uint8).repeat(3, 1, 1)   # (3,2,2)
    x = to_model_input(imgs, grayscale_spec(2, "f"))
    assert x.shape == (3, 1, 2, 2) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == pytest.approx(-1.0) and x[0, 0, 0, 1].item() == pytest.approx(1.0)

    full = torch.randint(0, 256, (5, 1, 48, 48), dtype=torch.uint8)
    y = to_model_input(full, RGB64)
    assert y.shape == (5, 3, 64, 64) and y.dtype == torch.float32
    # channels carry the same gray face, normalized by their own mean/std
    mean, std = torch.tensor(RGB64.mean).view(3, 1, 1), torch.tensor(RGB64.std).view(3, 1, 1)
    unit = y[0] * std + mean
    assert torch.allclose(unit[0], unit[1], atol=1e-5) and torch.allclose(unit[1], unit[2], atol=1e-5)
    assert 0 <= unit.min() and unit.max() <= 1 + 1e-5
    with pytest.raises(TypeError):
        to_model_input(full.float(), RGB64)


def test_loader_shapes_len_and_order():
    arrays = make_arrays(150)
    loader = FaceLoader(arrays, RGB64, batch_size=64)
    assert len(loader) == 3 and loader.num_classes == 7 and loader.classes == EMOTIONS
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(64, 3, 64, 64)] * 2 + [(22, 3, 64, 64)]
    assert batches[0][1].dtype == torch.int64
    # evaluation loader: fixed order, no augmentation -> exactly to_model_input of the rows
    assert np.array_equal(torch.cat([b[1] for b in batches]).numpy(), arrays.labels)
    assert torch.allclose(batches[1][0], to_model_input(torch.from_numpy(arrays.images[64:128]), RGB64))
    assert len(FaceLoader(arrays, GRAY48, batch_size=64, drop_last=True)) == 2


def test_same_seed_epoch_same_batches_other_epoch_differs():
    arrays = make_arrays(200)
    cfg = AugmentConfig(perspective=0.3, erasing=0.5)

    def epoch(e, seed=0):
        loader = FaceLoader(arrays, GRAY48, 32, train=True, augment=cfg, seed=seed)
        loader.set_epoch(e)
        return list(loader)

    a, b, c = epoch(3), epoch(3), epoch(4)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][1], epoch(3, seed=1)[0][1])


def test_augmentation_finite_and_changes_images():
    arrays = make_arrays(64)
    plain = next(iter(FaceLoader(arrays, GRAY48, 64)))[0]
    for cfg in [AugmentConfig(), AugmentConfig(perspective=0.5, erasing=1.0)]:
        x, y = next(iter(FaceLoader(arrays, GRAY48, 64, train=True, augment=cfg)))
        assert torch.isfinite(x).all()
        assert x.min() >= -1 - 1e-5 and x.max() <= 1 + 1e-5
        # every augmented image differs from every plain image (no image passes through unchanged)
        assert (x.flatten(1)[:, None] - plain.flatten(1)[None]).abs().amax(-1).min() > 0.01
    none = FaceLoader(arrays, GRAY48, 64, train=True, augment=AugmentConfig.none())
    x, _ = next(iter(none))
    assert sorted(x.flatten(1).sum(1).tolist()) == pytest.approx(sorted(plain.flatten(1).sum(1).tolist()), abs=1e-3)


def test_hflip_mirrors_exactly():
    x = torch.rand(4, 1, 48, 48)
    only_flip = AugmentConfig(hflip=1.0, rotate_deg=0, crop_scale=(1.0, 1.0), brightness=0, contrast=0)
    out = augment_batch(x, only_flip, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.flip(-1), atol=1e-5)
    symmetric = (x + x.flip(-1)) / 2
    assert torch.allclose(augment_batch(symmetric, only_flip, torch.Generator().manual_seed(0)), symmetric, atol=1e-5)


def test_augment_config_from_dict():
    cfg = AugmentConfig.from_dict({"hflip": 0.0, "crop_scale": [0.9, 1.0], "erasing": 0.25})
    assert cfg.crop_scale == (0.9, 1.0) and cfg.erasing == 0.25 and cfg.rotate_deg == 10
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="rotation"):
        AugmentConfig.from_dict({"rotation": 5})
    with pytest.raises(ValueError):
        AugmentConfig(crop_scale=(0.9, 0.5))
    assert AugmentConfig.none().is_identity and not AugmentConfig().is_identity


def test_class_weights_inverse_frequency_mean_one():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    w = class_weights(labels, 4)
    assert w.dtype == torch.float32 and w.shape == (4,)
    assert w[3] == 0
    assert w[:3].mean().item() == pytest.approx(1.0)
    assert (w[0] / w[1]).item() == pytest.approx(3.0) and (w[1] / w[2]).item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        class_weights(np.array([0, 5]), 3)


def test_balanced_sampler_evens_class_counts():
    arrays = make_arrays(3000, counts=[8, 1, 8, 14, 10, 6, 10])
    loader = FaceLoader(arrays, GRAY48, 256, train=True, balanced=True, augment=AugmentConfig.none())
    ys = torch.cat([y for _, y in loader]).numpy()
    counts = np.bincount(ys, minlength=7)
    assert counts.sum() == 3000
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()
    raw = np.bincount(arrays.labels, minlength=7)
    assert raw.max() / raw.min() > 8          # the data itself is far from balanced
    loader.set_epoch(1)
    assert not np.array_equal(torch.cat([y for _, y in loader]).numpy(), ys)
    with pytest.raises(ValueError):
        FaceLoader(arrays, GRAY48, train=False, balanced=True)


def test_five_class_subset_through_loader():
    five = make_arrays(300).subset("five")
    loader = FaceLoader(five, GRAY48, 50, train=True)
    ys = torch.cat([y for _, y in loader])
    assert loader.classes == FIVE_CLASS and loader.num_classes == 5
    assert ys.max() < 5 and len(ys) == len(five)


def test_stratified_split_keeps_proportions_without_overlap():
    arrays = make_arrays(4000)
    out = stratified_split(arrays, val_frac=0.2, seed=1)
    train_before = arrays.splits == "train"
    assert np.array_equal(out.splits == "test", arrays.splits == "test")       # test rows untouched
    assert np.array_equal((out.splits == "train") | (out.splits == "val"), train_before)
    for c in range(7):
        n_c = int((train_before & (arrays.labels == c)).sum())
        v_c = int(((out.splits == "val") & (arrays.labels == c)).sum())
        assert abs(v_c - 0.2 * n_c) <= 1
    assert np.array_equal(stratified_split(arrays, 0.2, seed=1).splits, out.splits)
    assert not np.array_equal(stratified_split(arrays, 0.2, seed=2).splits, out.splits)
    with pytest.raises(ValueError, match="already"):
        stratified_split(out, 0.1)


def test_epoch_generator_is_pure():
    a = torch.rand(5, generator=epoch_generator(7, 2))
    assert torch.equal(a, torch.rand(5, generator=epoch_generator(7, 2)))
    assert not torch.equal(a, torch.rand(5, generator=epoch_generator(7, 3)))


def test_augment_config_checks_field_types():
    # As TrainConfig does: a string, a bool or a malformed range is an error, not a silent conversion.
    for bad in [{"hflip": "0.5"}, {"rotate_deg": True}, {"crop_scale": ["0.8", 1.0]}, {"crop_scale": [0.8]},
                {"erasing": None}]:
        with pytest.raises(TypeError, match="augmentation option"):
            AugmentConfig.from_dict(bad)
    assert AugmentConfig.from_dict({"rotate_deg": 5, "crop_scale": [1, 1]}).crop_scale == (1.0, 1.0)


def test_face_arrays_repr_is_one_line():
    arrays = make_arrays(n=300)
    text = repr(arrays)
    n_train = int((arrays.splits == "train").sum())
    assert "\n" not in text and len(text) < 200 and "[[" not in text          # no pixels printed
    assert text.startswith("FaceArrays(test-random: 300 images 48×48") and f"train={n_train}" in text
