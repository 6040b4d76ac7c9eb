"""Headless reports carry no tooling noise (progress bars, tqdm's IProgress warning, the kernel's
"running over TCP without encryption" line, LiteRT's delegate banner), while a notebook's own warnings still show."""
import shutil
import sys

import nbformat
import pytest

from emolib.core import paths
from emolib.research import runner

ROOT = paths.home()
NOISE = ("IProgress", "TqdmWarning", "without encryption", "a bar the report must not show", "it/s]",
         "application/vnd.jupyter.widget-view+json", "XNNPACK")


@pytest.mark.slow
def test_a_report_keeps_real_warnings_and_drops_progress_bars_and_kernel_noise(tmp_path, monkeypatch, capfd):
    home = tmp_path / "home"
    shutil.copytree(ROOT / "notebooks", home / "notebooks")
    shutil.copytree(ROOT / "params", home / "params")
    monkeypatch.setenv("EMOLIB_HOME", str(home))
    monkeypatch.setenv("EMOLIB_REPORTS", str(tmp_path / "reports"))
    book_path = home / "notebooks" / "01_data_exploration.ipynb"
    book = nbformat.read(book_path, as_version=4)
    at = next(i for i, c in enumerate(book.cells) if "session.setup(" in c.source or "session.start(" in c.source) + 1
    book.cells.insert(at, nbformat.v4.new_code_cell(
        "import warnings\nfrom emolib.core import progress\n"   # what emolib.training.loop's epoch bars use,
        # shown as training shows them (`TrainConfig.progress`, off when the run is headless).
        # The texts are joined at run time, so that only an output can contain them whole (not the cell's source).
        "for _ in progress.bar(range(50), show=not run.headless, desc='a bar ' + 'the report must not show'):\n"
        "    pass\n"
        "warnings.warn('a real warning ' + 'the report must keep')\n"
        # LiteRT's "Created TensorFlow Lite XNNPACK delegate" goes to the kernel's fd 2, which reaches the report
        "from emolib.faces import get_detector\nget_detector('blazeface', runtime='litert').nets.reserve(2)"))
    nbformat.write(book, book_path)

    assert runner.main(["run", "01", "--profile", "smoke"]) == 0
    html = (tmp_path / "reports" / "html" / "01_data_exploration.html").read_text(encoding="utf-8")
    assert "a real warning the report must keep" in html
    console = capfd.readouterr()
    for noise in NOISE:
        assert noise not in html, f"{noise!r} in the report"
        assert noise not in console.err, f"{noise!r} on the runner's console"


def test_a_headless_run_trains_without_bars(monkeypatch):
    """The runner's kernels are headless (emolib.research.session): training gets progress=False as an argument."""
    from emolib.core import progress
    from emolib.research import experiment, reporting, session
    assert progress.bar(range(3), show=False).disable
    # shown: a widget in a kernel; as text, on a terminal only (pytest's stderr is none: tqdm decides, disable=None)
    assert progress.bar(range(3)).disable == (not sys.stderr.isatty())
    seen = []
    monkeypatch.setattr(experiment, "train_model", lambda *a, **kw: seen.append(kw["options"]) or {"best_metric": 0})
    cfg, data, _ = session.setup("02", "smoke")
    for headless in (False, True):
        run = reporting.start(cfg, data, headless=headless)
        experiment.train_notebook(cfg, data, run, test=False)
    assert seen == [None, {"progress": False}]
