"""Near-duplicate leakage audit: the same face re-encoded, shifted, brightened, blurred or mirrored.

FER2013 was gathered by web image search, so a face can land in two splits without being byte-identical
(`emolib.data.quality` finds the byte-identical ones). Every image gets a 64-bit perceptual hash (pHash-like:
the 48×48 image area-resized to 32×32, its 2-D DCT, the top-left 8×8 block minus the DC term thresholded at
its median), of itself and of its mirror, each at every offset of up to `MAX_SHIFT` pixels. Two images are a
pair when the Hamming distance between one's plain hash and any of the other's variants is at most `radius`,
and their pixels, aligned as that variant says, correlate at `MIN_CORRELATION` or more: 63 bits of a face's
coarse layout cannot tell a copy from a look-alike face, the pixels can.

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
MIN_CORRELATION = 0.95   # pixel check of a hash match (docs/data.md: what it removes, how it was chosen)
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


def _bits(block: np.ndarray) -> np.ndarray:
    """(..., 64) DCT blocks, row-major -> uint64 hashes: the 63 AC terms above their median (DC's top bit is 0)."""
    ac = np.ascontiguousarray(block[..., 1:])
    mid = ac.shape[-1] // 2
    median = np.partition(ac, mid, axis=-1)[..., mid:mid + 1]
    bits = block > median
    bits[..., 0] = False
    return np.packbits(bits, axis=-1).view(">u8")[..., 0].astype(np.uint64)


def hash_variants(images: np.ndarray, max_shift: int = MAX_SHIFT, chunk: int = 1024) -> np.ndarray:
    """uint64 (2, S, S, N) with S = 2*max_shift+1: [mirrored, dy, dx, image]. [0, c, c] (c = max_shift) is
    each image's own hash, [1, c, c] its mirror's. Batched matrix products; no per-image loop."""
    proj = _projections(max_shift)
    # The DCT-II of a reversed row is the DCT-II of the row with every odd term negated: the mirror for free.
    sign = np.tile(np.where(np.arange(_BLOCK) % 2, -1, 1), _BLOCK).astype(np.float32)
    s, k, side = proj.shape
    flat = proj.reshape(s * k, side)
    out = np.empty((2, s, s, len(images)), dtype=np.uint64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float32)
        b = len(x)
        # Two large matrix products (not many small ones): columns first, for every dx at once, then rows.
        cols = (x.reshape(b * side, side) @ flat.T).reshape(b, side, s * k)           # [b, y, (dx, l)]
        both = flat @ cols.transpose(1, 0, 2).reshape(side, b * s * k)                # [(dy, i), (b, dx, l)]
        block = both.reshape(s, k, b, s, k).transpose(0, 3, 2, 1, 4).reshape(s, s, b, k * k)   # [dy, dx, b, il]
        out[0, :, :, start:start + chunk] = _bits(block)
        out[1, :, :, start:start + chunk] = _bits(block * sign)
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _bands(radius: int) -> list[tuple[int, np.uint64]]:
    """radius + 1 (shift, mask) bands that tile the 64 bits, as even as they come."""
    edges = np.linspace(0, HASH_BITS, radius + 2).round().astype(int)
    return [(int(lo), np.uint64((1 << int(hi - lo)) - 1)) for lo, hi in zip(edges[:-1], edges[1:])]


def _band_tables(index: np.ndarray, radius: int) -> list[tuple]:
    """Per band: (shift, mask, rows of `index` sorted by the band's value, and a lookup of a value's first
    position and count there): a direct table for narrow bands, the sorted distinct values for wide ones."""
    tables = []
    for shift, mask in _bands(radius):
        keys = (index >> np.uint64(shift)) & mask
        order = np.argsort(keys, kind="stable")
        if int(mask) < 1 << 22:
            counts = np.bincount(keys.astype(np.int64), minlength=int(mask) + 1)
            lookup = (np.cumsum(counts) - counts, counts)
        else:
            lookup = np.unique(keys[order], return_index=True, return_counts=True)
        tables.append((shift, mask, order, lookup))
    return tables


def _lookup(lookup: tuple, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first position, count) of each query value in a band's table."""
    if len(lookup) == 2:
        starts, counts = lookup
        return starts[q.astype(np.int64)], counts[q.astype(np.int64)]
    values, starts, counts = lookup
    at = np.minimum(np.searchsorted(values, q), len(values) - 1)
    hit = values[at] == q
    return starts[at], np.where(hit, counts[at], 0)


def _matches(queries: np.ndarray, owners: np.ndarray, index: np.ndarray, tables: list, radius: int) -> np.ndarray:
    """(k, 3) int64 rows (query position, index row, distance) of every index hash within `radius` of a query
    that is not the query's own image; a pair can come more than once (several bands agree)."""
    found = []
    for shift, mask, order, lookup in tables:
        lo, count = _lookup(lookup, (queries >> np.uint64(shift)) & mask)
        qpos = np.repeat(np.arange(len(queries)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        rows = order[np.repeat(lo, count) + offset]
        dist = hamming(queries[qpos], index[rows])
        keep = (dist <= radius) & (owners[qpos] != rows)
        found.append(np.stack([qpos[keep], rows[keep], dist[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 3), np.int64)


def find_pairs(variants: np.ndarray, candidates: np.ndarray, radius: int, chunk: int = 65_536) -> np.ndarray:
    """(k, 4) int64 rows (moved, still, distance, variant), one per pair of `candidates` rows (indices into the
    images of `variants`) within `radius`, at its smallest distance: the `variant` (a flat index into the first
    three axes of `variants`) of image `moved` is that close to the plain hash of image `still`."""
    centre = variants.shape[1] // 2
    index = variants[0, centre, centre, candidates]
    queries = variants[:, :, :, candidates].reshape(-1)
    n_variants = queries.size // max(len(candidates), 1)
    owners = np.tile(np.arange(len(candidates)), n_variants)
    hits, tables = [], _band_tables(index, radius)
    for start in range(0, len(queries), chunk):
        m = _matches(queries[start:start + chunk], owners[start:start + chunk], index, tables, radius)
        qpos = m[:, 0] + start
        hits.append(np.stack([owners[qpos], m[:, 1], m[:, 2], qpos // len(candidates)], axis=1))
    hits = np.concatenate(hits) if hits else np.empty((0, 4), np.int64)
    i, j = np.minimum(hits[:, 0], hits[:, 1]), np.maximum(hits[:, 0], hits[:, 1])
    shape = variants.shape[:3]
    mirrored, dy, dx = np.unravel_index(hits[:, 3], shape)
    moves = 2 * (np.abs(dy - centre) + np.abs(dx - centre)) + mirrored      # the plainest variant wins a tie
    order = np.lexsort((moves, hits[:, 2], j, i))             # per pair: smallest distance, then fewest moves
    first = np.ones(len(order), bool)
    first[1:] = (i[order][1:] != i[order][:-1]) | (j[order][1:] != j[order][:-1])
    rows = hits[order[first]]
    rows[:, :2] = candidates[rows[:, :2]]
    return rows


def _aligned_correlation(images: np.ndarray, matches: np.ndarray, max_shift: int, chunk: int = 4096) -> np.ndarray:
    """Pearson correlation of each match's still image with its moved image shifted and mirrored as its variant
    says, over the centre (the border a shift fills by repetition left out): a copy stays near 1 whatever
    its brightness and contrast, a look-alike at the hash's coarse scale does not."""
    out = np.empty(len(matches))
    grid, side = np.arange(images.shape[1]), 2 * max_shift + 1
    inner = slice(max_shift, images.shape[1] - max_shift)
    for start in range(0, len(matches), chunk):
        moved, still, _, variant = matches[start:start + chunk].T
        mirrored, dy, dx = variant // (side * side), variant % (side * side) // side - side // 2, variant % side - side // 2
        rows = np.clip(grid[None] - dy[:, None], 0, len(grid) - 1)
        cols = np.clip(grid[None] - dx[:, None], 0, len(grid) - 1)
        cols = np.where(mirrored[:, None] == 1, cols[:, ::-1], cols)
        a = images[moved[:, None, None], rows[:, :, None], cols[:, None, :]][:, inner, inner]
        b = images[still][:, inner, inner]
        a = a.reshape(len(a), -1).astype(np.float32)
        b = b.reshape(len(b), -1).astype(np.float32)
        a -= a.mean(1, keepdims=True)
        b -= b.mean(1, keepdims=True)
        den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        out[start:start + chunk] = np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-9), 0.0)
    return out


def split_pair(a: str, b: str) -> str:
    """"test", "train" -> "train-test": the name a pair of splits is counted under."""
    a, b = sorted((a, b), key=SPLITS.index)
    return f"{a}-{b}"


def _random_pair_distances(variants: np.ndarray, candidates: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The hash distances (the pairs' measure: over shifts and the mirror) of `n` random pairs of candidates."""
    if len(candidates) < 2 or n <= 0:
        return np.empty(0, np.int64)
    i, j = np.random.default_rng(seed).choice(candidates, (2, n))
    i, j = i[i != j], j[i != j]
    centre = variants.shape[1] // 2
    return hamming(variants[:, :, :, i], variants[0, centre, centre, j]).reshape(-1, len(i)).min(axis=0)


def audit(arrays: FaceArrays, radius: int = RADIUS, *, min_correlation: float = MIN_CORRELATION,
          max_shift: int = MAX_SHIFT, blank_std: float = BLANK_STD, random_pairs: int = 20_000, seed: int = 0) -> dict:
    """Pairs of near-duplicate images and where they sit, as plain values (JSON-ready).

    A pair: hashes within `radius` (at some shift and mirror) and, at that alignment, pixels correlated at
    `min_correlation` or more. ``pairs``: rows [i, j, distance, mirrored], i < j, with ``correlations``
    beside them; ``by_split_pair``: counts under "train-train", "train-val", ... (`SPLIT_PAIRS`);
    ``conflicting_by_split_pair``: those whose labels differ; ``distance_histogram``: reported pairs per
    distance 0..radius; ``random_pair_histogram``: per distance 0..64, a random sample of all pairs (the
    margin between the two is what the radius relies on); ``n_hash_matches``: pairs before the pixel check."""
    if not 0 <= radius < HASH_BITS // 4:
        raise ValueError(f"near-duplicate radius {radius}: choose 0-{HASH_BITS // 4 - 1} of {HASH_BITS} bits")
    blank = blank_rows(arrays.images, blank_std)
    candidates = np.flatnonzero(~blank)
    variants = np.zeros((2, 2 * max_shift + 1, 2 * max_shift + 1, len(arrays)), np.uint64)
    variants[..., candidates] = hash_variants(arrays.images[candidates], max_shift)
    matches = find_pairs(variants, candidates, radius)
    correlation = _aligned_correlation(arrays.images, matches, max_shift)
    kept = matches[correlation >= min_correlation]
    order = np.lexsort((np.maximum(kept[:, 0], kept[:, 1]), np.minimum(kept[:, 0], kept[:, 1])))
    i, j = np.minimum(kept[:, 0], kept[:, 1])[order], np.maximum(kept[:, 0], kept[:, 1])[order]
    mirrored = np.unravel_index(kept[order, 3], variants.shape[:3])[0]
    pairs = np.stack([i, j, kept[order, 2], mirrored], axis=1).astype(np.int64)
    names = np.array([split_pair(a, b) for a, b in zip(arrays.splits[i], arrays.splits[j])], dtype=object)
    conflicting = arrays.labels[i] != arrays.labels[j]
    sampled = _random_pair_distances(variants, candidates, random_pairs, seed)
    return {
        "radius": radius, "min_correlation": min_correlation, "max_shift": max_shift, "hash_bits": HASH_BITS,
        "n_images": len(arrays), "n_blank_skipped": int(blank.sum()), "n_hash_matches": len(matches),
        "pairs": pairs.tolist(), "correlations": correlation[correlation >= min_correlation][order].round(3).tolist(),
        "n_pairs": len(pairs),
        "by_split_pair": {k: int((names == k).sum()) for k in SPLIT_PAIRS},
        "conflicting_by_split_pair": {k: int(((names == k) & conflicting).sum()) for k in SPLIT_PAIRS},
        "n_mirrored_pairs": int(pairs[:, 3].sum()),
        "images_with_partner": {s: int((arrays.splits[np.unique(pairs[:, :2])] == s).sum()) for s in SPLITS},
        "distance_histogram": np.bincount(pairs[:, 2], minlength=radius + 1).tolist(),
        "random_pair_histogram": np.bincount(sampled, minlength=HASH_BITS + 1).tolist(),
        "n_random_pairs": len(sampled),
    }


def summarize(found: dict) -> str:
    """One line for a notebook or a log."""
    across = ", ".join(f"{k} {v}" for k, v in found["by_split_pair"].items())
    return (f"{found['n_pairs']} near-duplicate pair(s) within Hamming radius {found['radius']} of "
            f"{found['hash_bits']} bits ({across}; {found['n_mirrored_pairs']} mirrored, "
            f"{sum(found['conflicting_by_split_pair'].values())} with conflicting labels), "
            f"{found['n_blank_skipped']} blank image(s) left out, of {found['n_images']} images")


def origin(arrays: FaceArrays, found: dict) -> str:
    """Where the pairs come from, as far as the data can say: for the synthetic source, which never copies a face,
    the share of pairs that share a label next to that of two random faces (a copy would share it always)."""
    if not arrays.source.startswith("synthetic"):
        return ("Each pair is a candidate copy: look at the grid; the same photo under two labels is a labelling "
                "conflict, in two splits a leak.")
    pairs = np.asarray(found["pairs"], dtype=np.int64).reshape(-1, 4)
    drawn = ("Synthetic source: every face is drawn on its own (random identity, expression and pose around one face "
             "template; weak expressions drift towards neutral), never copied")
    if not len(pairs):
        return f"{drawn}: {found['n_hash_matches']} hash match(es) by chance, none of them a copy at the pixel check."
    share = np.bincount(arrays.labels, minlength=len(arrays.classes)) / max(len(arrays), 1)
    same = float(np.mean(arrays.labels[pairs[:, 0]] == arrays.labels[pairs[:, 1]]))
    return (f"{drawn}, so these {len(pairs)} pairs (of {found['n_hash_matches']} hash matches) are look-alikes by "
            f"chance, alike in layout and pixels at some shift or mirror, not leaks: {same:.0%} of them share a "
            f"label, against {float(share @ share):.0%} for two random faces of this class mix.")


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
