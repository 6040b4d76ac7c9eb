"""The figures the notebooks show, one function each; every function returns its matplotlib Figure.

Data comes in as plain values (FaceArrays, metrics dicts from `emolib.training.evaluate`, a `fit` history),
so a notebook cell is one call plus `run.save_figure(fig, name)`.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["class_counts", "face_grid", "mean_faces", "intensity_histograms", "learning_curves",
           "study_curves", "confusion", "roc_curves", "gallery", "cam_grid", "deletion_curves", "frame_strip",
           "reliability", "near_duplicate_histograms", "near_duplicate_pairs"]


def class_counts(counts: dict[str, dict[str, int]]):
    """Grouped bars: images per class, one colour per split (`FaceArrays.counts()`)."""
    import pandas as pd
    df = pd.DataFrame(counts).rename_axis("class").reset_index().melt("class", var_name="split", value_name="images")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(df, x="class", y="images", hue="split", ax=ax)
    ax.set_title("images per class and split")
    return fig


def face_grid(images: np.ndarray, titles: Sequence[str] | None = None, cols: int = 8, size: float = 1.2,
              row_labels: Sequence[str] | None = None):
    """Faces (N,H,W) uint8 gray or (N,H,W,3) RGB in a grid, an optional title each."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * (1.25 if titles else 1)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if i < n:
            img = images[i]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:rows]):
            axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def samples_per_class(arrays, per_class: int = 8, seed: int = 0):
    """A row of random faces per class of a FaceArrays."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c, name in enumerate(arrays.classes):
        idx = np.flatnonzero(arrays.labels == c)
        pick = rng.choice(idx, size=min(per_class, idx.size), replace=False) if idx.size else idx
        row = np.zeros((per_class, *arrays.images.shape[1:]), np.uint8)
        row[:pick.size] = arrays.images[np.sort(pick)]
        rows.append(row)
        labels.append(f"{name} ({idx.size})")
    return face_grid(np.concatenate(rows), cols=per_class, row_labels=labels)


def mean_faces(arrays):
    """The mean face of every class."""
    means = [arrays.images[arrays.labels == c].mean(0) if (arrays.labels == c).any()
             else np.zeros(arrays.images.shape[1:]) for c in range(len(arrays.classes))]
    return face_grid(np.stack(means).round().astype(np.uint8), titles=list(arrays.classes),
                     cols=len(arrays.classes), size=1.5)


def intensity_histograms(arrays, bins: int = 32):
    """Pixel-intensity histogram per class (density), all classes on one axis."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    edges = np.linspace(0, 256, bins + 1)
    for c, name in enumerate(arrays.classes):
        px = arrays.images[arrays.labels == c].ravel()
        if px.size:
            hist, _ = np.histogram(px, bins=edges, density=True)
            ax.plot((edges[:-1] + edges[1:]) / 2, hist, label=name)
    ax.set(xlabel="pixel intensity", ylabel="density", title="intensity histogram per class")
    ax.legend(fontsize=8, ncol=2)
    return fig


def learning_curves(histories: dict[str, dict]):
    """Loss and accuracy per epoch (train and validation) for one or more `fit` histories."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, h in histories.items():
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            line, = ax.plot(epochs, h[f"train_{key}"], "o--", ms=3, alpha=0.7, label=f"{name} train")
            ax.plot(epochs, h[f"val_{key}"], "o-", ms=3, color=line.get_color(), label=f"{name} val")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    return fig



def staged_learning_curves(histories: dict[str, dict]):
    """Notebook 03's curves: each run's stage histories ("<run> stage 1 head", "<run> stage 2 fine-tune", in
    order) joined into one curve per run, a dotted line where stage 1 (the head alone) ends."""
    curves = {}
    for key, h in histories.items():
        curve = curves.setdefault(key.split(" stage ")[0], {k: [] for k in ("train_loss", "val_loss", "train_acc", "val_acc")})
        for k in curve:
            curve[k] += h[k]
    fig = learning_curves(curves)
    head_epochs = len(next(h for key, h in histories.items() if key.endswith("stage 1 head"))["val_acc"])
    for ax in fig.axes[:2]:
        ax.axvline(head_epochs + 0.5, color="gray", ls=":", lw=1)
    return fig


def study_curves(variants: Sequence[dict], extra: dict[str, Sequence[float]] | None = None, chance: float | None = None):
    """Validation accuracy per epoch of a recipe study's variants (`emolib.research.studies`), plus `extra`
    curves (name -> per-epoch values, e.g. this run's), with the class prior as a dotted line."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for v in variants:
        ax.plot(np.arange(1, len(v["val_acc"]) + 1), v["val_acc"], "o-", ms=3, label=v["name"])
    for name, values in (extra or {}).items():
        ax.plot(np.arange(1, len(values) + 1), values, "k--", lw=1.5, label=name)
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", lw=1, label="class prior")
    ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1), title="what was tried (validation split)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig

