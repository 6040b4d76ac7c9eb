"""Run every benchmark module and write reports/bench/bench.json; `--markdown [JSON]` writes docs/benchmarks.md.

The JSON is flat: one float per figure, plus "_machine" (where and when it ran), "_modules" (per module: its
figures, seconds, inputs and what it skipped) and "_torch_threads". A module whose inputs are missing is
skipped with one line; one that fails is reported, the others still run, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import time
import traceback
from pathlib import Path

import torch

from emolib import bench as bench_pkg
from emolib.bench import Skipped
from emolib.bench._page import render
from emolib.core import paths, provenance

SEPARATE = {"peers"}      # `make bench-peers`: needs its own environment (TensorFlow for the `fer` package)


def docs_json() -> Path:
    return paths.home() / "docs" / "bench.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average: other processes on the cores disturb every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine(wall_s: float, quick: bool, only: list[str] | None, load_at_start: float | None = None) -> dict:
    """The machine and the code a run measured: the page's header."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:                               # not on macOS
        affinity = os.cpu_count()
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), "cpu_affinity": affinity, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "emolib": provenance.__version__,
            "commit": provenance.git_commit(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(wall_s, 1), "quick": quick, "only": only,
            "load_avg_at_start": load_at_start, "load_avg_at_end": load_average()}


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
    data = json.loads(source.read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    print(f"[bench] wrote {paths.shown(out)} from {paths.shown(source)}")


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
