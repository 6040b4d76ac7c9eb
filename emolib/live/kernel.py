"""The kernel machine's camera (cv2.VideoCapture) shown in a notebook output: for local kernels only."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2

if TYPE_CHECKING:
    from emolib.inference.video import VideoStats


def show_kernel_camera(camera: int, recognizer=None, *, max_seconds: float = 30.0, **loop_options) -> VideoStats | None:
    """Annotated frames of camera `camera` in the cell's output until `max_seconds` pass or the kernel is
    interrupted; returns `emolib.inference.video.process_video`'s `VideoStats` (None when interrupted).

    The camera is the one on the machine the kernel runs on, which is the user's only for a local
    kernel; `BrowserCamera` uses the browser's. `loop_options` go to `process_video` (detect_every, smooth).
    """
    from IPython.display import Image, display

    from emolib.inference.video import process_video

    handle = display("starting the camera ...", display_id=True)
    started = time.perf_counter()

    def show(index, annotated, results):
        handle.update(Image(data=cv2.imencode(".jpg", annotated)[1].tobytes()))
        return time.perf_counter() - started < max_seconds

    try:
        return process_video(camera, recognizer=recognizer, on_frame=show, **loop_options)
    except KeyboardInterrupt:        # Kernel -> Interrupt: the camera is released by process_video
        print("stopped")
        return None
