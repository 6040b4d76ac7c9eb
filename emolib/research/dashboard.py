"""reports/index.html: the page a researcher opens first.

It opens with the results table: every trained model the published notebooks report (their ``results`` rows,
`emolib.research.results`), one row each, sortable by clicking a column header (a few lines of inline script).
Then one table of every notebook's headline numbers with its profile, data fingerprint, code version and date,
each row beside the HTML report it came from; figure thumbnails linking to the full-size figures; the
history of runs (one row per `make reproduce`/`make report` call); marks for dry runs and stale reports.

Only what the runner published is shown (`emolib.research.records.status`): numbers from anywhere else (an
interactive run, a hand-copied file) are never on this page. `build_index(root)` works for any reports
root with the published layout: the published reports, or a dry run's ``<reports>/dry-run/<profile>/``.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re
from pathlib import Path

from emolib.core import paths
from emolib.core.atomic import atomic_write, write_text
from emolib.research import records, results
from emolib.research.notebooks import NOTEBOOKS
from emolib.research.records import format_number

__all__ = ["build_index"]

THUMB_PX = 220
_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:78rem;color:#222;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}td,th{border:1px solid #ddd;padding:.25rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.meta{color:#555;font-size:.85em}
.num{font-family:ui-monospace,monospace;white-space:nowrap}.badge{display:inline-block;padding:0 .4rem;white-space:nowrap;
border-radius:.3rem;font-size:.8em;font-weight:600}.ok{background:#dfd;color:#050}.stale{background:#fe9;color:#640}
.dry{background:#fcc;color:#800}.gone{background:#eee;color:#a00}.banner{background:#fcc;color:#600;
padding:.6rem 1rem;border-radius:.4rem;font-weight:600}.figs a{display:inline-block;margin:.2rem;
text-align:center;font-size:.8em;color:#444}.figs img{display:block;border:1px solid #ddd;max-height:160px}
th[data-type]{cursor:pointer;white-space:nowrap}th[aria-sort=descending]::after{content:" \\25BC"}
th[aria-sort=ascending]::after{content:" \\25B2"}"""

# Sorts a table.sortable by the clicked header: numbers (data-type num) largest first on the first click, text A-Z;
# a second click reverses; cells without a value (data-sort '') stay last either way.
_SORT_SCRIPT = """<script>
for (const table of document.querySelectorAll('table.sortable')) {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, col) => {
    if (!th.dataset.type) return;
    th.addEventListener('click', () => {
      const numeric = th.dataset.type === 'num', was = th.getAttribute('aria-sort');
      const desc = was ? was === 'ascending' : numeric;
      heads.forEach(h => h.removeAttribute('aria-sort'));
      th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      const key = row => row.cells[col].dataset.sort ?? row.cells[col].textContent.trim();
      const rows = Array.from(table.tBodies[0].rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === '' || y === '') return (x === '') - (y === '');
        const c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return desc ? -c : c;
      });
      table.tBodies[0].append(...rows);
    });
  });
}
</script>"""


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _key(name) -> str:
    """A metric or notebook name that may wrap after its underscores (long names fit narrow columns)."""
    return _esc(name).replace("_", "_<wbr>").replace("/", "/<wbr>")


def _code(version) -> str:
    """"0.1.0 (git 1234567890abcdef...-dirty)" shown short, the whole of it on hover."""
    text = str(version)
    short = re.sub(r"git ([0-9a-f]{10})[0-9a-f]*", r"git \1", text)
    return f"<span title='{_esc(text)}'>{_esc(short)}</span>"


def _thumbnail(root: Path, nb: str, name: str) -> str:
    """A small PNG beside the figure (thumbs/<nb>/<name>), rebuilt when the figure is newer; its URL."""
    from PIL import Image
    src, dst = root / "figures" / nb / name, root / "thumbs" / nb / name
    if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
        with Image.open(src) as im, atomic_write(dst) as f:
            im.thumbnail((THUMB_PX * 2, THUMB_PX))
            im.save(f, format="PNG")
    return f"thumbs/{nb}/{name}"


