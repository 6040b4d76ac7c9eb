"""Near-duplicate leakage audit: the same face re-encoded, shifted, brightened, blurred or mirrored.

FER2013 was gathered by web image search, so a face can land in two splits without being byte-identical
(`emolib.data.quality` finds the byte-identical ones). Every image gets a 64-bit perceptual hash (pHash-like:
the 48×48 image area-resized to 32×32, its 2-D DCT, the top-left 8×8 block minus the DC term thresholded at
its median), of itself and of its mirror, each at every offset of up to `MAX_SHIFT` pixels. Two images are a
pair when the Hamming distance between one's plain hash and any of the other's variants is at most `radius`.

Finding them among 35,887 images: the 64 bits are cut into `radius + 1` bands; two hashes within `radius`
agree exactly on at least one band (pigeonhole), so only hashes that share a band's value are compared,
with a popcount. Blank images are left to the blank check of `emolib.data.quality`, never paired.

`audit` reports; `drop_from_eval` (the `near_duplicates: drop_from_eval` data option) removes the val/test
rows with a near-duplicate in train and says which.
"""
from __future__ import annotations

from dataclasses import fields, replace
from itertools import combinations_with_replacement

import numpy as np
import scipy.fft

from emolib.data.arrays import FaceArrays
from emolib.data.quality import BLANK_STD, blank_rows
from emolib.data.splits import SPLITS

RADIUS = 4               # the default Hamming radius (docs/data.md says how it was chosen)
MAX_SHIFT = 3            # pixels: a copy shifted this far is compared at its own offset
HASH_BITS = 64
MODES = ("keep", "drop_from_eval")
SPLIT_PAIRS = tuple(f"{a}-{b}" for a, b in combinations_with_replacement(SPLITS, 2))
_SIDE, _RESIZED, _BLOCK = 48, 32, 8


