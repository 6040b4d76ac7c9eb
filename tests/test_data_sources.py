"""Data sources: FER2013 CSV (both header spellings), the folder releases, generic trees, kagglehub
resolution without network, the .npz cache, and the data-quality report. Fixtures are written here."""
from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
from fixtures_fer import (
    BLANK_ROW,
    DUP_ROWS,
    canonical_order,
    make_faces,
    write_ananthu,
    write_fer_csv,
    write_msambare,
    write_tree,
)

from emolib.core import paths
from emolib.core.labels import EMOTIONS
from emolib.data import DataFormatError, DataOptionsError, DatasetUnavailable, find_quality_issues, load
from emolib.data import cache as array_cache
from emolib.data.fer2013 import read_csv


@pytest.fixture(scope="module")
def faces():
    return make_faces()


def _same(a, b):
    oa, ob = canonical_order(a), canonical_order(b)
    return a.images[oa], b.images[ob], (a.labels[oa], b.labels[ob]), (a.splits[oa], b.splits[ob])


def _multiset(images):
    return sorted(img.tobytes() for img in images)


# --- CSV -----------------------------------------------------------------------------------------

def test_csv_both_header_spellings_load_identically(tmp_path, faces):
    a = load("fer2013", write_fer_csv(tmp_path / "a" / "fer2013.csv", faces), cache=False)
    b = load("fer2013", write_fer_csv(tmp_path / "b" / "icml_face_data.csv", faces, style="icml"), cache=False)
    assert (tmp_path / "b" / "icml_face_data.csv").read_text().splitlines()[0] == "emotion, Usage, pixels"
    for x in (a, b):
        assert x.images.dtype == np.uint8 and x.images.shape == (len(faces), 48, 48)
        np.testing.assert_array_equal(x.images, faces.images)
        np.testing.assert_array_equal(x.labels, faces.labels)
        np.testing.assert_array_equal(x.splits, faces.splits)
    assert a.counts()["val"] == {c: 2 for c in EMOTIONS}


def test_csv_found_inside_a_directory(tmp_path, faces):
    write_fer_csv(tmp_path / "dl" / "fer2013" / "fer2013.csv", faces)
    got = load("fer2013", tmp_path / "dl", cache=False)
    np.testing.assert_array_equal(got.images, faces.images)


GOOD_ROW = "3," + " ".join(["7"] * 2304) + ",Training"


@pytest.mark.parametrize("lines, problem", [
    (["emotion,Usage", "3,Training"], "missing column"),
    (["emotion,pixels,Usage", GOOD_ROW, "3," + " ".join(["7"] * 2303) + ",Training"], "found 2303"),
    (["emotion,pixels,Usage", GOOD_ROW, "3," + " ".join(["7"] * 2303 + ["x"]) + ",Training"], "non-numeric"),
    (["emotion,pixels,Usage", GOOD_ROW, "3," + " ".join(["7"] * 2303 + ["256"]) + ",Training"], "out of range"),
    (["emotion,pixels,Usage", GOOD_ROW, "7," + " ".join(["7"] * 2304) + ",Training"], "emotion 7 out of range"),
    (["emotion,pixels,Usage", GOOD_ROW, "happy," + " ".join(["7"] * 2304) + ",Training"], "not an integer"),
    (["emotion,pixels,Usage", GOOD_ROW, "3," + " ".join(["7"] * 2304) + ",Validation"], "unknown Usage"),
    (["emotion,pixels,Usage", GOOD_ROW, "3," + " ".join(["7"] * 2304)], "expected 3 fields, found 2"),
])
def test_malformed_csv_names_file_row_and_problem(tmp_path, lines, problem):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as e:
        read_csv(path)
    msg = str(e.value)
    assert str(path) in msg and problem in msg
    assert ("line 1" in msg) if problem == "missing column" else ("line 3" in msg)
    assert isinstance(e.value, ValueError)


# --- folder releases ------------------------------------------------------------------------------

