"""Recall on small faces: the labelled faces of the group photos (emolib/bench/group_photos.py), with their
surroundings, shrunk to a face width of 32, 48 or 64 px and pasted 16 to a 1280×853 scene on a photo of a building
(Debian's opencv-doc), 6 scenes a size. The group photos' own faces are 30 to 190 px; these show where the
full-range detector's fine pass starts to matter, against its whole view alone (`zoom=0`).

Figures: `recall_small_faces_<px>px_blazeface_full` and `..._whole_view`. A pasted face (its reference box: the
labelled box, scaled) counts as found as in the recall benchmark (`group_photos.score_photo`). Without
building.jpg (no opencv-doc) or without any group photo the module is skipped; a missing group photo only
narrows the pool of faces, and the run's "_inputs" name the files used.
"""
from __future__ import annotations

import cv2
import numpy as np

from emolib.bench import Skipped, group_photos
from emolib.core import paths

SIZES = (32, 48, 64)
SCENE = (1280, 853)
CONTEXT = 2.2          # the pasted patch is this many face widths on a side, centred on the face


BACKGROUND = "building.jpg"     # in paths.opencv_doc_data()


def background() -> np.ndarray:
    path = paths.opencv_doc_data() / BACKGROUND
    image = cv2.imread(str(path)) if path.is_file() else None      # cv2 warns on stderr about a missing file
    if image is None:
        raise Skipped(f"{BACKGROUND}, the scenes' background, is not in {paths.opencv_doc_data()} "
                      "(Debian's opencv-doc package installs it: sudo apt-get install opencv-doc)")
    return cv2.resize(image, SCENE, interpolation=cv2.INTER_CUBIC)


def face_patches() -> list[tuple[np.ndarray, float]]:
    """(square BGR patch, face width / patch width) for each labelled face whose surroundings lie in its photo."""
    from emolib.core.images import read_image
    out = []
    for photo, path in group_photos.available():
        image = read_image(path)
        for x0, y0, x1, y1 in photo.faces:
            side = max(x1 - x0, y1 - y0)
            half = side * CONTEXT / 2
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            a, b, c, d = int(cx - half), int(cy - half), int(cx + half), int(cy + half)
            if a >= 0 and b >= 0 and c <= image.shape[1] and d <= image.shape[0]:
                out.append((image[b:d, a:c], side / (c - a)))
    return out


def scenes(face_px: int, count: int, seed: int = 0):
    """`count` scenes of 16 faces `face_px` wide, one in each cell of a 4×4 grid at a random spot: (image, boxes)."""
    rng = np.random.default_rng(seed)
    patches, bg = face_patches(), background()
    cell_w, cell_h = SCENE[0] // 4, SCENE[1] // 4
    for _ in range(count):
        image, boxes = bg.copy(), []
        for i in range(16):
            patch, fraction = patches[rng.integers(len(patches))]
            side = int(round(face_px / fraction))
            x = (i % 4) * cell_w + int(rng.integers(0, max(1, cell_w - side)))
            y = (i // 4) * cell_h + int(rng.integers(0, max(1, cell_h - side)))
            image[y:y + side, x:x + side] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
            margin = (side - face_px) / 2
            boxes.append((x + margin, y + margin, x + margin + face_px, y + margin + face_px))
        yield image, boxes


def recall(detector, face_px: int, count: int) -> float:
    hits = total = 0
    for image, boxes in scenes(face_px, count):
        found = [f.box for f in detector(image, min_score=0.6, nms_iou=0.3) if min(f.width, f.height) >= 20]
        hits += group_photos.score_photo(found, boxes)[0]
        total += len(boxes)
    return hits / total


def run(quick: bool = False) -> dict[str, float]:
    from emolib.faces.blazeface import BlazeFaceFull
    background()                                    # raises Skipped first: no download for a module that cannot run
    skipped = list(group_photos.fetch().values())
    used = [p.name for p, _ in group_photos.available()]
    if not used:
        raise Skipped(f"no group photo to take faces from: {'; '.join(skipped)}")
    count = 2 if quick else 6
    out = {}
    for name, detector in (("blazeface_full", BlazeFaceFull()), ("blazeface_full_whole_view", BlazeFaceFull(zoom=0))):
        for px in SIZES:
            out[f"recall_small_faces_{px}px_{name}"] = recall(detector, px, count)
    out["small_faces_source_faces"] = float(len(face_patches()))     # the pool the pasted faces are drawn from
    return out | {"_inputs": [BACKGROUND, *used], "_skipped": skipped}
