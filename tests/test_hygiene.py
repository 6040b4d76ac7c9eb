"""House rules that code review would otherwise have to remember: no absolute path outside emolib.core.paths,
no module too long to read in one sitting, nothing `ruff check` finds (the floors: tests/test_layers.py)."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import emolib

PACKAGE = Path(emolib.__file__).parent
# "/usr/share/...", "/home/me/...", "C:\\data": a path that only exists on one machine. URLs ("https://")
# and relative paths do not match; "~/..." (a user's home, in messages) does not either.
MAX_MODULE_LINES = 330      # "about 300" (the design's rule): split a module by job before it grows past this
ABSOLUTE = re.compile(r"(?<![\w:/.])(/(?:home|root|work|tmp|usr|opt|mnt|var|etc|srv|data|Users|Volumes)/|[A-Za-z]:\\)")


def _docstrings(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def absolute_paths(source: str) -> list[tuple[int, str]]:
    """(line, string) of every string in `source`'s code (docstrings aside) that holds an absolute path."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and ABSOLUTE.search(node.value)]


def test_no_absolute_path_outside_the_paths_module():
    found = {str(f.relative_to(PACKAGE)): hits for f in sorted(PACKAGE.rglob("*.py"))
             if f != PACKAGE / "core" / "paths.py"
             if (hits := absolute_paths(f.read_text(encoding="utf-8")))}
    assert not found, f"absolute paths belong in emolib/core/paths.py (one function per location): {found}"


def test_the_absolute_path_check_can_fail():
    bad = 'X = "/home/me/fer2013.csv"\ndef f():\n    """Reads /usr/share/x (a docstring may say so)."""\n    return "C:\\\\data"\n'
    assert [line for line, _ in absolute_paths(bad)] == [1, 4]
    assert absolute_paths('URL = "https://download.pytorch.org/models/x.pth"\nP = "data/raw"\nH = "~/.cache"\n') == []


def test_no_module_is_too_long_to_read_in_one_sitting():
    lengths = {str(f.relative_to(PACKAGE)): len(f.read_text(encoding="utf-8").splitlines())
               for f in sorted(PACKAGE.rglob("*.py"))}
    too_long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (give each job its own module): {too_long}"


def test_ruff_check_finds_nothing():
    """pyflakes (unused or undefined names), pycodestyle's errors and the import order, with pyproject.toml's
    settings, over the package, the tests and the notebooks."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