def _headline(h: dict) -> str:
    return "<br>".join(f"{_key(k)} <span class='num'>{_esc(format_number(v))}</span>" for k, v in h.items())


def _mark(st: dict) -> str:
    if st["state"] == "missing":
        return "<span class='badge gone'>not run yet</span>"
    if st["state"] in ("unpublished", "modified"):
        return ("<span class='badge gone'>not shown</span> <span class='meta'>files here were not written by the "
                "runner" + (f" ({', '.join(st['changed'])} changed since it published)" if st.get("changed") else "")
                + "</span>")
    rec = st["record"]
    out = "<span class='badge dry'>dry run</span> " if rec.get("kind") == "dry-run" else ""
    if st["stale"]:
        return out + f"<span class='badge stale'>stale</span> <span class='meta'>changed since: {_esc(', '.join(st['stale']))}</span>"
    return out + "<span class='badge ok'>current</span>"


def _summary_rows(states: dict) -> list[str]:
    rows = []
    for nb, st in states.items():
        link = f"<a href='html/{nb}.html'>{_key(nb)}</a>" if st["state"] == "ok" else _key(nb)
        if st["state"] != "ok":
            hint = f"<code>make report NB={nb[:2]}</code>" if st["state"] == "missing" else "rerun with make"
            rows.append(f"<tr id='{nb}'><td>{link}</td><td>{_mark(st)}</td><td colspan='5' class='meta'>{hint}</td></tr>")
            continue
        rec, m = st["record"], st["metrics"]
        data = m.get("data") or {}
        rows.append(f"<tr id='{nb}'><td>{link}<br><a class='meta' href='html/{nb}.html'>full report</a></td>"
                    f"<td>{_mark(st)}</td><td>{_headline(m.get('headline') or {})}</td><td>{_esc(m.get('profile'))}</td>"
                    f"<td class='meta'>{_esc(data.get('source'))}<br>fingerprint <span class='num'>"
                    f"{_esc(data.get('fingerprint'))}</span></td><td class='meta'>{_code(rec.get('code_version'))}</td>"
                    f"<td class='meta'>{_esc(rec.get('date'))}</td></tr>")
    return rows


# (header, the row's key): the results table's number columns after notebook, model, init, data and classes
_FIGURE_COLUMNS = (("test accuracy", "test_accuracy"), ("macro-F1", "test_macro_f1"), ("ECE", "test_ece"),
                   ("parameters", "parameters"), ("ms/face", "ms_per_face"), ("best epoch", "best_epoch"))


def _results_table(root: Path, states: dict) -> list[str]:
    """The page's first table: one row per trained model of every published notebook (its metrics' ``results``)."""
    rows = []
    for nb, st in states.items():
        if st["state"] != "ok":
            continue
        run_file = root / "metrics" / f"{nb}.run.json"
        timing = json.loads(run_file.read_text()) if run_file.is_file() else None
        data = st["metrics"].get("data") or {}
        rows += [_result_row(root, nb, st, data, r) for r in results.published_rows(st["metrics"], timing)]
    if not rows:
        return ["<p class='meta'>No published notebook reports a trained model yet: <code>make reproduce</code>.</p>"]
    head = ("<tr><th data-type='text'>notebook</th><th data-type='text'>model</th><th data-type='text'>init</th>"
            "<th data-type='text'>data</th><th data-type='num'>classes</th>"
            + "".join(f"<th data-type='num'>{_esc(h)}</th>" for h, _ in _FIGURE_COLUMNS) + "<th>report</th><th>checkpoint</th></tr>")
    return ["<table id='results' class='sortable'><thead>" + head + "</thead><tbody>", *rows, "</tbody></table>"]


