"""emolib: facial emotion recognition on FER2013's seven emotions.

Submodules are imported lazily where they pull heavy dependencies, so `import emolib` is cheap.
"""
from emolib.core.labels import EMOJI, EMOTIONS
from emolib.core.provenance import __version__

__all__ = ["EMOTIONS", "EMOJI", "__version__", "EmotionRecognizer"]


def __getattr__(name):
    if name == "EmotionRecognizer":
        from emolib.inference.recognizer import EmotionRecognizer
        return EmotionRecognizer
    raise AttributeError(f"module 'emolib' has no attribute {name!r}")
