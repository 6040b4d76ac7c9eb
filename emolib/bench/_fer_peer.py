"""The peer's side of `make bench-peers`: the `fer` package's own pipeline (Haar cascade + its Keras/TFLite
mini-Xception), timed on the files of a job. emolib.bench.peers runs this file with the interpreter of the
separate peer environment (.venv-peers, TensorFlow), so it imports only the standard library, numpy, cv2 and
fer, never emolib.

    python _fer_peer.py JOB.json OUT.json

JOB: {"repeats": n, "configs": [{"name": "fer", "use_tflite": true}, ...], "items": [{"name", "path"}, ...]}.
OUT: {"versions": {...}, "results": {config: {item: {"ms": median, "faces": [{"box": [x0, y0, x1, y1],
"label", "probs"}]}}}}. Each item: one warm-up call, then `repeats` timed calls of imread + detect_emotions,
with fer's defaults (what `FER()` gives a user) apart from the configuration's use_tflite.
"""
import json
import logging
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")        # TensorFlow's start-up banner is not a result


def time_item(detector, path: str, repeats: int) -> dict:
    import cv2

    def once():
        return detector.detect_emotions(cv2.imread(path))

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = once()
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms": statistics.median(times),
            "faces": [{"box": [int(x), int(y), int(x + w), int(y + h)],
                       "label": max(f["emotions"], key=f["emotions"].get),
                       "probs": {k: float(v) for k, v in f["emotions"].items()}}
                      for f in faces for x, y, w, h in [f["box"]]]}


def main(job_path: str, out_path: str) -> int:
    warnings.filterwarnings("ignore")                      # Keras 3 warns about fer's input names on every call
    logging.getLogger("fer").setLevel(logging.WARNING)
    import cv2
    import fer
    import tensorflow as tf
    from fer.fer import FER

    with open(job_path) as f:
        job = json.load(f)
    results = {}
    for config in job["configs"]:
        detector = FER(use_tflite=config["use_tflite"])
        results[config["name"]] = {item["name"]: time_item(detector, item["path"], job["repeats"])
                                   for item in job["items"]}
    versions = {"fer": fer.__version__, "tensorflow": tf.__version__, "opencv": cv2.__version__,
                "python": sys.version.split()[0], "cv2_threads": cv2.getNumThreads(),
                "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
    with open(out_path, "w") as f:
        json.dump({"versions": versions, "results": results}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