def _result_row(root: Path, nb: str, st: dict, data: dict, r: dict) -> str:
    classes = r["classes"] or []
    figures = "".join(_number_cell(r[key], _shown(key, r[key])) for _, key in _FIGURE_COLUMNS)
    return (f"<tr><td data-sort='{_esc(nb)}'>{_key(nb)}{_row_marks(st)}</td><td>{_key(r['model'])}</td>"
            f"<td>{_esc(r['init'])}</td>{_data_cell(data)}"
            f"{_number_cell(len(classes), str(len(classes)), title=', '.join(classes))}{figures}"
            f"<td><a href='html/{nb}.html'>report</a></td><td class='meta'>{_checkpoint_link(root, r['checkpoint'])}</td></tr>")


def _data_cell(data: dict) -> str:
    """The data's kind ("synthetic", "fer2013-csv") over its fingerprint; the whole source on hover (a narrow column)."""
    source = str(data.get("source"))
    kind = re.split(r"[(:]", source, maxsplit=1)[0]
    return (f"<td class='meta' data-sort='{_esc(source)}' title='{_esc(source)}'>{_esc(kind)}<br>"
            f"<span class='num'>{_esc(data.get('fingerprint'))}</span></td>")


def _number_cell(value, text: str, title: str = "") -> str:
    sort = "" if value is None else repr(value)
    hover = f" title='{_esc(title)}'" if title else ""
    return f"<td class='num' data-sort='{_esc(sort)}'{hover}>{_esc(text)}</td>"


def _shown(key: str, value) -> str:
    if value is None:
        return "n/a"
    if key == "parameters":
        return f"{value:,}"
    return f"{value:.2f}" if key == "ms_per_face" else format_number(value)


def _row_marks(st: dict) -> str:
    """A results row's dry-run and stale badges, as the notebook's own row shows them (what changed on hover)."""
    dry = " <span class='badge dry'>dry run</span>" if st["record"].get("kind") == "dry-run" else ""
    if st["stale"]:
        dry += f" <span class='badge stale' title='changed since: {_esc(', '.join(st['stale']))}'>stale</span>"
    return dry


def _checkpoint_link(root: Path, name: str | None) -> str:
    """A link from the page to the checkpoint file under the models root; its short name alone where the file is
    not on this machine or no relative link reaches it (another drive); "none" for a row with no single checkpoint."""
    if name is None:
        return "none"
    found = next((p for p in paths.candidates(name) if p.is_absolute() and p.is_file()), None)
    try:
        href = None if found is None else Path(os.path.relpath(found, root)).as_posix()
    except ValueError:
        href = None
    return f"<a href='{_esc(href)}'>{_key(name)}</a>" if href else f"<code>{_key(name)}</code>"


def _figures(root: Path, states: dict) -> list[str]:
    parts = []
    for nb, st in states.items():
        names = st.get("figures") or []
        if st["state"] != "ok" or not names:
            continue
        links = "".join(f"<a href='figures/{nb}/{_esc(n)}' title='{_esc(n)}'><img src='{_esc(_thumbnail(root, nb, n))}' "
                        f"alt='{_esc(Path(n).stem)}' loading='lazy'>{_esc(Path(n).stem)}</a>" for n in names)
        parts.append(f"<h3><a href='html/{nb}.html'>{_esc(nb)}</a></h3><div class='figs'>{links}</div>")
    return parts


