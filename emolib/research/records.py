"""What the runner published, and whether it still stands: the records the index trusts.

When the runner (emolib.research.runner) has moved a notebook's HTML, figures and metrics into a reports root,
it writes ``<root>/.published/<notebook>.json``: the sha256 of each of those files and of the run's inputs
(the notebook's cells, its resolved parameters, the emolib sources, the metrics of the notebooks whose
checkpoints it reads), and appends one row to ``<root>/history.jsonl``. The index shows a notebook's numbers
only when its metrics and HTML are byte for byte the ones recorded, so a number on the index is always the
number in the HTML beside it; and it marks a report *stale* when an input changed since.

Publishing from JupyterLab is the runner's action (`emolib.research.runner.publish`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from pathlib import Path

import yaml

from emolib.core import paths
from emolib.core.atomic import write_text
from emolib.research.notebooks import TRAINING_NOTEBOOKS
from emolib.research.profiles import ConfigError, notebook_name, resolve

RECORDS = ".published"
HISTORY = "history.jsonl"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str | None:
    return _sha(Path(path).read_bytes()) if Path(path).is_file() else None


def cells_digest(path: Path) -> str | None:
    """The notebook's cell types and sources: outputs a JupyterLab save adds do not count as a change."""
    return cells_digest_of(Path(path).read_bytes()) if Path(path).is_file() else None


def cells_digest_of(notebook_json: bytes | str) -> str:
    cells = json.loads(notebook_json).get("cells", [])
    return _sha(json.dumps([[c.get("cell_type"), "".join(c.get("source", ""))] for c in cells]).encode())


def sources_digest() -> str:
    """The emolib sources a report depends on: all but the command line and the benchmarks (what make's
    prerequisites cover too)."""
    pkg = Path(__file__).resolve().parents[1]      # emolib/
    h = hashlib.sha256()
    for p in sorted(p for p in pkg.rglob("*.py") if p.relative_to(pkg).parts[0] not in ("cli", "bench")):
        h.update(str(p.relative_to(pkg)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def upstream(notebook: str, profile: str) -> list[str]:
    """The notebooks whose checkpoints this one reads: those named in its `runs` ("<notebook>/<model>"),
    and every training notebook for ``model: best``."""
    section = resolve(notebook, profile)
    found = {r.split("/", 1)[0] for r in section.get("runs") or []}
    if section.get("model") == "best":
        found.update(TRAINING_NOTEBOOKS)
    return sorted(found)


def inputs(notebook: str, profile: str, root: Path) -> dict:
    """Digests of everything a report is made from, as they are now."""
    nb = notebook_name(notebook)
    try:
        params = _sha(yaml.safe_dump(resolve(nb, profile), sort_keys=True).encode())
        ups = upstream(nb, profile)
    except ConfigError:
        params, ups = None, []
    return {"notebook": cells_digest(paths.notebooks_dir() / f"{nb}.ipynb"), "params": params,
            "emolib": sources_digest(),
            "upstream": {u: file_digest(Path(root) / "metrics" / f"{u}.json") for u in ups}}


def _outputs(nb: str, root: Path) -> dict:
    figures = sorted((root / "figures" / nb).glob("*.png")) if (root / "figures" / nb).is_dir() else []
    return {"html": file_digest(root / "html" / f"{nb}.html"),
            "metrics": file_digest(root / "metrics" / f"{nb}.json"),
            "figures": {p.name: file_digest(p) for p in figures}}


def record(notebook: str, profile: str, kind: str, root: Path, batch: str | None = None) -> dict:
    """After the runner published `notebook` into `root`: write its record and append a history row.
    batch: the id the notebooks of one `make reproduce` share (one row of the index's history); default: now."""
    nb, root = notebook_name(notebook), Path(root)
    metrics = json.loads((root / "metrics" / f"{nb}.json").read_text())
    run_path = root / "metrics" / f"{nb}.run.json"
    run = json.loads(run_path.read_text()) if run_path.exists() else {}
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    rec = {"notebook": nb, "profile": metrics.get("profile"), "profile_arg": str(profile), "kind": kind,
           "date": run.get("date", now), "code_version": run.get("code_version"),
           "batch": batch or now, "outputs": _outputs(nb, root), "inputs": inputs(nb, profile, root)}
    write_text(root / RECORDS / f"{nb}.json", json.dumps(rec, indent=1, sort_keys=True) + "\n")
    row = {k: rec[k] for k in ("batch", "date", "notebook", "profile", "kind", "code_version")}
    row.update(fingerprint=(metrics.get("data") or {}).get("fingerprint"), headline=metrics.get("headline") or {})
    with open(root / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
    return rec


def status(notebook: str, root: Path) -> dict:
    """How a notebook's report in `root` stands, for the index.

    ``state``: ``missing`` (no report), ``unpublished`` (files the runner did not record, e.g. written by
    an old interactive run), ``modified`` (the metrics or HTML differ from what the runner recorded) or
    ``ok``. ``stale``: the inputs that changed since (notebook, params, emolib, upstream notebooks)."""
    nb, root = notebook_name(notebook), Path(root)
    rec_path = root / RECORDS / f"{nb}.json"
    present = (root / "html" / f"{nb}.html").exists() or (root / "metrics" / f"{nb}.json").exists()
    if not rec_path.exists():
        return {"state": "unpublished" if present else "missing", "stale": []}
    rec = json.loads(rec_path.read_text())
    now = _outputs(nb, root)
    changed = [k for k in ("html", "metrics") if now[k] != rec["outputs"][k]]
    if changed:
        return {"state": "modified", "changed": changed, "stale": [], "record": rec}
    current = inputs(nb, rec.get("profile_arg") or rec["profile"], root)
    stale = [k for k in ("notebook", "params", "emolib") if current[k] != rec["inputs"][k]]
    stale += [f"{u} report" for u, d in current["upstream"].items() if rec["inputs"]["upstream"].get(u) != d]
    return {"state": "ok", "stale": stale, "record": rec,
            "metrics": json.loads((root / "metrics" / f"{nb}.json").read_text()),
            "figures": [n for n, d in now["figures"].items() if rec["outputs"]["figures"].get(n) == d]}


def history(root: Path) -> list[dict]:
    path = Path(root) / HISTORY
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def format_number(v) -> str:
    """How headline numbers appear in reports and the index (the tests look for this exact text)."""
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    return f"{v:.4f}"
