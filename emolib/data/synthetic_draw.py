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


class _Pose:
    """A chunk of faces placed on the pixel grid: every pixel's face coordinates (u, v; px on the 48 canvas,
    y down), the per-face parameters as broadcastable columns, and the pixel rows a feature can reach."""

    def __init__(self, p: dict[str, np.ndarray], size: int):
        self.p, self.size = p, size
        self.n = len(p["skin"])
        self.s = size / 48.0                                     # geometry is designed on a 48 px canvas
        grid = (np.arange(size, dtype=np.float32) + 0.5) / self.s
        self.gx, self.gy = grid[None, None, :], grid[None, :, None]
        self.cx, self.cy = 24.0 + self.col("dx"), 25.0 + self.col("dy")
        self.cos, self.sin, self.sc = np.cos(self.col("angle")), np.sin(self.col("angle")), self.col("scale")
        # Inverse of rotate+scale+shift. Each term is a row or a column; only the final sum is a full grid.
        x, y = self.gx - self.cx, self.gy - self.cy
        self.u = (self.cos / self.sc) * x + (self.sin / self.sc) * y
        self.v = (-self.sin / self.sc) * x + (self.cos / self.sc) * y
        self.ua = np.abs(self.u)

    def col(self, name: str) -> np.ndarray:
        """A per-face scalar parameter, broadcastable against the B×size×size grid."""
        return self.p[name].astype(np.float32)[:, None, None]

    def band(self, v_lo, v_hi, u_max) -> slice:
        r0, r1 = _row_band(self.cy, self.sc, self.sin, self.cos, v_lo, v_hi, u_max, self.s, self.size)
        return slice(r0, max(r0, r1))


def _head(g: _Pose) -> np.ndarray:
    """Background, head (shaded darker towards its outline, for some volume), hair: the image to draw on."""
    u, v, sc = g.u, g.v, g.sc
    skin, head_w, head_h = g.col("skin"), g.col("head_w"), g.col("head_h")
    u2 = (u * (1.0 / head_w)) ** 2
    rr = u2 + (v * (1.0 / head_h)) ** 2
    r = np.sqrt(rr)
    edge = np.minimum(head_w, head_h) * sc                 # px per unit of r near the outline
    img = np.broadcast_to(g.col("background"), (g.n, g.size, g.size)).astype(np.float32)
    _lerp(img, skin - (0.25 * skin) * rr, _cover((r - 1.0) * edge))
    hairline = g.col("hairline") + 6.0 * u2
    in_hair = _cover((r - 1.12) * edge)
    side = (g.ua > head_w * (0.93 - 0.1 * g.col("hair_side"))) & (v < 6.0 * g.col("hair_side"))
    _lerp(img, g.col("hair"), in_hair * np.maximum(_cover((v - hairline) * sc), side))
    return img


# Each feature draws on `img` in place and returns its region: (row slice, bool support on that band).

def _brows(g: _Pose, img: np.ndarray):
    """A thick segment per side, height and slant from the expression (slant > 0: inner end down)."""
    bh, bs, bt = g.col("brow_height"), g.col("brow_slant"), g.col("brow_thick")
    ex, ey = g.col("eye_dx"), g.col("eye_y")
    by = ey - 4.6 - 2.0 * bh
    y_in, y_out = by + 1.8 * bs, by - 0.8 * bs + 0.6
    rows = g.band(np.minimum(y_in, y_out) - bt, np.maximum(y_in, y_out) + bt, ex + 4.5 + bt)
    d = _segment_dist(g.ua[:, rows], g.v[:, rows], ex - 5.5, y_in, ex + 4.5, y_out) - bt
    _lerp(img[:, rows], np.minimum(g.col("hair"), g.col("skin") * 0.45), _cover(d * g.sc) * 0.9)
    return rows, d * g.sc < 1.0


def _eyes(g: _Pose, img: np.ndarray):
    """Sclera ellipse, dark iris, dark upper lid line. Openness scales the height."""
    ex, ey, skin = g.col("eye_dx"), g.col("eye_y"), g.col("skin")
    eh = 1.9 * g.col("eye_open") * g.col("eye_size")
    ew = 3.5 * g.col("eye_size")
    rows = g.band(ey - eh, ey + eh, ex + ew)
    eu, ev = g.ua[:, rows] - ex, g.v[:, rows] - ey
    d = _ellipse_sd(eu, ev, ew, eh) * g.sc
    eye_cov = _cover(d)
    view = img[:, rows]
    _lerp(view, np.minimum(skin + 0.2, 0.92), eye_cov)
    _lerp(view, 0.08, _cover((np.sqrt(eu ** 2 + ev ** 2) - 1.7 * g.col("eye_size")) * g.sc) * eye_cov)
    _lerp(view, skin * 0.3, np.clip(1.0 - np.abs(d) / 0.9, 0, 1) * (ev < 0.3))
    return rows, d < 1.0


