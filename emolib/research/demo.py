"""Notebook 06's two choices: which clip stands in for the camera, and which model the demo runs."""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DemoModel", "demo_clip", "demo_model"]


def demo_clip(cfg) -> tuple[Path | None, dict]:
    """(the video to process, or None for a live camera; the data info its report opens with: source, fingerprint).

    Live: no clip. Else `cfg.video_path`, or by default a pan/zoom clip of `cfg.clip_frames` frames over
    scikit-image's astronaut, written to a temporary folder (fingerprinted by its frames' bytes)."""
    if cfg.live:
        where = "the browser's camera" if cfg.camera == "browser" else f"camera {cfg.camera} of the kernel's machine"
        return None, {"source": f"{where} (live)", "fingerprint": "live"}
    if cfg.video_path is not None:
        clip = Path(cfg.video_path)
        return clip, {"source": str(clip), "fingerprint": hashlib.sha256(clip.read_bytes()).hexdigest()[:16]}
    import cv2
    import numpy as np
    from skimage.data import astronaut

    from emolib.inference import video
    frames = video.pan_zoom_frames(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), n=cfg.clip_frames)
    clip = video.write_video(Path(tempfile.mkdtemp()) / "astronaut_pan_zoom.mp4", frames)
    return clip, {"source": f"skimage astronaut, pan/zoom clip of {cfg.clip_frames} frames",
                  "fingerprint": hashlib.sha256(np.stack(frames).tobytes()).hexdigest()[:16]}


@dataclass
class DemoModel:
    """The classifier the demo runs (what `EmotionRecognizer` takes), why (Markdown), and with ``model: best`` the
    checkpoints it was chosen from (`Run.best_trained_checkpoint`'s rows, best first)."""
    classifier: str | Path
    why: str
    candidates: list[dict] = field(default_factory=list)


def demo_model(cfg, run) -> DemoModel:
    """``model: best``: the loop's own best model, the highest validation accuracy among 02-04's checkpoints of the
    profile; any other value names the model itself (on synthetic data, with a word on what that means)."""
    if cfg.model == "best":
        classifier, candidates = run.best_trained_checkpoint()
        why = (f"the loop's best model, **{candidates[0]['run']}** (validation accuracy {candidates[0]['val_acc']:.4f}, "
               f"the highest of the {len(candidates)} checkpoints notebooks 02–04 wrote for profile {cfg.profile})")
        return DemoModel(classifier, why, candidates)
    why = f"**{cfg.model}**, as the profile names it"
    if cfg.source == "synthetic":
        why += (f". This profile's data are drawn synthetic faces ({cfg.source}), so the models its notebooks 02–04 "
                "train have never seen a photograph; a demo on real faces needs a model trained on real ones "
                "(the fer2013 profile demos its own best model, `model: best`)")
    return DemoModel(cfg.model, why)
