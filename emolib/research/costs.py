"""Where a notebook's minutes go: wall and CPU time of each run, and its slowest cells.

The runner measures every notebook it executes (`measured`) and writes the figures into the report's
``<notebook>.run.json`` under ``cost`` (`record`), beside the other timings, so the metrics file stays
identical between identical runs. CPU time is the kernel's (a child process, counted once it has exited)
plus the runner's own (papermill, nbconvert): on a machine with more cores than the run uses, or another job
beside it, CPU time compares runs where wall time does not.

    python -m emolib.research.runner costs            # the published reports' table (a dry run's: --root)
"""
from __future__ import annotations

import json
import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emolib.core.atomic import write_text

__all__ = ["Cost", "measured", "record", "slowest_cells", "table"]

SLOWEST = 5                     # cells listed per notebook


@dataclass
class Cost:
    wall_s: float = 0.0
    cpu_s: float = 0.0           # user + system, the runner's and its finished children's (the kernel)
    slowest_cells: list[dict] = field(default_factory=list)


def _cpu_seconds() -> float:
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


@contextmanager
def measured():
    """Wall and CPU time of the block; the kernel it starts must have exited when the block ends."""
    cost, wall, cpu = Cost(), time.perf_counter(), _cpu_seconds()
    try:
        yield cost
    finally:
        cost.wall_s, cost.cpu_s = round(time.perf_counter() - wall, 2), round(_cpu_seconds() - cpu, 2)


def slowest_cells(book, n: int = SLOWEST) -> list[dict]:
    """The `n` code cells that took longest in an executed notebook (papermill's per-cell duration): index,
    seconds and the cell's first line."""
    cells = [(i, (c.metadata.get("papermill") or {}).get("duration"), c.source.strip().splitlines() or [""])
             for i, c in enumerate(book.cells) if c.cell_type == "code"]
    timed = sorted((c for c in cells if c[1] is not None), key=lambda c: -c[1])[:n]
    return [{"cell": i, "seconds": round(s, 2), "first_line": lines[0][:80]} for i, s, lines in timed]


def record(run_json: Path, cost: Cost) -> None:
    """Add `cost` to a report's ``.run.json`` (a notebook that wrote no metrics has none: nothing to add to)."""
    if run_json.exists():
        data = json.loads(run_json.read_text())
        data["cost"] = asdict(cost)
        write_text(run_json, json.dumps(data, indent=1, sort_keys=True) + "\n")


def table(root: Path, notebooks) -> str:
    """A Markdown table of the reports in `root`: wall and CPU seconds per notebook and their total."""
    rows, wall, cpu = [], 0.0, 0.0
    for nb in notebooks:
        path = Path(root) / "metrics" / f"{nb}.run.json"
        run = json.loads(path.read_text()) if path.exists() else {}
        cost = run.get("cost")
        if cost is None:
            rows.append(f"| {nb} | - | - | - | not measured |")
            continue
        wall, cpu = wall + cost["wall_s"], cpu + cost["cpu_s"]
        top = cost["slowest_cells"][0] if cost["slowest_cells"] else None
        where = f"cell {top['cell']} ({top['seconds']:.0f} s): `{top['first_line']}`" if top else ""
        rows.append(f"| {nb} | {cost['wall_s']:.0f} | {cost['cpu_s']:.0f} | {run.get('torch_threads', '-')} | {where} |")
    return "\n".join(["| notebook | wall s | CPU s | threads | slowest cell |", "|---|---|---|---|---|", *rows,
                      f"| total | {wall:.0f} | {cpu:.0f} | | |"])