def confusion(matrix, classes: Sequence[str], title: str = "confusion (rows: true class, row-normalised)", ax=None):
    """Seaborn heatmap of a row-normalised confusion matrix."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sns.heatmap(np.asarray(matrix), annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, square=True,
                xticklabels=classes, yticklabels=classes, cbar=False, ax=ax, annot_kws={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig or ax.figure


def confusions(metrics_by_model: dict[str, dict]):
    """One row-normalised confusion heatmap per model, side by side."""
    n = len(metrics_by_model)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    for ax, (name, m) in zip(axes.flat, metrics_by_model.items()):
        confusion(m["confusion_normalized"], m["classes"], title=name, ax=ax)
    fig.tight_layout()
    return fig


def roc_curves(metrics_by_model: dict[str, dict]):
    """One-vs-rest ROC curves per class, one panel per model (`metrics["roc"]`)."""
    n = len(metrics_by_model)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
    for ax, (name, m) in zip(axes.flat, metrics_by_model.items()):
        for cls, curve in m["roc"]["curves"].items():
            ax.plot(curve["fpr"], curve["tpr"], label=f"{cls} {m['roc']['auc'][cls]:.2f}")
        ax.plot([0, 1], [0, 1], ":", color="gray")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{name} (macro AUC "
               f"{m['roc']['macro_auc']:.3f})" if m["roc"]["macro_auc"] is not None else name)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def reliability(metrics_by_model: dict[str, dict]):
    """Reliability diagram (accuracy vs confidence per bin) for each model."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name, m in metrics_by_model.items():
        cal = m["calibration"]
        pts = [(c, a) for c, a in zip(cal["bin_confidence"], cal["bin_accuracy"]) if c is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"{name} ECE {m['ece']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="confidence", ylabel="accuracy", title="calibration")
    ax.legend(fontsize=7)
    return fig


def gallery(images: np.ndarray, probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], cols: int = 6):
    """Faces titled with their true class and the model's top-3 (class and probability)."""
    titles = []
    for p, y in zip(probs, labels):
        top = np.argsort(-p)[:3]
        titles.append(f"true {classes[y]}\n" + "\n".join(f"{classes[k]} {p[k]:.2f}" for k in top))
    fig = face_grid(images, cols=cols, size=1.6)
    for ax, t in zip(fig.axes, titles):
        ax.set_title(t, fontsize=6)
    fig.tight_layout()
    return fig


def cam_grid(overlays: np.ndarray, titles: Sequence[str], cols: int = 8):
    """Grad-CAM overlays (N,H,W,3) RGB uint8 with captions."""
    return face_grid(overlays, titles=titles, cols=cols, size=1.5)


def deletion_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Mean confidence vs removed fraction, one line per model (or per map kind)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, (fractions, conf) in curves.items():
        ax.plot(fractions, np.asarray(conf).mean(0), "o-", ms=3, label=name)
    ax.set(xlabel="share of most-highlighted pixels removed", ylabel="confidence in the class",
           title="deletion curves (lower = more faithful map)")
    ax.legend(fontsize=7)
    return fig


def frame_strip(frames_rgb: Sequence[np.ndarray], titles: Sequence[str] | None = None, cols: int = 3):
    """Video frames (RGB uint8) in a grid."""
    rows = max(1, -(-len(frames_rgb) // cols))
    h, w = frames_rgb[0].shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4, rows * 4 * h / w), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(frames_rgb):
            ax.imshow(frames_rgb[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def near_duplicate_histograms(found: dict):
    """Two panels from `emolib.data.near_duplicates.audit`: the Hamming distances of the reported pairs, and of
    a random sample of the other pairs with the radius marked (the margin between them is what it relies on)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    reported = np.asarray(found["distance_histogram"])
    left.bar(np.arange(len(reported)), reported, color="C3")
    left.set(title=f"reported pairs ({found['n_pairs']})", xlabel="Hamming distance", ylabel="pairs",
             xticks=np.arange(len(reported)))
    sampled = np.asarray(found["random_pair_histogram"])
    right.bar(np.arange(len(sampled)), sampled, color="C0", width=1.0)
    right.axvline(found["radius"] + 0.5, color="C3", linestyle="--", label=f"radius {found['radius']}")
    right.set(title=f"random pairs ({found['n_random_pairs']:,} sampled; hash only)", xlabel="Hamming distance",
              ylabel="pairs", xlim=(-0.5, found["hash_bits"] + 0.5))
    right.legend(loc="upper left")
    fig.tight_layout()
    return fig


def near_duplicate_pairs(arrays, found: dict, max_pairs: int = 8, cols: int = 4):
    """The first `max_pairs` reported pairs side by side, each face titled with its row, split and label; a pair
    whose labels differ is marked "≠", a mirrored one "(mirror)". Cross-split pairs come first."""
    pairs = sorted(found["pairs"], key=lambda p: (arrays.splits[p[0]] == arrays.splits[p[1]], p[2], p[0]))
    images, titles = [], []
    for i, j, dist, mirrored in pairs[:max_pairs]:
        mark = "≠ " if arrays.labels[i] != arrays.labels[j] else ""
        for k, row in enumerate((i, j)):
            images.append(arrays.images[row])
            extra = f"\nd={dist}{' (mirror)' if mirrored else ''}" if k else ""
            titles.append(f"{mark}#{row} {arrays.splits[row]} {arrays.classes[arrays.labels[row]]}{extra}")
    if not images:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no near-duplicate pairs", ha="center", va="center")
        return fig
    return face_grid(np.stack(images), titles, cols=2 * cols, size=1.3)
