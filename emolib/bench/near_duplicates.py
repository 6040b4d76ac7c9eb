"""The near-duplicate audit on a FER2013-size set (35,887 images) with planted copies of known kinds.

The faces are `emolib.data.fixtures.make_faces` in FER2013's per-split class counts, with texture (the smooth
faces alone are too alike for the unplanted share to mean anything). Copies are then planted over some rows:
a source face, re-encoded, shifted, re-toned, mirrored or blurred, written over a row of another split or of
the same one. Figures: recall of the planted pairs (overall and per kind), precision of the reported pairs,
the share of unplanted images given any partner, and the audit's seconds.
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from emolib.data.fixtures import BLANK_ROW, DUP_ROWS, make_faces
from emolib.data.near_duplicates import RADIUS, audit

# FER2013's per-class counts (angry, disgust, fear, happy, sad, surprise, neutral) of Training, PublicTest,
# PrivateTest: 35,887 rows in all.
FER2013_COUNTS = ((3995, 436, 4097, 7215, 4830, 3171, 4965), (467, 56, 496, 895, 653, 415, 607),
                  (491, 55, 528, 879, 594, 416, 626))
PER_KIND = 200                      # planted pairs of each kind (a tenth with --quick)


def _jpeg(img, rng):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _shift(img, rng):
    dx, dy = 0, 0
    while dx == 0 and dy == 0:
        dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), img.shape[::-1], borderMode=cv2.BORDER_REPLICATE)


def _tone(img, rng):
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.15, 0.15) * 255
    return np.clip((img.astype(np.float32) - 128) * gain + 128 + offset, 0, 255).astype(np.uint8)


def _mirror(img, rng):
    return np.ascontiguousarray(img[:, ::-1])


def _blur(img, rng):
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))


def _combined(img, rng):
    return _jpeg(_tone(_shift(img, rng), rng), rng)


KINDS = {"jpeg": _jpeg, "shift": _shift, "tone": _tone, "mirror": _mirror, "blur": _blur, "combined": _combined}


def planted_faces(counts=FER2013_COUNTS, per_kind: int = PER_KIND, seed: int = 0):
    """(FaceArrays, planted pairs as a set of (i, j), i < j, kind per pair): `per_kind` copies of each kind,
    each a source row's face transformed and written over another row (across or within splits, as drawn)."""
    faces = make_faces(counts=counts, seed=seed, texture=True)
    rng = np.random.default_rng(seed + 1)
    rows = rng.permutation(np.setdiff1d(np.arange(len(faces)), [BLANK_ROW, *DUP_ROWS]))
    planted = {tuple(sorted(DUP_ROWS)): "exact"}        # make_faces' own duplicate: a pair too
    for k, (kind, transform) in enumerate(KINDS.items()):
        block = rows[2 * k * per_kind:2 * (k + 1) * per_kind].reshape(per_kind, 2)
        for src, dst in block.tolist():
            faces.images[dst] = transform(faces.images[src], rng)
            planted[(min(src, dst), max(src, dst))] = kind
    return faces, planted


def score(found: dict, planted: dict, n_images: int) -> dict[str, float]:
    reported = {(i, j) for i, j, _, _ in found["pairs"]}
    hits = reported & set(planted)
    in_planted = {r for pair in planted for r in pair}
    stray = {r for pair in reported - set(planted) for r in pair} - in_planted
    out = {"near_dup_recall_planted": len(hits) / len(planted),
           "near_dup_precision_reported": len(hits) / max(len(reported), 1),
           "near_dup_unplanted_share_with_partner": len(stray) / (n_images - len(in_planted))}
    for kind in dict.fromkeys(planted.values()):
        of_kind = {p for p, k in planted.items() if k == kind}
        out[f"near_dup_recall_{kind}"] = len(of_kind & reported) / len(of_kind)
    return out


def run(quick: bool = False, radius: int = RADIUS) -> dict[str, float]:
    counts = tuple(tuple(max(1, c // 10) for c in row) for row in FER2013_COUNTS) if quick else FER2013_COUNTS
    faces, planted = planted_faces(counts, PER_KIND // 10 if quick else PER_KIND)
    t0 = time.perf_counter()
    found = audit(faces, radius)
    seconds = time.perf_counter() - t0
    size = "fer2013_tenth" if quick else "fer2013_size"
    return {**score(found, planted, len(faces)), f"near_dup_audit_s_{size}": seconds,
            "_inputs": [f"make_faces(texture=True) in FER2013's class counts: {len(faces)} images, {len(planted)} "
                        f"planted pairs ({', '.join(dict.fromkeys(planted.values()))}), radius {radius}"]}
