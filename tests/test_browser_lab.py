"""JupyterLab in a real browser: Debian's chromium, headless, driven by playwright, against a JupyterLab
started here on 127.0.0.1 with a token (offline, loopback only).

- notebook 02 run cell by cell as a user would (Run All): no error output, a progress widget while it
  trains, the published report and checkpoint untouched (the run is a scratch run), and once saved, nothing for
  git to commit (the project's nbstripout filter, in a git checkout of the notebooks);
- notebook 06 in live mode with Chromium's fake camera playing a clip made from a real photo: annotated
  frames with a face and a label come back from the kernel; the Stop button ends the cell.

Screenshots and the live figures go to reports/test-artifacts/browser/ (git-ignored; EMOLIB_TEST_ARTIFACTS
moves it). CI installs chromium (.ci/run) and playwright (the dev extra); never `playwright install`.
"""
import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import nbformat
import pytest
from skimage import data as skimage_data

from emolib.core import paths
from emolib.inference.video import pan_zoom_frames
from emolib.research import session

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")]
TOKEN = "emolib-browser-test"
# Notebook settings for the test's JupyterLab: every cell stays in the page (no windowing), no news, no update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def write_y4m(path: Path, frames_bgr, fps: int = 15) -> Path:
    """Frames as a YUV4MPEG2 (4:2:0) file: what --use-file-for-fake-video-capture plays, in a loop."""
    h, w = frames_bgr[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_bgr:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts():
    out = Path(os.environ.get("EMOLIB_TEST_ARTIFACTS") or paths.home() / "reports" / "test-artifacts") / "browser"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A copy of notebooks/ and params/ (JupyterLab saves what it runs: the repository's files stay as they are),
    with its own reports and models roots, each holding a 'published' 02 report that must survive."""
    root = tmp_path_factory.mktemp("lab_home")
    shutil.copytree(paths.home() / "notebooks", root / "notebooks")
    shutil.copytree(paths.home() / "params", root / "params")
    published = {
        root / "reports" / "html" / "02_cnn_baseline.html": b"<html>the published 02 report</html>",
        root / "reports" / "metrics" / "02_cnn_baseline.json": b'{"headline": {"test_accuracy": 0.833}}',
        root / "models" / "quick" / "02_cnn_baseline" / "cnn_fer" / "best.pt": b"the published checkpoint",
    }
    for path, content in published.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    # A git checkout of the notebooks with the project's own filter, as `make setup` configures it.
    for name in (".gitattributes", ".gitignore"):
        shutil.copy(paths.home() / name, root / name)
    _git(root, "init", "-q")
    venv = Path(os.path.realpath(paths.home() / ".venv"))
    subprocess.run(["make", "--no-print-directory", "-f", str(paths.home() / "Makefile"), "git-filter", f"VENV={venv}"],
                   cwd=root, check=True, capture_output=True, timeout=60)
    _commit(root, "the notebooks as committed")
    return root, published


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "notebooks", ".gitattributes", ".gitignore")
    _git(root, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def lab(home, tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, serving the copied notebooks; yields its base URL."""
    root, _ = home
    jupyter = tmp_path_factory.mktemp("jupyter")
    for name, values in LAB_SETTINGS.items():
        (jupyter / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (jupyter / "settings" / name).write_text(json.dumps(values))
    port = _free_port()
    env = {**os.environ, "EMOLIB_HOME": str(root), "EMOLIB_REPORTS": str(root / "reports"),
           "EMOLIB_MODELS": str(root / "models"), "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"), "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(paths.home()), os.environ.get("PYTHONPATH")) if p)}
    env.pop(session.RUNNER_ENV, None)                  # a JupyterLab user's run is a scratch run
    log = open(jupyter / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root / 'notebooks'}",
         "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly",          # the default one asks PyPI about extensions
         "--LabApp.expose_app_in_browser=True",          # window.jupyterapp: the test reads the kernel's state
         "--KernelManager.transport_encryption=auto"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("JupyterLab exited:\n" + (jupyter / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not listen within 90 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    clip = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m", pan_zoom_frames(photo, 45, (640, 480)))
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"])
        try:
            yield chromium
        finally:
            chromium.close()


def _set_parameters(notebook: Path, source: str) -> None:
    book = nbformat.read(notebook, as_version=4)
    cell = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = source
    nbformat.write(book, notebook)


# JupyterLab's own state rather than the page's look: the notebook's status indicator says "idle" before any kernel
# exists, so the lab runs with --expose-app-in-browser and the test asks window.jupyterapp about the open notebook.
NOTEBOOK_KERNEL_READY = """path => {
  const panel = window.jupyterapp?.shell.currentWidget, kernel = panel?.sessionContext?.session?.kernel;
  return !!(panel && panel.context?.path === path && panel.sessionContext.isReady && kernel
            && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
}"""


def _open(browser, lab, notebook: str, timeout: float = 180):
    """Opens the notebook alone and returns once its kernel is connected and idle."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab}/lab/tree/{notebook}?reset&token={TOKEN}")      # reset: only this notebook open
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    deadline = time.monotonic() + timeout
    while not page.evaluate(NOTEBOOK_KERNEL_READY, notebook):
        # On a loaded machine JupyterLab may open the notebook before it has the kernel specs, and then asks which
        # kernel to start: accept its proposal, the notebook's own `emolib` kernel, as a user would.
        if page.query_selector(".jp-Dialog:has-text('Select Kernel')"):
            proposed = page.eval_on_selector(".jp-Dialog select", "s => s.options[s.selectedIndex].text")
            assert proposed == "Python (emolib)", f"JupyterLab proposes the kernel {proposed!r}"
            page.click(".jp-Dialog .jp-mod-accept")
        if time.monotonic() > deadline:
            raise AssertionError(f"the kernel of {notebook} was not connected and idle after {timeout:.0f} s")
        page.wait_for_timeout(250)
    return page


@contextmanager
def _screenshot_on_failure(page, path: Path):
    """A failing check leaves a full-page screenshot of what the browser showed."""
    try:
        yield
    except BaseException:
        page.screenshot(path=path, full_page=True)
        raise


def _run_all(page) -> None:
    """Run > Run All Cells, as a user does; returns once the first code cell has started."""
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item[data-command='runmenu:run-all']")
    page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                           ".some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))", timeout=60_000)


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")


def _wait_until_done(page, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompts = _prompts(page)
        if prompts and all(p not in ("[*]:", "[ ]:", "") for p in prompts):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"cells still running or not run after {timeout:.0f} s: {_prompts(page)}")


def _error_outputs(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent.slice(0, 2000))")


def test_notebook_02_run_all_shows_progress_and_leaves_the_published_report(home, lab, browser, artifacts):
    root, published = home
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in published}
    # The quick profile with two epochs: long enough to see the epoch bar, short for a test.
    _set_parameters(root / "notebooks" / "02_cnn_baseline.ipynb",
                    'profile = "quick"\noverrides = {"train": {"epochs": 2}}')
    _commit(root, "02 for the test")
    page = _open(browser, lab, "02_cnn_baseline.ipynb")
    with _screenshot_on_failure(page, artifacts / "02_failure.png"):
        _run_all(page)
        page.wait_for_selector(".jp-OutputArea-output .widget-hprogress", timeout=240_000)
        page.screenshot(path=artifacts / "02_progress_bar.png")
        _wait_until_done(page, 400)
        page.locator(".jp-Cell").last.scroll_into_view_if_needed()
        page.screenshot(path=artifacts / "02_done.png")
        assert _error_outputs(page) == []
        text = page.inner_text(".jp-NotebookPanel .jp-Notebook")
        assert "accuracy" in text and "Traceback" not in text
    # Saved after Run All, unedited since its commit: the git filter leaves nothing to commit (outputs, widget
    # state and the kernel's language_info are stripped).
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-current.jp-mod-dirty, .jp-Notebook .jp-mod-dirty')"
                           " && !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)
    saved = json.loads((root / "notebooks" / "02_cnn_baseline.ipynb").read_text())
    assert any(c.get("outputs") for c in saved["cells"]), "the save wrote no outputs: nothing was tested"
    # `git status` itself lists the file until it is added: git takes a changed file size for a change without
    # running the filter. What counts: no diff, and nothing to commit once added.
    assert _git(root, "diff", "--no-textconv", "notebooks") == ""
    _git(root, "add", "notebooks")
    assert _git(root, "status", "--porcelain", "notebooks") == "", _git(root, "diff", "--cached", "notebooks")[:3000]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in published} == before, "published files changed"
    scratch = root / "reports" / "scratch" / "quick" / "metrics" / "02_cnn_baseline.json"
    assert scratch.exists(), "the interactive run wrote no scratch metrics"
    page.close()


def test_notebook_06_live_shows_annotated_frames_of_the_browser_camera(home, lab, browser, artifacts):
    root, _ = home
    _set_parameters(root / "notebooks" / "06_webcam_demo.ipynb",
                    'profile = "quick"\noverrides = {"live": True, "max_seconds": 120.0}')
    page = _open(browser, lab, "06_webcam_demo.ipynb")
    widget = ".emolib-camera"
    with _screenshot_on_failure(page, artifacts / "06_failure.png"):
        _run_all(page)
        page.wait_for_function(f"() => Number(document.querySelector('{widget}')?.dataset.frames || 0) >= 30",
                               timeout=240_000)
    page.locator(widget).scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "06_live.png")
    page.locator(widget).screenshot(path=artifacts / "06_live_widget.png")
    state = page.eval_on_selector(widget, "el => ({...el.dataset, status: el.textContent})")
    assert int(state["faces"]) >= 1 and state["labels"], state
    assert state["labels"].split(",")[0] in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert "FPS" in state["status"] and "round trip" in state["status"]

    page.click(f"{widget} button:has-text('Stop')")
    _wait_until_done(page, 60)
    assert _error_outputs(page) == []
    printed = next(t for t in page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.textContent)")
                   if "round_trip_ms_median" in t)
    stats = ast.literal_eval(printed.strip())
    (artifacts / "06_live_round_trip.json").write_text(json.dumps(stats, indent=1))
    assert stats["stopped_by"] == "stop button" and stats["frames"] >= 30
    assert stats["mean_faces"] >= 0.9, stats                    # the astronaut's face in (nearly) every frame
    assert stats["frame_size"] == [480, 360] and stats["round_trip_ms_median"] > 0
    page.close()
