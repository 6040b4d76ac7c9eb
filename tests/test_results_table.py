"""Issue 25 §3: one results row definition (`emolib.research.results`), written by the training notebooks'
metrics and read back into the index's first table: every published trained model, one row each."""
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from published_results import FIVE, MODELS, checkpoint, publish, publish_all
from torch import nn

from emolib.core import paths
from emolib.research import dashboard, experiment, results, session

TEST = {"accuracy": 0.75, "macro_f1": 0.7, "ece": 0.04, "ms_per_face": 2.5, "classes": FIVE, "n": 40}


def test_a_result_row_has_exactly_the_keys_and_the_checkpoints_short_name(scratch_home):
    path = checkpoint("02_cnn_baseline", "cnn_fer")
    row = results.result_row(model="cnn_fer", init="scratch", test=TEST, classes=tuple(FIVE), parameters=1234,
                             best_epoch=3, checkpoint=path)
    assert tuple(row) == results.RESULT_KEYS
    assert row == json.loads(json.dumps(row))                      # JSON-able as it is
    assert (row["test_accuracy"], row["test_macro_f1"], row["test_ece"], row["ms_per_face"]) == (0.75, 0.7, 0.04, 2.5)
    assert (row["classes"], row["parameters"], row["best_epoch"]) == (FIVE, 1234, 3)
    assert row["checkpoint"] == "smoke/02_cnn_baseline/cnn_fer"
    elsewhere = Path("/tmp/somewhere/best.pt")
    assert results.result_row(model="m", init="scratch", test=TEST, classes=FIVE, parameters=1, best_epoch=None,
                              checkpoint=elsewhere)["checkpoint"] == str(elsewhere)
    ensemble = results.result_row(model="ensemble of 3", init="ensemble", test=TEST, classes=FIVE, parameters=9,
                                  best_epoch=None, checkpoint=None)
    assert (ensemble["checkpoint"], ensemble["best_epoch"]) == (None, None)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 3), nn.Linear(3, 5)
        self.body.requires_grad_(False)        # frozen parameters count too


def test_notebook_03_reports_one_row_per_backbone_and_init_at_its_final_stage(scratch_home):
    cfg = session.configure("03", "smoke")
    trained = []
    for init, acc in (("pretrained", 0.8), ("scratch", 0.6)):
        net = _Tiny()
        for stage in ("1 head", "2 fine-tune"):
            history = {"best_metric": acc, "best_epoch": 2 if stage == "1 head" else 4,
                       "best_checkpoint": str(checkpoint("03_transfer_learning", f"mobilenet_v2_{init}-{stage[0]}"))}
            trained.append(experiment.Trained("x", "mobilenet_v2", net, history, None, 3, stage,
                                              test={**TEST, "accuracy": acc - (stage == "1 head") * 0.1}, init=init))
    metrics, _ = experiment.notebook_metrics(cfg, trained)
    rows = metrics["results"]
    assert [(r["model"], r["init"], r["test_accuracy"], r["best_epoch"]) for r in rows] == [
        ("mobilenet_v2", "ImageNet-1k", 0.8, 4), ("mobilenet_v2", "scratch", 0.6, 4)]
    assert {r["parameters"] for r in rows} == {4 * 3 + 3 + 3 * 5 + 5}
    assert rows[1]["checkpoint"] == "smoke/03_transfer_learning/mobilenet_v2_scratch-2"


class _Cells(HTMLParser):
    """The results table's rows: each cell's text, its data-sort and title, and the links in it."""

    def __init__(self):
        super().__init__()
        self.rows, self.headers, self.inside, self.cell = [], [], False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("id") == "results"
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = {"text": "", "sort": a.get("data-sort"), "title": a.get("title"), "links": [], "tag": tag}
            self.rows[-1].append(self.cell)
        elif self.cell is not None and tag == "a":
            self.cell["links"].append(a.get("href"))

    def handle_endtag(self, tag):
        if tag in ("td", "th", "table"):
            self.cell = None
        if tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.cell is not None:
            self.cell["text"] += data


