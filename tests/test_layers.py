"""The package's floors: imports point down only, no import cycles, the environment read at named places only.

Read from the source (ast), never by importing it: the check sees lazy imports inside functions, and the twin
below runs it on a fake package built in a temporary folder.
"""
import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emolib"
ROOT = "root"   # emolib/__init__.py and emolib/__main__.py: the package's front door
FLOORS = {"core": 0, "data": 1, "models": 1, "faces": 1, "training": 2, "inference": 2, "cam": 2,
          "research": 3, "cli": 4, "live": 4, "bench": 4, ROOT: 4}
# Who may read the environment, and why. A key also covers every module under it (the fronts).
ALLOWED_ENV = {
    "emolib.core.paths": "the roots (EMOLIB_HOME, EMOLIB_DATA, ... move the folders)",
    "emolib.core.runtime": "torchrun's RANK / WORLD_SIZE / LOCAL_RANK",
    "emolib.research.session": "the session boundary: reads the runner's one channel to the kernel",
    "emolib.research.runner": "the runner boundary: sets that channel for the kernels it starts, reads make's batch id",
    "emolib.data.kaggle": "kagglehub's own KAGGLEHUB_CACHE",
    "emolib.inference.video": "DISPLAY / WAYLAND_DISPLAY (whether a window can open)",
    "emolib.cli": "a front", "emolib.bench": "a front", "emolib.live": "a front",
}
# "emolib.training.loop:fit": a reference that importlib resolves later; an import all the same.
REFERENCE = re.compile(r"(emolib(?:\.\w+)*):[\w.]+")
ENV = {"environ", "getenv"}   # os.environ (.get, [...], .update, ...) and os.getenv


def module_name(path: Path, root: Path) -> str:
    """emolib/core/paths.py -> emolib.core.paths; emolib/core/__init__.py -> emolib.core (root: the package dir)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(name: str, level: int, package: str) -> str:
    base = package.rsplit(".", level - 1)[0] if level else ""   # `from ..x import y`: up one package per extra dot
    return ".".join(part for part in (base, name) if part)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, name) of every emolib module `module` names: `from X import y` gives X.y (check() falls back to X
    when y is not a module), imports inside functions included, import_module/__import__ calls, "emolib.x:Name"."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            found += [(node.lineno, base if alias.name == "*" else f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("import_module", "__import__")):
            name = node.args[0].value
            anchor = next((k.value for k in node.keywords if k.arg == "package"), None)
            anchor = package if getattr(anchor, "id", None) == "__package__" else getattr(anchor, "value", None)
            dots = len(name) - len(name.lstrip("."))
            if not dots or isinstance(anchor, str):
                found.append((node.lineno, _absolute(name[dots:], dots, anchor or "")))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REFERENCE.fullmatch(node.value):
            found.append((node.lineno, REFERENCE.fullmatch(node.value)[1]))
    return [(line, name) for line, name in found if name == "emolib" or name.startswith("emolib.")]


def env_uses(path: Path) -> list[int]:
    """Lines that touch the environment: os.environ (any use), os.getenv, `from os import environ/getenv`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # `import os as _os` must not hide a read
    aliases = {"os"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                        if a.name == "os" and a.asname}
    return sorted({n.lineno for n in ast.walk(tree)
                   if isinstance(n, ast.Attribute) and n.attr in ENV and getattr(n.value, "id", None) in aliases
                   or isinstance(n, ast.ImportFrom) and n.module == "os" and {a.name for a in n.names} & ENV})


