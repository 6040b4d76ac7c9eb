"""The end of a notebook's TensorBoard run (``logger: tensorboard``): the test split beside the training curves.

`emolib.training.loop.fit` logs every epoch's scalars (`emolib.training.tensorboard`) and knows nothing of plots
or Grad-CAM; the research layer tests each model right after fit (`experiment.train_notebook`) and then adds, at
the step of the run's last epoch: the test accuracy and macro-F1, the row-normalised confusion matrix, and the
Grad-CAM maps of the first test faces (true and predicted class in each caption). Rank 0 only, as fit writes.
Imported only where a logger is asked for: it needs the plotting and Grad-CAM packages `emolib train` leaves out.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from emolib import cam
from emolib.data.arrays import FaceArrays
from emolib.research import plots
from emolib.training import evaluate, tensorboard

__all__ = ["CAM_FACES", "log_test"]

CAM_FACES = 8       # Grad-CAM images: a glance at where the model looks, not an evaluation (notebook 05 is that)


def log_test(folder, net: nn.Module, test_split: FaceArrays, test: dict, step: int, cam_faces: int = CAM_FACES) -> None:
    """Log `test` (`evaluate.evaluate` of `net` on `test_split`) and Grad-CAM maps into the event folder `folder`."""
    first = test_split.first_rows(cam_faces, splits=("test",))
    probs, labels = evaluate.predict(net, first)
    preds = probs.argmax(1)
    maps = cam.compute_cam(net, first.images, targets=preds)
    overlays = np.stack([cam.overlay(face, m) for face, m in zip(first.images, maps)])
    classes = test["classes"]
    titles = [f"{classes[t]} -> {classes[p]}" for t, p in zip(labels, preds)]
    writer = tensorboard.open_writer(folder)
    try:
        writer.add_scalar("test/accuracy", test["accuracy"], step)
        writer.add_scalar("test/macro_f1", test["macro_f1"], step)
        writer.add_figure("test/confusion", plots.confusion(test["confusion_normalized"], classes), step)
        writer.add_figure("test/gradcam", plots.cam_grid(overlays, titles, cols=4), step)
    finally:
        writer.close()
