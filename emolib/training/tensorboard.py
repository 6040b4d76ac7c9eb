"""TensorBoard, opt-in (``logger: tensorboard``) and offline: a run's curves in ``<out_dir>/tensorboard/``.

    emolib train 02 --logger tensorboard       # or train: {logger: tensorboard} in a profile / overrides
    make tensorboard                            # tensorboard --logdir <models root>: every run under it

`EpochScalars` writes every epoch's losses, accuracies, macro-F1, lr and speed (rank 0 only; `fit` drives it
through `emolib.training.run_files.RunFiles`); the research layer adds the test confusion matrix and a few
Grad-CAM images at the end of a notebook's run (`emolib.research.tensorboard_figures`) through `open_writer`.
Steps are epoch numbers (1, 2, ...). A run that starts at epoch k (0 when fresh, else the epoch last.pt holds)
tells TensorBoard to drop the steps after k an earlier run in the same folder wrote, so each epoch shows once.

The tensorboard package is an optional extra: asking for the logger without it is `LoggerUnavailable`, one
line naming the extra.
"""
from __future__ import annotations

from pathlib import Path

from emolib.core.errors import EmolibError

__all__ = ["EXTRA", "FOLDER", "SCALARS", "LoggerUnavailable", "require", "log_dir", "open_writer", "EpochScalars"]

EXTRA = "pip install -e .[tensorboard]"
FOLDER = "tensorboard"
# history key -> TensorBoard tag: a loss, an accuracy... per section, train and val side by side.
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
           "val_acc": "accuracy/val", "val_macro_f1": "macro_f1/val", "lr": "lr",
           "images_per_s": "speed/train_images_per_s", "epoch_time_s": "speed/epoch_time_s"}


class LoggerUnavailable(EmolibError, RuntimeError):
    """``logger: tensorboard`` where the tensorboard package is not installed."""


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:   # torch.utils.tensorboard raises ImportError when tensorboard is missing or too old
        raise LoggerUnavailable(f"logger 'tensorboard' needs the tensorboard package ({e}); install the extra: "
                                f"{EXTRA}") from None
    return SummaryWriter


def require() -> None:
    """Raise `LoggerUnavailable` unless TensorBoard's writer can be imported (every rank checks, so all stop)."""
    _summary_writer()


def log_dir(out_dir: str | Path) -> Path:
    """Where a run's event files go: beside its best.pt and last.pt."""
    return Path(out_dir) / FOLDER


def open_writer(folder: str | Path, purge_after: int | None = None):
    """A SummaryWriter on `folder` (a `log_dir`); purge_after=k drops the steps after k an earlier run left there."""
    return _summary_writer()(log_dir=str(folder), purge_step=None if purge_after is None else purge_after + 1)


class EpochScalars:
    """Every epoch's `SCALARS` from fit's history, flushed at once (a killed run keeps its curves)."""

    def __init__(self, out_dir: str | Path, start_epoch: int):
        self.writer = open_writer(log_dir(out_dir), purge_after=start_epoch)

    def log(self, history: dict) -> None:
        epoch = len(history["train_loss"])
        for key, tag in SCALARS.items():
            if history[key][-1] is not None:
                self.writer.add_scalar(tag, history[key][-1], epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
