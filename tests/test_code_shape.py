"""No function in the package too long to read in one sitting: every function and method (nested ones
included) of emolib/**/*.py fits in MAX_FUNCTION_LINES, the allow-list aside."""
import ast
from pathlib import Path

import emolib

PACKAGE = Path(emolib.__file__).parent
MAX_FUNCTION_LINES = 80
# Functions that may be longer, each with the reason a split would not read better.
ALLOWED = {
    "emolib.training.loop.fit": "a training loop, read in one sitting (as nanoGPT's is): epochs, steps, "
                                "evaluation and checkpoints in the order they happen",
}


def function_lengths(source: str, module: str) -> dict[str, int]:
    """Dotted name (module.Class.function, module.outer.inner) -> lines, decorators aside."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out[name] = child.end_lineno - child.lineno + 1
                visit(child, name)
            else:
                visit(child, prefix)

    visit(ast.parse(source), module)
    return out


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_function_is_too_long_to_read_in_one_sitting():
    lengths = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        lengths.update(function_lengths(f.read_text(encoding="utf-8"), _module_name(f)))
    too_long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES and name not in ALLOWED}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them at their seams): {too_long}"
    assert set(ALLOWED) <= set(lengths), f"allow-listed functions that no longer exist: {set(ALLOWED) - set(lengths)}"


def test_the_function_length_check_can_fail():
    body = [f"x{i} = {i}" for i in range(MAX_FUNCTION_LINES)]
    source = "\n".join(["class A:", "    def short(self):", "        pass", "",
                         "    @property", "    def long(self):", *("        " + line for line in body), "",
                         "def outer():", "    def inner():", *("        " + line for line in body),
                         "    return inner", ""])
    lengths = function_lengths(source, "m")
    assert lengths == {"m.A.short": 2, "m.A.long": MAX_FUNCTION_LINES + 1,
                       "m.outer": MAX_FUNCTION_LINES + 3, "m.outer.inner": MAX_FUNCTION_LINES + 1}
