"""Every failure a user can meet and fix ends a command in one line naming what and where (exit status 1; 2 for
usage), never in a traceback; `--debug` shows the traceback. Predict's and video's bad inputs: test_clean_stderr.py."""
import subprocess
import sys

import pytest
from fixtures_fer import make_faces

from emolib.cli import main
from emolib.data import DatasetUnavailable
from emolib.data.fer2013 import write_csv

EMOLIB = [sys.executable, "-m", "emolib"]


@pytest.fixture
def csvs(tmp_path):
    """A good FER2013 CSV, one with a row a pixel short (line 6), and one with a header and no rows."""
    good = write_csv(tmp_path / "fer2013.csv", make_faces())
    lines = good.read_text().splitlines()
    pixels, usage = lines[5].rsplit(",", 1)
    lines[5] = f"{pixels.rsplit(' ', 1)[0]},{usage}"
    (tmp_path / "short.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "empty.csv").write_text("emotion,pixels,Usage\n")
    return tmp_path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No FER2013 anywhere and kagglehub failing as it does without a network."""
    import kagglehub

    def no_network(handle, *a, **kw):
        raise ConnectionError("HTTPSConnectionPool(host='api.kaggle.com', port=443): Failed to resolve 'api.kaggle.com'")
    monkeypatch.setenv("EMOLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setattr(kagglehub, "dataset_download", no_network)


def one_line(capsys, code: int, got: int) -> str:
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[0]


def train(tmp_path, *args) -> list[str]:
    return ["train", "02", "--out", str(tmp_path / "out"), *args]


@pytest.mark.parametrize("args, words", [
    (["--profile", "fer2013", "--set", "data_path={d}/short.csv"], ["short.csv", "line 6", "expected 2304", "found 2303"]),
    (["--profile", "fer2013", "--set", "data_path={d}/empty.csv"], ["empty.csv", "no data rows"]),
    (["--profile", "fer2013", "--set", "data_path={d}/missing.csv"], ["missing.csv", "does not exist"]),
    (["--profile", "smoke", "--set", "source=fer2013", "--set", "data_path={d}/fer2013.csv"],
     ["fer2013.csv", "takes no data options", "seed"]),
])
def test_train_on_bad_data_is_one_line(args, words, csvs, capsys):
    args = [a.replace("{d}", str(csvs)) for a in args]
    line = one_line(capsys, 1, main(train(csvs, *args)))
    assert line.startswith("emolib: ") and all(w in line for w in words), line
    assert not (csvs / "out").exists(), "nothing is written before the data loads"


def test_train_without_fer2013_offline_says_where_to_put_it(offline, tmp_path, capsys):
    code = main(train(tmp_path, "--profile", "fer2013"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "During handling" not in err, err
    assert err.startswith("emolib: FER2013 ('msambare/fer2013') is not available: ConnectionError"), err
    assert str(tmp_path / "data" / "raw" / "fer2013") in err and "KAGGLE_USERNAME" in err


def test_debug_shows_the_traceback(offline, tmp_path):
    with pytest.raises(DatasetUnavailable, match="not available"):
        main(train(tmp_path, "--profile", "fer2013", "--debug"))


def test_usage_errors_of_train_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(train(tmp_path, "--profile", "nope"))
    assert e.value.code == 2 and "no profile" in capsys.readouterr().err
    (tmp_path / "out" / "cnn_fer").mkdir(parents=True)
    (tmp_path / "out" / "cnn_fer" / "last.pt").write_bytes(b"\x00" * 300)       # a copy cut short
    with pytest.raises(SystemExit) as e:
        main(train(tmp_path, "--profile", "smoke", "--resume"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--resume" in err and "last.pt" in err and "delete it" in err, err


def test_export_of_a_damaged_checkpoint_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "best.pt"), "--onnx", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "best.pt" in err and "not a readable emolib checkpoint" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_a_real_process_prints_no_traceback_and_debug_does(csvs):
    """The same through a real process: the exit status and stderr a shell sees."""
    argv = [*EMOLIB, *train(csvs, "--profile", "fer2013", "--set", f"data_path={csvs}/short.csv")]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1 and "line 6" in plain.stderr, plain.stderr
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "DataFormatError" in debug.stderr