def _nose(g: _Pose, img: np.ndarray):
    """Nostrils, and wrinkle strokes across the bridge (angry/disgust)."""
    skin, sc = g.col("skin"), g.sc
    rows = g.band(-3.5, 4.5, 3.6)
    nu, nv = g.ua[:, rows], g.v[:, rows]
    view = img[:, rows]
    nostril = _cover((np.sqrt(((nu - 2.2) / 1.3) ** 2 + ((nv - 3.5) / 0.8) ** 2) - 1.0) * sc)
    _lerp(view, skin * 0.45, nostril * 0.8)
    slope = nv - 0.15 * nu
    d = np.minimum(np.minimum(np.abs(slope + 2.8), np.abs(slope + 0.8)), np.abs(slope - 1.2)) * sc
    _lerp(view, skin * 0.4, np.clip(1.0 - d / 0.7, 0, 1) * _cover((nu - 3.0) * sc) * g.col("nose_wrinkle"))
    return rows, (d < 1.2) & (nu * sc < 3.5)


def _mouth(g: _Pose, img: np.ndarray):
    """Centreline with curved corners, opening below it; lips around, dark interior, teeth for a broad smile."""
    skin, jaw, sc = g.col("skin"), g.col("jaw_drop"), g.sc
    curve, opening = g.col("mouth_curve"), g.col("mouth_open")
    mw = g.col("mouth_w") * g.col("mouth_width")
    my = g.col("mouth_y") + 1.8 * jaw
    hmax = 3.6 * opening + 1.2 * jaw
    rows = g.band(my - 2.4 * np.abs(curve) * 0.65 - 0.35 * hmax - 1.1, my + 2.4 * np.abs(curve) * 0.65 + hmax + 1.1,
                  mw + 1.1)
    mu, mv = g.ua[:, rows], g.v[:, rows]
    xn2 = np.minimum((mu / mw) ** 2, 1.0)
    yc = my + curve * 2.4 * (0.35 - xn2)
    h = hmax * np.sqrt(1.0 - xn2)
    top = yc - 0.35 * h
    inside = np.minimum(np.minimum(mv - top, yc + h - mv), mw - mu) * sc    # >0 inside the opening
    view = img[:, rows]
    _lerp(view, skin * 0.62, _cover(-inside - 1.1))
    teeth = np.clip(curve - 0.3, 0, 1) * _cover((mv - top - 1.3) * sc)
    _lerp(view, 0.1 + 0.75 * teeth, _cover(-inside))
    return rows, inside > -2.2


_FEATURE_DRAWERS = {"brows": _brows, "eyes": _eyes, "nose": _nose, "mouth": _mouth}   # in drawing order


def _occluders(g: _Pose, img: np.ndarray) -> np.ndarray:
    """A hand-like blob or a bar over everything, drawn only for the faces that have one: their coverage."""
    p = g.p
    occ = np.zeros((g.n, g.size, g.size), np.float32)
    hit = np.flatnonzero(p["occ_kind"] > 0)
    if hit.size:
        q = {k: p[k][hit].astype(np.float32)[:, None, None] for k in
             ("occ_kind", "occ_x", "occ_y", "occ_r", "occ_r2", "occ_angle", "occ_value")}
        ox, oy, osc = g.u[hit] - q["occ_x"], g.v[hit] - q["occ_y"], g.sc[hit]
        blob = _cover(_ellipse_sd(ox, oy, q["occ_r"], q["occ_r"] * 1.3) * osc) * (q["occ_kind"] == 1)
        ca, sa = np.cos(q["occ_angle"]), np.sin(q["occ_angle"])
        bar = _cover((np.abs(-sa * ox + ca * oy) - q["occ_r2"]) * osc) * (q["occ_kind"] == 2)
        occ[hit] = np.maximum(blob, bar)
        sub = img[hit]
        _lerp(sub, q["occ_value"], occ[hit])
        img[hit] = sub
    return occ


def _imaging(g: _Pose, img: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """Lighting gradient, blur, noise, quantization: the uint8 images."""
    gain = g.col("light") / 24.0
    img *= (1.0 + (gain * np.cos(g.col("light_dir"))) * (g.gx - 24)) + (gain * np.sin(g.col("light_dir"))) * (g.gy - 24)
    img = _blur(img, g.p["blur"].astype(np.float32))
    if noise is not None:
        img += noise * g.col("noise")
    img *= 255.0
    img += 0.5
    return np.clip(img, 0.0, 255.0, out=img).astype(np.uint8)


def _masks(regions: dict, evidence: np.ndarray, occ: np.ndarray) -> np.ndarray:
    """The support of each wanted feature (dilated ~1 px: Grad-CAM is coarse), minus occluded pixels."""
    masks = np.zeros(occ.shape, bool)
    for j, f in enumerate(FEATURES):
        rows, support = regions[f]
        masks[:, rows] |= support & evidence[:, j, None, None]
    masks &= occ < 0.5
    return masks


def draw_faces(p: dict[str, np.ndarray], size: int = 48, noise: np.ndarray | None = None,
               evidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw faces for parameter arrays `p` -> (uint8 images B×size×size, bool masks or None).

    `noise` is a standard-normal field B×size×size (scaled by p['noise']); None draws no noise.
    `evidence` (B×len(FEATURES) bool): which drawn features carry each face's class; the masks of
    those features are computed when it is given.
    """
    g = _Pose(p, size)
    img = _head(g)
    regions = {name: draw(g, img) for name, draw in _FEATURE_DRAWERS.items()}
    occ = _occluders(g, img)
    images = _imaging(g, img, noise)
    return images, None if evidence is None else _masks(regions, evidence, occ)
