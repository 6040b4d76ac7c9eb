"""The Makefile's entry points a newcomer meets first: `make` (help), `make lab`, the lock, the notebook filter."""
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from emolib.core import paths

ROOT = paths.home()
ESC = "\x1b["


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)


# ------------------------------------------------------------------------------------------ colour

def test_help_is_plain_text_off_a_terminal_and_coloured_on_one():
    piped = subprocess.run(["make", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "reproduce" in piped.stdout
    assert ESC not in piped.stdout, "escape codes in piped output (make | less, CI logs)"
    pid, fd = pty.fork()
    if pid == 0:                                    # the child: make with its stdout on a terminal
        os.chdir(ROOT)
        os.execvp("make", ["make", "--no-print-directory"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    assert ESC in out.decode(errors="replace") and "reproduce" in out.decode(errors="replace")


# ---------------------------------------------------------------------------------------------- lab

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses bound to `port` in LISTEN state, from /proc/net/tcp{,6} (no traffic sent)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


def _run_lab(tmp_path, user_cmd=()):
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "IPYTHONDIR": str(home / "ipython")}
    env.pop("JUPYTER_TOKEN", None)
    proc = subprocess.Popen([*user_cmd, "make", "--no-print-directory", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        url = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"JupyterLab: (http://127\.0\.0\.1:\d+/lab\?token=\w+)", line):
                url = m.group(1)
        assert url, "no URL with a token printed:\n" + "".join(lines)
        token = url.split("token=")[1]
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5) as r:
                    status = json.loads(r.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert status is not None and "started" in status, "JupyterLab's API did not answer:\n" + "".join(lines)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)     # no token: refused
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=5) as r:
            listing = {c["name"] for c in json.loads(r.read())["content"]}
        assert "02_cnn_baseline.ipynb" in listing                                        # rooted at notebooks/
        assert _listening_addresses(port) <= {"0100007F", "00000000000000000000000001000000"}, "bound beyond localhost"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not _listening_addresses(port), "JupyterLab still listening after it was stopped"


@pytest.mark.slow
def test_make_lab_starts_on_localhost_with_a_token_answers_and_stops(tmp_path):
    _run_lab(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the test runs as a normal user already (the root case needs root)")
def test_make_lab_also_works_for_a_normal_user(tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    as_nobody = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    probe = subprocess.run([*as_nobody, "bash", "-c", f"'{ROOT / '.venv' / 'bin' / 'python'}' -c pass"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this .venv's Python ({probe.stderr.decode().strip()[:120]}): "
                    "its interpreter lives where only root may enter")
    home = Path("/tmp") / f"emolib-lab-{os.getpid()}"
    home.mkdir(mode=0o755)
    try:
        _run_lab(home, user_cmd=as_nobody)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------------------------- lock

def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line):
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_the_lock_pins_every_dependency_exactly_and_satisfies_pyproject():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    assert pins, "requirements.lock pins nothing"
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {req}: run `make lock`"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    env = (ROOT / "environment.yml").read_text()
    assert "-r requirements.lock" in env, "environment.yml must install the same locked set"


def test_the_environment_holds_exactly_the_locked_versions_and_the_gui_opencv():
    """`make setup` (uv's pip interface) installs requirements.lock as pinned, and opencv-python, the build with a GUI
    (`emolib webcam`'s window), owns the cv2 folder it shares with grad-cam's opencv-python-headless."""
    import importlib.metadata

    import cv2
    from packaging.markers import Marker
    wrong = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)\s*(?:;\s*([^#]+))?", line):
            name, pin, marker = m.groups()
            if marker and not Marker(marker.strip()).evaluate():
                continue
            try:
                got = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                got = None
            if got != pin:
                wrong[name] = (pin, got)
    assert not wrong, f"installed versions differ from requirements.lock (pinned, installed): {wrong}; run `make setup`"
    gui = next(line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
               if line.strip().startswith("GUI:"))
    assert gui != "NONE", "cv2 is opencv-python-headless's build: `make setup` reinstalls opencv-python last"


# ------------------------------------------------------------------------------------------ notebooks

def _in_git() -> bool:
    return _git("rev-parse", "--is-inside-work-tree").stdout.strip() == "true"


@pytest.mark.skipif(not _in_git(), reason="not a git checkout")
def test_committed_notebooks_have_no_outputs():
    files = _git("ls-files", "*.ipynb").stdout.split()
    assert len(files) == 6
    for f in files:
        book = json.loads(_git("show", f"HEAD:{f}").stdout)
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{f}: committed with outputs"
    assert _git("check-attr", "filter", "--", files[0]).stdout.strip().endswith("filter: nbstripout")


def _throwaway_repo(repo: Path, *files: str) -> None:
    """A new git repository at `repo` holding this checkout's Makefile and .gitattributes, and `files` (not added)."""
    (repo / "notebooks").mkdir(parents=True)
    for name in ("Makefile", ".gitattributes", *files):
        shutil.copy(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)


def _make_git_filter(repo: Path, timeout: int = 60) -> None:
    out = subprocess.run(["make", "--no-print-directory", "git-filter", f"VENV={os.path.realpath(ROOT / '.venv')}"],
                         cwd=repo, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0 and "nbstripout: on" in out.stdout, out.stdout + out.stderr


def test_the_git_filter_strips_outputs_and_keeps_ids_and_tags(tmp_path):
    """What `make git-filter` (part of `make setup`) configures, in a throwaway repository."""
    import nbformat
    repo = tmp_path / "repo"
    _throwaway_repo(repo)
    _make_git_filter(repo)
    book = nbformat.read(ROOT / "notebooks" / "02_cnn_baseline.ipynb", as_version=4)
    cell = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="trained 20 epochs\n")]
    cell.execution_count = 3
    nbformat.write(book, repo / "notebooks" / "02_cnn_baseline.ipynb")
    subprocess.run(["git", "-C", str(repo), "add", "notebooks"], check=True)
    staged = json.loads(_git("show", ":notebooks/02_cnn_baseline.ipynb", cwd=repo).stdout)
    on_disk = json.loads((repo / "notebooks" / "02_cnn_baseline.ipynb").read_text())
    assert on_disk["cells"][2]["outputs"], "the working file keeps its outputs"
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in staged["cells"])
    assert [c["id"] for c in staged["cells"]] == [c.id for c in book.cells]
    assert any("parameters" in c["metadata"].get("tags", []) for c in staged["cells"])


def test_after_git_filter_a_fresh_clones_status_runs_no_filter(tmp_path):
    """A clone writes its notebooks and its index in the same second, so git cannot trust the index's stat data and
    runs the filter on every notebook at each `git status` (seconds each time, and the status check behind a report's
    code version runs out of time) until the index is refreshed: `make git-filter` refreshes it."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    _throwaway_repo(origin, "notebooks/01_data_exploration.ipynb")
    _make_git_filter(origin)           # the notebook is committed as the filter leaves it, as in this repository
    _git("add", ".", cwd=origin)
    assert _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=origin).returncode == 0
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    time.sleep(1.1)          # `make setup` installs for a while before it configures the filter
    _make_git_filter(clone, timeout=120)      # the refresh runs the filter on the notebook
    log = tmp_path / "filter-ran"
    _git("config", "filter.nbstripout.clean", f"sh -c 'echo ran >> {log}; cat'", cwd=clone)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=clone)
    assert status.returncode == 0 and status.stdout == "", status.stdout + status.stderr
    assert not log.exists(), "git status ran the notebook filter: make git-filter left the index unrefreshed"
