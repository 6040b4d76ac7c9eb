"""Run the notebooks headless and publish their reports (what `make reproduce` calls).

    python -m emolib.research.runner run 03 --profile quick     # papermill -> HTML -> reports/ (--threads N: torch's)
    python -m emolib.research.runner jobs --profile quick       # how many notebooks make reproduce runs at once
    python -m emolib.research.runner params 03 --profile quick --out reports/.params/03_transfer_learning.yaml
    python -m emolib.research.runner index                      # reports/index.html
    python -m emolib.research.runner dry-run --profile fer2013  # every notebook capped -> reports/dry-run/fer2013/
    python -m emolib.research.runner costs                      # wall and CPU seconds per notebook (emolib.research.costs)

`run` validates the profile's section for the notebook (unknown keys and wrong types stop it before
a kernel starts), executes the notebook with papermill (kernel ``emolib``, working directory
``notebooks/``, the section as parameters), converts it to HTML with nbconvert (images embedded),
and only then moves the HTML, figures and metrics into ``reports/``: the notebook writes them to a
staging folder (``reports/.staging/<notebook>/``), so a failed run leaves the previous report in
place. On failure it prints the notebook's name and the failing cell and exits non-zero; the
executed notebook, error included, stays in the staging folder.

`dry-run` runs every notebook of a profile with training, evaluation and Grad-CAM capped to a few
batches (`emolib.research.dryrun`), into ``<reports>/dry-run/<profile>/`` and ``<models>/dry-run/<profile>/``:
every code path of the profile on a CPU in minutes, each report opening with a banner that says so
and lists what was substituted (only ImageNet weights absent from disk: a random initialization).

`params` writes the profile's section for one notebook to a file, touching it only when the
content changed: make uses these files as prerequisites, so a notebook reruns when its own
section (or the profile) changed, and not when another notebook's section did.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from emolib.core import paths
from emolib.core.atomic import replace_tree, write_text
from emolib.research import costs, dryrun, records
from emolib.research.dashboard import build_index
from emolib.research.notebooks import NOTEBOOKS
from emolib.research.profiles import ConfigError, notebook_name, profile_path, resolve, side_by_side
from emolib.research.session import RUNNER_ENV

KERNEL = "emolib"
# Third-party progress bars in a headless report are noise: tqdm's own switch (emolib's bars follow the run's
# `headless`, which RUNNER_ENV implies).
HEADLESS_ENV = {"TQDM_DISABLE": "1"}
BATCH_ENV = "EMOLIB_BATCH"          # set once per `make` call: the notebooks one `make reproduce` ran share it


def kernel_config():
    """Jupyter config for the kernels the runner starts: CurveZMQ-encrypted channels.

    The kernel manager provisions the keys (the `emolib` kernelspec declares curve support), so
    the kernel no longer logs "Kernel is running over TCP without encryption" on every run.
    """
    from traitlets.config import Config
    return Config({"KernelManager": {"transport_encryption": "auto"}})


class NotebookFailed(RuntimeError):
    """A notebook raised in one of its cells; the message names the notebook and the cell."""


def params_stamp(nb: str, root: Path | None = None) -> Path:
    """<root>/.params/<nb>.yaml: the profile section the current report was (or is about to be) made from."""
    return (root or paths.reports_dir()) / ".params" / f"{nb}.yaml"


def staging_dir(nb: str, root: Path | None = None) -> Path:
    return (root or paths.reports_dir()) / ".staging" / nb


def _failure_message(nb: str, err, executed: Path) -> str:
    source = "\n".join("    " + line for line in str(err.source).strip().splitlines()[-12:])
    return (f"{nb}.ipynb FAILED in cell {err.cell_index} (execution count {err.exec_count}):\n{source}\n"
            f"{err.ename}: {err.evalue}\n"
            f"The previous report stays in place; the executed notebook with the full traceback is {executed}")


@contextmanager
def _kernel_env(values: dict):
    """The environment with `values` set while a kernel starts (it inherits them), as it was afterwards."""
    old = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in old.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def run_notebook(notebook: str, profile: str = "quick", *, timeout: int | None = None, log_output: bool = False,
                 caps: dryrun.Caps | None = None, threads: int | None = None) -> Path:
    """Execute one notebook for `profile` and publish its report; returns <root>/html/<nb>.html.

    `threads`: the kernel's torch threads (``OMP_NUM_THREADS``; default: one per core; `profiles.side_by_side`).

    `caps`: a dry run (`dry_run`): the kind of run is ``dry-run`` (its own reports and checkpoints
    roots), the training sections and sample counts are capped through ``overrides``, the kernel gets the
    caps in `RUNNER_ENV` (the session cuts the evaluation splits), and the report opens with the dry-run banner."""
    import nbformat

    nb = notebook_name(notebook)
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    kind = "published" if caps is None else "dry-run"
    overrides = {} if caps is None else dryrun.cap_overrides(nb, resolve(nb, profile), caps)
    parameters = resolve(nb, profile, overrides)     # complete and checked before a kernel starts
    root = paths.reports_root(kind, profile_path(profile).stem)
    source = paths.notebooks_dir() / f"{nb}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    stage = staging_dir(nb, root)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    executed = stage / f"{nb}.ipynb"

    # What the session reads: figures and metrics go to staging, checkpoints to the kind's root, bars stay off,
    # a dry run's caps reach the session.
    context = {"kind": kind, "output_root": str(stage), "caps": None if caps is None else caps.to_dict()}
    env = {RUNNER_ENV: json.dumps(context), **HEADLESS_ENV}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)       # torch reads it as it starts (and sizes MKL's pool with it)
    with costs.measured() as cost:
        _execute(nb, source, executed, profile, overrides, env, timeout=timeout, log_output=log_output,
                 dry=caps is not None)
    book = nbformat.read(executed, as_version=4)
    cost.slowest_cells = costs.slowest_cells(book)
    costs.record(stage / "metrics" / f"{nb}.run.json", cost)
    if caps is not None:
        _mark_dry_run(book, stage, nb, profile, caps)
    _to_html(book, nb, stage / "html" / f"{nb}.html")

    # Record what this report is made from (make's prerequisite), before the HTML lands so the HTML is
    # newer: `make report NB=.. PROFILE=..` then `make reproduce` with another profile reruns the notebook.
    write_params(nb, profile, params_stamp(nb, root))
    _publish(nb, stage, root)
    records.record(nb, profile, kind, root, batch=os.environ.get(BATCH_ENV))   # what the index trusts
    print(f"{nb}: ran in {cost.wall_s:.1f} s, {cost.cpu_s:.1f} s CPU ({'DRY RUN of ' if caps else ''}profile "
          f"{parameters['profile']}) -> "
          f"{root / 'html' / f'{nb}.html'}")
    return root / "html" / f"{nb}.html"


def _execute(nb: str, source: Path, executed: Path, profile: str, overrides: dict, env: dict, *,
             timeout: int | None, log_output: bool, dry: bool) -> None:
    """papermill runs `source` into `executed` in a kernel started with `env` set; NotebookFailed on an error."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    try:
        with _kernel_env(env):
            # The notebook reads its section itself (emolib.research.session); the runner names the profile and
            # clears any overrides a committed parameters cell might hold: a published report is the profile.
            papermill.execute_notebook(str(source), str(executed),
                                       parameters={"profile": str(profile), "overrides": overrides},
                                       kernel_name=KERNEL, cwd=str(paths.notebooks_dir()), progress_bar=False,
                                       log_output=log_output, execution_timeout=timeout, config=kernel_config())
    except PapermillExecutionError as err:
        raise NotebookFailed(("DRY RUN: " if dry else "") + _failure_message(nb, err, executed)) from None


