"""The one source of truth for emotion labels.

Canonical order is FER2013's (its integer labels 0..6). Every source maps its class names
through `canonical()`, so folder names such as ``fearful`` or ``surprised`` land on the same index.
Subsets (the 5-class set) are views over this order, never a second list.
"""
from __future__ import annotations

import numpy as np

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

# Spellings used by the FER releases and other datasets, mapped to the canonical name.
ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "suprise": "surprise",
    "neutral": "neutral", "calm": "neutral", "contempt_free": "neutral",
}

EMOJI: dict[str, str] = {
    "angry": "\N{POUTING FACE}",
    "disgust": "\N{NAUSEATED FACE}",
    "fear": "\N{FEARFUL FACE}",
    "happy": "\N{GRINNING FACE WITH SMILING EYES}",
    "sad": "\N{DISAPPOINTED FACE}",
    "surprise": "\N{FACE WITH OPEN MOUTH}",
    "neutral": "\N{NEUTRAL FACE}",
}

# The 5-class set common in FER work (disgust and surprise dropped), in canonical order.
FIVE_CLASS: tuple[str, ...] = tuple(e for e in EMOTIONS if e in {"angry", "fear", "happy", "sad", "neutral"})
SUBSETS: dict[str, tuple[str, ...]] = {"all": EMOTIONS, "five": FIVE_CLASS}


def canonical(name: str) -> str:
    """Map any known spelling to its canonical emotion name; unknown names raise with the choices."""
    key = name.strip().lower()
    if key not in ALIASES:
        known = ", ".join(sorted(ALIASES))
        raise ValueError(f"unknown emotion class {name!r}; known names and aliases: {known}")
    return ALIASES[key]


def index(name: str) -> int:
    """Canonical integer label of a class name (any alias)."""
    return EMOTIONS.index(canonical(name))


def resolve_classes(classes: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A subset name (``"all"``, ``"five"``) or a list of names -> canonical names in canonical order."""
    if isinstance(classes, str):
        if classes not in SUBSETS:
            raise ValueError(f"unknown class subset {classes!r}; choose from {sorted(SUBSETS)}")
        return SUBSETS[classes]
    wanted = {canonical(c) for c in classes}
    return tuple(e for e in EMOTIONS if e in wanted)


def remap_table(classes: tuple[str, ...]) -> np.ndarray:
    """Lookup table canonical index -> index within `classes` (-1 where the class is dropped)."""
    table = np.full(NUM_CLASSES, -1, dtype=np.int64)
    for i, name in enumerate(classes):
        table[EMOTIONS.index(canonical(name))] = i
    return table
