"""The video and webcam loop: frame sources and writers, an FPS counter, the per-frame pipeline.

`FramePipeline` is the per-frame step and `process_video` the one loop around it (the `emolib video` /
`emolib webcam` commands and the webcam notebook call it; the browser camera widget of `emolib.live`
feeds its frames through a `FramePipeline` too); `run_webcam` only adds a cv2 window around it. Nothing opens a camera or a
window at import, and the model code (`EmotionRecognizer`) knows nothing about either.

Per frame: detect faces (or, between detections when ``detect_every > 1``, reuse the boxes of the
tracks seen on the previous frame), classify every face in one batch, give each face a track id
by IoU with the previous frame, and smooth each track's probabilities with an exponential moving
average so the label does not flicker from frame to frame (both in `emolib.inference.tracker`).
"""
from __future__ import annotations

import collections
import dataclasses
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from emolib.core.errors import EmolibError
from emolib.core.quiet import captured_native_stderr, summary
from emolib.inference.prefetch import detect_ahead, read_frames
from emolib.inference.tracker import IoUTracker


class VideoSourceError(EmolibError, RuntimeError):
    """A camera or video file that cannot be opened or read; the message says which and why."""


# --------------------------------------------------------------------------------------- sources
@contextmanager
def _quiet_opencv():
    """OpenCV logs a page of backend warnings for a missing camera; our own error says it better."""
    old = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def open_source(src: int | str | os.PathLike | cv2.VideoCapture) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture for a camera index (int or digit string) or a video file path.

    An already opened cv2.VideoCapture is returned as it is.

    Raises VideoSourceError naming the source when it cannot be opened or yields no frame.
    """
    if isinstance(src, cv2.VideoCapture):
        return src
    if isinstance(src, str) and src.strip().isdigit():
        src = int(src)
    if isinstance(src, int):
        what = f"camera {src}"
        with _quiet_opencv():
            cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            raise VideoSourceError(f"{what}: cannot open it (no such camera, or it is busy or not permitted); "
                                   f"try another index with --camera")
        return cap
    path = Path(src)
    if not path.exists():
        raise VideoSourceError(f"{path}: no such video file")
    if path.is_dir():
        raise VideoSourceError(f"{path}: is a directory, expected a video file")
    # FFmpeg prints its complaint ("moov atom not found") straight to fd 2: captured, it joins our error.
    with _quiet_opencv(), captured_native_stderr() as ffmpeg_says:
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        said = summary([line.split("] ", 1)[-1] for line in ffmpeg_says])   # minus "[mov,mp4 @ 0x..] "
        raise VideoSourceError(f"{path}: cannot be opened as a video (unsupported or damaged file"
                               f"{': ' + said if said else ''})")
    return cap


def source_fps(cap: cv2.VideoCapture, default: float = 30.0) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and np.isfinite(fps) and 1 <= fps <= 240 else default


def open_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An mp4v cv2.VideoWriter for BGR frames of `size` (width, height); raises when it cannot write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise VideoSourceError(f"{path}: cannot write a video there (check the folder and the .mp4 suffix)")
    return writer


def pan_zoom_frames(image: np.ndarray, n: int = 30, size: tuple[int, int] = (640, 480),
                    zoom: tuple[float, float] = (1.0, 1.3)) -> list[np.ndarray]:
    """A clip from a still photo: `n` frames of `size` (width, height) slowly panning and zooming.

    For tests, benchmarks and demos without a camera; the face moves smoothly from frame to frame.
    """
    h, w = image.shape[:2]
    out_w, out_h = size
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        z = zoom[0] + (zoom[1] - zoom[0]) * t
        # The viewport keeps the output's aspect ratio, shrinks with the zoom and drifts left to right.
        vw = min(w, h * out_w / out_h) / z
        vh = vw * out_h / out_w
        x0 = (w - vw) * (0.3 + 0.4 * t)
        y0 = (h - vh) * 0.3
        m = np.array([[out_w / vw, 0, -x0 * out_w / vw], [0, out_h / vh, -y0 * out_h / vh]])
        frames.append(cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
    return frames


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 30.0) -> Path:
    """Write BGR frames (all the same size) to an mp4v video."""
    if not frames:
        raise ValueError("no frames to write")
    writer = open_writer(path, fps, (frames[0].shape[1], frames[0].shape[0]))
    try:
        for f in frames:
            writer.write(f)
    finally:
        writer.release()
    return Path(path)


# ---------------------------------------------------------------------------------- FPS counter
class FPSCounter:
    """Frames per second as a moving average over the last `window` frames."""

    def __init__(self, window: int = 30):
        self.times: collections.deque[float] = collections.deque(maxlen=window + 1)

    def tick(self) -> float:
        """Record one frame now; return the current FPS."""
        self.times.append(time.perf_counter())
        return self.fps

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


# ----------------------------------------------------------------------------------------- loop
class FramePipeline:
    """One frame in, its smoothed face results and annotated copy out: the body of every live loop.

    `process_video` (files, the desktop camera) and the browser camera widget (`emolib.live`) both
    feed frames through one of these, so detection cadence, tracking, smoothing and the FPS counter
    behave the same wherever the frames come from. Arguments as in `process_video`.
    """

    def __init__(self, recognizer=None, *, detect_every: int = 1, smooth: float = 0.6,
                 show_fps: bool = True, tracker: IoUTracker | None = None):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if not 0 <= smooth < 1:
            raise ValueError(f"smooth must be in [0, 1), got {smooth}")
        if recognizer is None:
            from emolib.inference.recognizer import EmotionRecognizer
            recognizer = EmotionRecognizer.live()
        self.recognizer, self.detect_every, self.smooth, self.show_fps = recognizer, detect_every, smooth, show_fps
        self.tracker = tracker or IoUTracker()
        self.fps_counter = FPSCounter()
        self.faces_per_frame: list[int] = []

    @property
    def frames(self) -> int:
        return len(self.faces_per_frame)

    def __call__(self, frame: np.ndarray, annotate: bool = True, faces: list | None = None
                 ) -> tuple[np.ndarray | None, list]:
        """(annotated BGR copy, or None when `annotate` is False; one smoothed FaceResult per face).
        faces: this frame's detections when they were computed ahead (`emolib.inference.prefetch`)."""
        from emolib.inference.draw import annotate as draw
        if self.frames % self.detect_every == 0:
            faces = self.recognizer.detect_faces(frame) if faces is None else faces
        else:
            faces = [t.face for t in self.tracker.seen_last_frame() if t.face is not None]
        results = self.recognizer.classify_faces(frame, faces)
        ids = self.tracker.update([r.box for r in results], faces)
        results = [_smoothed(r, tid, self.tracker, self.smooth) for r, tid in zip(results, ids)]
        fps = self.fps_counter.tick()
        self.faces_per_frame.append(len(results))
        return (draw(frame, results, fps if self.show_fps else None) if annotate else None), results


