"""Drawing the synthetic source's faces: vectorized distance fields on the pixel grid.

Drawing is vectorized over a chunk of faces: every shape is a distance field evaluated on the
size×size pixel grid mapped into each face's own coordinates (so pose moves the features and their
masks together), turned into anti-aliased coverage by a one-pixel ramp. Symmetric features (eyes,
brows, mouth) are evaluated once on |u|. What to draw (the parameters) is `emolib.data.synthetic`'s.
"""
from __future__ import annotations

import numpy as np

# The drawn features that can carry a class (masks are made per feature, in this order).
FEATURES = ("brows", "eyes", "mouth", "nose")


def _cover(d):
    """Anti-aliased coverage of a signed distance field (negative inside), one-pixel ramp."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _lerp(img, value, cov):
    img += (value - img) * cov


def _ellipse_sd(x, y, a, b):
    """Approximate signed distance (px) to an axis-aligned ellipse with half-axes a, b."""
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _segment_dist(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2)


def _blur(img, amount):
    """Per-image blur: a separable [a, 1-2a, a] kernel, a = amount/4 (amount in [0, 1]; 1 ≈ sigma 0.7 px).
    Edge pixels keep their value."""
    a = (np.clip(amount, 0.0, 1.0) * 0.25)[:, None, None].astype(img.dtype)
    out = img.copy()
    out[:, :, 1:-1] += a * (img[:, :, :-2] + img[:, :, 2:] - 2.0 * img[:, :, 1:-1])
    img = out.copy()
    img[:, 1:-1, :] += a * (out[:, :-2, :] + out[:, 2:, :] - 2.0 * out[:, 1:-1, :])
    return img


def _row_band(cy, sc, sin, cos, v_lo, v_hi, u_max, s, size, margin=3.0):
    """Pixel rows [r0, r1) that the face-coordinate box |u|<=u_max, v_lo<=v<=v_hi can reach in any
    face of the chunk (pose included), plus a margin for anti-aliasing and mask dilation.
    Features are drawn only on their band: the same pixels, a fraction of the work."""
    reach = sc * (np.abs(sin) * (u_max + margin))
    lo = cy + sc * cos * (v_lo - margin) - reach
    hi = cy + sc * cos * (v_hi + margin) + reach
    return max(0, int(np.floor(lo.min() * s))), min(size, int(np.ceil(hi.max() * s)) + 1)


def draw_faces(p: dict[str, np.ndarray], size: int = 48, noise: np.ndarray | None = None,
               evidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw faces for parameter arrays `p` -> (uint8 images B×size×size, bool masks or None).

    `noise` is a standard-normal field B×size×size (scaled by p['noise']); None draws no noise.
    `evidence` (B×len(FEATURES) bool): which drawn features carry each face's class; the masks of
    those features are computed when it is given.
    """
    f32 = np.float32
    col = lambda name: p[name].astype(f32)[:, None, None]   # noqa: E731  per-face scalar, broadcastable
    n = len(p["skin"])
    s = size / 48.0                                          # geometry is designed on a 48 px canvas
    grid = (np.arange(size, dtype=f32) + 0.5) / s
    gx, gy = grid[None, None, :], grid[None, :, None]
    cx, cy = 24.0 + col("dx"), 25.0 + col("dy")
    cos, sin, sc = np.cos(col("angle")), np.sin(col("angle")), col("scale")
    # Face coordinates (px on the 48 canvas, y down) of every pixel: inverse of rotate+scale+shift.
    # Each term is a row or a column; only the final sum is a full grid.
    x, y = gx - cx, gy - cy
    u = (cos / sc) * x + (sin / sc) * y
    v = (-sin / sc) * x + (cos / sc) * y
    ua = np.abs(u)

    def band(v_lo, v_hi, u_max):
        r0, r1 = _row_band(cy, sc, sin, cos, v_lo, v_hi, u_max, s, size)
        return slice(r0, max(r0, r1))

    # Background, head (shaded darker towards its outline, for some volume), hair.
    skin, jaw = col("skin"), col("jaw_drop")
    head_w, head_h = col("head_w"), col("head_h")
    u2 = (u * (1.0 / head_w)) ** 2
    rr = u2 + (v * (1.0 / head_h)) ** 2
    r = np.sqrt(rr)
    edge = np.minimum(head_w, head_h) * sc                 # px per unit of r near the outline
    img = np.broadcast_to(col("background"), (n, size, size)).astype(f32)
    _lerp(img, skin - (0.25 * skin) * rr, _cover((r - 1.0) * edge))
    hairline = col("hairline") + 6.0 * u2
    in_hair = _cover((r - 1.12) * edge)
    side = (ua > head_w * (0.93 - 0.1 * col("hair_side"))) & (v < 6.0 * col("hair_side"))
    _lerp(img, col("hair"), in_hair * np.maximum(_cover((v - hairline) * sc), side))

    regions = {}   # feature -> (row slice, bool support on that band)

    # Brows: a thick segment per side, height and slant from the expression (slant > 0: inner end down).
    bh, bs, bt = col("brow_height"), col("brow_slant"), col("brow_thick")
    ex, ey = col("eye_dx"), col("eye_y")
    by = ey - 4.6 - 2.0 * bh
    y_in, y_out = by + 1.8 * bs, by - 0.8 * bs + 0.6
    rows = band(np.minimum(y_in, y_out) - bt, np.maximum(y_in, y_out) + bt, ex + 4.5 + bt)
    d = _segment_dist(ua[:, rows], v[:, rows], ex - 5.5, y_in, ex + 4.5, y_out) - bt
    _lerp(img[:, rows], np.minimum(col("hair"), skin * 0.45), _cover(d * sc) * 0.9)
    regions["brows"] = rows, d * sc < 1.0

    # Eyes: sclera ellipse, dark iris, dark upper lid line. Openness scales the height.
    eh = 1.9 * col("eye_open") * col("eye_size")
    ew = 3.5 * col("eye_size")
    rows = band(ey - eh, ey + eh, ex + ew)
    eu, ev = ua[:, rows] - ex, v[:, rows] - ey
    d = _ellipse_sd(eu, ev, ew, eh) * sc
    eye_cov = _cover(d)
    view = img[:, rows]
    _lerp(view, np.minimum(skin + 0.2, 0.92), eye_cov)
    _lerp(view, 0.08, _cover((np.sqrt(eu ** 2 + ev ** 2) - 1.7 * col("eye_size")) * sc) * eye_cov)
    _lerp(view, skin * 0.3, np.clip(1.0 - np.abs(d) / 0.9, 0, 1) * (ev < 0.3))
    regions["eyes"] = rows, d < 1.0

    # Nose: nostrils, and wrinkle strokes across the bridge (angry/disgust).
    rows = band(-3.5, 4.5, 3.6)
    nu, nv = ua[:, rows], v[:, rows]
    view = img[:, rows]
    nostril = _cover((np.sqrt(((nu - 2.2) / 1.3) ** 2 + ((nv - 3.5) / 0.8) ** 2) - 1.0) * sc)
    _lerp(view, skin * 0.45, nostril * 0.8)
    slope = nv - 0.15 * nu
    d = np.minimum(np.minimum(np.abs(slope + 2.8), np.abs(slope + 0.8)), np.abs(slope - 1.2)) * sc
    _lerp(view, skin * 0.4, np.clip(1.0 - d / 0.7, 0, 1) * _cover((nu - 3.0) * sc) * col("nose_wrinkle"))
    regions["nose"] = rows, (d < 1.2) & (nu * sc < 3.5)

    # Mouth: centreline with curved corners, opening below it; lips around, dark interior, teeth
    # for a broad smile.
    curve, opening = col("mouth_curve"), col("mouth_open")
    mw = col("mouth_w") * col("mouth_width")
    my = col("mouth_y") + 1.8 * jaw
    hmax = 3.6 * opening + 1.2 * jaw
    rows = band(my - 2.4 * np.abs(curve) * 0.65 - 0.35 * hmax - 1.1, my + 2.4 * np.abs(curve) * 0.65 + hmax + 1.1,
                mw + 1.1)
    mu, mv = ua[:, rows], v[:, rows]
    xn2 = np.minimum((mu / mw) ** 2, 1.0)
    yc = my + curve * 2.4 * (0.35 - xn2)
    h = hmax * np.sqrt(1.0 - xn2)
    top = yc - 0.35 * h
    inside = np.minimum(np.minimum(mv - top, yc + h - mv), mw - mu) * sc    # >0 inside the opening
    view = img[:, rows]
    _lerp(view, skin * 0.62, _cover(-inside - 1.1))
    teeth = np.clip(curve - 0.3, 0, 1) * _cover((mv - top - 1.3) * sc)
    _lerp(view, 0.1 + 0.75 * teeth, _cover(-inside))
    regions["mouth"] = rows, inside > -2.2

    # Occluders over everything (drawn only for the faces that have one): a hand-like blob or a bar.
    occ = np.zeros((n, size, size), f32)
    hit = np.flatnonzero(p["occ_kind"] > 0)
    if hit.size:
        q = {k: p[k][hit].astype(f32)[:, None, None] for k in
             ("occ_kind", "occ_x", "occ_y", "occ_r", "occ_r2", "occ_angle", "occ_value")}
        ox, oy, osc = u[hit] - q["occ_x"], v[hit] - q["occ_y"], sc[hit]
        blob = _cover(_ellipse_sd(ox, oy, q["occ_r"], q["occ_r"] * 1.3) * osc) * (q["occ_kind"] == 1)
        ca, sa = np.cos(q["occ_angle"]), np.sin(q["occ_angle"])
        bar = _cover((np.abs(-sa * ox + ca * oy) - q["occ_r2"]) * osc) * (q["occ_kind"] == 2)
        occ[hit] = np.maximum(blob, bar)
        sub = img[hit]
        _lerp(sub, q["occ_value"], occ[hit])
        img[hit] = sub

    # Imaging: lighting gradient, blur, noise, quantization.
    gain = col("light") / 24.0
    img *= (1.0 + (gain * np.cos(col("light_dir"))) * (gx - 24)) + (gain * np.sin(col("light_dir"))) * (gy - 24)
    img = _blur(img, p["blur"].astype(f32))
    if noise is not None:
        img += noise * col("noise")
    img *= 255.0
    img += 0.5
    images = np.clip(img, 0.0, 255.0, out=img).astype(np.uint8)

    masks = None
    if evidence is not None:
        # The support of each wanted feature (dilated ~1 px: Grad-CAM is coarse), minus occluded pixels.
        masks = np.zeros((n, size, size), bool)
        for j, f in enumerate(FEATURES):
            rows, support = regions[f]
            masks[:, rows] |= support & evidence[:, j, None, None]
        masks &= occ < 0.5
    return images, masks