def test_msambare_jpg_release_matches_csv(tmp_path, faces):
    root = write_msambare(tmp_path / "msambare", faces)
    (root / "train" / "happy" / "Training_99999.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "test" / "sad" / "PrivateTest_99998.jpg").write_bytes(b"")
    got = load("fer2013", root, cache=False)
    a, b, labels, splits = _same(faces, got)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0     # JPG compression only
    np.testing.assert_array_equal(*labels)
    np.testing.assert_array_equal(*splits)                        # test/ split by PublicTest_/PrivateTest_
    assert sorted(os.path.basename(f) for f, _ in got.skipped) == ["PrivateTest_99998.jpg", "Training_99999.jpg"]
    assert any("2 image file(s) could not be decoded" in n for n in got.notes)


def test_ananthu_png_release_carves_val_from_train(tmp_path, faces):
    got = load("fer2013", write_ananthu(tmp_path / "ananthu", faces), cache=False)
    assert any("cannot be split" in n for n in got.notes)
    train_like = got.splits != "test"
    assert 0 < (got.splits == "val").sum() < train_like.sum()
    # PNG is lossless: exactly the same pixels, train+val = Training and test = PublicTest+PrivateTest.
    assert _multiset(got.images[train_like]) == _multiset(faces.images[faces.splits == "train"])
    assert _multiset(got.images[~train_like]) == _multiset(faces.images[faces.splits != "train"])
    assert sorted(got.labels[~train_like]) == sorted(faces.labels[faces.splits != "train"])


def test_generic_tree_with_aliases_and_split_spellings(tmp_path, faces):
    names = {"angry": "Anger", "disgust": "disgusted", "fear": "fearful", "happy": "happiness",
             "sad": "sadness", "surprise": "surprised", "neutral": "neutral"}
    root = write_tree(tmp_path / "tree", faces, {"train": "Training", "val": "valid", "test": "test"}, names)
    got = load("folder", root, cache=False)
    a, b, labels, splits = _same(faces, got)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(*labels)
    np.testing.assert_array_equal(*splits)
    assert got.notes == [] and got.skipped == []


def test_folder_converts_color_and_resizes(tmp_path):
    import cv2
    img = np.zeros((96, 120, 3), np.uint8)
    img[:, :60] = (0, 0, 255)
    for split in ("train", "val", "test"):
        (tmp_path / split / "happy").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "happy" / "a.jpg"), img)
    got = load("folder", tmp_path, cache=False)
    assert got.images.shape == (3, 48, 48) and got.images.dtype == np.uint8
    assert got.images[0, :, :20].mean() > 60 and got.images[0, :, -20:].mean() < 5   # red -> gray, left half


def test_unknown_class_folder_lists_names_and_aliases(tmp_path, faces):
    root = write_tree(tmp_path / "tree", faces)
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DataFormatError, match=r"contempt.*known names: angry, disgust.*aliases: .*fearful"):
        load("folder", root, cache=False)


def test_empty_split_folder_and_empty_source_are_errors(tmp_path, faces):
    root = write_tree(tmp_path / "tree", faces)
    (root / "val").rename(tmp_path / "old_val")
    (root / "val" / "happy").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="holds no images"):
        load("folder", root, cache=False)
    (tmp_path / "empty" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="no images"):
        load("folder", tmp_path / "empty", cache=False)
    with pytest.raises(DataFormatError, match="no FER2013 here"):
        load("fer2013", tmp_path / "old_val", cache=False)


# --- cache ----------------------------------------------------------------------------------------

def test_cache_hit_and_rebuild_when_source_changes(tmp_path, faces, monkeypatch):
    from emolib.data import sources
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))     # its own: other tests cache FER2013 CSVs too
    path = write_fer_csv(tmp_path / "fer2013.csv", faces)
    calls = []
    monkeypatch.setattr(sources, "read_csv", lambda p: calls.append(p) or read_csv(p))
    first = load("fer2013", path)
    assert len(calls) == 1 and first.fingerprint and first.source.startswith("fer2013-csv:")
    cached = list(paths.cache_dir().glob("fer2013-csv-*.npz"))
    assert len(cached) == 1
    second = load("fer2013", path)
    assert len(calls) == 1                                       # served from the .npz
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.splits, first.splits)
    assert second.fingerprint == first.fingerprint
    # Change the source: one row fewer -> new fingerprint -> rebuilt, same cache file overwritten.
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    third = load("fer2013", path)
    assert len(calls) == 2 and len(third) == len(faces) - 1 and third.fingerprint != first.fingerprint
    assert list(paths.cache_dir().glob("fer2013-csv-*.npz")) == cached


