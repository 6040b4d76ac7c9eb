"""Data I/O at FER2013 size (35,887 rows): parsing the CSV once vs. reading the decoded .npz cache."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

FER2013_ROWS = 35_887          # Training 28,709 + PublicTest 3,589 + PrivateTest 3,589


def write_fer2013_like_csv(path: Path, n_rows: int, seed: int = 0) -> Path:
    """A CSV in fer2013.csv format. Rows cycle through a pool of random pixel strings: parsing cost
    depends on bytes, not on uniqueness, and formatting 82M numbers in Python would dominate the bench."""
    rng = np.random.default_rng(seed)
    table = [str(v) for v in range(256)]
    pool = [" ".join([table[v] for v in row]) for row in rng.integers(0, 256, (256, 2304)).tolist()]
    usages = ["Training"] * 28_709 + ["PublicTest"] * 3_589 + ["PrivateTest"] * 3_589
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for i in range(n_rows):
            f.write(f"{i % 7},{pool[i % len(pool)]},{usages[i * len(usages) // n_rows]}\n")
    return path


def run(quick: bool = False) -> dict[str, float]:
    n = FER2013_ROWS // 10 if quick else FER2013_ROWS
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("EMOLIB_CACHE")
        os.environ["EMOLIB_CACHE"] = str(Path(tmp) / "cache")   # never touch the user's cache
        try:
            from emolib.data import load
            from emolib.data.fer2013 import read_csv
            csv_path = write_fer2013_like_csv(Path(tmp) / "fer2013.csv", n)
            t0 = time.perf_counter()
            parsed = read_csv(csv_path)
            parse_s = time.perf_counter() - t0
            load("fer2013", csv_path)                               # builds the .npz
            t0 = time.perf_counter()
            cached = load("fer2013", csv_path)                      # reads it back (fingerprint checked)
            cache_s = time.perf_counter() - t0
            assert np.array_equal(cached.images, parsed.images)
        finally:
            if old is None:
                os.environ.pop("EMOLIB_CACHE", None)
            else:
                os.environ["EMOLIB_CACHE"] = old
    suffix = "fer2013_size" if not quick else "fer2013_tenth"
    return {f"csv_parse_s_{suffix}": parse_s, f"cache_load_s_{suffix}": cache_s,
            "csv_parse_vs_cache_load_ratio": parse_s / cache_s}
