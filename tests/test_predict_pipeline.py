"""`emolib predict` on a folder: the overlapped pipeline (emolib.inference.batch) gives the records of the
one-by-one loop, in order, bad files in their place; it batches faces across files, holds a bounded number of
images, runs the detector side by side only where that is safe, and gives every stage one thread."""
import json
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from emolib.cli import main
from emolib.cli.predict import predict_files
from emolib.core.images import iter_image_files
from emolib.core.runtime import cpu_threads
from emolib.inference import batch
from emolib.inference.recognizer import EmotionRecognizer
from tests.photos import astronaut, lfw_faces


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real faces at several sizes (one, four a photo), a photo without a face, and broken files between them."""
    d = tmp_path_factory.mktemp("folder")
    face = astronaut()
    cv2.imwrite(str(d / "a_astronaut.jpg"), face, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(d / "b_astronaut_large.png"), cv2.resize(face, (1280, 1280)))
    (d / "c_zero.jpg").write_bytes(b"")
    cv2.imwrite(str(d / "d_four.jpg"), np.vstack([np.hstack([face, face[:, ::-1]])] * 2))
    data = (d / "a_astronaut.jpg").read_bytes()
    (d / "e_truncated.jpg").write_bytes(data[: len(data) // 3])
    for i, (canvas, _) in enumerate(lfw_faces(3)):
        cv2.imwrite(str(d / f"f_lfw_{i}.jpg"), canvas)
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(d / "g_wall.png")
    (d / "h_notes.jpg").write_text("this is text, not a JPEG\n")
    return d


@pytest.fixture(scope="module")
def recognizer():
    with cpu_threads(1):                 # as `emolib predict` builds it for several files
        return EmotionRecognizer().warmup()


def same_records(one: list[dict], other: list[dict]) -> None:
    assert [r["file"] for r in one] == [r["file"] for r in other]
    for a, b in zip(one, other):
        assert a["error"] == b["error"] and a.get("size") == b.get("size"), a["file"]
        assert len(a["faces"]) == len(b["faces"]), a["file"]
        for fa, fb in zip(a["faces"], b["faces"]):
            assert fa.box == fb.box and fa.label == fb.label and fa.detector_score == fb.detector_score
            assert fa.probs.keys() == fb.probs.keys()
            assert max(abs(fa.probs[c] - fb.probs[c]) for c in fa.probs) < 1e-6


def test_overlapped_records_are_the_one_by_one_records(folder, recognizer, tmp_path):
    inputs = [str(folder), str(folder / "missing.jpg")]
    (tmp_path / "plain").mkdir(), (tmp_path / "fast").mkdir()
    plain = list(predict_files(recognizer, inputs, tmp_path / "plain", workers=1))
    fast = list(predict_files(recognizer, inputs, tmp_path / "fast", workers=2))
    same_records(plain, fast)
    errors = [r["file"].rsplit("/", 1)[-1] for r in fast if r["error"]]
    assert errors == ["c_zero.jpg", "e_truncated.jpg", "h_notes.jpg", "missing.jpg"]
    faces = {r["file"].rsplit("/", 1)[-1]: len(r["faces"]) for r in fast}
    assert faces["a_astronaut.jpg"] == 1 and faces["d_four.jpg"] == 4 and faces["g_wall.png"] == 0
    assert all(r["latency_ms"] > 0 for r in fast if not r["error"])
    assert all(r["latency_ms"] is None for r in fast if r["error"])
    written = sorted(p.name for p in (tmp_path / "fast").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "plain").iterdir()) and len(written) == 7


def test_faces_of_several_files_go_through_the_classifier_together(folder, recognizer, monkeypatch):
    """The first forward pass is slow: the workers finish the next files meanwhile, whose faces then share one."""
    sizes, forward = [], recognizer.predict_crops

    def slow_first(crops):
        sizes.append(len(crops))
        if len(sizes) == 1:
            time.sleep(1.0)
        return forward(crops)
    monkeypatch.setattr(recognizer, "predict_crops", slow_first)
    got = list(batch.overlapped(recognizer, iter_image_files([folder]), workers=2, in_flight=12))
    most_in_a_file = max(len(r.faces) for r in got)
    assert max(sizes) > most_in_a_file and sum(sizes) == sum(len(r.faces) for r in got)


def test_images_held_at_once_are_bounded(folder, recognizer):
    pulled = []

    def items():
        for item in iter_image_files([folder]) * 2:
            pulled.append(item)
            yield item
    for consumed, _ in enumerate(batch.overlapped(recognizer, items(), workers=2, in_flight=3)):
        assert len(pulled) - consumed <= 3
        time.sleep(0.02)                       # a slow consumer: the workers would run ahead without the bound
    assert len(pulled) == 2 * len(iter_image_files([folder]))


@pytest.mark.parametrize("detector, side_by_side", [("blazeface_full", 2), ("haar", 1)])
def test_the_detector_runs_side_by_side_only_where_it_is_safe(folder, detector, side_by_side, monkeypatch):
    with cpu_threads(1):
        rec = EmotionRecognizer(detector=detector)
    running, most, threads, lock = [0], [0], set(), threading.Lock()
    detect = rec.detect_faces

    def counted(image):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threads.add((torch.get_num_threads(), cv2.getNumThreads()))
        time.sleep(0.05)
        try:
            return detect(image)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(rec, "detect_faces", counted)
    before = torch.get_num_threads(), cv2.getNumThreads()
    list(batch.overlapped(rec, iter_image_files([folder]), workers=2))
    assert most[0] == side_by_side and threads == {(1, 1)}
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before       # restored once the files are done


def test_predict_on_a_folder_prints_what_one_thread_prints(folder, capsys):
    def records(threads: str) -> list[dict]:
        main(["predict", str(folder), "--json", "--threads", threads])
        return json.loads(capsys.readouterr().out)
    one, two = records("1"), records("2")
    assert [r["file"] for r in one] == [r["file"] for r in two] and sum(len(r["faces"]) for r in one) >= 5
    for a, b in zip(one, two):
        assert (a["status"], a["error"], len(a["faces"])) == (b["status"], b["error"], len(b["faces"]))
        for fa, fb in zip(a["faces"], b["faces"]):
            assert (fa["box"], fa["label"], fa["emoji"]) == (fb["box"], fb["label"], fb["emoji"])
            assert max(abs(fa["probs"][c] - fb["probs"][c]) for c in fa["probs"]) <= 1e-4    # JSON's 4 decimals