def test_folder_cache_keeps_skipped_and_notes(tmp_path, faces):
    root = write_ananthu(tmp_path / "ananthu", faces)
    (root / "train" / "happy" / "broken.png").write_bytes(b"\x89PNG broken")
    first = load("fer2013", root)
    second = load("fer2013", root)
    assert second.notes == first.notes and second.skipped == first.skipped and len(second.skipped) == 1
    np.testing.assert_array_equal(second.splits, first.splits)
    os.utime(root / "train" / "happy" / "broken.png", ns=(0, 0))   # mtime change = source changed
    assert load("fer2013", root).fingerprint != first.fingerprint


def test_synthetic_through_load_is_cached_with_masks(monkeypatch):
    from emolib.data import synthetic
    a = load("synthetic", n=300, seed=3)
    # The second load is served by the cache: it must not draw a single face (a fact, not a timing).
    with monkeypatch.context() as m:
        m.setattr(synthetic, "render", lambda *a, **kw: pytest.fail("the cached arrays were redrawn"))
        b = load("synthetic", n=300, seed=3)
    assert a.masks is not None and b.masks is not None
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.fingerprint == b.fingerprint != load("synthetic", n=300, seed=4).fingerprint
    with pytest.raises(DataOptionsError, match="unexpected options"):
        load("synthetic", n_images=10)


