"""emolib.research.costs: a run's wall and CPU time (its finished children's included), its slowest cells, the table."""
import json
import subprocess
import sys

import nbformat

from emolib.research import costs


def test_measured_counts_the_cpu_of_a_child_that_exited():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    with costs.measured() as cost:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert cost.cpu_s >= 0.5 and cost.wall_s >= 0.5


def test_slowest_cells_orders_by_papermills_duration_and_skips_untimed_cells():
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                           nbformat.v4.new_code_cell("fast()"), nbformat.v4.new_code_cell("slow()\nmore()"),
                                           nbformat.v4.new_code_cell("never_ran()")])
    book.cells[1].metadata["papermill"] = {"duration": 0.5}
    book.cells[2].metadata["papermill"] = {"duration": 12.25}
    assert costs.slowest_cells(book, n=5) == [{"cell": 2, "seconds": 12.25, "first_line": "slow()"},
                                              {"cell": 1, "seconds": 0.5, "first_line": "fast()"}]
    assert len(costs.slowest_cells(book, n=1)) == 1


def test_record_adds_the_cost_to_run_json_and_the_table_sums_it(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for nb, wall, cpu in [("01_a", 10.0, 15.0), ("02_b", 20.0, 35.5)]:
        (metrics / f"{nb}.run.json").write_text(json.dumps({"notebook": nb, "timing": {}, "torch_threads": 1}))
        costs.record(metrics / f"{nb}.run.json", costs.Cost(wall, cpu, [{"cell": 3, "seconds": 9.0, "first_line": "x()"}]))
    costs.record(metrics / "03_none.run.json", costs.Cost(1.0, 1.0))          # no metrics written: nothing to add to
    assert not (metrics / "03_none.run.json").exists()
    run = json.loads((metrics / "02_b.run.json").read_text())
    assert run["timing"] == {} and run["cost"]["cpu_s"] == 35.5
    text = costs.table(tmp_path, ["01_a", "02_b", "03_none"])
    assert "| 02_b | 20 | 36 | 1 | cell 3 (9 s): `x()` |" in text and "| 03_none | - | - | - | not measured |" in text
    assert text.splitlines()[-1] == "| total | 30 | 50 | | |"
