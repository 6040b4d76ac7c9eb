"""The synthetic source: deterministic bytes, FER2013-like frequencies, stratified splits, masks on the
drawn features, and classes that a linear model separates well above chance but not perfectly."""
import numpy as np
import pytest

from emolib.core.labels import EMOTIONS
from emolib.data import synthetic
from emolib.data.synthetic import (
    CLASS_REGIONS,
    FER2013_TRAIN_COUNTS,
    GENERATOR_VERSION,
    apportion,
    generate,
    neutral_like,
    render,
    sample_params,
)


@pytest.fixture(scope="module")
def faces():
    return generate(2100, seed=3)


def test_same_seed_same_bytes_other_seed_differs():
    a = generate(600, seed=11, threads=1)
    b = generate(600, seed=11, threads=2)          # threading must not change a byte
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.splits, b.splits)
    assert a.fingerprint == b.fingerprint and a.source == f"synthetic(n=600,seed=11,v{GENERATOR_VERSION})"
    c = generate(600, seed=12)
    assert not np.array_equal(a.images, c.images) and a.fingerprint != c.fingerprint


def test_arrays_contract(faces):
    assert faces.images.shape == (2100, 48, 48) and faces.images.dtype == np.uint8
    assert faces.masks.shape == faces.images.shape and faces.masks.dtype == bool
    assert faces.labels.dtype == np.int64 and faces.classes == EMOTIONS
    assert set(np.unique(faces.splits)) == {"train", "val", "test"}
    # images use the whole gray range, not a constant
    assert faces.images.std() > 20 and faces.images.min() < 20 and faces.images.max() > 235


def test_fer2013_like_frequencies_and_stratified_splits(faces):
    counts = np.bincount(faces.labels, minlength=7)
    assert counts.sum() == 2100 and np.array_equal(counts, apportion(2100))
    fer = np.array([FER2013_TRAIN_COUNTS[c] for c in EMOTIONS], float)
    assert np.allclose(counts / counts.sum(), fer / fer.sum(), atol=1e-3)
    assert counts.argmin() == EMOTIONS.index("disgust") and counts.argmax() == EMOTIONS.index("happy")
    for c in range(7):
        rows = faces.labels == c
        for split, frac in [("val", 0.1), ("test", 0.1)]:
            assert abs(int((faces.splits[rows] == split).sum()) - frac * rows.sum()) <= 1
    sized = generate(300, seed=0, val_frac=0.2, test_frac=0.0)
    assert (sized.splits == "test").sum() == 0 and abs((sized.splits == "val").mean() - 0.2) < 0.02


def test_masks_lie_on_the_drawn_features():
    """Redraw the same faces (identity, pose, lighting) with a neutral expression: pixels inside an
    image's mask change far more than pixels outside it; and when only the class-carrying features
    are neutralized, the pixels where the expression draws dark strokes (brows, lids, lips, mouth,
    wrinkles: darker than the neutralized face) lie inside the mask. (Pixels a feature vacates,
    e.g. where a neutral brow would be, turn brighter and are not evidence.)"""
    rng = np.random.default_rng(5)
    labels = np.repeat([i for i, c in enumerate(EMOTIONS) if c != "neutral"], 40)
    params = sample_params(labels, rng)
    params["occ_kind"][:] = 0                     # occluders hide features in both renderings alike
    img, masks = render(params, labels=labels)
    calm = render(neutral_like(params))[0].astype(np.float32)
    calm_features = render(neutral_like(params, labels))[0].astype(np.float32)
    for c in np.unique(labels):
        rows = labels == c
        m = masks[rows]
        diff = np.abs(img[rows] - calm[rows])
        assert diff[m].mean() > 8 * diff[~m].mean(), EMOTIONS[c]
        drawn = calm_features[rows] - img[rows] > 25
        assert drawn.sum() > 40 * 5                   # the expression is visible at all
        assert (drawn & m).sum() > 0.98 * drawn.sum(), EMOTIONS[c]
        assert m.mean() < 0.3                     # a mask marks regions, not the whole face


def test_masks_follow_pose_and_skip_occluders():
    rng = np.random.default_rng(0)
    labels = np.full(2, EMOTIONS.index("surprise"))
    params = {k: np.repeat(v[:1], 2) for k, v in sample_params(labels, rng).items()}   # one face, twice
    for k in ("angle", "dx", "dy", "occ_kind"):
        params[k][:] = 0
    params["dx"][1] = 4.0                         # the second copy moved 4 px right
    _, masks = render(params, labels=labels)
    assert (masks[0][:, :-4] != masks[1][:, 4:]).sum() <= 2 and masks[0][:, -4:].sum() == 0
    params["occ_kind"][1], params["dx"][1] = 2, 0.0      # a bar across the second copy's eyes
    params["occ_x"][1], params["occ_y"][1], params["occ_angle"][1], params["occ_r2"][1] = 0, -6, 0, 3
    _, masks = render(params, labels=labels)
    assert masks[1].sum() < masks[0].sum() - 20


def test_regions_per_class():
    assert set(CLASS_REGIONS) == set(EMOTIONS)
    assert "nose" in CLASS_REGIONS["disgust"] and "nose" in CLASS_REGIONS["angry"]
    assert "mouth" in CLASS_REGIONS["happy"] and "eyes" in CLASS_REGIONS["surprise"]


def test_linear_model_beats_chance_but_classes_overlap(faces):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    x = faces.images.reshape(-1, 16, 3, 16, 3).mean((2, 4)).reshape(len(faces), -1)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-3)
    train, test = faces.splits != "test", faces.splits == "test"
    clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x[train], faces.labels[train])
    acc = clf.score(x[test], faces.labels[test])
    majority = np.bincount(faces.labels[test]).max() / test.sum()
    assert majority + 0.12 < acc < 0.95, acc


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        generate(0)
    with pytest.raises(ValueError):
        generate(10, val_frac=0.6, test_frac=0.5)


def test_other_sizes_render():
    a = generate(64, seed=0, size=64)
    assert a.images.shape == (64, 64, 64) and a.masks.any(axis=(1, 2)).mean() > 0.8
    assert synthetic.RENDER_CHUNK > 0
