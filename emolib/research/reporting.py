"""What a report writes besides its notebook: a header, metrics JSON, figures, and the index page.

A notebook opens a `Run` right after loading its data::

    run = reporting.start(cfg, data)   # displays: profile, data + fingerprint, code version, date
    run.save_figure(fig, "confusion")  # -> reports/figures/<notebook>/confusion.png
    run.write_metrics(metrics, headline={"test_accuracy": acc})   # -> reports/metrics/<notebook>.json

The metrics JSON is deterministic: timing figures (seconds, ms per face, FPS, ...), the date and the
code version go to ``<notebook>.run.json`` beside it, so two runs of the same profile write
identical metrics files. Paths under the data, models or reports roots are stored relative to them.

Where they go depends on the kind of run (`emolib.core.paths`): the runner stages them and publishes them
into ``reports/`` when the whole notebook succeeded; a run outside the runner (JupyterLab) is a scratch
run and writes under ``reports/scratch/<profile>/`` and ``models/scratch/<profile>/`` only.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emolib.core import paths
from emolib.core.atomic import write_text
from emolib.core.provenance import code_version
from emolib.research import dryrun
from emolib.research.dryrun import Caps
from emolib.research.notebooks import SCHEMAS, TRAINING_NOTEBOOKS
from emolib.research.profiles import ConfigError, resolve
from emolib.research.records import format_number

__all__ = ["Run", "start", "split_timing", "notebook_of", "is_timing_key", "differences"]

# Keys whose values depend on the machine's speed, not on the experiment.
_TIMING = re.compile(r"(^|_)(seconds|time|times|fps|elapsed|wall|ms)(_|$)|_s$|^ms_per")


def notebook_of(cfg) -> str:
    for nb, cls in SCHEMAS.items():
        if type(cfg) is cls:
            return nb
    raise TypeError(f"not a notebook config: {type(cfg).__name__} (build it with emolib.research.profiles.validate)")


def is_timing_key(key: str) -> bool:
    return bool(_TIMING.search(str(key).lower()))


def split_timing(obj):
    """(obj without timing keys, the timing keys' values) for nested dicts/lists."""
    if isinstance(obj, dict):
        kept, timing = {}, {}
        for k, v in obj.items():
            if is_timing_key(k):
                timing[k] = v
                continue
            kept[k], t = split_timing(v)
            if t:
                timing[k] = t
        return kept, timing
    if isinstance(obj, (list, tuple)):
        pairs = [split_timing(v) for v in obj]
        timing = {str(i): t for i, (_, t) in enumerate(pairs) if t}
        return [p[0] for p in pairs], timing
    return obj, {}


def _portable(obj):
    """JSON-ready: numpy scalars/arrays to Python, NaN to None, absolute paths under a root relative."""
    import numpy as np
    roots = [(f"<{name}>", str(fn())) for name, fn in
             [("models", paths.models_dir), ("reports", paths.reports_dir), ("cache", paths.cache_dir),
              ("data", paths.data_dir), ("home", paths.home)]]
    if isinstance(obj, dict):
        return {str(k): _portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_portable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _portable(obj.tolist())
    if isinstance(obj, np.generic):
        return _portable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str) and os.path.isabs(obj):
        for tag, root in roots:
            if obj == root or obj.startswith(root.rstrip("/") + "/"):
                return tag + obj[len(root.rstrip("/")):]
    return obj


def torch_threads() -> int:
    # imported here, not at the top: the runner and the index use this module without torch
    import torch
    return torch.get_num_threads()


def _write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


@dataclass
class Run:
    notebook: str
    profile: str
    config: dict
    data: dict                                   # source, fingerprint, n, classes, notes
    code_version: str
    date: str
    kind: str = "scratch"                        # emolib.core.paths.KINDS
    overrides: dict | None = None                # values that differ from the profile (None: unknown)
    figures: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)   # checkpoints read from other notebooks' runs
    # Where figures and metrics go (the runner's staging folder, `emolib train --out`; default: the kind's
    # reports root) and where this notebook's models write <name>/best.pt (default: under the kind's root).
    output_root: Path | None = None
    checkpoints: Path | None = None
    caps: Caps | None = None                     # a dry run's (emolib.research.dryrun)
    headless: bool = False                       # run by the runner: no progress bars
    # torch's CPU threads: a CPU run's exact figures depend on them (the order of its sums)
    threads: int = field(default_factory=torch_threads)
    # near_duplicates: drop_from_eval: the standard protocol's whole test split, evaluated beside the de-duplicated one
    standard_test: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.output_root is None:
            self.output_root = paths.reports_root(self.kind, self.profile)
        if self.checkpoints is None:
            self.checkpoints = paths.checkpoints_root(self.kind, self.profile) / self.notebook

    # -- header --------------------------------------------------------------------------------
    def header_lines(self) -> list[str]:
        if self.overrides is None:
            params = "its profile could not be read to compare"
        elif self.overrides:
            params = "overrides " + ", ".join(f"{k}={v!r}" for k, v in self.overrides.items())
        else:
            params = "exactly as in the profile"
        where = {"published": "published by the runner (make reproduce)",
                 "dry-run": "DRY RUN: training and evaluation capped, the numbers mean nothing",
                 "scratch": f"scratch: outputs in {paths.shown(paths.reports_root('scratch', self.profile))} and "
                            f"{paths.shown(paths.checkpoints_root('scratch', self.profile))}; the published reports "
                            "are untouched"}[self.kind]
        return [f"Profile: {self.profile} (params/{self.profile}.yaml), {params}",
                f"Run: {where}",
                f"Data: {self.data.get('source') or 'n/a'} | fingerprint {self.data.get('fingerprint') or 'n/a'}"
                f" | {self.data.get('n', 'n/a')} images",
                f"Code: emolib {self.code_version}",
                f"CPU threads: {self.threads} (torch)",
                f"Date: {self.date}"]

    def _repr_markdown_(self) -> str:
        # escaped: Markdown would take a `<...>` in a value (an override, a path) for an HTML tag and hide it
        return "\n".join(f"- **{line.split(':', 1)[0]}**:{html.escape(line.split(':', 1)[1], quote=False)}"
                         for line in self.header_lines())

    def __repr__(self) -> str:
        return "\n".join(self.header_lines())

    # -- outputs --------------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.output_root / "figures" / self.notebook

    def save_figure(self, fig, name: str, dpi: int = 100):
        """Save a matplotlib figure as figures/<notebook>/<name>.png and return it (it still displays)."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"figure name {name!r}: use letters, digits, '_', '-', '.' only")
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / f"{name}.png"
        # A fixed metadata set keeps the PNG bytes free of the matplotlib version and date.
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        if name not in self.figures:
            self.figures.append(name)
        return fig

    def checkpoint_dir(self, name: str) -> Path:
        """Where this run's training writes best.pt and last.pt: <checkpoints root>/<notebook>/<name>,
        the root being models/<profile> for the runner and models/scratch/<profile> for a scratch run."""
        return self.checkpoints / name

    @property
    def substitute(self):
        """A dry run's recorder of ImageNet weights replaced by a random initialization
        (`emolib.research.experiment.create_model`): it prints the line and keeps it for the report's banner.
        None in a real run, where missing weights are fetched or an error."""
        if self.caps is None:
            return None

        def record(line: str) -> None:
            print(f"DRY RUN: {line}")
            dryrun.record_substitution(self.output_root, line)
        return record

    def trained_checkpoint(self, run: str) -> Path:
        """The best checkpoint another notebook of this profile trained: <root>/<run>/best.pt.

        `run` is "<notebook>/<model>", e.g. "02_cnn_baseline/cnn_fer". The runner reads its own kind's
        checkpoints only. A scratch run reads the scratch checkpoint when one exists (the model you just
        retrained in JupyterLab), else the published one; reading never changes either. The path used is
        printed and recorded in the metrics (``inputs``)."""
        roots = [paths.checkpoints_root(self.kind, self.profile)]
        if self.kind == "scratch":
            roots.append(paths.checkpoints_root("published", self.profile))
        for root in roots:
            path = root / run / "best.pt"
            if path.exists():
                self.inputs[run] = _portable(path)
                if self.kind == "scratch":
                    print(f"{run}: {self.inputs[run]}")
                return path
        nb = run.split("/", 1)[0]
        raise FileNotFoundError(f"no {run}/best.pt under {' or '.join(map(str, roots))}: run {nb} with profile "
                                f"{self.profile} first (make report NB={nb[:2]} PROFILE={self.profile})")

    def best_trained_checkpoint(self, notebooks=TRAINING_NOTEBOOKS) -> tuple[Path, list[dict]]:
        """The checkpoint with the highest validation accuracy (``val_acc`` of its saved metrics)
        among every best.pt the `notebooks` of this profile wrote, and the candidates (best first).
        Like `trained_checkpoint`, a scratch run falls back to the published checkpoints when it has none."""
        monitor = "val_acc"
        from emolib.models.checkpoint import load_checkpoint
        roots = [paths.checkpoints_root(self.kind, self.profile)]
        if self.kind == "scratch":
            roots.append(paths.checkpoints_root("published", self.profile))
        for root in roots:
            found = sorted(p for nb in notebooks for p in (root / nb).glob("*/best.pt"))
            if found:
                break
        if not found:
            raise FileNotFoundError(f"no checkpoint under {root}/{{{','.join(notebooks)}}}: run notebooks "
                                    f"02-04 with profile {self.profile} first (make reproduce PROFILE={self.profile})")
        rows = []
        for p in found:
            ckpt = load_checkpoint(p)
            rows.append({"run": str(p.parent.relative_to(root)), "model": ckpt["model_name"],
                         monitor: ckpt["metrics"].get(monitor), "checkpoint": p})
        rows.sort(key=lambda r: (r[monitor] is None, -(r[monitor] or 0.0), r["run"]))
        return rows[0]["checkpoint"], rows

    def write_metrics(self, metrics: dict, headline: dict):
        """Write metrics/<notebook>.json (deterministic) and <notebook>.run.json (timing, date, code).

        `headline`: the few numbers the index shows (name -> number). Returns a Markdown table of
        them for the notebook to display, formatted as the index formats them.
        """
        if not headline:
            raise ValueError("headline must name at least one number for the index")
        kept, timing = split_timing(_portable(metrics))
        head = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in _portable(headline).items()}
        for k, v in head.items():
            if is_timing_key(k):
                raise ValueError(f"headline {k!r} is a timing figure: it would make the metrics file "
                                 "differ between identical runs; put it in metrics (it goes to .run.json)")
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
                raise ValueError(f"headline {k!r} must be a number (or NaN/None: not defined), got {v!r}")
        root = self.output_root / "metrics"
        _write_json(root / f"{self.notebook}.json", {
            "notebook": self.notebook, "profile": self.profile, "kind": self.kind,
            "overrides": _portable(self.overrides), "inputs": dict(sorted(self.inputs.items())),
            "data": _portable(self.data),
            "config": _portable(self.config), "headline": head, "metrics": kept,
            "figures": sorted(self.figures)})
        _write_json(root / f"{self.notebook}.run.json", {
            "notebook": self.notebook, "date": self.date, "code_version": self.code_version, "timing": timing,
            "torch_threads": self.threads})
        rows = "\n".join(f"| {k} | {format_number(v)} |" for k, v in head.items())
        shown = _portable(paths.reports_root(self.kind, self.profile) / "metrics" / f"{self.notebook}.json")
        return MarkdownText(f"**Headline numbers** ({shown})\n\n| metric | value |\n|---|---|\n{rows}")


class MarkdownText(str):
    """Markdown that a notebook shows rendered (Jupyter calls `_repr_markdown_`) and a shell prints as text: no
    IPython import, so `emolib train` runs where only the training packages are installed."""

    def _repr_markdown_(self) -> str:
        return str(self)


def start(cfg, data=None, **where) -> Run:
    """Open a report for a validated notebook config and its data: FaceArrays, or a dict with at
    least ``source`` and ``fingerprint`` (e.g. a video clip). `where`: the `Run` fields that say what kind
    of run this is and where it writes (kind, output_root, checkpoints, caps, headless); `emolib.research.session`
    passes what the runner said. None of them: a scratch run."""
    info = {}
    if isinstance(data, dict):
        missing = {"source", "fingerprint"} - set(data)
        if missing:
            raise ValueError(f"data info needs {sorted(missing)}")
        info = dict(data)
    elif data is not None:
        info = {"source": data.source, "fingerprint": data.fingerprint, "n": int(len(data)),
                "classes": list(data.classes), "counts": data.counts(), "notes": list(data.notes)}
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nb, values = notebook_of(cfg), asdict(cfg)
    return Run(nb, cfg.profile, values, info, code_version(), date, overrides=differences(nb, cfg.profile, values),
               **where)


def differences(notebook: str, profile: str, values: dict) -> dict | None:
    """The values that differ from the profile's section, "train.epochs"-style for mappings;
    None when the profile cannot be read (then nobody can claim the run is the profile's)."""
    try:
        expected = resolve(notebook, profile)
    except (ConfigError, ValueError):
        return None
    diff = {}
    for key, value in values.items():
        want = expected.get(key)
        if value == want:
            continue
        if isinstance(value, dict) and isinstance(want, dict):
            diff.update({f"{key}.{k}": value.get(k) for k in sorted(set(value) | set(want)) if value.get(k) != want.get(k)})
        else:
            diff[key] = value
    return diff