def test_cache_file_is_written_atomically(tmp_path, faces, monkeypatch):
    target = tmp_path / "c" / "x.npz"
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        array_cache.save(target, faces, key="x")
    assert list((tmp_path / "c").iterdir()) == []                 # no half-written file left behind


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":                 # a copy cut short
        path.write_bytes(data[: len(data) // 3])
    elif how == "corrupt":                 # bytes flipped inside the images: the zip's CRC check fails
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "corrupt", "empty"])
def test_a_damaged_cache_is_rebuilt_with_a_warning(tmp_path, faces, monkeypatch, how):
    from emolib.data import sources
    path = write_fer_csv(tmp_path / "fer2013.csv", faces)
    first = load("fer2013", path)
    cached = array_cache.cache_path("fer2013-csv", [str(path.resolve()), {}])
    _damage(cached, how)
    calls = []
    monkeypatch.setattr(sources, "read_csv", lambda p: calls.append(p) or read_csv(p))
    with pytest.warns(array_cache.CacheRebuilt, match=f"data cache {cached} is damaged"):
        again = load("fer2013", path)
    assert calls == [path.resolve()]
    np.testing.assert_array_equal(again.images, first.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                           # the rewritten file is whole: no warning
        np.testing.assert_array_equal(load("fer2013", path).labels, first.labels)
    assert len(calls) == 1


def test_another_sources_cache_under_this_name_is_rebuilt(tmp_path, faces):
    a = write_fer_csv(tmp_path / "a" / "fer2013.csv", faces)
    b = write_fer_csv(tmp_path / "b" / "fer2013.csv", faces)
    load("fer2013", a)
    load("fer2013", b)
    file_a, file_b = (array_cache.cache_path("fer2013-csv", [str(p.resolve()), {}]) for p in (a, b))
    shutil.copy(file_a, file_b)                                  # e.g. a sync tool mixing two machines' caches
    with pytest.warns(array_cache.CacheRebuilt, match="holds another source's arrays"):
        got = load("fer2013", b)
    assert got.source == f"fer2013-csv:{b.resolve()}"


# --- kagglehub --------------------------------------------------------------------------------------

@pytest.fixture
def kaggle_env(tmp_path, monkeypatch):
    import kagglehub
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh"))
    monkeypatch.setenv("EMOLIB_DATA", str(tmp_path / "data"))    # empty data/raw/fer2013
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    return kagglehub


def test_kagglehub_download_is_used_when_nothing_is_local(kaggle_env, tmp_path, faces, monkeypatch):
    write_msambare(tmp_path / "download" / "archive", faces)     # the release may sit one level down
    dl = tmp_path / "download"
    seen = []
    monkeypatch.setattr(kaggle_env, "dataset_download", lambda handle, *a, **k: seen.append(handle) or str(dl))
    got = load("fer2013", cache=False)
    assert seen == ["msambare/fer2013"] and len(got) == len(faces)


def test_kagglehub_cache_hit_needs_no_download(kaggle_env, tmp_path, faces, monkeypatch):
    base = tmp_path / "kh" / "datasets" / "ananthu017" / "emotion-detection-fer"
    write_ananthu(base / "versions" / "1", faces)
    (base / "1.complete").write_text("")
    write_ananthu(base / "versions" / "2", make_faces(per_class=(2, 1, 1), seed=1))   # incomplete download
    monkeypatch.setattr(kaggle_env, "dataset_download", lambda *a, **k: pytest.fail("must not download"))
    got = load("fer2013", handle="ananthu017/emotion-detection-fer", download=False, cache=False)
    assert len(got) == len(faces)


def test_hand_placed_files_win(kaggle_env, tmp_path, faces, monkeypatch):
    write_fer_csv(paths.raw_dir() / "fer2013" / "icml_face_data.csv", faces, style="icml")
    monkeypatch.setattr(kaggle_env, "dataset_download", lambda *a, **k: pytest.fail("must not download"))
    np.testing.assert_array_equal(load("fer2013", cache=False).images, faces.images)


def test_offline_gives_a_clear_error(kaggle_env, tmp_path, monkeypatch):
    def offline(handle, *a, **k):
        raise ConnectionError("Max retries exceeded with url: https://www.kaggle.com/api/v1/...")
    monkeypatch.setattr(kaggle_env, "dataset_download", offline)
    with pytest.raises(DatasetUnavailable) as e:
        load("fer2013")
    msg = str(e.value)
    assert "msambare/fer2013" in msg and str(tmp_path / "kh") in msg
    assert str(paths.raw_dir() / "fer2013") in msg and "ConnectionError" in msg
    assert isinstance(e.value.__cause__, ConnectionError)
    with pytest.raises(DatasetUnavailable, match="download=False"):
        load("fer2013", download=False)


# --- quality ---------------------------------------------------------------------------------------

def test_quality_finds_blank_and_duplicates_across_splits_and_labels(tmp_path, faces):
    for arrays in (faces, load("fer2013", write_msambare(tmp_path / "m", faces), cache=False)):
        issues = find_quality_issues(arrays)
        assert len(issues["blank"]) == 1
        assert issues["n_duplicate_groups"] == 1 and len(issues["duplicate_groups"][0]) == 2
        assert issues["cross_split_groups"] == issues["duplicate_groups"]
        assert issues["conflicting_label_groups"] == issues["duplicate_groups"]
    issues = find_quality_issues(faces)
    assert issues["blank"] == [BLANK_ROW] and issues["duplicate_groups"] == [list(DUP_ROWS)]
    assert len(faces) == 7 * 14                                      # reported, nothing dropped


def test_data_io_bench_quick():
    from emolib.bench import data_io
    got = data_io.run(quick=True)
    assert set(got) == {"csv_parse_s_fer2013_tenth", "cache_load_s_fer2013_tenth", "csv_parse_vs_cache_load_ratio"}
    assert got["cache_load_s_fer2013_tenth"] < got["csv_parse_s_fer2013_tenth"]


def test_classes_the_data_does_not_hold_are_an_error(faces):
    with pytest.raises(DataOptionsError, match="contempt not in this data"):
        faces.subset("eight")                # 8-class FER+ classes asked of 7-class FER2013 arrays
