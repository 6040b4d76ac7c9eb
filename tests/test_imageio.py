"""read_image: unusual but valid images load as BGR uint8 H×W×3; broken inputs raise ImageReadError."""
import numpy as np
import pytest
from PIL import Image

from emolib.core.images import ImageReadError, iter_image_files, read_image


def _gradient(w=64, h=48):
    """RGB uint8 h×w×3 with distinct channels, so channel order and orientation can be checked."""
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return np.dstack([x, y, np.full((h, w), 40, np.uint8)])


def _check_bgr(img, shape):
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape == (*shape, 3)
    assert img.flags["C_CONTIGUOUS"]


def test_rgb_png_becomes_bgr(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    _check_bgr(img, (48, 64))
    np.testing.assert_array_equal(img, rgb[:, :, ::-1])


def test_gray_becomes_three_channels(tmp_path):
    Image.fromarray(_gradient()[:, :, 0]).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    _check_bgr(img, (48, 64))
    assert (img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 1] == img[:, :, 2]).all()


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)       # opaque red left half, fully transparent right half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    img = read_image(tmp_path / "t.png")
    _check_bgr(img, (10, 20))
    assert (img[:, :10] == (0, 0, 255)).all() and (img[:, 10:] == 255).all()


def test_palette_with_transparency(tmp_path):
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 255, 0] + [0, 0, 255] * 255)
    p.info["transparency"] = 1
    p.putpixel((0, 0), 1)
    p.save(tmp_path / "p.png", transparency=1)
    img = read_image(tmp_path / "p.png")
    _check_bgr(img, (8, 8))
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[4, 4]) == (0, 255, 0)


def test_16bit_png_scaled_to_8bit(tmp_path):
    a = np.linspace(0, 65535, 32 * 16).astype(np.uint16).reshape(16, 32)
    Image.fromarray(a).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")       # really 16-bit on disk
    img = read_image(tmp_path / "d.png")
    _check_bgr(img, (16, 32))
    assert img.min() == 0 and img.max() == 255
    np.testing.assert_allclose(img[:, :, 0].astype(float), a / 257.0, atol=1)


def test_16bit_color_png(tmp_path):
    import cv2
    bgr16 = np.linspace(0, 65535, 16 * 32 * 3).astype(np.uint16).reshape(16, 32, 3)
    cv2.imwrite(str(tmp_path / "c16.png"), bgr16)
    img = read_image(tmp_path / "c16.png")
    _check_bgr(img, (16, 32))
    assert np.abs(img.astype(int) - (bgr16 >> 8)).max() <= 1


def test_cmyk_jpeg(tmp_path):
    Image.fromarray(_gradient()).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    img = read_image(tmp_path / "c.jpg")
    _check_bgr(img, (48, 64))
    assert np.abs(img.astype(int) - _gradient()[:, :, ::-1]).mean() < 10


def test_exif_orientation_6_rotates(tmp_path):
    rgb = _gradient(64, 48)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6                       # "rotate 90° clockwise to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "r.jpg")
    _check_bgr(img, (64, 48))              # width and height swapped
    expect = np.rot90(rgb, k=-1)[:, :, ::-1]
    assert np.abs(img.astype(int) - expect).mean() < 6


@pytest.mark.parametrize("mode,orientation", [("RGB", 1), ("RGB", 6), ("L", 8)])
def test_plain_jpegs_decode_through_opencv_as_pillow_decodes_them(tmp_path, mode, orientation):
    """OpenCV takes plain JPEGs (faster); the pixels and the orientation are Pillow's, exactly."""
    from PIL import ImageOps

    from emolib.core.images import _decode_plain_jpeg
    im = Image.fromarray(_gradient(64, 48)).convert(mode)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "p.jpg", exif=exif, quality=90)
    fast = _decode_plain_jpeg(tmp_path / "p.jpg")
    assert fast is not None
    pillow = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "p.jpg")).convert("RGB"))[:, :, ::-1]
    np.testing.assert_array_equal(fast, pillow)
    np.testing.assert_array_equal(read_image(tmp_path / "p.jpg"), pillow)


def test_a_truncated_jpeg_goes_to_pillow_which_says_so(tmp_path):
    """OpenCV would pad a cut stream with gray and only warn on stderr; the warning sends the file to Pillow."""
    from emolib.core.images import _decode_plain_jpeg
    Image.fromarray(_gradient(640, 480)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    assert _decode_plain_jpeg(tmp_path / "cut.jpg") is None
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


def test_huge_jpeg_is_bounded(tmp_path):
    Image.new("RGB", (6000, 3000), (10, 200, 30)).save(tmp_path / "big.jpg")
    img = read_image(tmp_path / "big.jpg", max_side=1000)
    _check_bgr(img, (500, 1000))
    assert read_image(tmp_path / "big.jpg").shape == (2048, 4096, 3)     # default MAX_SIDE


def test_decompression_bomb_is_an_error(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)   # 10,000 px: over the limit, under twice it
    with pytest.raises(ImageReadError, match="decompression bomb") as e:
        read_image(tmp_path / "bomb.png")
    assert "bomb.png" in str(e.value)


def test_one_pixel(tmp_path):
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    img = read_image(tmp_path / "one.png")
    _check_bgr(img, (1, 1))
    assert tuple(img[0, 0]) == (3, 2, 1)


def _bad_inputs(tmp):
    Image.fromarray(_gradient(256, 256)).save(tmp / "full.jpg", quality=95)
    data = (tmp / "full.jpg").read_bytes()
    (tmp / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.jpg").write_text("this is not a picture\n")
    (tmp / "folder.jpg").mkdir()
    return {"missing.jpg": "no such file", "truncated.jpg": "truncated", "empty.png": "empty",
            "text.jpg": "not a recognised image", "folder.jpg": "directory"}


@pytest.mark.parametrize("name", ["missing.jpg", "truncated.jpg", "empty.png", "text.jpg", "folder.jpg"])
def test_bad_inputs_raise_clear_errors(tmp_path, name):
    reason = _bad_inputs(tmp_path)[name]
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / name)
    assert str(tmp_path / name) in str(e.value) and reason in str(e.value)
    assert e.value.path == tmp_path / name


def test_iter_image_files(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "empty_dir").mkdir()
    for n in ["b.png", "a.JPG", "notes.txt"]:
        (tmp_path / "imgs" / n).write_bytes(b"x")
    (tmp_path / "single.dat").write_bytes(b"x")
    items = iter_image_files([tmp_path / "imgs", tmp_path / "empty_dir", tmp_path / "single.dat",
                              tmp_path / "gone.png"])
    assert items[:2] == [tmp_path / "imgs" / "a.JPG", tmp_path / "imgs" / "b.png"]
    assert isinstance(items[2], ImageReadError) and "no images" in str(items[2])
    assert items[3] == tmp_path / "single.dat"
    assert isinstance(items[4], ImageReadError) and items[4].path == tmp_path / "gone.png"
    assert len(items) == 5
