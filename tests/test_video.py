"""Video loop: sources, IoU tracker, probability smoothing, FPS, and a clip made from a real photo."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data  # a mandatory dependency: real photos offline

from emolib.faces import iou as box_iou
from emolib.inference.tracker import IoUTracker
from emolib.inference.video import (
    FPSCounter,
    VideoSourceError,
    open_source,
    pan_zoom_frames,
    process_video,
    write_video,
)


# ------------------------------------------------------------------------------------ tracker
def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_tracker_keeps_ids_of_moving_boxes_whatever_their_order():
    t = IoUTracker(iou_threshold=0.3)
    a, b = np.array([0, 0, 50, 50.0]), np.array([100, 100, 160, 160.0])
    assert t.update([a, b]) == [0, 1]
    for step in range(1, 6):                                    # both drift 5 px per frame
        shift = np.array([5, 3, 5, 3.0]) * step
        boxes = [b + shift, a + shift] if step % 2 else [a + shift, b + shift]
        ids = t.update(boxes)
        assert ids == ([1, 0] if step % 2 else [0, 1])
    assert t.update([np.array([300, 0, 340, 40.0])])[0] == 2   # a new face, a new id
    assert t.next_id == 3


def test_tracks_expire_after_max_missed_frames():
    t = IoUTracker(max_missed=2)
    box = (10, 10, 60, 60)
    assert t.update([box]) == [0]
    t.update([])
    t.update([])
    assert t.update([box]) == [0]                               # missed 2 frames: still alive
    for _ in range(3):
        t.update([])
    assert t.tracks == {}
    assert t.update([box]) == [1]                               # gone for 3: a new identity


def test_smoothing_is_an_exponential_moving_average_that_stops_flicker():
    t = IoUTracker()
    (tid,) = t.update([(0, 0, 10, 10)])
    happy, neutral = np.array([0.0, 0.7, 0.3]), np.array([0.0, 0.3, 0.7])
    np.testing.assert_allclose(t.smooth(tid, happy, 0.6), happy)          # first frame: as is
    np.testing.assert_allclose(t.smooth(tid, neutral, 0.6), 0.6 * happy + 0.4 * neutral)
    confident, blip = np.array([0.0, 0.8, 0.2]), np.array([0.0, 0.4, 0.6])
    t.smooth(tid, confident, 0.0)
    raw = [blip if k % 3 == 2 else confident for k in range(12)]  # a one-frame blip every third frame
    smoothed = [int(np.argmax(t.smooth(tid, p, 0.6))) for p in raw]
    assert len({int(np.argmax(p)) for p in raw}) == 2 and set(smoothed) == {1}
    np.testing.assert_allclose(t.smooth(tid, neutral, 0.0), neutral)     # 0 disables smoothing


def test_fps_counter_is_a_moving_average(monkeypatch):
    clock = iter(np.arange(0, 100, 0.05))                        # 20 FPS
    monkeypatch.setattr("emolib.inference.video.time.perf_counter", lambda: next(clock))
    fps = FPSCounter(window=10)
    assert fps.tick() == 0.0
    for _ in range(30):
        value = fps.tick()
    assert value == pytest.approx(20.0)
    assert len(fps.times) == 11


# ------------------------------------------------------------------------------------ sources
def test_sources_that_cannot_be_opened_raise_a_clear_error(tmp_path):
    with pytest.raises(VideoSourceError, match="no such video file"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(VideoSourceError, match="is a directory"):
        open_source(tmp_path)
    with pytest.raises(VideoSourceError, match="camera 97"):
        open_source(97)
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoSourceError, match="notes.mp4"):
        process_video(tmp_path / "notes.mp4", recognizer=object())


# ---------------------------------------------------------------------------------- real clip
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 frames of 320×240 panning and zooming over the astronaut, as an mp4v file."""
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("clip") / "astronaut.mp4"
    write_video(path, pan_zoom_frames(photo, 30, (320, 240)))
    return path


@pytest.fixture(scope="module")
def recognizer():
    from emolib import EmotionRecognizer
    return EmotionRecognizer()


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_a_tracked_face_keeps_one_identity(clip, recognizer, tmp_path):
    seen = []
    stats = process_video(clip, tmp_path / "out.mp4", recognizer,
                          on_frame=lambda i, frame, results: seen.append((i, frame.shape, results)))
    assert stats.frames == 30 == count_frames(clip) == count_frames(tmp_path / "out.mp4")
    assert [i for i, _, _ in seen] == list(range(30)) and seen[0][1] == (240, 320, 3)
    ids = [r.track_id for _, _, results in seen for r in results]
    assert len(ids) >= 28 and set(ids) == {0}                    # the face is found and stays track 0
    assert all(r.label == "happy" for _, _, results in seen for r in results)
    assert stats.tracks == 1 and len(stats.faces_per_frame) == 30


