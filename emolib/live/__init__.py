"""Live camera demos for notebook 06: the browser's camera through a widget, or the kernel's own camera.

`BrowserCamera` (an anywidget) takes frames from the camera of the browser that shows the notebook
(getUserMedia), so it works wherever JupyterLab runs: a remote server, Docker, the cloud.
`show_kernel_camera` opens ``cv2.VideoCapture`` on the kernel's machine (a local kernel only).
Nothing here opens a camera at import; the `emolib webcam` desktop window is `emolib.inference.video.run_webcam`.
"""
from emolib.live.browser import BrowserCamera, LiveCameraError
from emolib.live.kernel import show_kernel_camera

__all__ = ["BrowserCamera", "LiveCameraError", "show_kernel_camera"]
