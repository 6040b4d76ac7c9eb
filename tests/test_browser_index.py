"""The index's results table in a real browser (Debian's chromium, headless, driven by playwright; the page is a
local file, nothing served): a click on a header sorts the rows by that column, a second click reverses them."""
from pathlib import Path

import pytest
from published_results import BEST, MODELS, publish_all

from emolib.research import dashboard

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")]


def test_clicking_test_accuracy_sorts_the_results_table(scratch_home):
    playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
    publish_all()
    index = dashboard.build_index()
    worst = min(MODELS, key=lambda m: m[3])
    assert MODELS[0] not in (BEST, worst)             # the page's own order is neither sorted order
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(index.resolve().as_uri())
            table = page.locator("table#results")
            first_model = table.locator("tbody tr").first.locator("td").nth(1)
            assert first_model.inner_text() == MODELS[0][1]
            header = table.locator("th", has_text="test accuracy")
            header.click()
            assert header.get_attribute("aria-sort") == "descending"
            assert first_model.inner_text() == BEST[1]
            header.click()
            assert header.get_attribute("aria-sort") == "ascending"
            assert first_model.inner_text() == worst[1]
            accuracies = [float(t) for t in table.locator("tbody tr td:nth-child(6)").all_inner_texts()]
            assert accuracies == sorted(m[3] for m in MODELS)
            assert not errors
        finally:
            browser.close()