def _area_resize_matrix(n_in: int = _SIDE, n_out: int = _RESIZED) -> np.ndarray:
    """(n_out, n_in): each output pixel the mean of the input span it covers (OpenCV's INTER_AREA)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = np.arange(n_in)[None, :]
    return np.clip(np.minimum(hi, x + 1) - np.maximum(lo, x), 0, None) / (n_in / n_out)


def _shift_matrix(d: int, n: int = _SIDE) -> np.ndarray:
    """(n, n) S with (S @ v)[y] = v[clip(y - d)]: a shift by d pixels, the border repeated."""
    s = np.zeros((n, n))
    s[np.arange(n), np.clip(np.arange(n) - d, 0, n - 1)] = 1
    return s


def _projections(max_shift: int) -> np.ndarray:
    """(2*max_shift+1, 8, 48): the first 8 DCT-II rows of the resized image, one per shift of the input."""
    dct = scipy.fft.dct(np.eye(_RESIZED), axis=0, norm="ortho")[:_BLOCK]
    base = dct @ _area_resize_matrix()
    return np.stack([base @ _shift_matrix(d) for d in range(-max_shift, max_shift + 1)]).astype(np.float32)


def _bits(coeffs: np.ndarray) -> np.ndarray:
    """(..., 8, 8) DCT blocks -> uint64 hashes: the 63 AC terms above their median (the top bit stays 0)."""
    ac = coeffs.reshape(*coeffs.shape[:-2], _BLOCK * _BLOCK)[..., 1:]
    bits = ac > np.median(ac, axis=-1, keepdims=True)
    weights = np.uint64(1) << np.arange(ac.shape[-1] - 1, -1, -1, dtype=np.uint64)
    return (bits.astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64)


def hash_variants(images: np.ndarray, max_shift: int = MAX_SHIFT, chunk: int = 1024) -> np.ndarray:
    """uint64 (2, S, S, N) with S = 2*max_shift+1: [mirrored, dy, dx, image]. [0, c, c] (c = max_shift) is
    each image's own hash, [1, c, c] its mirror's. Batched matrix products; no per-image loop."""
    proj = _projections(max_shift)
    # The DCT-II of a reversed row is the DCT-II of the row with every odd term negated: the mirror for free.
    sign = np.where(np.arange(_BLOCK) % 2, -1, 1).astype(np.float32)
    out = np.empty((2, len(proj), len(proj), len(images)), dtype=np.uint64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float32)
        rows = proj[:, None] @ x[None]                                           # (S, B, 8, 48)
        coeffs = rows[:, None] @ proj.transpose(0, 2, 1)[None, :, None]          # (S, S, B, 8, 8)
        out[0, :, :, start:start + chunk] = _bits(coeffs)
        out[1, :, :, start:start + chunk] = _bits(coeffs * sign)
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _bands(radius: int) -> list[tuple[int, np.uint64]]:
    """radius + 1 (shift, mask) bands that tile the 64 bits, as even as they come."""
    edges = np.linspace(0, HASH_BITS, radius + 2).round().astype(int)
    return [(int(lo), np.uint64((1 << int(hi - lo)) - 1)) for lo, hi in zip(edges[:-1], edges[1:])]


def _matches(queries: np.ndarray, owners: np.ndarray, index: np.ndarray, radius: int) -> np.ndarray:
    """(k, 3) int64 rows (query position, index row, distance) of every index hash within `radius` of a query
    that is not the query's own image; a pair can come more than once (several bands agree)."""
    found = []
    for shift, mask in _bands(radius):
        keys = (index >> np.uint64(shift)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        q = (queries >> np.uint64(shift)) & mask
        lo, hi = np.searchsorted(sorted_keys, q, "left"), np.searchsorted(sorted_keys, q, "right")
        count = hi - lo
        qpos = np.repeat(np.arange(len(q)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        rows = order[np.repeat(lo, count) + offset]
        dist = hamming(queries[qpos], index[rows])
        keep = (dist <= radius) & (owners[qpos] != rows)
        found.append(np.stack([qpos[keep], rows[keep], dist[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 3), np.int64)


def find_pairs(variants: np.ndarray, candidates: np.ndarray, radius: int, chunk: int = 65_536) -> np.ndarray:
    """(k, 4) int64 rows (i, j, distance, mirrored), i < j, sorted: each pair of `candidates` rows (indices
    into the images of `variants`) within `radius`, at its smallest distance over shifts and the mirror."""
    n_mirror, s, _, _ = variants.shape
    index = variants[0, s // 2, s // 2, candidates]
    queries = variants[:, :, :, candidates].reshape(-1)
    owners = np.tile(np.arange(len(candidates)), n_mirror * s * s)
    mirrored = np.repeat(np.arange(n_mirror), s * s * len(candidates))
    hits = []
    for start in range(0, len(queries), chunk):
        m = _matches(queries[start:start + chunk], owners[start:start + chunk], index, radius)
        qpos = m[:, 0] + start
        hits.append(np.stack([owners[qpos], m[:, 1], m[:, 2], mirrored[qpos]], axis=1))
    hits = np.concatenate(hits) if hits else np.empty((0, 4), np.int64)
    i, j = np.minimum(hits[:, 0], hits[:, 1]), np.maximum(hits[:, 0], hits[:, 1])
    order = np.lexsort((hits[:, 3], hits[:, 2], j, i))        # per pair: smallest distance, unmirrored first
    rows = np.stack([candidates[i], candidates[j], hits[:, 2], hits[:, 3]], axis=1)[order]
    first = np.ones(len(rows), bool)
    first[1:] = np.any(rows[1:, :2] != rows[:-1, :2], axis=1)
    return rows[first]


def split_pair(a: str, b: str) -> str:
    """"test", "train" -> "train-test": the name a pair of splits is counted under."""
    a, b = sorted((a, b), key=SPLITS.index)
    return f"{a}-{b}"


def _unrelated_distances(variants: np.ndarray, candidates: np.ndarray, pairs: np.ndarray, n: int,
                         seed: int) -> np.ndarray:
    """Distances (same measure as the pairs') of `n` random pairs of candidates that were not reported."""
    if len(candidates) < 2 or n <= 0:
        return np.empty(0, np.int64)
    rng = np.random.default_rng(seed)
    i, j = rng.choice(candidates, (2, n))
    keep = i != j
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    reported = set(map(tuple, pairs[:, :2].tolist()))
    keep = np.array([(a, b) not in reported for a, b in zip(i.tolist(), j.tolist())], bool)
    i, j = i[keep], j[keep]
    s = variants.shape[1]
    return hamming(variants[:, :, :, i], variants[0, s // 2, s // 2, j]).reshape(-1, len(i)).min(axis=0)


def audit(arrays: FaceArrays, radius: int = RADIUS, *, max_shift: int = MAX_SHIFT, blank_std: float = BLANK_STD,
          unrelated_sample: int = 20_000, seed: int = 0) -> dict:
    """Pairs of near-duplicate images and where they sit, as plain values (JSON-ready).

    ``pairs``: rows [i, j, distance, mirrored]; ``by_split_pair``: pair counts under "train-train",
    "train-val", ... (`SPLIT_PAIRS`); ``conflicting_by_split_pair``: those whose labels differ;
    ``distance_histogram``: reported pairs per distance 0..radius; ``unrelated_histogram``: per distance
    0..64, a random sample of the other pairs (the margin between the two is what the radius relies on)."""
    if not 0 <= radius < HASH_BITS // 4:
        raise ValueError(f"near-duplicate radius {radius}: choose 0-{HASH_BITS // 4 - 1} of {HASH_BITS} bits")
    blank = blank_rows(arrays.images, blank_std)
    candidates = np.flatnonzero(~blank)
    variants = np.zeros((2, 2 * max_shift + 1, 2 * max_shift + 1, len(arrays)), np.uint64)
    variants[..., candidates] = hash_variants(arrays.images[candidates], max_shift)
    pairs = find_pairs(variants, candidates, radius)
    names = np.array([split_pair(a, b) for a, b in zip(arrays.splits[pairs[:, 0]], arrays.splits[pairs[:, 1]])],
                     dtype=object)
    conflicting = arrays.labels[pairs[:, 0]] != arrays.labels[pairs[:, 1]]
    unrelated = _unrelated_distances(variants, candidates, pairs, unrelated_sample, seed)
    return {
        "radius": radius, "max_shift": max_shift, "hash_bits": HASH_BITS, "n_images": len(arrays),
        "n_blank_skipped": int(blank.sum()),
        "pairs": pairs.tolist(), "n_pairs": len(pairs),
        "by_split_pair": {k: int((names == k).sum()) for k in SPLIT_PAIRS},
        "conflicting_by_split_pair": {k: int(((names == k) & conflicting).sum()) for k in SPLIT_PAIRS},
        "n_mirrored_pairs": int(pairs[:, 3].sum()),
        "images_with_partner": {s: int((arrays.splits[np.unique(pairs[:, :2])] == s).sum()) for s in SPLITS},
        "distance_histogram": np.bincount(pairs[:, 2], minlength=radius + 1).tolist(),
        "unrelated_histogram": np.bincount(unrelated, minlength=HASH_BITS + 1).tolist(),
        "n_unrelated_sampled": len(unrelated),
    }


def summarize(found: dict) -> str:
    """One line for a notebook or a log."""
    across = ", ".join(f"{k} {v}" for k, v in found["by_split_pair"].items())
    return (f"{found['n_pairs']} near-duplicate pair(s) within Hamming radius {found['radius']} of "
            f"{found['hash_bits']} bits ({across}; {found['n_mirrored_pairs']} mirrored, "
            f"{sum(found['conflicting_by_split_pair'].values())} with conflicting labels), "
            f"{found['n_blank_skipped']} blank image(s) left out, of {found['n_images']} images")


def eval_rows_with_train_partner(arrays: FaceArrays, found: dict) -> np.ndarray:
    """Row indices of val/test images that have a near-duplicate in train, sorted."""
    pairs = np.asarray(found["pairs"], dtype=np.int64).reshape(-1, 4)
    a, b = arrays.splits[pairs[:, 0]], arrays.splits[pairs[:, 1]]
    rows = np.concatenate([pairs[(a == "train") & (b != "train"), 1], pairs[(b == "train") & (a != "train"), 0]])
    return np.unique(rows)


def _rows(arrays: FaceArrays, idx: np.ndarray) -> FaceArrays:
    """The arrays' rows `idx`: every per-row array field indexed (images, labels, splits, masks, ...)."""
    per_row = {f.name: getattr(arrays, f.name)[idx] for f in fields(arrays)
               if isinstance(getattr(arrays, f.name), np.ndarray) and len(getattr(arrays, f.name)) == len(arrays)}
    return replace(arrays, **per_row, notes=list(arrays.notes))


def drop_from_eval(arrays: FaceArrays, found: dict) -> tuple[FaceArrays, dict]:
    """(the arrays without the val/test rows that have a near-duplicate in train, a record of what went).

    The record (``removed``: count per split; ``rows``: their row indices in `arrays`) belongs in the run's
    data info; the arrays' notes say it in one line too, so nothing is dropped silently."""
    rows = eval_rows_with_train_partner(arrays, found)
    removed = {s: int((arrays.splits[rows] == s).sum()) for s in SPLITS if s != "train"}
    keep = np.ones(len(arrays), bool)
    keep[rows] = False
    out = _rows(arrays, np.flatnonzero(keep))
    out.notes = [*arrays.notes, f"near_duplicates=drop_from_eval: removed {removed['val']} val and "
                                f"{removed['test']} test row(s) with a near-duplicate in train (radius "
                                f"{found['radius']})"]
    return out, {"mode": "drop_from_eval", "radius": found["radius"], "removed": removed, "rows": rows.tolist()}