def _package(module: str) -> str:
    parts = module.split(".")
    return ROOT if len(parts) == 1 or parts[1] == "__main__" else parts[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: those of two modules or more, and modules importing themselves."""
    index, low, stack, out = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc, stack[:] = stack[stack.index(v):], stack[:stack.index(v)]
            if len(scc) > 1 or v in graph.get(v, ()):
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@dataclass
class Report:
    modules: int = 0
    top_level: list[str] = field(default_factory=list)
    cycles: list[str] = field(default_factory=list)
    upward: list[str] = field(default_factory=list)
    sideways: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)

    @property
    def top_level_modules(self) -> int:
        return len(self.top_level)


def check(package_dir: Path) -> Report:
    files = {module_name(f, package_dir): f for f in sorted(package_dir.rglob("*.py"))}
    report = Report(modules=len(files))
    report.top_level = [m for m, f in files.items()
                        if f.parent == package_dir and f.stem not in ("__init__", "__main__")]

    def resolve(name):   # `from emolib.models import build` names a function: the edge goes to emolib.models
        while name not in files and "." in name:
            name = name.rpartition(".")[0]
        return name

    edges = sorted({(m, line, resolve(name)) for m, f in files.items() for line, name in imports_of(f, m)})
    graph = {m: set() for m in files}
    for m, line, target in edges:
        graph[m].add(target)
        src, dst = _package(m), _package(target)
        if src == dst or src not in FLOORS or dst not in FLOORS:   # a package not in FLOORS fails its own test
            continue
        if dst == ROOT or FLOORS[dst] > FLOORS[src]:
            kind = "upward"
        elif FLOORS[dst] == FLOORS[src] and src != ROOT:   # the root may reach the fronts: `python -m emolib` runs cli
            kind = "sideways"
        else:
            continue
        getattr(report, kind).append(f"{m}:{line} -> {target} "
                                     f"(floor {FLOORS[src]} {src} -> floor {FLOORS[dst]} {dst}: {kind})")
    for scc in _cycles(graph):
        inside = "; ".join(f"{m}:{line} -> {t}" for m, line, t in edges if m in scc and t in scc)
        report.cycles.append(f"{', '.join(scc)} ({inside})")
    for m, f in files.items():
        allowed = any(m == key or m.startswith(key + ".") for key in ALLOWED_ENV)
        if not allowed and (lines := env_uses(f)):
            report.env.append(f"{m}:{','.join(map(str, lines))} reads the environment (not in ALLOWED_ENV)")
    return report


LISTS = ("top_level", "cycles", "upward", "sideways", "env")


def test_floors_hold():
    r = check(PACKAGE)
    print(f"\n{r.modules} modules, {r.top_level_modules} at the top level, {len(r.cycles)} cycles, "
          f"{len(r.upward)} upward, {len(r.sideways)} sideways, {len(r.env)} environment reads outside the allow-list")
    found = "\n".join(f"{key}: {item}" for key in LISTS for item in getattr(r, key))
    assert not found, f"imports must point down a floor (see FLOORS), env reads stay in ALLOWED_ENV:\n{found}"


def test_every_package_has_a_floor():
    # a folder of modules, with or without __init__.py: a new package cannot dodge the floors
    packages = {d.name for d in PACKAGE.iterdir() if d.is_dir() and any(d.glob("*.py"))}
    assert packages <= FLOORS.keys(), f"give these packages a floor in FLOORS: {sorted(packages - FLOORS.keys())}"


# The twin: a fake emolib that respects every rule, with the tricky cases that must NOT be flagged.
CLEAN = {
    "__init__.py": "from emolib.core.paths import home\n",
    "__main__.py": "from emolib.cli import main\n",                                  # root -> front: allowed
    "core/__init__.py": "from . import paths, labels\n",                             # a package loads its modules
    "core/paths.py": "import os\ndef home():\n    return os.environ.get('EMOLIB_HOME')\n",  # allow-listed
    "core/labels.py": "from . import paths\n",                                       # a sibling, not the __init__
    "data/__init__.py": "", "data/d.py": "from emolib.core import labels\nfrom emolib.core.paths import home\n",
    "models/__init__.py": "from .m import build\n", "models/m.py": "from ..core import paths\ndef build(): pass\n",
    "training/__init__.py": "", "training/loader.py": "",
    "training/loop.py": ("import importlib\nfrom emolib.models import build\nfrom emolib.data import d\n"
                         "HOME = 'emolib.core.paths:home'\n"
                         "def fit():\n    return importlib.import_module('.loader', package=__package__)\n"),
    "research/__init__.py": "", "research/x.py": "from emolib.training import loop\n",
    "cli/__init__.py": "import os\nfrom emolib.research import x\nDEBUG = os.getenv('D')\ndef main(): return 0\n",
}
# name: (files added to CLEAN, the list that must catch it, what its entry says)
FAULTS = {
    "cycle": ({"core/a.py": "from emolib.core import b\n", "core/b.py": "def f():\n    from . import a\n"},
              "cycles", "emolib.core.a, emolib.core.b"),
    "upward": ({"core/c.py": "from ..training import loop\n"}, "upward", "emolib.core.c:1 -> emolib.training.loop"),
    "sideways": ({"data/s.py": "from emolib.models import m\n"}, "sideways", "emolib.data.s:1 -> emolib.models.m"),
    "import_module": ({"models/h.py": "import importlib\ndef load():\n"
                                      "    return importlib.import_module('emolib.research.x')\n"},
                      "upward", "emolib.models.h:3 -> emolib.research.x"),
    "reference": ({"data/r.py": "FIT = 'emolib.training.loop:fit'\n"},
                  "upward", "emolib.data.r:1 -> emolib.training.loop"),
    "root": ({"faces/__init__.py": "from emolib import __version__\n"}, "upward", "emolib.faces:1 -> emolib (floor 1"),
    "env": ({"data/e.py": "import os as _os\nCACHE = _os.environ.get('X')\n"}, "env", "emolib.data.e:2 "),
    "stray": ({"stray.py": ""}, "top_level", "emolib.stray"),
}


def _build(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / "emolib" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "emolib" / rel).write_text(text, encoding="utf-8")
    return tmp_path / "emolib"


def test_a_clean_package_passes(tmp_path):
    r = check(_build(tmp_path, CLEAN))
    assert r.modules == len(CLEAN) and {key: getattr(r, key) for key in LISTS} == {key: [] for key in LISTS}


@pytest.mark.parametrize("faults", [[name] for name in FAULTS] + [list(FAULTS)], ids=[*FAULTS, "all"])
def test_the_check_can_fail(tmp_path, faults):
    # each fault alone, then all at once: each caught once, in its own list, and nothing else flagged
    r = check(_build(tmp_path, CLEAN | {rel: text for name in faults for rel, text in FAULTS[name][0].items()}))
    for key in LISTS:
        expected = [FAULTS[name][2] for name in faults if FAULTS[name][1] == key]
        got = getattr(r, key)
        assert len(got) == len(expected) and all(any(e in g for g in got) for e in expected), (key, got)