@dataclasses.dataclass(frozen=True)
class VideoStats:
    """What `process_video` did: frames, time, faces per frame, track ids issued, the source; `out` (or None)."""
    frames: int
    seconds: float
    fps: float
    faces_per_frame: list[int]
    mean_faces: float
    tracks: int
    source_fps: float
    width: int
    height: int
    out: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _LazyWriter:
    """An mp4v writer opened on the first frame written (the output takes its size); never opened, nothing to do."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps, self.writer = path, fps, None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.writer = open_writer(self.path, self.fps, (frame.shape[1], frame.shape[0]))
        self.writer.write(frame)

    def release(self) -> None:
        if self.writer is not None:
            self.writer.release()


def process_video(src: int | str | os.PathLike, out: str | os.PathLike | None = None, recognizer=None, *,
                  detect_every: int = 1, smooth: float = 0.6,
                  on_frame: Callable[[int, np.ndarray, list], bool | None] | None = None,
                  max_frames: int | None = None, show_fps: bool = True,
                  tracker: IoUTracker | None = None, prefetch: bool = True) -> VideoStats:
    """Recognize emotions on every frame of a video file or camera; optionally write an annotated video.

    src: camera index or video path. out: annotated .mp4 (mp4v), one output frame per input frame.
    recognizer: an EmotionRecognizer (default: `EmotionRecognizer.live()`, the pretrained FER2013 model
    with the live detector).
    detect_every: run the detector every N frames, reusing the tracked boxes in between
    (classification still runs on every frame). smooth: EMA weight of the past probabilities
    (0 disables smoothing). on_frame(index, annotated_bgr, results): called per frame; returning
    False stops the loop (the webcam window and notebook use it). max_frames: stop after that many.
    prefetch: with detect_every=1, detect the next frame in a worker thread while this one is classified
    (`emolib.inference.prefetch`; same results, less time per frame on 2 cores).
    """
    pipeline = FramePipeline(recognizer, detect_every=detect_every, smooth=smooth, show_fps=show_fps,
                             tracker=tracker)
    cap = open_source(src)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    in_fps = source_fps(cap)
    writer = _LazyWriter(out, in_fps)
    t0 = time.perf_counter()
    frames = read_frames(cap, max_frames)
    items = (detect_ahead(frames, pipeline.recognizer.detect_faces) if prefetch and detect_every == 1
             else ((f, None) for f in frames))
    try:
        for index, (frame, faces) in enumerate(items):
            if index == 0:
                height, width = frame.shape[:2]
            annotated, results = pipeline(frame, annotate=out is not None or on_frame is not None, faces=faces)
            if out is not None:
                writer.write(annotated)
            if on_frame is not None and on_frame(index, annotated, results) is False:
                break
    finally:
        items.close()                    # waits for a frame being read ahead before the capture goes
        cap.release()
        writer.release()
    seconds, faces_per_frame = time.perf_counter() - t0, pipeline.faces_per_frame
    n = len(faces_per_frame)
    if n == 0 and max_frames != 0:
        raise VideoSourceError(f"{_describe(src)}: no frame could be read (empty or damaged video, "
                               "or a camera that delivers nothing)")
    return VideoStats(frames=n, seconds=seconds, fps=n / seconds if seconds > 0 else 0.0,
                      faces_per_frame=faces_per_frame, mean_faces=float(np.mean(faces_per_frame)) if n else 0.0,
                      tracks=pipeline.tracker.next_id, source_fps=in_fps, width=width, height=height,
                      out=str(out) if out is not None else None)


def _describe(src) -> str:
    if isinstance(src, cv2.VideoCapture):
        return "video source"
    return f"camera {src}" if isinstance(src, int) or str(src).isdigit() else str(src)


def _smoothed(result, track_id: int, tracker: IoUTracker, smooth: float):
    classes = list(result.probs)
    probs = tracker.smooth(track_id, np.array([result.probs[c] for c in classes]), smooth)
    return dataclasses.replace(result.with_probs(dict(zip(classes, probs.tolist()))), track_id=track_id)


# --------------------------------------------------------------------------------------- webcam
def _check_display() -> None:
    """Qt aborts the whole process when there is no display; say so before trying."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VideoSourceError("no display to open a window on (DISPLAY is not set); use `emolib video` "
                               "on a recorded file, or the webcam notebook")


def run_webcam(camera: int = 0, recognizer=None, *, detect_every: int = 1, smooth: float = 0.6,
               window: str = "emolib - q or Esc quits", max_frames: int | None = None) -> VideoStats:
    """Live window on camera `camera` with boxes, labels, confidence, emoji and FPS; q or Esc quits."""
    # The camera first: "no camera" is the common failure and needs no display to report.
    cap = open_source(camera)
    try:
        _check_display()
    except VideoSourceError:
        cap.release()
        raise
    if recognizer is None:
        from emolib.inference.recognizer import EmotionRecognizer
        recognizer = EmotionRecognizer.live()

    def show(index, annotated, results):
        cv2.imshow(window, annotated)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1
        return not (key in (ord("q"), ord("Q"), 27) or closed)

    try:
        return process_video(cap, None, recognizer, detect_every=detect_every, smooth=smooth,
                             on_frame=show, max_frames=max_frames)
    finally:
        try:
            cv2.destroyWindow(window)
        except cv2.error:            # never shown (failed before the first frame)
            pass
