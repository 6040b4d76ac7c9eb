"""Published vs scratch runs and the index: only what the runner published is shown, beside its HTML;
stale and dry-run reports are marked; publishing from JupyterLab is refused unless it is the profile's run."""
import json
import shutil
import subprocess

import matplotlib
import nbformat
import pytest

from emolib.core import paths
from emolib.research import dashboard, records, reporting, runner, session

matplotlib.use("Agg")
ROOT = paths.home()
NB = "02_cnn_baseline"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """notebooks/ and params/ copied under a temporary EMOLIB_HOME, with fresh reports and models roots."""
    h = tmp_path / "home"
    shutil.copytree(ROOT / "notebooks", h / "notebooks")
    shutil.copytree(ROOT / "params", h / "params")
    for var, sub in [("EMOLIB_HOME", "home"), ("EMOLIB_REPORTS", "reports"), ("EMOLIB_MODELS", "models")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv(session.RUNNER_ENV, raising=False)
    return h


def _fake_runner_publish(monkeypatch, accuracy: float, batch: str, nb: str = NB):
    """What the runner leaves in the published root, without a kernel: metrics, a figure, the HTML showing
    the number, then the record (runner.run_notebook does the same after papermill and nbconvert)."""
    import matplotlib.pyplot as plt
    cfg = session.configure(nb, "smoke")      # "staging" = the root itself here
    run = reporting.start(cfg, {"source": "unit-test", "fingerprint": "f00d", "n": 3}, kind="published",
                          output_root=paths.reports_dir())
    fig, ax = plt.subplots()
    ax.plot([0, accuracy])
    run.save_figure(fig, "curve")
    plt.close(fig)
    run.write_metrics({"acc": accuracy}, headline={"test_accuracy": accuracy})
    html = paths.reports_dir() / "html" / f"{nb}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(f"<html><body>test_accuracy {records.format_number(accuracy)}</body></html>")
    records.record(nb, "smoke", "published", paths.reports_dir(), batch=batch)


def test_scratch_runs_never_write_the_published_roots(home):
    cfg = session.configure(NB, "smoke", {"train": {"epochs": 2}})
    run = reporting.start(cfg, {"source": "unit-test", "fingerprint": "f00d"})
    assert run.kind == "scratch" and run.overrides == {"train.epochs": 2}
    header = run._repr_markdown_()
    assert "overrides train.epochs=2" in header
    # the scratch locations are readable in the notebook (a `<reports>` tag would vanish in the rendered Markdown)
    assert f"outputs in {paths.reports_dir() / 'scratch' / 'smoke'} and " in header, header   # outside the home
    assert "<" not in header
    assert paths.shown(paths.home() / "reports" / "scratch") == "reports/scratch"          # inside it
    assert run.checkpoint_dir("cnn_fer") == paths.models_dir() / "scratch" / "smoke" / NB / "cnn_fer"
    run.write_metrics({"acc": 0.5}, headline={"test_accuracy": 0.5})
    assert (paths.reports_dir() / "scratch" / "smoke" / "metrics" / f"{NB}.json").exists()
    assert not (paths.reports_dir() / "metrics").exists()
    with pytest.raises(ValueError, match="may not be named"):
        paths.reports_root("scratch", "scratch")


def test_a_scratch_05_reads_its_own_checkpoint_else_the_published_one(home):
    cfg = session.configure("05", "smoke")
    run = reporting.start(cfg, {"source": "unit-test", "fingerprint": "f00d"})
    with pytest.raises(FileNotFoundError, match="make report NB=02 PROFILE=smoke"):
        run.trained_checkpoint("02_cnn_baseline/cnn_fer")
    published = paths.models_dir() / "smoke" / "02_cnn_baseline" / "cnn_fer" / "best.pt"
    published.parent.mkdir(parents=True)
    published.write_bytes(b"published")
    assert run.trained_checkpoint("02_cnn_baseline/cnn_fer") == published
    scratch = paths.models_dir() / "scratch" / "smoke" / "02_cnn_baseline" / "cnn_fer" / "best.pt"
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(b"scratch")
    assert run.trained_checkpoint("02_cnn_baseline/cnn_fer") == scratch
    assert run.inputs == {"02_cnn_baseline/cnn_fer": "<models>/scratch/smoke/02_cnn_baseline/cnn_fer/best.pt"}


def test_the_index_shows_only_published_numbers_beside_their_html(home, monkeypatch):
    _fake_runner_publish(monkeypatch, 0.8333, batch="b1")
    index = dashboard.build_index().read_text()
    assert "0.8333" in index and f"href='html/{NB}.html'" in index and "not run yet" in index   # 01: missing
    assert f"href='figures/{NB}/curve.png'" in index and f"src='thumbs/{NB}/curve.png'" in index
    assert "badge ok" in index

    # Today's mismatch (issue 13): an interactive run wrote its numbers over the published metrics.
    metrics = paths.reports_dir() / "metrics" / f"{NB}.json"
    m = json.loads(metrics.read_text())
    m["headline"]["test_accuracy"] = 0.503
    metrics.write_text(json.dumps(m))
    index = dashboard.build_index().read_text()
    table = index.split("History of runs", 1)[0]                     # the history keeps what the runner logged
    assert "0.5030" not in index and "0.8333" not in table and "not shown" in table


def test_stale_reports_are_marked_with_what_changed(home, monkeypatch):
    _fake_runner_publish(monkeypatch, 0.8, batch="b1")
    assert records.status(NB, paths.reports_dir())["stale"] == []
    book = nbformat.read(home / "notebooks" / f"{NB}.ipynb", as_version=4)
    book.cells[-1].source += "\n# edited"
    nbformat.write(book, home / "notebooks" / f"{NB}.ipynb")
    text = (home / "params" / "smoke.yaml").read_text().replace("epochs: 1, batch_size: 32, optimizer", "epochs: 2, batch_size: 32, optimizer")
    (home / "params" / "smoke.yaml").write_text(text)
    assert records.status(NB, paths.reports_dir())["stale"] == ["notebook", "params"]
    index = dashboard.build_index().read_text()
    assert "badge stale" in index and "changed since: notebook, params" in index and "0.8000" in index


def test_history_has_a_row_per_make_call_and_dry_runs_have_their_own_index(home, monkeypatch):
    _fake_runner_publish(monkeypatch, 0.7, batch="b1")
    _fake_runner_publish(monkeypatch, 0.7, batch="b1", nb="01_data_exploration")
    _fake_runner_publish(monkeypatch, 0.9, batch="b2")
    rows = records.history(paths.reports_dir())
    assert [(r["batch"], r["notebook"]) for r in rows] == [("b1", NB), ("b1", "01_data_exploration"), ("b2", NB)]
    index = dashboard.build_index().read_text()
    history = index.split("History of runs", 1)[1]
    assert history.count("<tr>") == 3                     # header + two make calls
    assert history.index("0.9000") < history.index("0.7000")   # newest first

    dry = paths.reports_root("dry-run", "smoke")
    shutil.copytree(paths.reports_dir() / "html", dry / "html")
    shutil.copytree(paths.reports_dir() / "metrics", dry / "metrics")
    records.record(NB, "smoke", "dry-run", dry)
    page = dashboard.build_index(dry).read_text()
    assert "DRY RUN" in page and "badge dry" in page
    assert "dry-run/smoke/index.html" in dashboard.build_index().read_text()


def test_publishing_from_jupyterlab_is_refused_unless_it_is_the_profiles_run(home, monkeypatch):
    with pytest.raises(runner.PublishRefused, match=r"override \['train.epochs'\]"):
        runner.check_publishable(NB, "smoke", {"train.epochs": 2})
    with pytest.raises(runner.PublishRefused, match="not a git checkout"):
        runner.check_publishable(NB, "smoke", {})
    git = ["git", "-C", str(home), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "notebooks"], check=True)
    subprocess.run(git + ["commit", "-qm", "notebooks"], check=True)
    runner.check_publishable(NB, "smoke", {})             # the committed notebook, the profile: allowed
    book = nbformat.read(home / "notebooks" / f"{NB}.ipynb", as_version=4)
    book.cells[0].outputs = []                             # outputs saved by JupyterLab do not count
    book.cells[-1].source += "\nprint('changed')"
    nbformat.write(book, home / "notebooks" / f"{NB}.ipynb")
    with pytest.raises(runner.PublishRefused, match="differs from the committed one"):
        runner.check_publishable(NB, "smoke", {})


def test_upstream_reports_are_the_checkpoints_a_notebook_reads():
    assert records.upstream("05", "quick") == ["02_cnn_baseline", "03_transfer_learning", "04_vit_finetune"]
    assert records.upstream("02", "quick") == []