def _to_html(book, nb: str, out: Path) -> None:
    """The executed notebook as one HTML file, its outputs' images embedded as data: URIs."""
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(book, resources={"metadata": {"name": nb}})
    out.parent.mkdir(parents=True)
    out.write_text(body, encoding="utf-8")


def _mark_dry_run(book, stage: Path, nb: str, profile: str, caps: dryrun.Caps) -> None:
    """The dry-run banner as the report's first cell; the caps and substitutions in its metrics."""
    import nbformat
    substituted = dryrun.substitutions(stage)
    cell = nbformat.v4.new_markdown_cell(dryrun.banner(profile_path(profile).stem, caps, substituted))
    cell["id"] = "dry-run-banner"
    book.cells.insert(0, cell)
    metrics = stage / "metrics" / f"{nb}.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        m["dry_run"] = {"caps": caps.to_dict(), "substituted": substituted}
        write_text(metrics, json.dumps(m, indent=1, sort_keys=True, allow_nan=False) + "\n")


def dry_run(profile: str, notebooks=NOTEBOOKS, caps: dryrun.Caps | None = None, *, log_output: bool = False) -> Path:
    """Every notebook of `profile`, in order, with training, evaluation and Grad-CAM capped
    (`emolib.research.dryrun`), into the dry-run roots (``<reports>/dry-run/<profile>/``,
    ``<models>/dry-run/<profile>/``: the real reports and checkpoints are never touched); the data are
    read as the real run reads them. Returns its index.html; a failing notebook raises NotebookFailed."""
    caps = caps or dryrun.Caps()
    name = profile_path(profile).stem
    root = paths.reports_root("dry-run", name)
    t0 = time.perf_counter()
    substituted = []
    for nb in map(notebook_name, notebooks):
        run_notebook(nb, profile, caps=caps, log_output=log_output)
        metrics = root / "metrics" / f"{nb}.json"
        m = json.loads(metrics.read_text()) if metrics.exists() else {}
        substituted += [f"{nb}: {line}" for line in m.get("dry_run", {}).get("substituted", [])]
    index = build_index(root, banner=dryrun.banner(name, caps, substituted))
    print(f"DRY RUN of profile {name}: {len(notebooks)} notebooks in {time.perf_counter() - t0:.0f} s -> {index}")
    return index


