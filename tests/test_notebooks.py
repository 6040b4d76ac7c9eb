"""The notebooks are thin and clean: parsed, never executed here (tests/test_reproduce.py runs them)."""
import ast
import dataclasses
import types

import nbformat
import papermill
import pytest

from emolib.core import paths
from emolib.research import notebooks, profiles, reporting, session

NOTEBOOKS = notebooks.NOTEBOOKS
MAX_FUNCTION_LINES = 5
MAX_COMPREHENSION_LINES = 3
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _read(nb):
    return nbformat.read(paths.notebooks_dir() / f"{nb}.ipynb", as_version=4)


def _code_cells(book):
    return [c for c in book.cells if c.cell_type == "code"]


def test_every_notebook_exists_and_no_other():
    found = sorted(p.stem for p in paths.notebooks_dir().glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_clean_valid_and_on_the_emolib_kernel(nb):
    book = _read(nb)
    nbformat.validate(book)
    assert book.metadata["kernelspec"]["name"] == "emolib"
    for cell in _code_cells(book):
        assert cell.outputs == [] and cell.execution_count is None, f"{nb}: outputs must be stripped in git"


def thinness_problems(source: str) -> list[str]:
    """What makes a cell's code too thick for a notebook: a class, a function over MAX_FUNCTION_LINES, or, outside
    a function, a `for`/`while` loop or a comprehension over MAX_COMPREHENSION_LINES (logic that belongs in emolib)."""
    problems = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                problems.append(f"defines class {child.name}: move it to emolib")
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = child.end_lineno - child.lineno   # body lines after the def line
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"function {child.name} has {length} lines; at most {MAX_FUNCTION_LINES} in a "
                                    f"notebook: move it to emolib")
            if not in_function and isinstance(child, (ast.For, ast.AsyncFor, ast.While)):
                loop = "while" if isinstance(child, ast.While) else "for"
                problems.append(f"line {child.lineno}: a top-level {loop} loop: move the logic to emolib")
            lines = child.end_lineno - child.lineno + 1 if isinstance(child, COMPREHENSIONS) else 0
            if lines > MAX_COMPREHENSION_LINES:
                problems.append(f"line {child.lineno}: a comprehension of {lines} lines; at most "
                                f"{MAX_COMPREHENSION_LINES} in a notebook: move it to emolib")
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)                      # also: every cell is valid Python
    return problems


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_thin_no_classes_no_long_functions(nb):
    for i, cell in enumerate(_code_cells(_read(nb))):
        assert not thinness_problems(cell.source), f"{nb} code cell {i}: {thinness_problems(cell.source)}"


def test_thinness_check_catches_a_class_and_a_long_function():
    """The check above must be able to fail: it is the same function, on cells that break each rule."""
    long_function = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
    short_function = "def g():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    assert thinness_problems("class A:\n    pass\n") == ["defines class A: move it to emolib"]
    assert len(thinness_problems(long_function)) == 1 and f"function f has {MAX_FUNCTION_LINES + 1} lines" in thinness_problems(long_function)[0]
    assert thinness_problems(short_function) == [] and thinness_problems("x = [i for i in range(3)]") == []


def test_thinness_check_catches_a_top_level_loop_and_a_long_comprehension():
    """Loops at a cell's top level (inside an `if` too) and comprehensions over MAX_COMPREHENSION_LINES lines fail;
    a loop inside a short function and a short comprehension pass."""
    loop_cell = "rows = {}\nif True:\n    for k in range(3):\n        rows[k] = k * k\n"
    [problem] = thinness_problems(loop_cell)
    assert problem.startswith("line 3: a top-level for loop")
    assert thinness_problems("while False:\n    pass\n")[0].startswith("line 1: a top-level while loop")
    long_comprehension = "x = [i\n     for i in range(3)\n     if i\n     if i > 1]\n"
    assert thinness_problems(long_comprehension) == ["line 1: a comprehension of 4 lines; at most 3 in a notebook: "
                                                     "move it to emolib"]
    assert thinness_problems("def f(xs):\n    for x in xs:\n        print(x)\n") == []
    assert thinness_problems("x = {k: v\n     for k, v in {}.items()\n     if v}\n") == []


