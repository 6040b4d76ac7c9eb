"""Emoji for the emotions (FER2013's seven and FER+'s contempt), drawn with OpenCV so they show on a machine with no emoji font.

`cv2.putText` only knows Hershey glyphs and Pillow needs a colour-emoji font to draw U+1F600 and
friends, so a fresh machine would show boxes. Instead each emotion is a small vector drawing (a
face whose brows, eyes, mouth and tint carry the expression), rendered once per (emotion, size) at
4x and downsampled with area averaging for clean edges, then kept as a BGRA sprite.
The Unicode character (for text output) stays in `emolib.core.labels.EMOJI`.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from emolib.core.labels import ALL_EMOTIONS, canonical

_SUPERSAMPLE = 4

# BGR colours.
_YELLOW = (40, 200, 255)
_FACE = {"angry": (60, 90, 235), "disgust": (110, 200, 150)}     # pouting is red, nauseated is green
_OUTLINE = (20, 110, 190)
_FEATURE = (25, 45, 90)                                          # dark brown, like the emoji sets
_WHITE = (255, 255, 255)
_TEAR = (235, 170, 80)
_FOREHEAD_FEAR = (220, 150, 90)                                  # the fearful face's blue forehead


class _Canvas:
    """Drawing in unit coordinates: the face is the circle of radius 1 centred at (0, 0), y down."""

    def __init__(self, size: int):
        self.s = size * _SUPERSAMPLE
        self.r = self.s / 2 - 0.5 * _SUPERSAMPLE
        self.img = np.empty((self.s, self.s, 3), np.uint8)

    def p(self, x: float, y: float) -> tuple[int, int]:
        return int(round(self.s / 2 + x * self.r)), int(round(self.s / 2 + y * self.r))

    def n(self, v: float) -> int:
        return max(1, int(round(v * self.r)))

    def ellipse(self, c, axes, color, thickness=-1, angles=(0, 360), rot=0.0):
        cv2.ellipse(self.img, self.p(*c), (self.n(axes[0]), self.n(axes[1])), rot, angles[0], angles[1],
                    color, thickness if thickness < 0 else self.n(thickness), cv2.LINE_AA)

    def line(self, a, b, color, thickness):
        cv2.line(self.img, self.p(*a), self.p(*b), color, self.n(thickness), cv2.LINE_AA)

    def poly(self, pts, color, thickness=-1, closed=False):
        arr = np.array([self.p(*q) for q in pts], np.int32)
        if thickness < 0:
            cv2.fillPoly(self.img, [arr], color, cv2.LINE_AA)
        else:
            cv2.polylines(self.img, [arr], closed, color, self.n(thickness), cv2.LINE_AA)


# Eyes, at x = ±0.33.
def _dot_eyes(c: _Canvas, y=-0.18):
    for x in (-0.33, 0.33):
        c.ellipse((x, y), (0.085, 0.14), _FEATURE)


def _smiling_eyes(c: _Canvas):
    for x in (-0.33, 0.33):                                       # closed, curved up: ^ ^
        c.ellipse((x, -0.12), (0.15, 0.13), _FEATURE, thickness=0.07, angles=(200, 340))


def _wide_eyes(c: _Canvas, y=-0.2):
    for x in (-0.33, 0.33):
        c.ellipse((x, y), (0.15, 0.19), _WHITE)
        c.ellipse((x, y), (0.15, 0.19), _FEATURE, thickness=0.03)
        c.ellipse((x, y + 0.03), (0.07, 0.08), _FEATURE)


def _squeezed_eyes(c: _Canvas):
    for side in (-1, 1):                                           # > <  screwed shut
        x0 = side * 0.45
        x1 = side * 0.2
        c.poly([(x0, -0.3), (x1, -0.18), (x0, -0.06)], _FEATURE, thickness=0.065)


def _brows(c: _Canvas, inner_y: float, outer_y: float, thickness=0.07):
    for side in (-1, 1):
        c.line((side * 0.14, inner_y), (side * 0.55, outer_y), _FEATURE, thickness)


def _raised_brows(c: _Canvas, y=-0.5):
    for x in (-0.33, 0.33):
        c.ellipse((x, y + 0.1), (0.17, 0.1), _FEATURE, thickness=0.055, angles=(205, 335))


# Mouths.
def _grin(c: _Canvas):
    c.ellipse((0, 0.2), (0.52, 0.5), _FEATURE, angles=(0, 180))
    c.ellipse((0, 0.2), (0.44, 0.14), _WHITE, angles=(0, 180))    # teeth along the top of the open mouth
    c.ellipse((0, 0.6), (0.22, 0.08), (80, 80, 220))              # tongue


def _frown(c: _Canvas, y=0.62, width=0.34, depth=0.18):
    c.ellipse((0, y), (width, depth), _FEATURE, thickness=0.075, angles=(200, 340))


def _o_mouth(c: _Canvas, axes=(0.16, 0.21), y=0.46):
    c.ellipse((0, y), axes, _FEATURE)


def _fear_mouth(c: _Canvas):
    c.ellipse((0, 0.5), (0.3, 0.17), _FEATURE)
    c.ellipse((0, 0.42), (0.24, 0.06), _WHITE)


def _flat_mouth(c: _Canvas):
    c.line((-0.3, 0.46), (0.3, 0.46), _FEATURE, 0.075)


def _wavy_mouth(c: _Canvas):
    xs = np.linspace(-0.38, 0.38, 25)
    c.poly([(x, 0.48 + 0.07 * np.sin(x / 0.38 * 2 * np.pi)) for x in xs], _FEATURE, thickness=0.075)


def _smirk(c: _Canvas):
    # Contempt's one-sided lip raise: flat on the left, the right corner pulled up.
    c.poly([(-0.3, 0.5), (0.12, 0.48), (0.36, 0.34)], _FEATURE, thickness=0.075)


def _side_eyes(c: _Canvas):
    for x in (-0.33, 0.33):                                      # half-lidded, looking aside
        c.ellipse((x, -0.15), (0.15, 0.1), _WHITE)
        c.ellipse((x + 0.07, -0.13), (0.06, 0.07), _FEATURE)
        c.line((x - 0.17, -0.2), (x + 0.17, -0.2), _FEATURE, 0.05)


def _tear(c: _Canvas):
    c.poly([(0.33, 0.0), (0.26, 0.16), (0.4, 0.16)], _TEAR)
    c.ellipse((0.33, 0.18), (0.07, 0.075), _TEAR)


def _fear_forehead(c: _Canvas):
    # Blend blue into the top third of the face, fading downwards.
    h = c.s
    ramp = np.clip((0.45 * h - np.arange(h)) / (0.35 * h), 0, 1)[:, None, None]
    c.img[:] = (c.img * (1 - 0.8 * ramp) + np.array(_FOREHEAD_FEAR) * 0.8 * ramp).astype(np.uint8)


_EXPRESSIONS = {
    "angry": lambda c: (_brows(c, inner_y=-0.3, outer_y=-0.5), _dot_eyes(c, y=-0.1), _frown(c, y=0.6, depth=0.12)),
    "disgust": lambda c: (_brows(c, inner_y=-0.42, outer_y=-0.46), _squeezed_eyes(c), _wavy_mouth(c)),
    "fear": lambda c: (_fear_forehead(c), _brows(c, inner_y=-0.6, outer_y=-0.48, thickness=0.055),
                       _wide_eyes(c, y=-0.17), _fear_mouth(c)),
    "happy": lambda c: (_smiling_eyes(c), _grin(c)),
    "sad": lambda c: (_brows(c, inner_y=-0.5, outer_y=-0.36, thickness=0.06), _dot_eyes(c, y=-0.12),
                      _frown(c), _tear(c)),
    "surprise": lambda c: (_raised_brows(c), _wide_eyes(c), _o_mouth(c)),
    "neutral": lambda c: (_dot_eyes(c), _flat_mouth(c)),
    "contempt": lambda c: (_side_eyes(c), _smirk(c)),
}
assert set(_EXPRESSIONS) == set(ALL_EMOTIONS)


def emoji_sprite(emotion: str, size: int = 48) -> np.ndarray:
    """BGRA uint8 size×size drawing of `emotion` (any alias); cached per (emotion, size), read-only."""
    if size < 8:
        raise ValueError(f"emoji size must be at least 8 pixels, got {size}")
    return _render(canonical(emotion), int(size))


@functools.lru_cache(maxsize=256)
def _render(emotion: str, size: int) -> np.ndarray:
    c = _Canvas(size)
    # Paint the outline colour everywhere so the anti-aliased rim blends towards it, not black.
    c.img[:] = _OUTLINE
    centre, radius = c.p(0, 0), int(c.r)
    cv2.circle(c.img, centre, radius - c.n(0.05), _FACE.get(emotion, _YELLOW), -1, cv2.LINE_AA)
    _EXPRESSIONS[emotion](c)
    alpha = np.zeros((c.s, c.s), np.uint8)
    cv2.circle(alpha, centre, radius, 255, -1, cv2.LINE_AA)
    bgra = np.dstack([c.img, alpha])
    sprite = cv2.resize(bgra, (size, size), interpolation=cv2.INTER_AREA)
    sprite.setflags(write=False)
    return sprite


def paste_sprite(image: np.ndarray, sprite: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-composite a BGRA `sprite` onto BGR `image` in place with its top-left at (x, y), clipped."""
    h, w = image.shape[:2]
    sh, sw = sprite.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x0 >= x1 or y0 >= y1:
        return image
    part = sprite[y0 - y:y1 - y, x0 - x:x1 - x]
    a = part[..., 3:4].astype(np.float32) / 255.0
    roi = image[y0:y1, x0:x1]
    roi[:] = (part[..., :3] * a + roi * (1.0 - a) + 0.5).astype(np.uint8)
    return image

