"""Issue 16 §3: on every bad input of the test suite, the terminal shows emolib's words only.

The command line runs in a subprocess with the user's default warning filters (what a person at a
shell sees), on the inputs of tests/bad_inputs.py. Every stderr line must be one of emolib's own
one-line messages: no library warning (Pillow's "Truncated File Read"), no FFmpeg chatter, no traceback.
"""
import os
import subprocess
import sys

from bad_inputs import write_bad_checkpoints, write_bad_images, write_bad_videos


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, "-m", "emolib", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def only_emolib_lines(stderr: str, prefix: str = "emolib: ") -> list[str]:
    lines = stderr.splitlines()
    assert lines, "expected an error message on stderr"
    strangers = [line for line in lines if not line.startswith(prefix)]
    assert not strangers, f"library output reached the terminal: {strangers}"
    return lines


def test_predict_on_every_bad_image_prints_one_emolib_line_each(tmp_path):
    expect = write_bad_images(tmp_path)
    proc = run_cli("predict", *[tmp_path / name for name in expect], "--json")
    assert proc.returncode == 1
    lines = only_emolib_lines(proc.stderr)
    for name, word in expect.items():
        (line,) = [line for line in lines if line.startswith(f"emolib: {tmp_path / name}:")]
        assert word in line, line
    assert lines[-1] == f"emolib: {len(expect)} of {len(expect)} inputs failed (the others were processed)"
    assert len(lines) == len(expect) + 1


def test_truncated_tiff_error_says_truncated_without_pillows_warning(tmp_path):
    write_bad_images(tmp_path)
    proc = run_cli("predict", tmp_path / "truncated.tif")
    assert proc.returncode == 1
    assert "UserWarning" not in proc.stderr and "TiffImagePlugin" not in proc.stderr
    assert "corrupt or truncated image (Truncated File Read)" in proc.stderr


def test_video_and_webcam_sources_fail_with_one_emolib_line(tmp_path):
    for name, word in write_bad_videos(tmp_path).items():
        proc = run_cli("video", tmp_path / name, "--max-frames", "2")
        assert proc.returncode == 1, proc.stderr
        (line,) = only_emolib_lines(proc.stderr)
        assert name in line and word in line, line
    proc = run_cli("webcam", "--camera", "97", "--max-frames", "1")
    assert proc.returncode == 1
    (line,) = only_emolib_lines(proc.stderr)
    assert "camera 97" in line


def test_bad_checkpoints_as_model_are_one_usage_error_line(tmp_path):
    (tmp_path / "face.png").write_bytes(b"")     # never read: the model fails first
    for name, word in write_bad_checkpoints(tmp_path).items():
        proc = run_cli("predict", tmp_path / "face.png", "--model", tmp_path / name)
        assert proc.returncode == 2, proc.stderr
        (line,) = only_emolib_lines(proc.stderr, prefix="emolib predict: error: ")
        assert word in line and "weights_only" not in line, line
