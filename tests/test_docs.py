"""The README is a front door (short) and every relative link in it and in docs/ leads somewhere.

A link is markdown's `[text](target)`; http(s) and mailto links are not followed. A target resolves relative to
the file that holds it; a `#anchor` must be a heading of the target .md file (GitHub's slugs).
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 150
# Generated files a clean checkout does not have, relative to the repository root. Keep this list tiny.
GENERATED = {
    "reports/index.html",    # `make reproduce`
    "docs/benchmarks.md",    # generated from the bench JSON (`make bench`); listed until it is committed
}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.I)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped (but - and _), spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # a link in a heading: its text
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's slug in `page`, repeated headings numbered as GitHub does (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m[1])
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    """The link targets in `page`, outside code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return LINK.findall(text)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each link of `page` that leads nowhere, with the reason."""
    out = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        try:
            shown = dest.relative_to(root.resolve()).as_posix()
        except ValueError:
            out.append(f"{target} (outside the repository)")
            continue
        if not dest.exists():
            if shown not in GENERATED:
                out.append(f"{target} (no such file: {shown})")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target} (no heading #{anchor} in {shown})")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"broken links in {page.relative_to(ROOT)}: {broken_links(page)}"


def test_the_readme_is_a_front_door():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move reference to docs/"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README) if not EXTERNAL.match(t)}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages the README's 'Read next' does not link: {missing}"


def test_slugs_follow_github():
    assert slug("`emolib train`: a notebook's training from a shell") == "emolib-train-a-notebooks-training-from-a-shell"
    assert slug("Scratch and published runs") == "scratch-and-published-runs"
    assert slug("Grad-CAM: maps & trust") == "grad-cam-maps--trust"
    assert slug("snake_case [link](x.md)") == "snake_case-link"


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Two words\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#two-words) [top](#top) [web](https://x.org/nope) `[code](nope.md)`\n"
                    "[gone](docs/b.md) [bad anchor](docs/a.md#three) [index](reports/index.html)\n"
                    "```\n[fenced](nope.md)\n```\n# Top\n", encoding="utf-8")
    assert broken_links(page, tmp_path) == ["docs/b.md (no such file: docs/b.md)",
                                  "docs/a.md#three (no heading #three in docs/a.md)"]