def _history_rows(rows: list[dict]) -> list[str]:
    """One row per batch (one make call), newest first; a notebook not rerun in that batch shows ·."""
    batches: dict[str, list[dict]] = {}
    for r in rows:                      # the file is in append order: a batch's last row is its newest
        batch = r.get("batch") or r.get("date")
        batches[batch] = batches.pop(batch, []) + [r]
    out = []
    for runs in reversed(batches.values()):
        by_nb = {r["notebook"]: r for r in runs}
        fingerprints = sorted({str(r.get("fingerprint")) for r in runs})
        cells = []
        for nb in NOTEBOOKS:
            r = by_nb.get(nb)
            if r is None:
                cells.append("<td class='meta'>·</td>")
                continue
            # The test accuracy where there is one (the key sorted first is often a validation figure).
            key = next((k for k in r["headline"] if "test_accuracy" in k), next(iter(r["headline"]), ""))
            value = r["headline"].get(key)
            title = "; ".join(f"{k} {format_number(v)}" for k, v in r["headline"].items())
            cells.append(f"<td title='{_esc(title)}'><span class='meta'>{_key(key)}</span><br>"
                         f"<span class='num'>{_esc(format_number(value))}</span></td>")
        kinds = sorted({r.get("kind") for r in runs})
        dry = " <span class='badge dry'>dry run</span>" if "dry-run" in kinds else ""
        out.append(f"<tr><td class='meta'>{_esc(max(str(r.get('date')) for r in runs))}</td>"
                   f"<td>{_esc(', '.join(sorted({str(r.get('profile')) for r in runs})))}{dry}</td>"
                   f"<td class='meta'>{'<br>'.join(_code(v) for v in sorted({str(r.get('code_version')) for r in runs}))}</td>"
                   f"<td class='meta num'>{_esc(' '.join(fingerprints))}</td>{''.join(cells)}</tr>")
    return out


def _dry_runs(root: Path) -> list[str]:
    found = sorted(p.parent.name for p in (root / "dry-run").glob("*/index.html"))
    return [f"<a href='dry-run/{_esc(p)}/index.html'>{_esc(p)}</a>" for p in found]


def build_index(root: Path | None = None, banner: str = "") -> Path:
    """Write <root>/index.html (default: the published reports root) and return its path; `banner`: HTML that
    opens the page (a dry run's)."""
    root = Path(root) if root is not None else paths.reports_dir()
    states = {nb: records.status(nb, root) for nb in NOTEBOOKS}
    kinds = {st["record"].get("kind") for st in states.values() if st.get("record")}
    title = "emolib reports" + (f" (dry run: {root.name})" if "dry-run" in kinds else "")
    built = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_STYLE}</style></head><body>{banner}<h1>{_esc(title)}</h1>"]
    if "dry-run" in kinds:
        parts.append("<p class='banner'>DRY RUN: every notebook ran with training and evaluation capped to a few "
                     "batches. It proves the code paths of the profile; the numbers below mean nothing.</p>")
    parts.append(f"<p class='meta'>Only reports published by the runner (<code>make reproduce</code>) are shown; "
                 f"runs from JupyterLab are scratch runs under <code>scratch/</code>. Index built {built}.</p>")
    if dry := _dry_runs(root):
        parts.append(f"<p>Dry runs: {' · '.join(dry)}</p>")
    parts.append("<h2>Trained models</h2><p class='meta'>Every model a published notebook trained (or combined), "
                 "on its test split; click a column header to sort by it. Hover a class count for the names.</p>")
    parts += _results_table(root, states)
    parts.append("<h2>Headline numbers</h2><table><tr><th>notebook</th><th>status</th><th>headline</th>"
                 "<th>profile</th><th>data</th><th>code</th><th>date</th></tr>")
    parts += _summary_rows(states)
    parts.append("</table><h2>Figures</h2>")
    parts += _figures(root, states) or ["<p class='meta'>none yet</p>"]
    rows = _history_rows(records.history(root))
    parts.append("<h2>History of runs</h2><p class='meta'>One row per make call that ran notebooks, newest "
                 "first; each notebook's test accuracy (else its first headline number), hover for all.</p>")
    parts.append("<table><tr><th>date</th><th>profile</th><th>code</th><th>data fingerprint</th>"
                 + "".join(f"<th>{_esc(nb[:2])}</th>" for nb in NOTEBOOKS) + "</tr>" + "".join(rows) + "</table>"
                 if rows else "<p class='meta'>no runs yet</p>")
    parts.append(_SORT_SCRIPT + "</body></html>")
    return write_text(root / "index.html", "\n".join(parts))
