"""The research loop's machinery: profile validation, metrics/figures/index writing, the papermill
runner's failure path, and (slow) `make reproduce PROFILE=smoke` end to end, twice, in Chromium."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
import torch

from emolib.core import paths
from emolib.research import notebooks, profiles, records, reporting, runner, session
from emolib.training.state import HISTORY_KEYS

ROOT = paths.home()


# ----------------------------------------------------------------------------------------- config

def _profile(tmp_path, text: str) -> Path:
    p = tmp_path / "trial.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("profile", ["quick", "fer2013", "ferplus", "smoke"])
def test_shipped_profiles_validate_for_every_notebook(profile):
    for nb in notebooks.NOTEBOOKS:
        section = profiles.load_section(profile, nb)
        assert section["profile"] == profile
        assert {"source", "seed", "device"} <= set(section)        # common is merged in


def test_what_make_runs_before_each_notebook_checks_profiles_without_torch(tmp_path):
    """`runner params` (make, before every notebook) checks every section, nested ones included, and the index reads
    the reports, in a process that never imports torch: it would cost each call seconds of CPU."""
    script = ("import sys\nfrom emolib.research import dashboard, results, runner\n"
              "results.checkpoint_name('quick/02_cnn_baseline/cnn_fer'), dashboard._checkpoint_link(dashboard.Path('.'), 'x')\n"
              f"runner.main(['params', '05', '--profile', 'quick', '--out', {str(tmp_path / 'stamp.yaml')!r}])\n"
              "print(sorted({'torch', 'pytorch_grad_cam'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "[]", out.stdout + out.stderr
    assert "cam_variants" in (tmp_path / "stamp.yaml").read_text()
    from emolib import cam
    from emolib.core.settings import CAM_METHODS
    assert sorted(cam.METHODS) == sorted(CAM_METHODS)     # the names profiles check are the classes 05 runs


def test_make_runs_notebooks_side_by_side_on_a_cpu_and_one_at_a_time_on_a_gpu(tmp_path, monkeypatch):
    # 01-04 read no other notebook's checkpoints: at most four at once, one per core
    assert [profiles.side_by_side("smoke", cores=n) for n in (1, 2, 3, 8)] == [1, 2, 3, 4]
    smoke = (paths.params_dir() / "smoke.yaml").read_text()
    assert smoke.count("device: cpu") == 1
    (tmp_path / "gpu").mkdir(), (tmp_path / "auto").mkdir()
    gpu = _profile(tmp_path / "gpu", smoke.replace("device: cpu", "device: 'cuda:0'"))
    assert profiles.side_by_side(gpu, cores=8) == 1                   # they would share one GPU
    auto = _profile(tmp_path / "auto", smoke.replace("device: cpu", "device: auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.side_by_side(auto, cores=2) == 2                  # auto on a machine without a GPU: its CPU


def test_section_overrides_common_and_unknowns_are_errors(tmp_path):
    p = _profile(tmp_path, "common: {seed: 1, device: cpu}\n02_cnn_baseline: {seed: 7, model: cnn_fer}\n")
    assert profiles.load_section(p, "02")["seed"] == 7
    assert profiles.load_section(p, "01")["seed"] == 1
    with pytest.raises(profiles.ConfigError, match=r"trial.yaml \[02_cnn_baseline\]: unknown key\(s\) \['epochs'\]"):
        profiles.load_section(_profile(tmp_path, "02_cnn_baseline: {epochs: 3}\n"), "02")
    with pytest.raises(profiles.ConfigError, match=r"unknown section\(s\) \['07_extra'\]"):
        profiles.load_section(_profile(tmp_path, "07_extra: {}\n"), "01")
    with pytest.raises(profiles.ConfigError, match=r"\[common\]: unknown key\(s\) \['model'\]"):
        profiles.load_section(_profile(tmp_path, "common: {model: cnn_fer}\n"), "02")


def test_wrong_types_are_errors_that_name_the_key(tmp_path):
    cases = {
        "common: {seed: '3'}": r"seed must be int, got '3'",
        "common: {seed: true}": r"seed must be int, got True",
        "common: {device: gpu}": r"device must be 'auto' \| 'cpu' \| 'cuda'",
        "06_webcam_demo: {max_seconds: soon}": r"max_seconds must be float",
        "02_cnn_baseline: {train: {lr: 1e-3}}": r"train: training option 'lr'.*1e-3",
        "02_cnn_baseline: {train: {epochs: 2, warp: 9}}": r"train: unknown training option\(s\) \['warp'\]",
        "02_cnn_baseline: {augment: {hflip: 2.0}}": r"augment: hflip is a probability",
        "03_transfer_learning: {models: mobilenet_v2}": r"models must be list",
        "05_error_analysis: {cam_variants: [{model: cnn_fer}, {model: cnn_fer, guide: true}]}":
            r"cam_variants\[1\]: unknown CAM variant option\(s\) \['guide'\]",
        "05_error_analysis: {cam_variants: [[cnn_fer, hirescam]]}": r"cam_variants\[0\]: a CAM variant is a mapping",
        "05_error_analysis: {cam_variants: [{model: cnn_fer, method: gradcan}]}": r"unknown CAM method 'gradcan'",
        "05_error_analysis: {cam_variants: [{model: cnn_fer, guided: 1}]}": r"CAM variant option 'guided': expected bool",
        "05_error_analysis: {cam_variants: [{method: hirescam}]}": r"cam_variants\[0\]: a CAM variant needs a model",
    }
    for text, message in cases.items():
        with pytest.raises(profiles.ConfigError, match=message):
            nb = "02" if text.startswith("common") else text.split(":")[0]
            profiles.load_section(_profile(tmp_path, text + "\n"), nb)
    assert profiles.load_section(_profile(tmp_path, "06_webcam_demo: {max_seconds: 5}\n"), "06")["max_seconds"] == 5


def test_yaml_exponent_without_a_dot_gets_a_tip(tmp_path):
    with pytest.raises(profiles.ConfigError, match=r"write 1.0e-3"):
        profiles.check("06", {"max_seconds": "1e-3"}, partial=True)


def test_validate_from_a_notebook_namespace():
    values = profiles.load_section("smoke", "01")
    cfg = profiles.validate("01", {"__name__": "__main__", "pd": object(), **values})
    assert cfg.samples_per_class == values["samples_per_class"]
    with pytest.raises(profiles.ConfigError, match="does not define"):
        profiles.validate("01", {"__name__": "__main__", "seed": 0})
    with pytest.raises(profiles.ConfigError, match="unknown key"):
        profiles.validate("01", {**values, "extra": 1})
    with pytest.raises(profiles.ConfigError, match="unknown notebook"):
        profiles.notebook_name("09")


def test_params_stamp_is_rewritten_only_when_the_section_changes(tmp_path):
    out = tmp_path / "stamp.yaml"
    assert runner.write_params("02", "smoke", out)
    assert not runner.write_params("02", "smoke", out)          # same content: untouched (make sees no change)
    assert runner.write_params("02", "quick", out)              # another profile: a change


# ------------------------------------------------------------------------------------ reporting

def test_split_timing_and_portable_paths():
    metrics = {"accuracy": 0.5, "ms_per_face": 3.0, "history": {"epoch_time_s": [1.0], "val_acc": [0.4]},
               "stages": [{"seconds": 2.0, "acc": 1.0}], "fps": 30.0, "timing_free": 1}
    kept, timing = reporting.split_timing(metrics)
    assert kept == {"accuracy": 0.5, "history": {"val_acc": [0.4]}, "stages": [{"acc": 1.0}], "timing_free": 1}
    assert timing == {"ms_per_face": 3.0, "history": {"epoch_time_s": [1.0]}, "stages": {"0": {"seconds": 2.0}},
                      "fps": 30.0}
    p = str(paths.models_dir() / "quick" / "02_cnn_baseline" / "cnn_fer" / "best.pt")
    assert reporting._portable({"best": p, "nan": float("nan")}) == {
        "best": "<models>/quick/02_cnn_baseline/cnn_fer/best.pt", "nan": None}


def _run(nb="02_cnn_baseline"):
    cfg = profiles.validate(nb, profiles.load_section("smoke", nb) | {"profile": "smoke"})
    data = {"source": "unit-test", "fingerprint": "abc123", "n": 3}
    return reporting.start(cfg, data)


def test_a_scratch_run_writes_deterministic_metrics_and_figures_under_scratch(monkeypatch, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    monkeypatch.setenv("EMOLIB_REPORTS", str(tmp_path / "reports"))
    run = _run()
    header = run._repr_markdown_()
    for text in ("Profile", "smoke", "exactly as in the profile", "scratch", "unit-test", "abc123", "Code", "git", "Date"):
        assert text in header
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    run.save_figure(fig, "curve")
    with pytest.raises(ValueError, match="figure name"):
        run.save_figure(fig, "../escape")
    shown = run.write_metrics({"acc": 0.123456, "seconds": 9.9}, headline={"test_accuracy": 0.123456})
    assert "0.1235" in shown and "0.1235" in shown._repr_markdown_()         # rendered as Markdown in a notebook
    root = tmp_path / "reports" / "scratch" / "smoke"      # outside the runner: a scratch run
    assert not (tmp_path / "reports" / "metrics").exists(), "a scratch run must not write the published metrics"
    first = (root / "metrics" / "02_cnn_baseline.json").read_bytes()
    run.date = "another day"
    run.write_metrics({"acc": 0.123456, "seconds": 1.1}, headline={"test_accuracy": 0.123456})
    assert (root / "metrics" / "02_cnn_baseline.json").read_bytes() == first, "timing must not reach the metrics file"
    assert json.loads((root / "metrics" / "02_cnn_baseline.run.json").read_text())["timing"] == {"seconds": 1.1}
    with pytest.raises(ValueError, match="timing figure"):
        run.write_metrics({}, headline={"ms_per_face": 1.0})
    assert (root / "figures" / "02_cnn_baseline" / "curve.png").exists()
    plt.close("all")


# ------------------------------------------------------------------------------- runner failure

def test_a_failing_notebook_names_its_cell_and_keeps_the_previous_report(scratch_home, capsys):
    book = nbformat.read(scratch_home / "notebooks" / "01_data_exploration.ipynb", as_version=4)
    at = next(i for i, c in enumerate(book.cells) if "session.setup(" in c.source) + 1
    book.cells.insert(at, nbformat.v4.new_code_cell('raise RuntimeError("deliberate failure for the test")'))
    nbformat.write(book, scratch_home / "notebooks" / "01_data_exploration.ipynb")
    root = paths.reports_dir()
    for rel, text in [("html/01_data_exploration.html", "OLD REPORT"), ("metrics/01_data_exploration.json", "{}"),
                      ("figures/01_data_exploration/old.png", "png")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    assert runner.main(["run", "01", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "01_data_exploration.ipynb FAILED in cell" in err
    assert "deliberate failure for the test" in err and "RuntimeError" in err
    assert (root / "html/01_data_exploration.html").read_text() == "OLD REPORT"
    assert (root / "metrics/01_data_exploration.json").read_text() == "{}"
    assert (root / "figures/01_data_exploration/old.png").exists()
    assert (runner.staging_dir("01_data_exploration") / "01_data_exploration.ipynb").exists()


def test_invalid_parameters_stop_before_a_kernel_starts(scratch_home, capsys):
    (scratch_home / "params" / "broken.yaml").write_text("01_data_exploration: {hist_bins: many}\n")
    assert runner.main(["run", "01", "--profile", "broken"]) == 2
    assert "hist_bins must be int" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- end to end

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and "src" in a:
            self.refs.append(("img", a["src"]))
        if tag == "a" and a.get("href"):
            self.refs.append(("a", a["href"]))


def _broken_refs(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    broken = []
    for tag, ref in parser.refs:
        url = urlparse(ref)
        if ref.startswith("data:") or url.scheme in ("http", "https", "mailto") or ref.startswith("#"):
            continue        # embedded images, outside links (nbconvert's footer), in-page anchors
        if not (page.parent / unquote(url.path)).exists():
            broken.append(f"{tag} {ref}")
    return broken


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _render(page: Path, profile_dir: Path) -> str:
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", f"--user-data-dir={profile_dir}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _assert_run_files_match_the_metrics(models_root: Path, checkpoints: Path, root: Path) -> None:
    """Every checkpoint folder holds config.yaml and history.csv, and each history.csv is the history of its run in the
    training notebooks' metrics JSON (timing columns in .run.json), value for value."""
    folders = {p.parent for p in checkpoints.rglob("best.pt")}
    assert folders
    for folder in folders:
        assert (folder / "config.yaml").is_file() and (folder / "history.csv").is_file(), folder
    matched = set()
    for nb in notebooks.TRAINING_NOTEBOOKS:
        metrics = json.loads((root / "metrics" / f"{nb}.json").read_text())["metrics"]
        timing = json.loads((root / "metrics" / f"{nb}.run.json").read_text())["timing"]
        runs = ([(metrics["history"], timing["history"])] if "history" in metrics else
                [(h, timing["histories"][name]) for name, h in metrics["histories"].items()])
        for kept, timed in runs:
            history = {**kept, **timed}
            folder = Path(history["last_checkpoint"].replace("<models>", str(models_root), 1)).parent
            with open(folder / "history.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            assert [int(r["epoch"]) for r in rows] == list(range(1, history["completed_epochs"] + 1)), folder
            for k in HISTORY_KEYS:
                assert [float(r[k]) for r in rows] == history[k], (folder, k)
            matched.add(folder)
    assert matched == folders


def _make(target_args, env):
    return subprocess.run(["make", "--no-print-directory", *target_args, "PROFILE=smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_make_reproduce_smoke_twice_identical_and_browsable(tmp_path):
    env = {**os.environ, "EMOLIB_REPORTS": str(tmp_path / "reports"), "EMOLIB_MODELS": str(tmp_path / "models")}
    env.pop(session.RUNNER_ENV, None)
    first_jobs = "2"
    first = _make(["reproduce", f"JOBS={first_jobs}"], env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    root = tmp_path / "reports"
    metrics = {nb: (root / "metrics" / f"{nb}.json").read_bytes() for nb in notebooks.NOTEBOOKS}

    for nb in notebooks.NOTEBOOKS:
        page = (root / "html" / f"{nb}.html").read_text(encoding="utf-8")
        m = json.loads(metrics[nb])
        assert m["profile"] == "smoke" and m["headline"]
        for key, value in m["headline"].items():
            assert records.format_number(value) in page, f"{nb}: headline {key}={value} not in its HTML"
        assert re.search(r"Profile</strong>: smoke", page) and "fingerprint" in page and "Date</strong>" in page
        assert list((root / "figures" / nb).glob("*.png")), f"{nb} saved no figure"
    assert (tmp_path / "models" / "smoke" / "02_cnn_baseline" / "cnn_fer" / "best.pt").exists()
    ensemble_05 = json.loads(metrics["05_error_analysis"])["metrics"]     # 05's ensemble: rows beside the models
    assert [row["init"] for row in ensemble_05["results"]] == ["ensemble"] and len(ensemble_05["ensemble"]) == 4
    assert "ensemble" in ensemble_05["models"] and "ensemble" in ensemble_05["tta_accuracy"]
    _assert_run_files_match_the_metrics(tmp_path / "models", tmp_path / "models" / "smoke", root)
    index = (root / "index.html").read_text()
    assert "not run yet" not in index and "not shown" not in index and index.count("badge ok") == 6
    history = [json.loads(line) for line in (root / "history.jsonl").read_text().splitlines()]
    ran = [r["notebook"] for r in history]          # side by side, so in the order they finished
    assert sorted(ran) == list(notebooks.NOTEBOOKS) and len({r["batch"] for r in history}) == 1
    # A notebook that reads the training notebooks' checkpoints starts only after all of them have finished.
    readers = [n.name for n in notebooks.NOTEBOOK_TABLE if n.reads_checkpoints]
    assert max(map(ran.index, notebooks.TRAINING_NOTEBOOKS)) < min(map(ran.index, readers))
    # JOBS notebooks at a time (default: one per core), each kernel on its share of the cores, as its page says.
    threads = max(1, len(os.sched_getaffinity(0)) // int(first_jobs))
    for nb in notebooks.NOTEBOOKS:
        assert json.loads((root / "metrics" / f"{nb}.run.json").read_text())["torch_threads"] == threads
        assert f"CPU threads</strong>: {threads} (torch)" in (root / "html" / f"{nb}.html").read_text(encoding="utf-8")

    # Nothing changed: make reruns nothing. Then everything again: identical metrics files.
    again = _make(["reproduce"], env)
    assert again.returncode == 0 and "ran in" not in again.stdout, again.stdout[-2000:]
    second = _make(["-B", "reproduce"], env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for nb in notebooks.NOTEBOOKS:
        assert (root / "metrics" / f"{nb}.json").read_bytes() == metrics[nb], f"{nb}: metrics differ between runs"

    # Issue 13's mismatch, reproduced: 02 run as in JupyterLab (papermill without the runner), with an override.
    published = {p: p.read_bytes() for p in [root / "metrics/02_cnn_baseline.json", root / "html/02_cnn_baseline.html",
                                             tmp_path / "models/smoke/02_cnn_baseline/cnn_fer/best.pt"]}
    shown = json.loads(published[root / "metrics/02_cnn_baseline.json"])["headline"]["test_accuracy"]
    import papermill
    old_env = {k: os.environ.get(k) for k in ("EMOLIB_REPORTS", "EMOLIB_MODELS")}
    os.environ.update({k: env[k] for k in old_env})
    try:
        papermill.execute_notebook(str(ROOT / "notebooks/02_cnn_baseline.ipynb"), str(tmp_path / "interactive.ipynb"),
                                   parameters={"profile": "smoke", "overrides": {"train": {"epochs": 2}}},
                                   kernel_name="emolib", cwd=str(ROOT / "notebooks"), progress_bar=False)
    finally:
        for k, v in old_env.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert (root / "scratch/smoke/metrics/02_cnn_baseline.json").exists()
    assert (tmp_path / "models/scratch/smoke/02_cnn_baseline/cnn_fer/best.pt").exists()
    assert all(p.read_bytes() == b for p, b in published.items()), "the interactive run touched a published file"
    # Publishing from JupyterLab: refused with overrides; otherwise the runner reruns the notebook.
    with pytest.raises(runner.PublishRefused):
        runner.publish("01_data_exploration", "smoke", {"hist_bins": 8})
    if subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "notebooks"]).returncode == 0:
        os.environ.update({k: env[k] for k in old_env})
        try:
            runner.publish("01_data_exploration", "smoke", {})
        finally:
            for k, v in old_env.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        assert [json.loads(line)["notebook"] for line in (root / "history.jsonl").read_text().splitlines()][-1] == \
            "01_data_exploration"
    assert _make(["index"], env).returncode == 0
    index = (root / "index.html").read_text()
    row = index.split("<tr id='02_cnn_baseline'>", 1)[1].split("</tr>", 1)[0]
    assert records.format_number(shown) in row and "href='html/02_cnn_baseline.html'" in row
    assert records.format_number(shown) in published[root / "html/02_cnn_baseline.html"].decode()

    # Every image and link resolves, and Chromium renders the pages.
    pages = [root / "index.html"] + [root / "html" / f"{nb}.html" for nb in notebooks.NOTEBOOKS]
    for page in pages:
        assert _broken_refs(page) == [], f"broken references in {page.name}"
    if _chromium() is None:
        pytest.skip("chromium is not installed (CI installs Debian's `chromium`); link checks passed, rendering not checked")
    dom = _render(root / "index.html", tmp_path / "chromium")
    assert "emolib reports" in dom and dom.count("<img") >= 6 and "History of runs" in dom
    shot = Path(os.environ.get("EMOLIB_SCREENSHOTS", tmp_path)) / "index.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={shot}", "--window-size=1280,2400",
                    (root / "index.html").as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, "Chromium drew no screenshot of the index"
    dom = _render(root / "html" / "05_error_analysis.html", tmp_path / "chromium")
    assert "Error analysis" in dom and "data:image/png;base64" in dom
