"""No measured figures in code: a timing or a speed-up written in a comment or a docstring is true of one machine on
one day and goes stale unseen. Measured figures live in the bench JSON and docs/benchmarks.md (generated from it);
a comment says why, and may point there. Scanned: emolib/**/*.py (its whole text), the comments of params/*.yaml,
and the Makefile."""
import re
from pathlib import Path

import emolib

ROOT = Path(emolib.__file__).parent.parent
NUM = r"(?<![\w.])~?\d+(?:[.,]\d+)?"
MEASURED = re.compile("|".join([
    NUM + r"\s*ms\b",                                   # 8.6 ms
    NUM + r"\s*[×x]\s*(?:faster|slower|speed)",         # 2× faster, 3x speed-up
    NUM + r"×(?!\s*\d)",                                # 1.4×, ~5× (not 640×480: a size)
    r"\b(?:faces|img|images|frames)/s\b",               # throughput
    NUM + r" s\b",                                      # 34 s (durations)
]))
# A comparison is a target, not a measurement: "≤ 8 ms", "≥ 5×", "< 1 s".
TARGET = re.compile(r"(?:≤|≥|<|>|<=|>=)\s*$")

# Lines that hold a unit but no measurement: (file, a regex the line matches), each with why it is fine.
ALLOWED: list[tuple[str, str]] = [
    # the bench's table of what each figure measures: its texts name units ("faces/s"), never values
    ("emolib/bench/_page.py", r"\b(?:faces|img|images)/s\b"),
    # the page's header warns that other machines differ by a factor; no figure of this code
    ("emolib/bench/_page.py", r"differ, often by 3-5×"),
    # group photos: two boxes match when their sizes are within a factor 2 (a rule, not a timing)
    ("emolib/bench/group_photos.py", r"sizes are within 2×"),
    # the full-range detector's fine pass runs at a multiple of the whole view's scale: a setting, not a timing
    ("emolib/faces/blazeface.py", r"tiles at 2× the whole view's scale|at the same 2× found|At 2\.25× the one pass"),
]


def _candidates() -> list[tuple[str, int, str]]:
    """(file, line number, the text scanned) of every place a measured figure could hide."""
    out = []
    for path in sorted((ROOT / "emolib").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            out.append((str(path.relative_to(ROOT)), i, line))
    for path in sorted((ROOT / "params").glob("*.yaml")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "#" in line:
                out.append((str(path.relative_to(ROOT)), i, line[line.index("#"):]))
    for i, line in enumerate((ROOT / "Makefile").read_text(encoding="utf-8").splitlines(), 1):
        out.append(("Makefile", i, line))
    return out


def measured_figures(line: str) -> list[str]:
    return [m.group(0) for m in MEASURED.finditer(line) if not TARGET.search(line[:m.start()])]


def hits() -> list[str]:
    found = []
    for file, number, line in _candidates():
        if measured_figures(line) and not any(file == f and re.search(p, line) for f, p in ALLOWED):
            found.append(f"{file}:{number}: {line.strip()}")
    return found


def test_no_measured_figure_in_code_comments_or_docstrings():
    found = hits()
    assert not found, ("measured figures belong in the bench JSON and docs/benchmarks.md, not in code; say why "
                       "instead, or point to docs/benchmarks.md:\n" + "\n".join(found))


def test_the_check_can_fail():
    assert measured_figures("# the tiles: 12.7 → 8.6 ms a photo") == ["8.6 ms"]
    assert measured_figures('"""2× faster than cv2.dnn, ~5× the peer, 3,764 faces/s, 34 s"""') == [
        "2× faster", "~5×", "faces/s", "34 s"]
    assert measured_figures("# a 640×480 frame, a 4×4 grid, targets ≤ 8 ms and ≥ 5×") == []
