"""The notebooks are thin and clean: parsed, never executed here (tests/test_reproduce.py runs them)."""
import ast

import nbformat
import papermill
import pytest

from emolib import config, paths

NOTEBOOKS = config.NOTEBOOKS
MAX_FUNCTION_LINES = 5


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


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_thin_no_classes_no_long_functions(nb):
    for i, cell in enumerate(_code_cells(_read(nb))):
        tree = ast.parse(cell.source)          # also: every cell is valid Python
        for node in ast.walk(tree):
            assert not isinstance(node, ast.ClassDef), f"{nb} code cell {i} defines class {node.name}: move it to emolib"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno   # body lines after the def line
                assert length <= MAX_FUNCTION_LINES, (f"{nb} code cell {i}: function {node.name} has {length} lines; "
                                                      f"at most {MAX_FUNCTION_LINES} in a notebook: move it to emolib")


def test_thinness_check_catches_a_class_and_a_long_function():
    """The check above must be able to fail."""
    bad = "class A:\n    pass\n\ndef f():\n" + "    x = 1\n" * 7
    nodes = list(ast.walk(ast.parse(bad)))
    assert any(isinstance(n, ast.ClassDef) for n in nodes)
    f = next(n for n in nodes if isinstance(n, ast.FunctionDef))
    assert f.end_lineno - f.lineno > MAX_FUNCTION_LINES


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_parameters_cell_matches_the_schema(nb):
    book = _read(nb)
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{nb}: exactly one cell tagged `parameters`"
    tree = ast.parse(tagged[0].source)
    assert all(isinstance(s, ast.Assign) for s in tree.body), f"{nb}: the parameters cell holds plain assignments only"
    lines = tagged[0].source.splitlines()
    for stmt in tree.body:
        text = lines[stmt.lineno - 1:stmt.end_lineno]
        assert "#" in text[-1], f"{nb}: parameter {stmt.targets[0].id} needs a comment saying what it is"
    # papermill's own reading of the cell (what it can override) must be the schema, in order.
    assert list(papermill.inspect_notebook(str(paths.notebooks_dir() / f"{nb}.ipynb"))) == config.field_names(nb)
    # The notebook's defaults are a valid config by themselves (what JupyterLab runs with).
    namespace = {"__name__": "__main__"}
    exec(compile(tagged[0].source, f"{nb}:parameters", "exec"), namespace)
    config.validate(nb, namespace)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_validates_then_opens_the_report_header_first(nb):
    sources = [c.source for c in _code_cells(_read(nb))]
    validate_at = next(i for i, s in enumerate(sources) if f'config.validate("{nb}", globals())' in s)
    header_at = next(i for i, s in enumerate(sources) if "reporting.start(cfg" in s)
    assert header_at > validate_at
    assert sources[header_at].rstrip().endswith("run"), "the header cell ends by displaying the run header"
    assert any("run.write_metrics(" in s for s in sources), f"{nb} writes no metrics JSON"
