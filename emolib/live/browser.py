"""`BrowserCamera`: the browser's camera -> the kernel's recognizer -> annotated frames back in the browser.

The widget's front end (``camera.js``, an anywidget ES module) opens the camera with getUserMedia,
downscales each frame to ``width`` pixels, JPEG-encodes it and sends it to the kernel as a binary
buffer of a custom widget message. The kernel decodes it, runs it through an
`emolib.inference.video.FramePipeline` (detection, tracking, smoothing, drawing: the same step as `emolib video`),
and sends the annotated JPEG back with the labels and timings. One frame is in flight at a time: the
browser captures the next frame when the previous answer is on screen, so a slow kernel lowers the
frame rate instead of queueing frames and falling behind.

Message protocol (the ``content`` of custom messages; each carries one JPEG buffer):

- browser -> kernel ``{"type": "frame", "id": n, "round_trip_ms": ms | None}``: a camera frame, and the
  time the previous one took from capture to its annotated copy on screen (measured in the browser).
- kernel -> browser ``{"type": "result", "id": n, "faces": [...], "fps": f, "kernel_ms": ms, "text": s}``.

Kernel side, frames are handled by the kernel's message loop: while the notebook cell awaits `run`
(ipykernel >= 7.4 dispatches widget messages during an awaiting cell), or when the kernel is idle.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import anywidget
import cv2
import numpy as np
import traitlets

from emolib.core.errors import EmolibError
from emolib.inference.video import FramePipeline

_HERE = Path(__file__).parent


class LiveCameraError(EmolibError, RuntimeError):
    """The browser could not give a camera, or no frame arrived; the message says which and why."""


class BrowserCamera(anywidget.AnyWidget):
    """A live view of the browser's camera with each face boxed, labelled and tracked, and the FPS.

    recognizer: an `EmotionRecognizer` (default: the pretrained FER2013 model with BlazeFace).
    detect_every, smooth: as in `emolib.inference.video.process_video`. width: frames are downscaled in the
    browser to this width before they are sent (the detector works at 480 px and below anyway).
    quality: JPEG quality of the frames both ways (0-1).

    Display it, then ``stats = await camera.run(max_seconds=30)``: the camera turns on, and `run`
    returns when the Stop button is pressed, `max_seconds` pass or the kernel is interrupted. Without
    `run`, the Start button turns it on and frames are handled while the kernel is idle.
    """

    _esm = _HERE / "camera.js"
    _css = _HERE / "camera.css"

    width = traitlets.Int(480).tag(sync=True)         # frames are downscaled to this width before sending
    quality = traitlets.Float(0.8).tag(sync=True)     # JPEG quality of the frames sent to the kernel
    running = traitlets.Bool(False).tag(sync=True)    # the camera should be on (the button and `run` set it)
    error = traitlets.Unicode("").tag(sync=True)      # set by the browser when it cannot open the camera

    def __init__(self, recognizer=None, *, detect_every: int = 1, smooth: float = 0.6, width: int = 480,
                 quality: float = 0.8, **kwargs):
        if not 64 <= width <= 1920:
            raise ValueError(f"width must be in [64, 1920] pixels, got {width}")
        if not 0 < quality <= 1:
            raise ValueError(f"quality must be in (0, 1], got {quality}")
        super().__init__(width=width, quality=quality, **kwargs)
        self.pipeline = FramePipeline(recognizer, detect_every=detect_every, smooth=smooth)
        self._jpeg_quality = int(round(quality * 100))
        self.failure: BaseException | None = None
        self.reset_figures()
        self.on_msg(self._on_message)

    def reset_figures(self) -> None:
        """Start the figures of `summary` afresh (each `run` reports its own frames)."""
        self.round_trip_ms: list[float] = []     # capture -> annotated frame on screen, per frame (browser clock)
        self.kernel_ms: list[float] = []         # decode + pipeline + encode, per frame
        self.frame_bytes: list[int] = []
        self.frame_size: tuple[int, int] | None = None
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.pipeline.faces_per_frame = []

    # ------------------------------------------------------------------------------ kernel side
    def _on_message(self, _widget, content: dict, buffers: list) -> None:
        if content.get("type") != "frame" or not buffers:
            return
        if content.get("round_trip_ms") is not None:
            self.round_trip_ms.append(float(content["round_trip_ms"]))
        try:
            self.send(*self.process_frame(bytes(buffers[0]), content.get("id")))
        except Exception as err:             # the browser waits for an answer: say what broke, stop the camera
            self.failure = err
            self.send({"type": "result", "id": content.get("id"), "faces": [], "fps": 0.0, "kernel_ms": 0.0,
                       "text": f"kernel error: {type(err).__name__}: {err}"}, [])
            self.running = False

    def process_frame(self, jpeg: bytes, frame_id=None) -> tuple[dict, list[bytes]]:
        """One browser frame (JPEG bytes) -> (the result message, [annotated JPEG]); records the timings."""
        t0 = time.perf_counter()
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise LiveCameraError(f"frame {frame_id}: {len(jpeg)} bytes that do not decode as an image")
        annotated, results = self.pipeline(frame)
        ok, out = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality])
        ms = (time.perf_counter() - t0) * 1000
        now = time.perf_counter()
        self.first_frame_at = self.first_frame_at or now
        self.last_frame_at = now
        self.kernel_ms.append(ms)
        self.frame_bytes.append(len(jpeg))
        self.frame_size = (frame.shape[1], frame.shape[0])
        fps = self.pipeline.fps_counter.fps
        faces = [{"label": r.label, "confidence": round(r.confidence, 3), "emoji": r.emoji,
                  "box": [round(v) for v in r.box], "track_id": r.track_id} for r in results]
        text = ", ".join(f"{f['label']} {f['confidence']:.2f} {f['emoji']}" for f in faces) or "no face"
        return ({"type": "result", "id": frame_id, "faces": faces, "fps": round(fps, 1), "kernel_ms": round(ms, 1),
                 "text": f"{text} · {fps:.1f} FPS"}, [out.tobytes()])

    # ------------------------------------------------------------------------------ the cell
    async def run(self, max_seconds: float | None = 30.0, first_frame_timeout: float = 30.0) -> dict:
        """Turn the camera on and wait until Stop, `max_seconds` or a kernel interrupt; return `summary`.

        Raises LiveCameraError when the browser refuses the camera or no frame arrives within
        `first_frame_timeout` seconds (widget not displayed, permission not given, an old ipykernel
        that holds widget messages until the cell ends), and re-raises an error of the frame handler.
        """
        self.error, self.failure = "", None
        self.reset_figures()
        self.running = True
        started = time.monotonic()
        stopped_by = "stop button"
        try:
            while self.running:
                await asyncio.sleep(0.05)
                if self.error or self.failure:
                    break
                waited = time.monotonic() - started
                if self.first_frame_at is None and waited > first_frame_timeout:
                    raise LiveCameraError(
                        f"no frame from the browser in {first_frame_timeout:.0f} s: is the widget shown, and did "
                        "the browser allow the camera? (frames need ipykernel >= 7.4 while a cell awaits)")
                if max_seconds is not None and waited >= max_seconds:
                    stopped_by = "max_seconds"
                    break
        except asyncio.CancelledError:       # ipykernel turns Kernel -> Interrupt of an awaiting cell into this
            stopped_by = "interrupt"
        finally:
            self.running = False             # the browser stops the camera tracks
        if self.error:
            raise LiveCameraError(f"the browser's camera: {self.error}")
        if self.failure is not None:
            raise self.failure
        return self.summary(stopped_by)

    def summary(self, stopped_by: str | None = None) -> dict:
        """Frames handled, FPS, faces per frame and the round trip figures of this widget so far."""
        n = len(self.kernel_ms)
        seconds = (self.last_frame_at - self.first_frame_at) if n > 1 else 0.0

        def median(xs):
            return round(statistics.median(xs), 1) if xs else None

        return {
            "frames": n, "seconds": round(seconds, 2), "fps": round((n - 1) / seconds, 1) if seconds > 0 else 0.0,
            "mean_faces": round(float(np.mean(self.pipeline.faces_per_frame)), 2) if n else 0.0,
            "frame_size": list(self.frame_size) if self.frame_size else None,
            "jpeg_kb_median": median([b / 1024 for b in self.frame_bytes]),
            "round_trip_ms_median": median(self.round_trip_ms),
            "round_trip_ms_p90": round(float(np.percentile(self.round_trip_ms, 90)), 1) if self.round_trip_ms else None,
            "kernel_ms_median": median(self.kernel_ms),
            "stopped_by": stopped_by,
        }