def test_detect_every_n_reuses_tracked_boxes_but_classifies_every_frame(clip):
    from emolib import EmotionRecognizer
    recognizer = EmotionRecognizer(backend="torch")                # forwards counted by a hook on the torch module
    detections, forwards = [], []
    original = recognizer.detect_faces

    def counting_detect(image):
        detections.append(1)
        return original(image)

    recognizer.detect_faces = counting_detect
    handle = recognizer.model.register_forward_hook(lambda *a: forwards.append(1))
    try:
        stats = process_video(clip, None, recognizer, detect_every=5, max_frames=20)
    finally:
        handle.remove()
        del recognizer.detect_faces
    assert stats.frames == 20 and len(detections) == 4        # frames 0, 5, 10, 15
    assert len(forwards) == sum(1 for n in stats.faces_per_frame if n) >= 18


def test_on_frame_returning_false_stops_the_loop(clip, recognizer):
    stats = process_video(clip, None, recognizer, on_frame=lambda i, frame, results: i < 4)
    assert stats.frames == 5


def test_cli_video_writes_every_frame_and_webcam_without_camera_fails_cleanly(clip, tmp_path):
    out = tmp_path / "annotated.mp4"
    proc = subprocess.run([sys.executable, "-m", "emolib", "video", str(clip), "--out", str(out),
                           "--detect-every", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "processed 30 frames" in proc.stdout and "FPS" in proc.stdout and "happy" in proc.stdout
    assert count_frames(out) == 30
    proc = subprocess.run([sys.executable, "-m", "emolib", "webcam", "--camera", "97"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "camera 97" in proc.stderr and "Traceback" not in proc.stderr


def test_webcam_loop_shows_frames_and_quits_on_q(clip, recognizer, monkeypatch):
    import emolib.inference.video as video
    real_open = video.open_source
    monkeypatch.setattr(video, "open_source", lambda src: real_open(clip) if src == 0 else real_open(src))
    monkeypatch.setenv("DISPLAY", ":99")
    shown, keys = [], iter([-1, -1, -1, ord("q")])
    monkeypatch.setattr(video.cv2, "imshow", lambda name, frame: shown.append(frame.shape))
    monkeypatch.setattr(video.cv2, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(video.cv2, "getWindowProperty", lambda name, prop: 1.0)
    monkeypatch.setattr(video.cv2, "destroyWindow", lambda name: None)
    stats = video.run_webcam(0, recognizer)
    assert stats.frames == 4 and shown == [(240, 320, 3)] * 4
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(VideoSourceError, match="no display"):
        video.run_webcam(0, recognizer)


def test_detecting_ahead_gives_the_plain_loops_results(tmp_path):
    """process_video with the next frame detected in a worker thread (prefetch) labels every frame exactly as
    the plain loop does: same boxes, labels, probabilities and track ids."""
    import cv2
    from skimage import data

    from emolib.inference.recognizer import EmotionRecognizer
    from emolib.inference.video import pan_zoom_frames, process_video, write_video
    clip = write_video(tmp_path / "c.mp4", pan_zoom_frames(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), 12))
    recognizer = EmotionRecognizer.live()
    runs = {}
    for prefetch in (False, True):
        seen = []
        process_video(clip, None, recognizer, prefetch=prefetch,
                      on_frame=lambda i, img, results: seen.append([(r.box, r.label, r.probs, r.track_id) for r in results]))
        runs[prefetch] = seen
    assert len(runs[True]) == 12 and sum(map(len, runs[True])) >= 10
    assert runs[True] == runs[False]


def test_detect_ahead_stops_with_its_consumer():
    from emolib.inference.prefetch import detect_ahead
    calls = []
    gen = detect_ahead(iter(range(100)), lambda f: calls.append(f) or [f])
    assert [next(gen) for _ in range(3)] == [(0, [0]), (1, [1]), (2, [2])]
    gen.close()
    assert calls == [0, 1, 2, 3]                  # one frame read ahead, then nothing more
