"""PyTorch against ONNX Runtime: the classifier alone, and the live pipeline end to end.

Each model of `classifier.MODELS` is exported with `emolib.inference.export.export_onnx` (its parity check on
real face crops included: its max |Δp| is a figure too) and timed with ONNX Runtime on the same input
and thread count as the PyTorch figures of `classifier` (prepared model: BatchNorm folded,
channels-last), in the same run so the ratio compares like with like. The live pipeline
(`e2e.time_pipeline`: decode, detect with the live detector, crop, classify, draw) runs with both
backends of the default emotion model, one torch / ORT / cv2 thread as the CLI's live commands run.

Figures: ``classifier_faces_per_s_bs{1,64}_<model>_onnx``, ``classifier_onnx_vs_torch_bs{1,64}_<model>``
(ratio > 1: ONNX Runtime is faster), ``export_parity_max_abs_prob_diff_<model>``,
``e2e_ms_640x480_{1face,4faces}_<live detector>_{torch,onnx}``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from emolib.bench.classifier import MODELS, faces_per_second
from emolib.models import create
from emolib.models.inference import prepare_for_inference, to_channels_last


def _classifier(tmp: Path, window_s: float, repeats: int) -> dict[str, float]:
    from emolib.core.labels import EMOTIONS
    from emolib.inference.export import export_onnx
    from emolib.inference.onnx import OnnxClassifier

    out = {}
    for name, kw in MODELS.items():
        torch.manual_seed(0)
        model = create(name, **kw).eval()
        parity = export_onnx(model, EMOTIONS, tmp / f"{name}.onnx", source="bench")
        out[f"export_parity_max_abs_prob_diff_{name}"] = parity.max_abs_prob_diff
        session = OnnxClassifier(tmp / f"{name}.onnx", threads=torch.get_num_threads())
        fast = prepare_for_inference(model)
        s, c = model.spec.input_size, model.spec.channels
        for bs in (1, 64):
            x = torch.randn(bs, c, s, s)
            torch_fps = faces_per_second(fast, to_channels_last(x), window_s, repeats)
            onnx_fps = faces_per_second(session.probs, x.numpy(), window_s, repeats)
            out[f"classifier_faces_per_s_bs{bs}_{name}_onnx"] = onnx_fps
            out[f"classifier_onnx_vs_torch_bs{bs}_{name}"] = onnx_fps / torch_fps
    return out


def _e2e(tmp: Path, quick: bool) -> dict[str, float]:
    from emolib.bench.e2e import clip_1face, clip_4faces, encode, time_pipeline
    from emolib.core.runtime import cpu_threads
    from emolib.faces.detection import LIVE_DETECTOR, LIVE_THREADS
    from emolib.inference.classifier import DEFAULT_MODEL, load_classifier
    from emolib.inference.export import export_onnx
    from emolib.inference.recognizer import EmotionRecognizer

    model, classes, source = load_classifier(DEFAULT_MODEL)
    export_onnx(model, classes, tmp / "default.onnx", source=source)
    n = 8 if quick else 40
    clips = {"1face": (encode(clip_1face(n)), 1), "4faces": (encode(clip_4faces(n)), 4)}
    out = {}
    with cpu_threads(LIVE_THREADS):
        for backend, model in (("torch", DEFAULT_MODEL), ("onnx", str(tmp / "default.onnx"))):
            recognizer = EmotionRecognizer(model, detector=LIVE_DETECTOR, backend=backend).warmup()
            for clip, (jpegs, faces) in clips.items():
                out[f"e2e_ms_640x480_{clip}_{LIVE_DETECTOR}_{backend}"] = time_pipeline(recognizer, jpegs, faces)["total"]
    return out


def run(quick: bool = False) -> dict[str, float]:
    window_s, repeats = (0.15, 2) if quick else (0.4, 5)
    with tempfile.TemporaryDirectory(prefix="emolib-bench-onnx-") as tmp:
        return _classifier(Path(tmp), window_s, repeats) | _e2e(Path(tmp), quick)
