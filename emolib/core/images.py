"""`read_image(path)`: any photo a user hands us, as BGR uint8 H×W×3, or an ImageReadError that says why.

Pillow does the decoding (EXIF orientation, CMYK, palettes, 16-bit, alpha), except for plain JPEGs, which
OpenCV decodes faster; OpenCV conventions (BGR, uint8) come out. Large images are bounded: JPEGs decode
reduced with draft(), anything with a side over `max_side` is shrunk, and images over Pillow's
decompression-bomb limit are refused.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emolib.core.errors import EmolibError
from emolib.core.quiet import captured_native_stderr, collected_warnings, summary

# The one list of image file suffixes: what `read_image`, the CLI's folders and `data.load("folder")` take.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Of those, the colour formats cv2.imwrite writes back (an annotated copy keeps its input's format).
WRITABLE_COLOR_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_SIDE = 4096


class ImageReadError(EmolibError):
    """A file that could not be read as an image; .path and .reason say which and why."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def read_image(path, *, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """The image at `path` as BGR uint8 H×W×3, upright per its EXIF orientation.

    Gray, palette, CMYK and 16-bit images are converted; transparent ones are composited on white.
    When the longer side exceeds `max_side` (None: never) the image is shrunk to it, aspect kept.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    # Pillow's UserWarnings (Truncated File Read, Corrupt EXIF data) are collected, not printed: on a
    # failure they say what is wrong and join our error; on a success they carry nothing for the user.
    with collected_warnings() as pillow_says:
        try:
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make the warning an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            bgr = _decode(path, max_side)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReadError(path, f"refused as a possible decompression bomb ({e}); "
                                       "raise PIL.Image.MAX_IMAGE_PIXELS if you trust this file") from None
        except UnidentifiedImageError:
            if pillow_says.mention("truncated", "corrupt"):
                # e.g. a TIFF cut before its image directory: the format is known, the file is broken.
                raise ImageReadError(path, f"corrupt or truncated image ({summary(pillow_says.messages)})") from None
            raise ImageReadError(path, "not a recognised image format (is it really an image?)") from None
        except (OSError, ValueError, SyntaxError) as e:   # truncated or corrupt data; SyntaxError: broken headers
            raise ImageReadError(path, f"corrupt or truncated image ({e})") from None
    return bgr


def _decode(path: Path, max_side: int | None) -> np.ndarray:
    """`path` decoded to BGR uint8, upright, bounded by `max_side`."""
    with Image.open(path) as img:        # reads the header only
        if img.format == "JPEG" and img.mode in ("RGB", "L") and not (max_side and max(img.size) > max_side):
            if (bgr := _decode_plain_jpeg(path)) is not None:
                return bgr
        if max_side and img.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale straight away when that still covers max_side.
            w, h = img.size
            k = max_side / max(w, h)
            if k < 1:
                img.draft(img.mode, (max(1, int(w * k)), max(1, int(h * k))))
        img.load()
        ImageOps.exif_transpose(img, in_place=True)      # in place: no copy of an already upright photo
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return cv2.cvtColor(_to_rgb(img), cv2.COLOR_RGB2BGR)   # a new contiguous array, faster than [..., ::-1]


def _decode_plain_jpeg(path: Path) -> np.ndarray | None:
    """An RGB or gray JPEG that needs no shrinking, decoded by OpenCV, or None when libjpeg had anything to say.

    The same libjpeg-turbo as Pillow's, but straight into BGR, without Pillow's export of the image row block
    by row block (faster: docs/benchmarks.md times the end-to-end photo path). OpenCV applies the EXIF orientation itself. It only
    warns on stderr about a truncated or corrupt stream (and pads the image); any such message sends the file to
    Pillow, which then says what is wrong, or decodes what it can, as for every other file.
    """
    with captured_native_stderr() as libjpeg_says:
        bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None or libjpeg_says else bgr


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8 H×W×3."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit (or 32-bit) gray: scale the type's range to 0..255, not a blind clip.
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) <= 65535) else a.max(initial=1)
        gray = np.clip(np.round(a * (255.0 / max(top, 1.0))), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))     # L, 1, P, CMYK, YCbCr, LAB, HSV, RGB


def iter_image_files(paths) -> list[Path | ImageReadError]:
    """Expand files and directories into image files, in order (directories: sorted, image extensions,
    not recursive). A missing path, or a directory without images, becomes an ImageReadError item so
    that a batch job can report it and carry on. A file named directly is kept whatever its extension:
    read_image will say if it is not an image."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path | ImageReadError] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            out.extend(files or [ImageReadError(p, f"directory holds no images ({', '.join(IMAGE_SUFFIXES)})")])
        elif p.exists():
            out.append(p)
        else:
            out.append(ImageReadError(p, "no such file or directory"))
    return out