def _results_table(page: str) -> list[dict]:
    parser = _Cells()
    parser.feed(page)
    for cell in (c for row in parser.rows for c in row):
        cell["text"] = cell["text"].strip()
    head, *body = parser.rows
    names = [c["text"] for c in head]
    return [dict(zip(names, row)) for row in body]


def test_the_index_opens_with_every_published_model_in_one_table(scratch_home):
    publish_all()
    index = dashboard.build_index()
    page = index.read_text()
    assert page.index("id='results'") < page.index("Headline numbers")       # the table comes first
    rows = _results_table(page)
    assert [(r["notebook"]["text"], r["model"]["text"], r["init"]["text"]) for r in rows] == [
        (nb, model, init) for nb, model, init, _ in MODELS]
    cnn = rows[0]
    assert cnn["test accuracy"]["text"] == "0.6100" and cnn["test accuracy"]["sort"] == "0.61"
    assert cnn["ms/face"]["text"] == "1.25"           # a timing figure: read back from the .run.json
    assert (cnn["classes"]["text"], cnn["classes"]["title"]) == ("5", ", ".join(FIVE))
    assert cnn["parameters"]["text"] == "1,000" and cnn["best epoch"]["text"] == "1"
    assert "unit-test" in cnn["data"]["text"] and "f00d" in cnn["data"]["text"]
    assert cnn["report"]["links"] == ["html/02_cnn_baseline.html"]
    (href,) = cnn["checkpoint"]["links"]
    assert (index.parent / href).resolve() == checkpoint("02_cnn_baseline", "cnn_fer").resolve()
    assert cnn["checkpoint"]["text"] == "smoke/02_cnn_baseline/cnn_fer"


def test_the_results_table_shows_only_published_rows_and_marks_dry_and_stale_runs(scratch_home):
    publish_all()
    metrics = paths.reports_dir() / "metrics" / "03_transfer_learning.json"
    m = json.loads(metrics.read_text())
    m["metrics"]["results"][0]["test_accuracy"] = 0.99          # a hand edit: the runner did not publish it
    metrics.write_text(json.dumps(m))
    publish("04_vit_finetune", {"results": [results.result_row(
        model="vit_conv_48", init="scratch", test=TEST, classes=FIVE, parameters=7, best_epoch=None,
        checkpoint="smoke/04_vit_finetune/gone")]}, {"test_accuracy": 0.75}, kind="dry-run")
    params = scratch_home / "params" / "smoke.yaml"
    params.write_text(params.read_text().replace("epochs: 1, batch_size: 32, optimizer",
                                                 "epochs: 2, batch_size: 32, optimizer"))
    rows = _results_table(dashboard.build_index().read_text())
    assert [r["model"]["text"] for r in rows] == ["cnn_fer", "vit_conv_48"]          # 03 is not shown
    cnn, vit = rows
    assert "stale" in cnn["notebook"]["text"] and "dry run" not in cnn["notebook"]["text"]
    assert "dry run" in vit["notebook"]["text"]
    assert vit["checkpoint"]["links"] == [] and "gone" in vit["checkpoint"]["text"]   # no file: the name alone
    assert vit["best epoch"]["text"] == "n/a" and vit["best epoch"]["sort"] == ""


def test_an_index_without_result_rows_says_how_to_get_them(scratch_home):
    publish("02_cnn_baseline", {"acc": 0.5}, {"test_accuracy": 0.5})       # a report from before the results rows
    page = dashboard.build_index().read_text()
    assert "id='results'" not in page and "No published notebook reports a trained model yet" in page


@pytest.mark.parametrize("missing", ["ms_per_face", "best_epoch"])
def test_published_rows_read_older_metrics_as_none(missing):
    row = {k: 1 for k in results.RESULT_KEYS if k != missing}
    (read,) = results.published_rows({"metrics": {"results": [row]}}, None)
    assert tuple(read) == results.RESULT_KEYS and read[missing] is None
