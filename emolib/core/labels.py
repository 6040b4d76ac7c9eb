"""The one source of truth for emotion labels.

Canonical order is FER2013's (its integer labels 0..6). Every source maps its class names
through `canonical()`, so folder names such as ``fearful`` or ``surprised`` land on the same index.
FER+ adds an eighth class, contempt, after the seven (`ALL_EMOTIONS`), so FER2013's indices never move;
`EMOTIONS` stays the seven FER2013 classes. Subsets (the 5-class set, FER+'s eight) are views over this
order, never a second list.
"""
from __future__ import annotations

import numpy as np

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
# FER+ (Barsoum et al. 2016) labels contempt too: index 7, after FER2013's seven.
ALL_EMOTIONS: tuple[str, ...] = EMOTIONS + ("contempt",)

# Spellings used by the FER releases and other datasets, mapped to the canonical name.
ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "suprise": "surprise",
    "neutral": "neutral", "calm": "neutral", "contempt_free": "neutral",
    "contempt": "contempt", "contemptuous": "contempt", "disdain": "contempt",
}

EMOJI: dict[str, str] = {
    "angry": "\N{POUTING FACE}",
    "disgust": "\N{NAUSEATED FACE}",
    "fear": "\N{FEARFUL FACE}",
    "happy": "\N{GRINNING FACE WITH SMILING EYES}",
    "sad": "\N{DISAPPOINTED FACE}",
    "surprise": "\N{FACE WITH OPEN MOUTH}",
    "neutral": "\N{NEUTRAL FACE}",
    "contempt": "\N{UNAMUSED FACE}",
}

# BGR, one per emotion, chosen to be told apart on a photo (and to match the emoji tints loosely).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (60, 170, 60),
    "fear": (200, 90, 150),
    "happy": (0, 200, 255),
    "sad": (220, 130, 40),
    "surprise": (230, 200, 0),
    "neutral": (200, 200, 200),
    "contempt": (110, 70, 120),
}

# The 5-class set common in FER work (disgust and surprise dropped), in canonical order.
FIVE_CLASS: tuple[str, ...] = tuple(e for e in EMOTIONS if e in {"angry", "fear", "happy", "sad", "neutral"})
# "all" is FER2013's seven; "eight" is FER+'s standard set (the seven and contempt).
SUBSETS: dict[str, tuple[str, ...]] = {"all": EMOTIONS, "five": FIVE_CLASS, "eight": ALL_EMOTIONS}


def canonical(name: str) -> str:
    """Map any known spelling to its canonical emotion name; unknown names raise with the choices."""
    key = name.strip().lower()
    if key not in ALIASES:
        known = ", ".join(sorted(ALIASES))
        raise ValueError(f"unknown emotion class {name!r}; known names and aliases: {known}")
    return ALIASES[key]


def index(name: str) -> int:
    """Canonical integer label of a class name (any alias): 0..6 as FER2013, 7 for contempt."""
    return ALL_EMOTIONS.index(canonical(name))


def resolve_classes(classes: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A subset name (``"all"``, ``"five"``, ``"eight"``) or a list of names -> canonical names in canonical order."""
    if isinstance(classes, str):
        if classes not in SUBSETS:
            raise ValueError(f"unknown class subset {classes!r}; choose from {sorted(SUBSETS)}")
        return SUBSETS[classes]
    wanted = {canonical(c) for c in classes}
    return tuple(e for e in ALL_EMOTIONS if e in wanted)


def remap_table(classes: tuple[str, ...], among: tuple[str, ...] = EMOTIONS) -> np.ndarray:
    """Lookup table index within `among` (default FER2013's seven) -> index within `classes` (-1 where dropped)."""
    among = tuple(canonical(c) for c in among)
    table = np.full(len(among), -1, dtype=np.int64)
    for i, name in enumerate(classes):
        if canonical(name) in among:
            table[among.index(canonical(name))] = i
    return table
