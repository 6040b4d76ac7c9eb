"""The synthetic source: procedurally drawn 48×48 faces whose expression is a handful of parameters.

Each face is a sample of three independent parameter groups:

- identity  (head shape, skin tone, hair, eye spacing, mouth width, brow thickness),
- expression (brow height and slant, eye openness, mouth-corner curvature, mouth opening,
  nose wrinkle, jaw drop), drawn from a class-conditional distribution: neutral plus a random
  intensity times the class's displacement, plus noise. Weak expressions drift towards neutral and
  the class means share features the way real classes do (fear/surprise: raised brows, wide eyes,
  open mouth; sad/neutral: flat mouths; angry/disgust: lowered brows, nose wrinkle), so the classes
  overlap and a classifier is good but not perfect,
- nuisance  (pose: rotation, scale, shift; lighting gradient; blur; noise; occluders).

Drawing (`emolib.data.synthetic_draw`) is vectorized over a chunk of faces: every shape is a distance
field on the pixel grid mapped into each face's own coordinates, so pose moves the features and their
masks together.

Alongside each image comes a bool mask of the regions that carry its class: the drawn features
(brows, eyes, mouth, nose wrinkle) whose class mean departs from neutral, minus occluded pixels.
Neutral's evidence is the calm face itself, so its mask is brows + eyes + mouth. These masks are
the ground truth Grad-CAM is checked against.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emolib.core.labels import EMOTIONS
from emolib.data.arrays import FaceArrays
from emolib.data.splits import stratified_assign
from emolib.data.synthetic_draw import FEATURES, draw_faces

GENERATOR_VERSION = 1

# FER2013 Training counts per class, canonical order: the class frequencies we imitate.
FER2013_TRAIN_COUNTS = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830,
                        "surprise": 3171, "neutral": 4965}

# Expression parameters. Units: brow_height and brow_slant in "brow units" (≈2 px),
# eye_open as a multiple of a neutral eye's height, mouth_curve >0 corners up, mouth_open 0..1,
# mouth_width as a multiple of the identity's mouth width, nose_wrinkle 0..1, jaw_drop 0..1.
EXPRESSION_PARAMS = ("brow_height", "brow_slant", "eye_open", "mouth_curve", "mouth_open", "mouth_width",
                     "nose_wrinkle", "jaw_drop")
NEUTRAL = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], np.float32)
CLASS_MEANS = {  #   brow_h slant  eye   curve  open  width wrinkle jaw
    "angry":    [-0.9, 1.0, 0.85, -0.5, 0.10, 0.90, 0.50, 0.0],
    "disgust":  [-0.6, 0.6, 0.60, -0.7, 0.15, 0.90, 0.90, 0.1],
    "fear":     [0.8, -0.9, 1.45, -0.4, 0.45, 1.15, 0.05, 0.3],
    "happy":    [0.1, 0.0, 0.75, 1.0, 0.30, 1.20, 0.10, 0.1],
    "sad":      [0.3, -1.0, 0.85, -0.9, 0.00, 0.95, 0.00, 0.0],
    "surprise": [1.2, -0.2, 1.55, 0.0, 0.80, 0.80, 0.00, 0.8],
    "neutral":  list(NEUTRAL),
}
# Per-parameter spread around the class's point (identity-like idiosyncrasy of each expression).
EXPRESSION_SPREAD = np.array([0.30, 0.30, 0.15, 0.25, 0.10, 0.08, 0.12, 0.15], np.float32)
INTENSITY_RANGE = (0.35, 1.15)   # how far along neutral -> class mean a face goes
# Faces drawn per vectorized call: small enough that a chunk's temporaries stay in a core's L2
# cache (larger chunks spill out of it and draw slower). Part of the byte-exact recipe (noise is seeded per chunk).
RENDER_CHUNK = 32

# Which drawn features carry each class: those whose class mean departs from neutral (see _class_regions).
_FEATURE_PARAMS = {"brows": (0, 1), "eyes": (2,), "mouth": (3, 4, 5, 7), "nose": (6,)}


def _class_regions(threshold: float = 0.2) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, mean in CLASS_MEANS.items():
        delta = np.abs(np.asarray(mean, np.float32) - NEUTRAL)
        out[name] = tuple(f for f in FEATURES if delta[list(_FEATURE_PARAMS[f])].sum() >= threshold)
    out["neutral"] = ("brows", "eyes", "mouth")   # evidence of "no expression" is the calm face itself
    return out


CLASS_REGIONS = _class_regions()


# --------------------------------------------------------------------------- parameters

def apportion(n: int, frequencies: dict[str, int] = FER2013_TRAIN_COUNTS) -> np.ndarray:
    """Split n into per-class counts proportional to `frequencies` (largest remainder; exact sum)."""
    p = np.array([frequencies[c] for c in EMOTIONS], np.float64)
    raw = n * p / p.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def sample_params(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Identity, expression and nuisance parameters for faces of the given labels (float32 arrays)."""
    n = len(labels)
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)   # noqa: E731
    means = np.array([CLASS_MEANS[c] for c in EMOTIONS], np.float32)[labels]
    intensity = u(*INTENSITY_RANGE)[:, None]
    expr = NEUTRAL + intensity * (means - NEUTRAL) + rng.normal(0, 1, (n, 8)).astype(np.float32) * EXPRESSION_SPREAD
    expr[:, 2] = np.clip(expr[:, 2], 0.3, 1.9)            # eyes never fully shut nor absurdly wide
    expr[:, 4] = np.clip(expr[:, 4], 0.0, 1.0)
    expr[:, 6] = np.clip(expr[:, 6], 0.0, 1.0)
    expr[:, 7] = np.clip(expr[:, 7], 0.0, 1.0)
    p = {name: expr[:, i] for i, name in enumerate(EXPRESSION_PARAMS)}
    occluder = rng.uniform(0, 1, n)
    p.update(
        # identity
        head_w=u(17.5, 21.5), head_h=u(23.0, 27.0), skin=u(0.42, 0.85), hair=u(0.03, 0.45),
        hairline=u(-19.0, -13.5), hair_side=u(0.0, 1.0), eye_dx=u(7.3, 9.0), eye_y=u(-7.0, -5.0),
        eye_size=u(0.9, 1.12), mouth_y=u(9.5, 12.0), mouth_w=u(5.0, 6.5), brow_thick=u(0.8, 1.4),
        background=u(0.05, 0.95),
        # pose and imaging
        angle=np.clip(rng.normal(0, 0.10, n), -0.26, 0.26).astype(np.float32),
        scale=u(0.9, 1.1), dx=u(-2.0, 2.0), dy=u(-2.0, 2.0),
        light=u(-0.45, 0.45), light_dir=u(0, 2 * np.pi), blur=u(0.0, 1.0), noise=u(0.005, 0.035),
        # occluders: 18% a hand-like blob, 8% a bar (strand of hair, glasses arm, microphone)
        occ_kind=np.where(occluder < 0.18, 1, np.where(occluder < 0.26, 2, 0)).astype(np.float32),
        occ_x=u(-16, 16), occ_y=u(-14, 18), occ_r=u(4.0, 9.0), occ_r2=u(2.0, 4.0), occ_angle=u(0, np.pi),
        occ_value=u(0.1, 0.9),
    )
    return p


