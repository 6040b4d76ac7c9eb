"""The `emolib` command line: real photos, bad inputs, unusual image files, output formats, exit codes."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data  # a mandatory dependency: real photos offline

from emolib.cli import main


def emolib_command() -> list[str]:
    """The installed console script when present (what users run), else `python -m emolib`."""
    script = Path(sys.executable).with_name("emolib")
    return [str(script)] if script.exists() else [sys.executable, "-m", "emolib"]


def run(*args, timeout=300):
    return subprocess.run([*emolib_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def astronaut_rgb():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut_rgb):
    """Good photos, a photo without a face, and every kind of bad input."""
    d = tmp_path_factory.mktemp("inputs")
    Image.fromarray(astronaut_rgb).save(d / "astronaut.jpg", quality=90)
    Image.fromarray(astronaut_rgb).save(d / "astronaut.png")
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(d / "wall.png")
    (d / "zero.jpg").write_bytes(b"")
    data = (d / "astronaut.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "notes.jpg").write_text("this is text, not a JPEG\n")
    (d / "empty_dir").mkdir()
    (d / "empty_dir" / "readme.txt").write_text("no images here")
    return d


@pytest.fixture(scope="module")
def unusual(tmp_path_factory, astronaut_rgb):
    """Valid images in modes a camera pipeline rarely produces; all show the (happy) astronaut upright."""
    d = tmp_path_factory.mktemp("unusual")
    img = Image.fromarray(astronaut_rgb)
    img.convert("L").save(d / "gray.png")
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(np.arange(512)[None, :] < 400, 255, 0).astype(np.uint8).repeat(512, 0)))
    rgba.save(d / "rgba.png")
    gray16 = np.asarray(img.convert("L")).astype(np.uint16) * 257
    cv2.imwrite(str(d / "gray16.png"), gray16)
    img.convert("CMYK").save(d / "cmyk.jpg", quality=90)
    # Stored lying on its side; EXIF orientation 6 says "rotate 90° clockwise to view".
    exif = Image.Exif()
    exif[0x0112] = 6
    img.rotate(90, expand=True).save(d / "exif_rotated.jpg", exif=exif, quality=90)
    return d


def test_batch_with_bad_inputs_reports_each_and_processes_the_rest(inputs, tmp_path):
    out_dir = tmp_path / "annotated"
    names = ["astronaut.jpg", "zero.jpg", "missing.jpg", "astronaut.png", "truncated.jpg", "notes.jpg",
             "empty_dir", "wall.png"]
    proc = run("predict", *[inputs / n for n in names], "--json", "--annotate", out_dir)
    assert proc.returncode == 1, proc.stderr
    records = json.loads(proc.stdout)
    by_name = {Path(r["file"]).name: r for r in records}
    assert list(by_name) == names                                    # input order, every input reported
    for good in ("astronaut.jpg", "astronaut.png"):
        r = by_name[good]
        assert r["status"] == "ok" and r["error"] is None and r["latency_ms"] > 0
        (face,) = r["faces"]
        assert face["label"] == "happy" and face["confidence"] > 0.8 and face["emoji"] == "\N{GRINNING FACE WITH SMILING EYES}"
        assert face["face"] == 0 and len(face["box"]) == 4 and face["top3"][0][0] == "happy"
        assert face["from_fallback"] is False
        annotated = cv2.imread(r["annotated"])
        assert annotated is not None and annotated.shape == (512, 512, 3)
    assert by_name["wall.png"]["status"] == "no face found" and by_name["wall.png"]["error"] is None
    assert Path(by_name["wall.png"]["annotated"]).exists()
    expected = {"zero.jpg": "empty", "missing.jpg": "no such file", "truncated.jpg": "truncated",
                "notes.jpg": "not a recognised image", "empty_dir": "holds no images"}
    for name, reason in expected.items():
        assert by_name[name]["status"] == "error" and reason in by_name[name]["error"]
        assert by_name[name]["faces"] == []
        assert any(name in line and reason in line for line in proc.stderr.splitlines()), (name, proc.stderr)
    assert "5 of 8 inputs failed" in proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["astronaut.jpg", "astronaut.png", "wall.png"]


def test_unusual_valid_images_in_a_directory_as_csv(unusual):
    proc = run("predict", unusual, "--csv", "--tta")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["file"] for r in rows] == sorted(str(p) for p in unusual.iterdir())    # sorted directory listing
    for r in rows:
        assert (r["status"], r["face"], r["label"]) == ("ok", "0", "happy"), r
        x0, y0, x1, y1 = (float(r[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200, r      # upright: face near the top
        assert float(r["confidence"]) > 0.5 and r["top3"].startswith("happy:") and r["from_fallback"] == "0"


def test_table_output_and_fallback(inputs, capsys):
    assert main(["predict", str(inputs / "astronaut.png"), str(inputs / "wall.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["FILE", "FACE", "LABEL", "CONF"]
    assert "happy" in out[1] and "no face found" in out[2]
    assert main(["predict", str(inputs / "wall.png"), "--fallback", "whole", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["status"] == "ok" and record["faces"][0]["from_fallback"] is True
    assert record["faces"][0]["box"] == [0, 0, 300, 200]


def test_models_lists_the_pretrained_model_as_offline(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if line.startswith("fer2013-mini-xception ")]
    assert "offline (cached)" in row and "64x64 gray" in row
    assert any(line.startswith("cnn_fer ") and "none (train it)" in line for line in lines)
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)["registered"]}
    assert models["fer2013-mini-xception"]["availability"] == "offline (cached)"


COMMANDS = [[], ["predict"], ["video"], ["webcam"], ["models"], ["export"], ["assets"], ["train"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: emolib" in text and ("examples:" in text)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_imports_neither_opencv_nor_torch(command):
    """Help is instant: a fresh interpreter prints it without loading cv2 or torch."""
    code = ("import sys\nfrom emolib.cli import main\ntry:\n    main(sys.argv[1:] + ['--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted({'cv2', 'torch'} & set(sys.modules)), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: emolib" in out.stdout, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


@pytest.mark.parametrize("argv, message", [
    (["predict"], "required: PATH"),
    (["predict", "x.jpg", "--json", "--csv"], "not allowed with"),
    (["predict", "x.jpg", "--detector", "yolo"], "invalid choice"),
    (["predict", "x.jpg", "--model", "nope"], "unknown model 'nope'"),
    (["predict", "x.jpg", "--model", "cnn_fer"], "no emotion-trained weights"),
    (["export", "fer2013-mini-xception", "--onnx", "x.txt"], "must end in .onnx"),
    (["video", "x.mp4", "--detect-every", "0"], "at least 1"),
    (["video", "x.mp4", "--out", "x.avi"], ".mp4"),
    (["webcam", "--smooth", "1.5"], "--smooth"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_predict_on_an_unwritable_annotate_target_is_a_usage_error(inputs, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(inputs / "astronaut.png"), "--annotate", str(target)])
    assert exc.value.code == 2 and "not a directory" in capsys.readouterr().err


def test_detector_defaults_by_use():
    """Stills get the small-face detector, video and webcam the live one; the CLI's light copies of the
    detector names agree with emolib.faces."""
    from emolib import cli, faces
    parser = cli.build_parser()
    assert parser.parse_args(["predict", "x.jpg"]).detector == faces.STILL_DETECTOR == "blazeface_full"
    assert parser.parse_args(["video", "x.mp4"]).detector == faces.LIVE_DETECTOR == "blazeface"
    assert parser.parse_args(["webcam"]).detector == faces.LIVE_DETECTOR
    assert list(cli.DETECTORS) == faces.list_detectors()
    assert (cli.STILL_DETECTOR, cli.LIVE_DETECTOR) == (faces.STILL_DETECTOR, faces.LIVE_DETECTOR)
