"""Run every benchmark module and write reports/bench/bench.json; `--markdown [JSON]` writes docs/benchmarks.md.

The JSON is flat: one float per figure, plus "_machine" (where and when it ran), "_modules" (per module: its
figures, seconds, inputs and what it skipped) and "_torch_threads". A module whose inputs are missing is
skipped with one line; one that fails is reported, the others still run, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import time
import traceback
from pathlib import Path

import torch

from emolib import bench as bench_pkg
from emolib.bench import Skipped
from emolib.bench._machine import load_average, machine
from emolib.bench._page import render
from emolib.core import paths

SEPARATE = {"peers"}      # `make bench-peers`: needs its own environment (TensorFlow for the `fer` package)


def docs_json() -> Path:
    return paths.home() / "docs" / "bench.json"


def module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__)
                  if not m.name.startswith("_") and m.name not in SEPARATE)


def run_module(name: str, quick: bool) -> tuple[dict[str, float], dict]:
    """(figures, what "_modules" records of the run); never raises but for KeyboardInterrupt."""
    t0 = time.perf_counter()
    try:
        got = importlib.import_module(f"{bench_pkg.__name__}.{name}").run(quick=quick)
    except Skipped as e:
        print(f"[bench] skipped {name}: {e}", flush=True)
        return {}, {"skipped": [str(e)], "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # noqa: BLE001 - one broken module must not cost the others' figures
        traceback.print_exc()
        print(f"[bench] {name} FAILED: {type(e).__name__}: {e}", flush=True)
        return {}, {"failed": f"{type(e).__name__}: {e}", "seconds": round(time.perf_counter() - t0, 1)}
    seconds = time.perf_counter() - t0
    figures = {k: float(v) for k, v in got.items() if not k.startswith("_")}
    info = {"figures": sorted(figures), "seconds": round(seconds, 1)}
    for key in ("inputs", "skipped"):
        if got.get(f"_{key}"):
            info[key] = list(got[f"_{key}"])
    print(f"[bench] {name}: {len(figures)} figures in {seconds:.1f}s", flush=True)
    for line in info.get("skipped", []):
        print(f"[bench] {name}: skipped {line}", flush=True)
    for k, v in figures.items():
        print(f"  {k} = {v:.4g}")
    return figures, info


def write_markdown(source: Path, out: Path) -> None:
    """The page of `source`, with the peers.json beside it (a `make bench-peers` run) when there is one."""
    data = json.loads(source.read_text(encoding="utf-8"))
    peers_json = source.with_name("peers.json")
    peers = json.loads(peers_json.read_text(encoding="utf-8")) if peers_json.is_file() else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, peers), encoding="utf-8")
    print(f"[bench] wrote {paths.shown(out)} from {paths.shown(source)}"
          + (f" and {paths.shown(peers_json)}" if peers else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolib.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="benchmark modules to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    ap.add_argument("--out", default=None, help="output file (default reports/bench/bench.json; with --markdown "
                                                "docs/benchmarks.md)")
    ap.add_argument("--markdown", nargs="?", const=str(docs_json()), default=None, metavar="JSON",
                    help="run nothing: write the Markdown page of a bench JSON (default docs/bench.json)")
    args = ap.parse_args(argv)
    if args.markdown is not None:
        write_markdown(Path(args.markdown), Path(args.out) if args.out else docs_json().with_name("benchmarks.md"))
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start, load_at_start = time.perf_counter(), load_average()
    figures: dict[str, float] = {}
    modules: dict[str, dict] = {}
    for name in module_names():
        if args.only and name not in args.only:
            continue
        got, modules[name] = run_module(name, args.quick)
        figures.update(got)
    figures["_torch_threads"] = float(torch.get_num_threads())   # intra-op threads, not the machine's cores
    result = {**figures, "_modules": modules, "_machine": machine(time.perf_counter() - start, args.quick, args.only,
                                                                   load_at_start)}
    out = paths.reports_dir() / "bench" / "bench.json" if args.out is None else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    m = result["_machine"]
    print(f"[bench] wrote {out} ({m['cpu']}, {m['cpu_capability']}, {m['cpu_affinity']} cores, {m['wall_s']:.0f}s)")
    for name, info in modules.items():
        for line in info.get("skipped", []):
            print(f"[bench] skipped in {name}: {line}")
    return 1 if any("failed" in info for info in modules.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
