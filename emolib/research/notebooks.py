"""The notebooks, in one table: name, parameters schema, and what the runner and make need to know of each.

    python -m emolib.research.notebooks names      # what the Makefile reads: all, trains, reads-checkpoints

A notebook's schema is a dataclass of its parameters (the common fields plus its own); `emolib.research.profiles`
checks a profile's sections against them. Everything else that depends on which notebook is which (which ones
`emolib train` takes, which reports must be made before which, what a dry run caps) reads `NOTEBOOK_TABLE`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from emolib.core.settings import Device


@dataclass
class Common:
    profile: str                      # the params/<profile>.yaml this run comes from (set by the runner)
    source: str                       # data source for emolib.data.load: synthetic | fer2013 | folder | ferplus
    data_path: str | None             # a local file/folder for fer2013, folder or ferplus; None = default lookup
    data_options: dict                # keyword options for emolib.data.load (synthetic: n, seed; ferplus: label_mode, contempt)
    classes: str | list               # "all" (FER2013's 7), "five", "eight" (FER+'s: the 7 and contempt) or class names
    seed: int                         # seeds training, sampling and augmentation
    device: Device                    # auto | cpu | cuda | cuda:<i> (emolib.core.runtime.resolve_device)
    near_duplicates: Literal["keep", "drop_from_eval"]   # keep: report only; drop_from_eval: val/test rows with a
    #                                   near-duplicate in train leave the evaluation (emolib.data.near_duplicates)
    near_duplicate_radius: int        # Hamming radius of the near-duplicate audit, of 64 bits


# Common values a profile may leave out (every other key it must set): the data options' documented defaults.
COMMON_DEFAULTS = {"near_duplicates": "keep", "near_duplicate_radius": 4}


@dataclass
class DataExploration(Common):
    samples_per_class: int            # faces shown per class in the sample grid
    hist_bins: int                    # bins of the intensity histograms
    max_issue_examples: int           # blank/duplicate images shown at most


@dataclass
class CNNBaseline(Common):
    model: str                        # a registry name (emolib.models.list_models())
    train: dict                       # emolib.training.loop.TrainConfig fields
    augment: dict                     # emolib.core.settings.AugmentConfig fields
    balanced: bool                    # class-balanced sampling of the training rows
    tta: str | None                   # test-time augmentation for the test metrics: None | flip | tencrop


@dataclass
class TransferLearning(Common):
    models: list                      # registry names of ImageNet backbones to compare
    input_size: int                   # side the faces are resized to for the backbones
    pretrained: bool                  # ImageNet weights, next to a from-scratch twin of each backbone (same recipe)
    head_train: dict                  # stage 1 (backbone frozen, head only): TrainConfig fields
    finetune_train: dict              # stage 2 (deeper stages unfrozen, param groups): TrainConfig fields
    unfreeze_stages: int | None       # how many of the deepest feature stages stage 2 trains; None = all
    augment: dict                     # AugmentConfig fields


@dataclass
class ViTFinetune(Common):
    model: str                        # vit_conv_48 (small-data ViT, from scratch, CPU) or vit_b_16 (ImageNet, GPU)
    pretrained: bool                  # ImageNet weights (vit_b_16; needs the download or a local file)
    unfreeze_blocks: int | None       # the last k encoder blocks train (plus the head); None = all of it
    train: dict                       # TrainConfig fields (lower lr, a scheduler)
    augment: dict                     # AugmentConfig fields (stronger than the CNNs')


@dataclass
class ErrorAnalysis(Common):
    runs: list                        # "<notebook>/<model>" runs whose best checkpoints are compared
    pretrained_models: list           # registry models used as they come (e.g. fer2013-mini-xception)
    tta_modes: list                   # test-time augmentations compared: flip, tencrop
    ensemble: list | Literal["all"]   # models whose mean probability is scored beside them: all, names, [] = none
    cam_method: Literal["gradcam", "gradcam++", "eigencam", "hirescam", "layercam"]
    cam_variants: list                # extra rows of the evidence table: {model, method, layer, eigen_smooth, guided}
    cam_samples: int                  # test faces per model for the Grad-CAM-in-mask score
    deletion_steps: int               # points on the deletion curve
    gallery_size: int                 # misclassified faces shown


@dataclass
class WebcamDemo(Common):
    live: bool                        # True: camera loop in JupyterLab; False: process a video (headless)
    camera: int | Literal["browser"]  # live: "browser" (the browser's camera) or a camera index on the kernel's machine
    max_seconds: float                # the live loop stops after this long (or the stop button / interrupt)
    model: str                        # registry name, a checkpoint path (.pt), or "best": 02-04's best by val accuracy
    detector: str                     # face detector: blazeface (live default) | blazeface_full | ssd | haar
    video_path: str | None            # video file for headless mode; None = a clip made from a real photo
    clip_frames: int                  # frames of the generated clip
    frames_shown: int                 # annotated frames embedded in the report


@dataclass(frozen=True)
class Notebook:
    name: str                                 # notebooks/<name>.ipynb
    schema: type                              # its parameters (a dataclass above)
    trains: bool = False                      # writes checkpoints: `emolib train` takes it, `model: best` picks among them
    reads_checkpoints: bool = False           # reads the training notebooks' checkpoints: its report is made after theirs
    sample_parameters: tuple[str, ...] = ()   # how many faces go through the expensive paths: a dry run caps them


NOTEBOOK_TABLE = (
    Notebook("01_data_exploration", DataExploration),
    Notebook("02_cnn_baseline", CNNBaseline, trains=True),
    Notebook("03_transfer_learning", TransferLearning, trains=True),
    Notebook("04_vit_finetune", ViTFinetune, trains=True),
    Notebook("05_error_analysis", ErrorAnalysis, reads_checkpoints=True, sample_parameters=("cam_samples",)),
    Notebook("06_webcam_demo", WebcamDemo, reads_checkpoints=True),     # `model: best`
)
NOTEBOOKS = tuple(n.name for n in NOTEBOOK_TABLE)
SCHEMAS: dict[str, type] = {n.name: n.schema for n in NOTEBOOK_TABLE}
TRAINING_NOTEBOOKS = tuple(n.name for n in NOTEBOOK_TABLE if n.trains)


def notebook(name: str) -> Notebook:
    """The table's row of a full notebook name."""
    return next(n for n in NOTEBOOK_TABLE if n.name == name)


if __name__ == "__main__":      # the Makefile: `python -m emolib.research.notebooks all|trains|reads-checkpoints`
    rows = {"all": NOTEBOOK_TABLE, "trains": [n for n in NOTEBOOK_TABLE if n.trains],
            "reads-checkpoints": [n for n in NOTEBOOK_TABLE if n.reads_checkpoints]}[sys.argv[1]]
    print(" ".join(n.name for n in rows))