def _publish(nb: str, stage: Path, root: Path | None = None) -> None:
    """Move the staged outputs into the reports root: figures and metrics first, the HTML last."""
    root = root or paths.reports_dir()
    figures = stage / "figures" / nb
    if figures.is_dir():
        replace_tree(figures, root / "figures" / nb)
    elif (root / "figures" / nb).exists():
        shutil.rmtree(root / "figures" / nb)        # this run drew none: stale figures must not stay
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".run.json"):
        src = stage / "metrics" / f"{nb}{suffix}"
        if src.exists():
            os.replace(src, root / "metrics" / f"{nb}{suffix}")
    (root / "html").mkdir(parents=True, exist_ok=True)
    os.replace(stage / "html" / f"{nb}.html", root / "html" / f"{nb}.html")
    shutil.rmtree(stage, ignore_errors=True)


def write_params(notebook: str, profile: str, out: Path) -> bool:
    """Write the notebook's validated section to `out` if it differs from what is there; True if written."""
    nb = notebook_name(notebook)
    text = yaml.safe_dump({nb: resolve(nb, profile)}, sort_keys=True)
    out = Path(out)
    if out.exists() and out.read_text() == text:
        return False
    write_text(out, text)
    return True


# ------------------------------------------------------------------------------ publish from JupyterLab

class PublishRefused(RuntimeError):
    """The notebook or its parameters are not the committed notebook and the profile."""


def _committed_cells(nb: str) -> str | None:
    rel = (paths.notebooks_dir() / f"{nb}.ipynb").relative_to(paths.home())
    try:
        blob = subprocess.run(["git", "-C", str(paths.home()), "show", f"HEAD:{rel.as_posix()}"],
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return records.cells_digest_of(blob)


def check_publishable(notebook: str, profile: str, overrides: dict | None) -> None:
    """Raise PublishRefused unless the run is the profile's and the notebook is the committed one."""
    nb = notebook_name(notebook)
    if overrides is None or overrides:
        what = "cannot be compared with the profile" if overrides is None else f"override {sorted(overrides)}"
        raise PublishRefused(f"{nb}: not published: its parameters {what}; a published report is the "
                             f"profile's experiment (set overrides = {{}} or change params/{profile}.yaml)")
    committed = _committed_cells(nb)
    if committed is None:
        raise PublishRefused(f"{nb}: not published: no committed version to compare with (not a git checkout?)")
    if committed != records.cells_digest(paths.notebooks_dir() / f"{nb}.ipynb"):
        raise PublishRefused(f"{nb}: not published: the saved notebook differs from the committed one; "
                             "commit it (or revert it) first")


def publish(notebook: str, profile: str, overrides: dict | None) -> Path:
    """Publish from JupyterLab: checked (`check_publishable`), then run by the runner exactly as
    `make report NB=..` does, so the published report is always a runner's. Returns its HTML."""
    check_publishable(notebook, profile, overrides)
    html = run_notebook(notebook, profile)
    build_index()
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.research.runner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute one notebook and publish its report")
    p_run.add_argument("notebook", help="e.g. 03 or 03_transfer_learning")
    p_run.add_argument("--profile", default="quick", help="params/<profile>.yaml (default: quick)")
    p_run.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    p_run.add_argument("--log-output", action="store_true", help="echo the notebook's output while it runs")
    p_run.add_argument("--threads", type=int, default=None, help="the kernel's torch threads (default: one per core)")
    p_params = sub.add_parser("params", help="write a notebook's profile section to a file if it changed")
    p_params.add_argument("notebook")
    p_params.add_argument("--profile", default="quick")
    p_params.add_argument("--out", required=True, type=Path)
    p_jobs = sub.add_parser("jobs", help="how many notebooks make reproduce runs at once by default (side_by_side)")
    p_jobs.add_argument("--profile", default="quick")
    p_index = sub.add_parser("index", help="rebuild reports/index.html")
    p_index.add_argument("--root", type=Path, default=None, help="another reports root (e.g. a dry run's)")
    p_dry = sub.add_parser("dry-run", help="every notebook, training/evaluation capped -> <reports>/dry-run/<profile>/")
    p_dry.add_argument("--profile", default="quick")
    p_dry.add_argument("--log-output", action="store_true", help="echo the notebooks' output while they run")
    p_costs = sub.add_parser("costs", help="wall and CPU seconds per notebook of the published reports (Markdown)")
    p_costs.add_argument("--root", type=Path, default=None, help="another reports root (e.g. a dry run's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run_notebook(args.notebook, args.profile, timeout=args.timeout, log_output=args.log_output,
                         threads=args.threads)
        elif args.command == "dry-run":
            dry_run(args.profile, log_output=args.log_output)
        elif args.command == "costs":
            print(costs.table(args.root or paths.reports_dir(), NOTEBOOKS))
        elif args.command == "params":
            write_params(args.notebook, args.profile, args.out)
        elif args.command == "jobs":
            print(side_by_side(args.profile))
        else:
            print(build_index(args.root))
    except ConfigError as e:
        print(f"reproduce: invalid parameters: {e}", file=sys.stderr)
        return 2
    except NotebookFailed as e:
        print(f"reproduce: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
