"""reports/index.html: the page a researcher opens first.

One table of every notebook's headline numbers with its profile, data fingerprint, code version and date,
each row beside the HTML report it came from; figure thumbnails linking to the full-size figures; the
history of runs (one row per `make reproduce`/`make report` call); marks for dry runs and stale reports.

Only what the runner published is shown (`emolib.research.records.status`): numbers from anywhere else (an
interactive run, a hand-copied file) are never on this page. `build_index(root)` works for any reports
root with the published layout: the published reports, or a dry run's ``<reports>/dry-run/<profile>/``.
"""
from __future__ import annotations

import datetime as _dt
import html
import re
from pathlib import Path

from emolib.core import paths
from emolib.core.atomic import atomic_write, write_text
from emolib.research import records
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
text-align:center;font-size:.8em;color:#444}.figs img{display:block;border:1px solid #ddd;max-height:160px}"""


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
    parts.append("</body></html>")
    return write_text(root / "index.html", "\n".join(parts))
