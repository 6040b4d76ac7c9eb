"""Evaluation: predictions and the metrics a report shows, as plain JSON-serialisable data.

`run_batches` is the one evaluation loop (eval mode, no autograd, optional autocast), shared with
`emolib.training.loop.evaluate_loss`. `predict` runs it over a FaceLoader (or FaceArrays, wrapped in a
non-augmented loader) and returns softmax probabilities; `metrics_from_probs` turns probabilities and labels into accuracy,
macro F1, per-class precision/recall/F1, confusion matrices, one-vs-rest ROC/AUC, calibration
(ECE + reliability-diagram bins) and top-k accuracy. Notebooks draw these; nothing here plots.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)
from torch import nn

from emolib.core.runtime import amp_dtype, autocast, module_device, resolve_device
from emolib.data.arrays import FaceArrays
from emolib.models.inference import channels_last_on_cpu

TTA_MODES = (None, "flip", "tencrop")
ECE_BINS = 15
# Ten-crop takes crops of this share of the side (40 px of a 48 px face) and resizes them back.
TENCROP_FRACTION = 40 / 48


def run_batches(model: nn.Module, loader, device=None, *, forward=None, amp: bool = False):
    """THE evaluation loop: (outputs, labels) of `model` over every (x, y) batch of `loader`.

    The model is in eval mode under torch.inference_mode (its train/eval mode is restored
    afterwards), with autocast when `amp` applies (`emolib.core.runtime.amp_dtype`). `forward(x)` maps a
    batch to its outputs (default: the model's logits, as float32). Returns two CPU tensors, the
    outputs concatenated over the batches and the int64 labels (or the float N×C distributions a FER+
    training loader yields); both have 0 rows for an empty loader.
    """
    device = resolve_device(device) if device is not None else module_device(model)
    forward = forward or (lambda x: model(x).float())
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    try:
        with torch.inference_mode(), autocast(device, amp_dtype(device, amp)):
            for x, y in loader:
                # Kept where they are until the end: a copy to the CPU per batch would wait for the device each time.
                outputs.append(forward(x.to(device, non_blocking=True)).float())
                labels.append(y)
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    labels = torch.cat(labels).cpu()
    return torch.cat(outputs).cpu(), labels if labels.is_floating_point() else labels.long()


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices of a batch's targets: the labels, or each distribution's top class."""
    return targets.argmax(1) if targets.ndim == 2 else targets


def _as_loader(model: nn.Module, data, batch_size: int, device):
    """FaceArrays -> a non-augmented, unshuffled FaceLoader built from the model's spec; loaders pass through."""
    if isinstance(data, FaceArrays):
        from emolib.training.loader import FaceLoader
        if not hasattr(model, "spec"):
            raise ValueError("predict on FaceArrays needs a model with .spec (use emolib.models.create) "
                             "to derive preprocessing; or pass a FaceLoader")
        return FaceLoader(data, model.spec, batch_size=batch_size, train=False, device=device)
    if not hasattr(data, "__iter__"):
        raise TypeError(f"expected FaceArrays or a FaceLoader, got {type(data).__name__}")
    return data


def _tta_logits_to_probs(model: nn.Module, x: torch.Tensor, tta: str | None) -> torch.Tensor:
    """Softmax probabilities for one preprocessed batch, averaged over the test-time views."""
    if tta is None:
        return F.softmax(model(x).float(), dim=1)
    if tta == "flip":
        views = [x, TF.horizontal_flip(x)]
    else:  # "tencrop"
        # x is already normalized. Cropping, flipping and (bilinear, antialiased) resizing are convex
        # combinations of pixels, so they commute with the per-channel affine normalization: cropping
        # the normalized tensor equals normalizing the crops of the raw image.
        size = x.shape[-1]
        crop = max(1, round(size * TENCROP_FRACTION))
        views = [TF.resize(v, [size, size], antialias=True) for v in TF.ten_crop(x, [crop, crop])]
    return torch.stack([F.softmax(model(v).float(), dim=1) for v in views]).mean(0)


def predict(model: nn.Module, data, *, tta: str | None = None, batch_size: int = 256,
            device=None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N×C float32) and labels (N int64) of `model` over a loader or FaceArrays.

    tta: None, "flip" (average with the mirrored face) or "tencrop" (four corners + centre, each also
    mirrored, at 40/48 of the side, resized back to the model's input size).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta {tta!r}; choose from {TTA_MODES}")
    device = resolve_device(device) if device is not None else module_device(model)
    loader = _as_loader(model, data, batch_size, device)
    with channels_last_on_cpu(model):
        probs, labels = run_batches(model, loader, device, forward=lambda x: _tta_logits_to_probs(model, x, tta))
    if not len(labels):
        raise ValueError("predict got an empty dataset")
    return probs.numpy(), hard_labels(labels).numpy().astype(np.int64)


def calibration(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """Expected calibration error over equal-width confidence bins, and the reliability-diagram data.

    Bin i holds predictions with confidence in (i/n, (i+1)/n]; empty bins report None for their
    confidence and accuracy. ECE = sum over bins of |accuracy - confidence| × share of samples.
    """
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins; a confidence of exactly 0 (impossible for a softmax max) would go to bin 0
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    ece, bin_conf, bin_acc, bin_count = 0.0, [], [], []
    for b in range(n_bins):
        m = which == b
        k = int(m.sum())
        bin_count.append(k)
        if k == 0:
            bin_conf.append(None)
            bin_acc.append(None)
            continue
        c, a = float(conf[m].mean()), float(correct[m].mean())
        bin_conf.append(c)
        bin_acc.append(a)
        ece += abs(a - c) * k / len(labels)
    return {"ece": float(ece), "bin_edges": edges.tolist(), "bin_confidence": bin_conf,
            "bin_accuracy": bin_acc, "bin_count": bin_count}


def roc_one_vs_rest(probs: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Per-class one-vs-rest ROC curves and AUC; classes with no positives (or no negatives) are skipped."""
    curves, auc, notes = {}, {}, []
    for c, name in enumerate(classes):
        positive = labels == c
        if positive.all() or not positive.any():
            notes.append(f"ROC skipped for {name!r}: {'no' if not positive.any() else 'only'} "
                         f"samples of this class in the labels")
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        curves[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        auc[name] = float(roc_auc_score(positive, probs[:, c]))
    macro = float(np.mean(list(auc.values()))) if auc else None
    return {"curves": curves, "auc": auc, "macro_auc": macro, "notes": notes}


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Every evaluation figure from probabilities N×C and integer labels N, as plain floats and lists."""
    probs, labels, classes = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64), list(classes)
    n, num_classes = probs.shape
    if num_classes != len(classes):
        raise ValueError(f"probs have {num_classes} columns but {len(classes)} classes were given: {classes}")
    if len(labels) != n:
        raise ValueError(f"{n} rows of probabilities but {len(labels)} labels")
    if n == 0:
        raise ValueError("no samples to evaluate")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    preds = probs.argmax(1)
    all_labels = list(range(num_classes))

    report = classification_report(labels, preds, labels=all_labels, target_names=classes,
                                   output_dict=True, zero_division=0)
    per_class = {name: {"precision": float(report[name]["precision"]), "recall": float(report[name]["recall"]),
                        "f1": float(report[name]["f1-score"]), "support": int(report[name]["support"])}
                 for name in classes}
    cm = confusion_matrix(labels, preds, labels=all_labels)
    row_sums = cm.sum(1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)

    top_k = {}
    for k in (1, 2, 3):
        if k >= num_classes:   # every class is in the top k: the score is 1 by construction
            break
        scores = probs[:, 1] if num_classes == 2 else probs
        top_k[f"top{k}"] = float(top_k_accuracy_score(labels, scores, k=k, labels=all_labels))

    absent = [c for c, s in per_class.items() if s["support"] == 0]
    notes = [f"no samples of {absent} in the labels: their recall/F1 are 0 by convention and macro F1 "
             f"counts them only if they were predicted"] if absent else []
    roc = roc_one_vs_rest(probs, labels, classes)
    calib = calibration(probs, labels)
    return {
        "n": int(n),
        "classes": classes,
        "accuracy": float(accuracy_score(labels, preds)),
        # macro over classes present in labels or predictions (scikit-learn's default)
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": cm.tolist(),
        "confusion_normalized": cm_norm.tolist(),
        "roc": roc,
        "macro_auc": roc["macro_auc"],
        "calibration": calib,
        "ece": calib["ece"],
        "top_k": top_k,
        "nll": float(-np.log(np.clip(probs[np.arange(n), labels], 1e-12, None)).mean()),
        "notes": notes + roc["notes"],
    }


def evaluate(model: nn.Module, data, classes=None, tta: str | None = None, *, batch_size: int = 256,
             device=None) -> dict:
    """predict + metrics_from_probs + timing; `classes` default to the data's own class names."""
    classes = list(classes if classes is not None else data.classes)
    t0 = time.perf_counter()
    probs, labels = predict(model, data, tta=tta, batch_size=batch_size, device=device)
    seconds = time.perf_counter() - t0
    out = metrics_from_probs(probs, labels, classes)
    out.update(tta=tta, seconds=float(seconds), ms_per_face=float(1000 * seconds / len(labels)))
    return out


def most_confused_pairs(confusion, classes, k: int = 5) -> list[dict]:
    """The k largest off-diagonal cells of a count confusion matrix (rows = true class), largest first."""
    cm = np.asarray(confusion)
    row_sums = cm.sum(1)
    pairs = [{"true": classes[i], "predicted": classes[j], "count": int(cm[i, j]),
              "rate": float(cm[i, j] / row_sums[i])}
             for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    pairs.sort(key=lambda p: (-p["count"], -p["rate"], p["true"], p["predicted"]))
    return pairs[:k]