def _parameters(book):
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    return tagged[0]


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_parameters_cell_names_the_profile_and_its_overrides(nb):
    cell = _parameters(_read(nb))
    tree = ast.parse(cell.source)
    assert all(isinstance(s, ast.Assign) for s in tree.body), f"{nb}: the parameters cell holds plain assignments only"
    lines = cell.source.splitlines()
    for stmt in tree.body:
        assert "#" in lines[stmt.end_lineno - 1], f"{nb}: parameter {stmt.targets[0].id} needs a comment saying what it is"
    # What papermill can inject (the runner sets both): the profile's values live in params/ only.
    assert list(papermill.inspect_notebook(str(paths.notebooks_dir() / f"{nb}.ipynb"))) == ["profile", "overrides"]


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_interactive_defaults_are_the_quick_profile(nb):
    """Opened in JupyterLab and run as it is, a notebook runs exactly what `make reproduce` publishes."""
    namespace = {}
    exec(compile(_parameters(_read(nb)).source, f"{nb}:parameters", "exec"), namespace)
    assert namespace["profile"] == "quick" and namespace["overrides"] == {}, \
        f"{nb}: a committed parameters cell must not override the profile"
    cfg = session.configure(nb, namespace["profile"], namespace["overrides"])
    assert dataclasses.asdict(cfg) == profiles.resolve(nb, "quick")
    assert reporting.differences(nb, "quick", dataclasses.asdict(cfg)) == {}


def test_overrides_win_mappings_merge_and_unknown_keys_are_errors():
    quick = profiles.resolve("02", "quick")
    cfg = session.configure("02", "quick", {"train": {"epochs": 2}, "tta": "flip"})
    assert cfg.train == {**quick["train"], "epochs": 2} and cfg.tta == "flip" and cfg.model == quick["model"]
    assert reporting.differences("02_cnn_baseline", "quick", dataclasses.asdict(cfg)) == {"train.epochs": 2, "tta": "flip"}
    with pytest.raises(profiles.ConfigError, match=r"with overrides \['epochs'\]: unknown key"):
        session.configure("02", "quick", {"epochs": 2})
    with pytest.raises(profiles.ConfigError, match="training option 'epochs'"):
        session.configure("02", "quick", {"train": {"epochs": "two"}})
    with pytest.raises(profiles.ConfigError, match="may not change the profile"):
        session.configure("02", "quick", {"profile": "fer2013"})


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_one_setup_call_then_the_report_header(nb):
    sources = [c.source for c in _code_cells(_read(nb))]
    call = "session.configure" if nb == "06_webcam_demo" else "session.setup"   # 06 opens its report on a clip
    setup_at = [i for i, s in enumerate(sources) if f'{call}("{nb}", profile, overrides)' in s]
    assert len(setup_at) == 1, f"{nb}: one {call} call"
    header_at = next(i for i, s in enumerate(sources) if "session.setup(" in s or "session.start(cfg" in s)
    assert header_at >= setup_at[0]
    assert sources[header_at].rstrip().endswith("run"), "the header cell ends by displaying the run header"
    assert not any("profiles.validate(" in s for s in sources), f"{nb}: the setup call validates"
    assert any("run.write_metrics(" in s for s in sources), f"{nb} writes no metrics JSON"


@pytest.mark.parametrize("nb", ["05_error_analysis", "06_webcam_demo"])
def test_models_go_to_the_profiles_device(nb):
    """`device` is a parameter of every notebook; the evaluating ones must use it too."""
    code = "\n".join(c.source for c in _code_cells(_read(nb)) if "parameters" not in c.metadata.get("tags", []))
    assert "resolve_device(cfg.device)" in code


def test_pretrained_models_keep_their_own_outputs_on_a_class_subset():
    """05 scores a pretrained emotion model through its own seven outputs restricted to the data's
    classes, never through a freshly initialized head sized for the data."""
    import torch

    from emolib.core.labels import EMOTIONS
    from emolib.inference.classifier import load_classifier
    from emolib.research import experiment
    five = ("angry", "fear", "happy", "sad", "neutral")
    cfg = types.SimpleNamespace(runs=[], pretrained_models=["fer2013-mini-xception"])
    [(name, net)] = experiment.compared_models(cfg, None, five, "cpu").items()
    full, classes, _ = load_classifier("fer2013-mini-xception")
    assert name == "fer2013-mini-xception" and net.restricted_from == classes == EMOTIONS
    x = torch.randn(3, 1, net.spec.input_size, net.spec.input_size)
    with torch.no_grad():
        own = full(x)[:, [EMOTIONS.index(c) for c in five]]
        assert torch.allclose(net(x).softmax(1), own.softmax(1), atol=1e-5)
