"""A reports root in which the runner 'published' notebooks 02-04 with result rows (no kernel, no training): what
the results-table tests and the browser test build the index from. Needs the `scratch_home` fixture (conftest)."""
from emolib.core import paths
from emolib.research import records, reporting, results, session

FIVE = ["angry", "fear", "happy", "sad", "neutral"]
# (notebook, model, init, test accuracy): the page lists them in this order, which is not accuracy order
MODELS = [("02_cnn_baseline", "cnn_fer", "scratch", 0.61),
          ("03_transfer_learning", "mobilenet_v2", "ImageNet-1k", 0.83),
          ("03_transfer_learning", "resnet18", "scratch", 0.55),
          ("04_vit_finetune", "vit_conv_48", "scratch", 0.72)]
BEST = max(MODELS, key=lambda m: m[3])
DATA = {"source": "unit-test", "fingerprint": "f00d", "n": 3}


def checkpoint(nb: str, model: str):
    """A stand-in best.pt where training writes it (the index links to the file; it never reads it)."""
    path = paths.checkpoints_root("published", "smoke") / nb / model / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a checkpoint")
    return path


def publish_all(batch: str = "b1") -> dict[str, list[dict]]:
    """Publish 02-04 with `MODELS` as their result rows; returns the rows each notebook wrote."""
    written = {}
    for nb in dict.fromkeys(m[0] for m in MODELS):
        rows = [results.result_row(model=model, init=init, classes=FIVE, parameters=1000 * (i + 1), best_epoch=i + 1,
                                   test={"accuracy": acc, "macro_f1": acc - 0.1, "ece": 0.05, "ms_per_face": 1.25},
                                   checkpoint=checkpoint(nb, model))
                for i, (n, model, init, acc) in enumerate(MODELS) if n == nb]
        publish(nb, {"results": rows}, {"test_accuracy": rows[0]["test_accuracy"]}, batch)
        written[nb] = rows
    return written


def publish(nb: str, metrics: dict, headline: dict, batch: str = "b1", kind: str = "published"):
    """What runner.run_notebook leaves after papermill and nbconvert: metrics, the HTML, then the record."""
    cfg = session.configure(nb, "smoke")
    run = reporting.start(cfg, DATA, kind="published", output_root=paths.reports_dir())
    run.write_metrics(metrics, headline=headline)
    html = paths.reports_dir() / "html" / f"{nb}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(f"<html><body>{nb}</body></html>")
    records.record(nb, "smoke", kind, paths.reports_dir(), batch=batch)
