"""Annotation drawing: boxes, "label 87%" tags, emoji sprites, track ids and FPS.

Drawing is separate from computing: `annotate` takes the results `EmotionRecognizer.recognize`
returned (anything with box, label, confidence, from_fallback and track_id attributes) and
returns a new image; it never runs a model.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from emolib.core.labels import COLORS, canonical
from emolib.inference.emoji import emoji_sprite, paste_sprite

_FALLBACK_COLOR = (160, 160, 160)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def emotion_color(label: str) -> tuple[int, int, int]:
    try:
        return COLORS[canonical(label)]      # BGR, kept with the names in emolib.core.labels
    except ValueError:               # a checkpoint with its own class names
        return _FALLBACK_COLOR


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.114 * bg[0] + 0.587 * bg[1] + 0.299 * bg[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def draw_tag(image: np.ndarray, text: str, x: int, y: int, color, scale: float, thickness: int) -> None:
    """Text on a filled background whose bottom-left corner is at (x, y), kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, int(3 * scale))
    h, w = image.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 2 * pad, 0)))
    y = int(min(max(y, th + base + 2 * pad), h))
    cv2.rectangle(image, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), color, -1)
    cv2.putText(image, text, (x + pad, y - base - pad), _FONT, scale, _text_color(color), thickness, cv2.LINE_AA)


def face_caption(result) -> str:
    text = f"{result.label} {result.confidence:.0%}"
    if getattr(result, "track_id", None) is not None:
        text = f"#{result.track_id} " + text
    if getattr(result, "from_fallback", False):
        text += " (no face found)"
    return text


def annotate(image: np.ndarray, results: Sequence, fps: float | None = None, *,
             show_emoji: bool = True) -> np.ndarray:
    """A copy of BGR `image` with each face's box, caption and emoji, and the FPS when given."""
    out = image.copy()
    h, w = out.shape[:2]
    # Scale strokes and text with the frame so 320x240 and 1920x1080 both read well.
    unit = max(h, w) / 640.0
    thickness = max(1, int(round(2 * unit)))
    scale = max(0.4, 0.55 * unit)
    text_thickness = max(1, thickness - 1)
    for r in results:
        x0, y0, x1, y1 = (int(round(v)) for v in r.box)
        color = emotion_color(r.label)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), color, thickness, cv2.LINE_AA)
        caption_y = y0 if y0 > 20 * unit else y1 + int(22 * unit)
        draw_tag(out, face_caption(r), x0, caption_y, color, scale, text_thickness)
        if show_emoji:
            size = int(np.clip(0.35 * (y1 - y0), 16 * unit, 96 * unit))
            sprite = _sprite_or_none(r.label, size)
            if sprite is not None:
                # Beside the box's top-right corner; on the left when it would leave the frame.
                sx = x1 + thickness + 2 if x1 + size + thickness + 2 <= w else x0 - size - thickness - 2
                paste_sprite(out, sprite, sx, max(y0, 0))
    if fps is not None:
        draw_tag(out, f"{fps:.1f} FPS", int(6 * unit), h - int(6 * unit), (30, 30, 30), scale, text_thickness)
    return out


def _sprite_or_none(label: str, size: int):
    try:
        return emoji_sprite(label, max(size, 8))
    except ValueError:               # a class name with no emoji
        return None
