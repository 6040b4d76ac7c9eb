"""Run every benchmark module and write reports/bench/bench.json."""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import time

import torch

from emolib import bench as bench_pkg
from emolib.core import paths

SEPARATE = {"peers"}      # `make bench-peers`: needs its own environment (TensorFlow for the `fer` package)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolib.bench", description=__doc__)
    ap.add_argument("--only", nargs="*", help="benchmark modules to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    ap.add_argument("--out", default=None, help="output JSON (default reports/bench/bench.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    figures: dict[str, float] = {}
    names = [m.name for m in pkgutil.iter_modules(bench_pkg.__path__)
             if not m.name.startswith("_") and m.name not in SEPARATE]
    for name in sorted(names):
        if args.only and name not in args.only:
            continue
        mod = importlib.import_module(f"{bench_pkg.__name__}.{name}")
        t0 = time.perf_counter()
        got = mod.run(quick=args.quick)
        print(f"[bench] {name}: {len(got)} figures in {time.perf_counter() - t0:.1f}s")
        for k, v in got.items():
            print(f"  {k} = {v:.4g}")
        figures.update(got)
    figures["_torch_threads"] = float(torch.get_num_threads())   # intra-op threads, not the machine's cores
    out = paths.reports_dir() / "bench" / "bench.json" if args.out is None else __import__("pathlib").Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"[bench] wrote {out} ({platform.processor() or platform.machine()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
