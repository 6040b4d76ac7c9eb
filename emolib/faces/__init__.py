"""Face detection (haar, ssd, blazeface) and alignment; nothing loads until the first call."""
from .detection import DETECTORS, detect, get_detector, iou, list_detectors
from .types import Face

__all__ = ["DETECTORS", "Face", "detect", "get_detector", "iou", "list_detectors"]