def neutral_like(params: dict[str, np.ndarray], labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The same faces (identity, pose, imaging) with a neutral expression, for checking masks.

    With `labels`, only the features that carry each face's class (CLASS_REGIONS) are reset, so
    the redrawn face differs from the original exactly where its class evidence is drawn.
    """
    out = dict(params)
    n = len(params["skin"])
    for i, name in enumerate(EXPRESSION_PARAMS):
        if labels is None:
            reset = np.ones(n, bool)
        else:
            feature = next(f for f, idx in _FEATURE_PARAMS.items() if i in idx)
            reset = np.array([feature in CLASS_REGIONS[EMOTIONS[c]] for c in labels])
        out[name] = np.where(reset, NEUTRAL[i], params[name]).astype(params[name].dtype)
    return out


# --------------------------------------------------------------------------- drawing

def render(p: dict[str, np.ndarray], size: int = 48, noise: np.ndarray | None = None,
           labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw faces for parameter arrays `p` -> (uint8 images B×size×size, bool masks or None).

    `noise` is a standard-normal field B×size×size (scaled by p['noise']); None draws no noise.
    Masks (the features that carry each face's class, `CLASS_REGIONS`) are computed when `labels` is given.
    """
    evidence = None
    if labels is not None:
        evidence = np.array([[f in CLASS_REGIONS[c] for f in FEATURES] for c in EMOTIONS])[labels]   # (B,4)
    return draw_faces(p, size, noise, evidence)


# --------------------------------------------------------------------------- the source

def generate(n: int = 6000, seed: int = 0, *, val_frac: float = 0.1, test_frac: float = 0.1,
             size: int = 48, threads: int | None = None) -> FaceArrays:
    """Draw `n` synthetic faces with FER2013-like class frequencies, stratified train/val/test splits
    and per-image evidence masks. The same (n, seed, fractions, size) gives the same bytes, whatever
    the number of rendering `threads` (None: one per CPU core)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac and test_frac must be in [0, 1) with a sum below 1, got {val_frac}, {test_frac}")
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    rng = np.random.default_rng(np.random.SeedSequence([GENERATOR_VERSION, int(seed)]))
    labels = rng.permutation(np.repeat(np.arange(len(EMOTIONS)), apportion(n))).astype(np.int64)
    splits = np.full(n, "train", dtype="<U5")
    stratified_assign(splits, labels, np.ones(n, bool), {"val": val_frac, "test": test_frac}, rng)
    params = sample_params(labels, rng)
    chunk = RENDER_CHUNK
    images = np.empty((n, size, size), np.uint8)
    masks = np.empty((n, size, size), bool)
    # Each chunk draws its noise from its own child seed, so the bytes do not depend on how many
    # threads render (numpy releases the GIL inside its loops, so 2 threads use 2 cores).
    chunk_seeds = np.random.SeedSequence([GENERATOR_VERSION, int(seed), 1]).spawn(-(-n // chunk))

    def draw(k: int) -> None:
        sl = slice(k * chunk, min((k + 1) * chunk, n))
        noise = np.random.default_rng(chunk_seeds[k]).standard_normal((sl.stop - sl.start, size, size),
                                                                       dtype=np.float32)
        images[sl], masks[sl] = render({key: v[sl] for key, v in params.items()}, size, noise, labels[sl])

    workers = threads or min(len(chunk_seeds), os.cpu_count() or 1)
    if workers <= 1:
        for k in range(len(chunk_seeds)):
            draw(k)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(draw, range(len(chunk_seeds))))
    tag = f"synthetic(n={n},seed={seed},v{GENERATOR_VERSION})"
    key = f"{tag}:val={val_frac}:test={test_frac}:size={size}"
    return FaceArrays(images=images, labels=labels, splits=splits, classes=EMOTIONS, masks=masks, source=tag,
                      fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
                      notes=[f"procedurally drawn faces (generator v{GENERATOR_VERSION}); masks mark the "
                             "features that carry each class"])
