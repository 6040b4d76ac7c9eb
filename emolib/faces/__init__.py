"""Face detection (blazeface, blazeface_full, ssd, haar) and alignment; nothing loads until the first call."""
from emolib.faces.boxes import iou
from emolib.faces.detection import DETECTORS, LIVE_DETECTOR, STILL_DETECTOR, detect, get_detector, list_detectors
from emolib.faces.types import Face

__all__ = ["DETECTORS", "Face", "LIVE_DETECTOR", "STILL_DETECTOR", "detect", "get_detector", "iou",
           "list_detectors"]
