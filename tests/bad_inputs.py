"""Every kind of bad input the tests hand emolib, written into one folder, with the words its error must use.

test_cli, test_imageio, test_video, test_recognizer and test_checkpoint each build a few of these next to
their own checks; this module gathers all of them (plus one truncated file per image format Pillow reads)
so that test_clean_stderr can run the command line on every one and check that only emolib speaks.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _photo() -> np.ndarray:
    from skimage import data
    return data.astronaut()


def write_bad_images(d: Path) -> dict[str, str]:
    """Bad image inputs in `d`: file name -> a word their error message must contain."""
    img = Image.fromarray(_photo())
    img.save(d / "astronaut.jpg", quality=90)
    jpeg = (d / "astronaut.jpg").read_bytes()
    (d / "astronaut.jpg").unlink()
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])           # test_cli
    (d / "truncated_half.jpg").write_bytes(jpeg[: len(jpeg) // 2])      # test_imageio
    (d / "zero.jpg").write_bytes(b"")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.jpg").write_text("this is text, not a JPEG\n")
    (d / "folder.jpg").mkdir()
    (d / "empty_dir").mkdir()
    (d / "empty_dir" / "readme.txt").write_text("no images here")
    expect = {"truncated.jpg": "truncated", "truncated_half.jpg": "truncated", "zero.jpg": "empty",
              "empty.png": "empty", "notes.jpg": "not a recognised image", "folder.jpg": "holds no images",
              "empty_dir": "holds no images", "missing.jpg": "no such file"}
    # One truncated file per format. The LZW TIFF keeps its image directory at the end: cut there,
    # Pillow warns "Truncated File Read" (issue 16) and then cannot identify the file.
    for suffix, kw, keep in [(".tif", {"compression": "tiff_lzw"}, -20), (".png", {}, 1 / 3),
                             (".gif", {}, 1 / 3), (".webp", {}, 1 / 3), (".bmp", {}, 1 / 3)]:
        buf = io.BytesIO()
        img.save(buf, format=Image.registered_extensions()[suffix], **kw)
        data = buf.getvalue()
        (d / f"truncated{suffix}").write_bytes(data[:keep] if keep < 0 else data[: int(len(data) * keep)])
        expect[f"truncated{suffix}"] = "truncated"
    return expect


def write_bad_videos(d: Path) -> dict[str, str]:
    """Bad video inputs (relative to `d`) -> a word their error must contain."""
    (d / "notes.mp4").write_text("not a video")
    (d / "videos_dir").mkdir()
    return {"notes.mp4": "cannot be opened", "videos_dir": "is a directory", "missing.mp4": "no such video file"}


class _Pickled:        # a class instance: what a weights_only load must refuse
    pass


def write_bad_checkpoints(d: Path) -> dict[str, str]:
    """Bad --model files (checkpoints and ONNX) in `d` -> a word their error must contain."""
    (d / "garbage.pt").write_bytes(os.urandom(4096))
    torch.save(torch.nn.Linear(2, 2).state_dict(), d / "bare.pt")
    torch.save({"format": "emolib-checkpoint", "payload": _Pickled()}, d / "pickled.pt")
    (d / "garbage.onnx").write_bytes(b"garbage" * 50)
    torch.onnx.export(torch.nn.Linear(4, 2).eval(), (torch.zeros(1, 4),), str(d / "plain.onnx"), dynamo=True,
                      external_data=False, verbose=False)          # ONNX, but not an emolib export
    return {"garbage.pt": "not a readable emolib checkpoint", "bare.pt": "bare state_dict",
            "pickled.pt": "not a readable emolib checkpoint", "missing.pt": "does not exist",
            "garbage.onnx": "not a readable ONNX model", "plain.onnx": "not an emolib export",
            "missing.onnx": "does not exist"}
