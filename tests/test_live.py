"""The browser camera widget (emolib.live) without a browser: its frame step in-process, and its message
protocol against a real `emolib` kernel, playing the browser's part with jupyter_client (the real browser
is tests/test_browser_lab.py)."""
import os
import queue
import time

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from emolib import EmotionRecognizer, live
from emolib.inference.video import FramePipeline, pan_zoom_frames, process_video, write_video


@pytest.fixture(scope="module")
def recognizer():
    return EmotionRecognizer()


@pytest.fixture(scope="module")
def astronaut_jpeg():
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", cv2.resize(photo, (480, 480)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def test_a_browser_frame_comes_back_annotated_with_its_labels(recognizer, astronaut_jpeg):
    camera = live.BrowserCamera(recognizer, width=480, quality=0.7)
    reply, buffers = camera.process_frame(astronaut_jpeg, frame_id=7)
    assert reply["type"] == "result" and reply["id"] == 7
    assert len(reply["faces"]) == 1, reply                   # the astronaut's face
    face = reply["faces"][0]
    assert face["label"] in recognizer.classes and 0 < face["confidence"] <= 1
    x0, y0, x1, y1 = face["box"]
    assert 150 < (x0 + x1) / 2 < 300 and 30 < (y0 + y1) / 2 < 200     # where her face is in the 480 px frame
    assert face["label"] in reply["text"] and "FPS" in reply["text"]
    annotated = cv2.imdecode(np.frombuffer(buffers[0], np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(astronaut_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original).mean() > 1          # boxes and labels were drawn on it
    assert camera.summary()["frames"] == 1 and camera.summary()["frame_size"] == [480, 480]
    with pytest.raises(live.LiveCameraError, match="do not decode"):
        camera.process_frame(b"not a jpeg", frame_id=8)
    with pytest.raises(ValueError, match="width"):
        live.BrowserCamera(recognizer, width=10)


def test_pushed_frames_get_the_same_results_as_the_video_loop(recognizer, tmp_path):
    """The widget's FramePipeline and process_video are one step: same boxes, labels and track ids."""
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    clip = write_video(tmp_path / "clip.mp4", pan_zoom_frames(photo, 8, (320, 240)))
    looped = []
    process_video(clip, None, recognizer, detect_every=2, on_frame=lambda i, img, res: looped.append(res))
    cap, pipeline, pushed = cv2.VideoCapture(str(clip)), FramePipeline(recognizer, detect_every=2), []
    while (frame := cap.read()[1]) is not None:
        pushed.append(pipeline(frame, annotate=False)[1])
    assert len(pushed) == len(looped) == 8
    for a, b in zip(looped, pushed):
        assert [(r.label, r.track_id, r.box) for r in a] == [(r.label, r.track_id, r.box) for r in b]
        assert [r.confidence for r in a] == pytest.approx([r.confidence for r in b])


# ------------------------------------------------------------------------- a real kernel, no browser

class _FakeBrowser:
    """The front end's side of the widget protocol, spoken to a kernel over jupyter_client."""

    def __init__(self, kc):
        self.kc, self.comm_id = kc, None

    def iopub_until(self, match, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if match(msg):
                return msg
        raise TimeoutError("the kernel did not send the expected message")

    def wait_for_widget(self):
        msg = self.iopub_until(lambda m: m["msg_type"] == "comm_open" and m["content"]["data"]["state"]
                               .get("_anywidget_id") == "emolib.live.browser.BrowserCamera")
        self.comm_id = msg["content"]["comm_id"]
        return msg["content"]["data"]["state"]

    def _comm_msg(self, data, buffers=()):
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        msg["buffers"] = list(buffers)
        self.kc.shell_channel.send(msg)

    def send_frame(self, jpeg, frame_id):
        self._comm_msg({"method": "custom", "content": {"type": "frame", "id": frame_id, "round_trip_ms": 20.0}}, [jpeg])
        return self.iopub_until(lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == self.comm_id
                                and m["content"]["data"].get("method") == "custom")

    def press_stop(self):
        self._comm_msg({"method": "update", "state": {"running": False}, "buffer_paths": []})

    def output_of(self, msg_id):
        """The text the cell printed, once its execution is over (raises on an error output)."""
        text = []
        while True:
            msg = self.iopub_until(lambda m: m["parent_header"].get("msg_id") == msg_id)
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(text)


@pytest.fixture(scope="module")
def kernel():
    import jupyter_client

    from emolib.research.runner import KERNEL, kernel_config
    km = jupyter_client.KernelManager(kernel_name=KERNEL, config=kernel_config())
    km.start_kernel(env=dict(os.environ), cwd=os.getcwd())
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_kernel_answers_frames_while_the_cell_awaits_and_each_stop_ends_it(kernel, astronaut_jpeg):
    km, kc = kernel
    browser = _FakeBrowser(kc)
    kc.execute("from emolib import live\ncamera = live.BrowserCamera()\ndisplay(camera)")
    state = browser.wait_for_widget()
    assert state["running"] is False and state["width"] == 480      # displaying it opens no camera
    assert "getUserMedia" in state["_esm"]

    # The stop button (the browser clears `running`), after frames answered while the cell was still running.
    cell = kc.execute("print(await camera.run(max_seconds=None, first_frame_timeout=60))")
    for i in range(1, 4):
        reply = browser.send_frame(astronaut_jpeg, i)
        assert reply["content"]["data"]["content"]["id"] == i and reply["buffers"]
        assert reply["content"]["data"]["content"]["faces"][0]["label"]
    browser.press_stop()
    printed = browser.output_of(cell)
    assert "'frames': 3" in printed and "'stopped_by': 'stop button'" in printed, printed
    assert "'round_trip_ms_median': 20.0" in printed

    # Kernel -> Interrupt while it waits for frames.
    cell = kc.execute("print(await camera.run(max_seconds=None, first_frame_timeout=60))")
    browser.send_frame(astronaut_jpeg, 4)
    km.interrupt_kernel()
    assert "'stopped_by': 'interrupt'" in browser.output_of(cell)

    # max_seconds; and the cell after it runs normally (the kernel is not left busy).
    cell = kc.execute("print(await camera.run(max_seconds=1.0))\nprint('camera running:', camera.running)")
    printed = browser.output_of(cell)
    assert "'stopped_by': 'max_seconds'" in printed and "camera running: False" in printed


def test_no_frame_at_all_is_an_error_that_says_why(kernel):
    _, kc = kernel
    browser = _FakeBrowser(kc)
    cell = kc.execute("from emolib import live\ncam2 = live.BrowserCamera()\n"
                      "await cam2.run(max_seconds=None, first_frame_timeout=1.0)")
    with pytest.raises(AssertionError, match="no frame from the browser in 1 s"):
        browser.output_of(cell)
