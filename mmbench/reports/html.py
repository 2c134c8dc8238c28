"""A self-contained static HTML leaderboard from run records (``mmbench leaderboard --format html``).

One page, no network: inline CSS, inline SVG, a few lines of inline JavaScript for sorting,
and a Content-Security-Policy that forbids loading anything. One section per (task, dataset,
split, protocol) with a sortable table (confidence-interval whiskers in every metric cell,
a delta column against published numbers when a plugin declares them), protocol and
fingerprint badges, and a dot plot with CI whiskers of each metric across plugins.

Every piece of text that comes from a plugin, a dataset or a record is HTML-escaped; no
record data is ever placed inside the script.
"""

from __future__ import annotations

import html
import re

from mmbench.records import RunRecord
from mmbench.reports.format import fmt, num, precise, published_delta, safe_text
from mmbench.reports.leaderboard import RESULT_COLUMN, Table, build_tables, failed_text, hidden_text, note_kind, \
    note_text

_CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#fff;--accent:#2f6fde;--ok:#1b7f3b;--bad:#b42318;
--warn:#9a6700;--chip:#eef1f6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg);margin:0;padding:24px 32px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 6px}
.sub{color:var(--muted);margin:0 0 16px}
nav ul{margin:0;padding-left:18px;columns:2}
.badges{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0 10px}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;background:var(--chip);
border:1px solid var(--line);white-space:nowrap}
.badge.task{background:#e7efff;border-color:#c3d5fb}
.badge.protocol{background:#f1e9ff;border-color:#d9c6fb}
.badge.fp{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.badge.warn{background:#fff4d6;border-color:#f1d48a;color:var(--warn)}
table.lb{border-collapse:collapse;margin:4px 0 8px;min-width:50%}
table.lb th,table.lb td{border-bottom:1px solid var(--line);padding:5px 10px;text-align:right;vertical-align:middle}
table.lb th:first-child,table.lb td:first-child{text-align:left}
table.lb th{background:#f6f7fa;position:sticky;top:0}
table.lb th button{all:unset;cursor:pointer;font-weight:600}
table.lb th button:focus-visible{outline:2px solid var(--accent)}
table.lb th[aria-sort=ascending] button::after{content:" \\25B2";color:var(--accent)}
table.lb th[aria-sort=descending] button::after{content:" \\25BC";color:var(--accent)}
td.v{white-space:nowrap;font-variant-numeric:tabular-nums}
td.v svg{display:block;margin:2px 0 0 auto}
td.failed{color:var(--bad);text-align:left}
.pub{display:block;white-space:nowrap;font-size:12px}
.pub.ok{color:var(--ok)}.pub.bad{color:var(--bad)}
.ver{color:var(--muted);font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:14px;margin:8px 0 0}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
ul.notes{margin:4px 0 8px;padding-left:20px;color:var(--warn)}
p.hidden{color:var(--muted);font-size:12px;margin:2px 0 8px}
footer{color:var(--muted);margin-top:36px;font-size:12px}
"""

# Sorting only: reads data-v attributes, never record text.
_JS = """
(function(){
  function key(td){var v=td?td.getAttribute('data-v'):null;return v===null||v===''?null:parseFloat(v);}
  document.querySelectorAll('table.lb').forEach(function(table){
    var ths=table.querySelectorAll('thead th');
    ths.forEach(function(th,col){
      var b=th.querySelector('button'); if(!b) return;
      b.addEventListener('click',function(){
        var cur=th.getAttribute('aria-sort');
        var first=th.getAttribute('data-first')||'descending';
        var dir=cur===first?(first==='ascending'?'descending':'ascending'):first;
        ths.forEach(function(o){o.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',dir);
        var body=table.tBodies[0];
        var rows=Array.prototype.slice.call(body.rows);
        var isText=th.getAttribute('data-type')==='text';
        rows.sort(function(a,b){
          var fa=a.getAttribute('data-failed')==='1',fb=b.getAttribute('data-failed')==='1';
          if(fa!==fb) return fa?1:-1;
          var x,y;
          if(isText){x=a.cells[col].getAttribute('data-v')||'';y=b.cells[col].getAttribute('data-v')||'';
            return dir==='ascending'?x.localeCompare(y):y.localeCompare(x);}
          x=key(a.cells[col]);y=key(b.cells[col]);
          if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
          return dir==='ascending'?x-y:y-x;
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


def _e(s) -> str:
    """Text for HTML: escaped, terminal escape sequences and control characters removed."""
    return html.escape(safe_text("" if s is None else str(s), newlines=True), quote=True)


def _ci(row: dict, col: str) -> tuple[float, float] | None:
    ci = (row.get("ci") or {}).get(col)
    if not isinstance(ci, (list, tuple)) or len(ci) < 2:
        return None
    lo, hi = num(ci[0]), num(ci[1])
    return (lo, hi) if lo is not None and hi is not None else None


def _domain(t: Table, col: str) -> tuple[float, float]:
    vals = []
    for row in t.rows:
        if row["status"] != "ok":
            continue
        v = num(row.get(col))
        if v is not None:
            vals.append(v)
        ci = _ci(row, col)
        if ci:
            vals.extend(ci)
    if not vals:
        return (0.0, 1.0)
    lo, hi = min(vals + [0.0]), max(vals)
    if hi <= lo:
        hi = lo + 1.0
    return (lo, hi + (hi - lo) * 0.04)


def _whisker(v: float, ci, dom, width=90, height=10) -> str:
    lo_d, hi_d = dom
    x = lambda u: 1 + (width - 2) * (u - lo_d) / (hi_d - lo_d)  # noqa: E731
    parts = [f'<svg class="wh" width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-hidden="true">',
             f'<line x1="1" y1="{height / 2}" x2="{width - 1}" y2="{height / 2}" stroke="#e3e6ec"/>']
    if ci:
        a, b = x(ci[0]), x(ci[1])
        parts.append(f'<line x1="{a:.1f}" y1="{height / 2}" x2="{b:.1f}" y2="{height / 2}" stroke="#2f6fde" '
                     f'stroke-width="1.5"/><line x1="{a:.1f}" y1="1" x2="{a:.1f}" y2="{height - 1}" stroke="#2f6fde"/>'
                     f'<line x1="{b:.1f}" y1="1" x2="{b:.1f}" y2="{height - 1}" stroke="#2f6fde"/>')
    parts.append(f'<circle cx="{x(v):.1f}" cy="{height / 2}" r="2.6" fill="#1d2330"/></svg>')
    return "".join(parts)


def _anchor(t: Table, i: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{t.task}-{t.dataset}-{t.split}-{t.protocol}".lower()).strip("-")
    return f"t{i}-{slug}"[:80]


def _published_cell(row: dict) -> tuple[str, str]:
    pubs = [p for p in row.get("published") or [] if isinstance(p, dict)]
    if not pubs:
        return "", ""
    items = []
    for p in pubs:
        delta, measured, published = num(p.get("delta")), num(p.get("measured")), num(p.get("published"))
        ok = bool(p.get("within"))
        tol = num(p.get("tolerance"))
        title = (f"measured {fmt(measured)}, published {fmt(published)}"
                 + (f", tolerance ±{tol:g}" if tol is not None else "")
                 + (f", protocol {p.get('protocol')}" if p.get("protocol") else "")
                 + (f" — {p.get('source')}" if p.get("source") else ""))
        d = published_delta(delta)
        items.append(f'<span class="pub {"ok" if ok else "bad"}" title="{_e(title)}">{_e(p.get("metric"))} '
                     f'{_e(fmt(published))} Δ{_e(d)} {"✓" if ok else "✗"}</span>')
    first = num(pubs[0].get("delta"))
    return "".join(items), "" if first is None else repr(first)


def _table_html(t: Table, idx: int) -> str:
    has_pub = any(row.get("published") for row in t.rows)
    doms = {c: _domain(t, c) for c in t.columns}
    out = [f'<table class="lb" id="{_anchor(t, idx)}-table"><thead><tr>',
           '<th data-type="text" data-first="ascending"><button type="button">plugin</button></th>']
    for c in t.columns:
        first = "descending" if t.higher_is_better(c) else "ascending"
        out.append(f'<th data-first="{first}" data-metric="{_e(c)}"><button type="button">{_e(c)}</button></th>')
    if not t.columns:  # every run failed: one result column, so the failure cells line up with a header
        out.append(f"<th>{_e(RESULT_COLUMN)}</th>")
    if has_pub:
        out.append('<th data-first="descending"><button type="button">Δ vs published</button></th>')
    out.append("</tr></thead><tbody>")
    for row in t.rows:
        failed = row["status"] != "ok"
        name = row.get("plugin", "?")
        ver = f' <span class="ver">{_e(row.get("version"))}</span>' if row.get("version") else ""
        out.append(f'<tr data-failed="{1 if failed else 0}" data-run="{_e(row.get("run_id"))}">'
                   f'<td data-v="{_e(name)}">{_e(name)}{ver}</td>')
        if failed:
            span = max(1, len(t.columns)) + (1 if has_pub else 0)
            out.append(f'<td class="failed" colspan="{span}">{_e(failed_text(row))}</td></tr>')
            continue
        if not t.columns:
            out.append('<td data-v="">–</td>')
        for c in t.columns:
            v = num(row.get(c))
            if v is None:
                out.append('<td class="v" data-v="">–</td>')
                continue
            ci = _ci(row, c)
            title = f"{c} = {precise(v)}" + (f", 95% CI [{precise(ci[0])}, {precise(ci[1])}]" if ci else ", no CI")
            out.append(f'<td class="v" data-v="{v!r}" title="{_e(title)}">{_e(fmt(v))}'
                       f'{_whisker(v, ci, doms[c])}</td>')
        if has_pub:
            cell, key = _published_cell(row)
            out.append(f'<td data-v="{_e(key)}">{cell or "–"}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _plot(t: Table, col: str) -> str:
    rows = [r for r in t.rows if r["status"] == "ok" and num(r.get(col)) is not None]
    if not rows:
        return ""
    lo_d, hi_d = _domain(t, col)
    label_w, plot_w, row_h, top = 130, 260, 18, 6
    height = top + row_h * len(rows) + 22
    width = label_w + plot_w + 50
    x = lambda u: label_w + plot_w * (u - lo_d) / (hi_d - lo_d)  # noqa: E731
    parts = [f'<figure><figcaption>{_e(col)}{"" if t.higher_is_better(col) else " (lower is better)"}</figcaption>'
             f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(col)} across plugins">']
    base = top + row_h * len(rows)
    parts.append(f'<line x1="{label_w}" y1="{top}" x2="{label_w}" y2="{base}" stroke="#c9ced8"/>'
                 f'<line x1="{label_w}" y1="{base}" x2="{label_w + plot_w}" y2="{base}" stroke="#c9ced8"/>')
    for tick in (lo_d, (lo_d + hi_d) / 2, hi_d):
        parts.append(f'<text x="{x(tick):.1f}" y="{base + 14}" font-size="10" text-anchor="middle" '
                     f'fill="#5b6475">{_e(fmt(tick, 1))}</text>')
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        v = num(r.get(col))
        name = str(r.get("plugin", "?"))
        short = name if len(name) <= 18 else name[:17] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#1d2330">'
                     f'<title>{_e(name)}</title>{_e(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y - 5:.1f}" width="{max(0.0, x(v) - label_w):.1f}" height="10" '
                     f'fill="#c9dafb"/>')
        ci = _ci(r, col)
        if ci:
            a, b = x(ci[0]), x(ci[1])
            parts.append(f'<line x1="{a:.1f}" y1="{y:.1f}" x2="{b:.1f}" y2="{y:.1f}" stroke="#2f6fde" '
                         f'stroke-width="1.5"/><line x1="{a:.1f}" y1="{y - 4:.1f}" x2="{a:.1f}" y2="{y + 4:.1f}" '
                         f'stroke="#2f6fde"/><line x1="{b:.1f}" y1="{y - 4:.1f}" x2="{b:.1f}" y2="{y + 4:.1f}" '
                         f'stroke="#2f6fde"/>')
        parts.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="3" fill="#1d2330"/>'
                     f'<text x="{label_w + plot_w + 6}" y="{y + 4:.1f}" font-size="10" fill="#1d2330">'
                     f'{_e(fmt(v))}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _notes_html(t: Table) -> str:
    out = []
    if t.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{note_kind(n)}: {_e(note_text(t, n))}</li>" for n in t.notes)
                   + "</ul>")
    if t.hidden:
        out.append(f'<p class="hidden">{_e(hidden_text(t))}</p>')
    return "".join(out)


def _badges(t: Table) -> str:
    out = [f'<span class="badge task">task: {_e(t.task)}</span>',
           f'<span class="badge">split: {_e(t.split)}</span>',
           f'<span class="badge protocol">protocol: {_e(t.protocol or "default")}</span>']
    fps = [f for f in (t.fingerprint or "").split(",") if f]
    if len(fps) > 1:
        out.append(f'<span class="badge warn" title="{_e(", ".join(fps))}">data fingerprints differ '
                   f'({len(fps)}): rows are not computed on the same data</span>')
    for f in fps:
        out.append(f'<span class="badge fp" title="data fingerprint">data {_e(f)}</span>')
    n = {row.get("n_samples") for row in t.rows if row.get("n_samples") is not None}
    if len(n) == 1:
        out.append(f'<span class="badge">{_e(next(iter(n)))} samples</span>')
    return '<div class="badges">' + "".join(out) + "</div>"


def render_html(records: list[RunRecord], title: str = "mmbench leaderboard", all_runs: bool = False) -> str:
    """One self-contained HTML page for ``records`` (no external resources of any kind).

    Tables as :func:`mmbench.reports.leaderboard.build_tables` makes them: failed runs are rows,
    record notes are listed under their table, re-runs show once unless ``all_runs``.
    """
    from mmbench import __version__

    tables = build_tables(records, all_runs=all_runs)
    n_hidden = sum(t.hidden for t in tables)
    created = sorted(r.created for r in records if r.created)
    span = f"{created[0]} – {created[-1]}" if created else "–"
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="sub">{len(records)} run record(s), {len(tables)} table(s); runs created {_e(span)}. '
            + (f"{n_hidden} older re-run(s) not shown. " if n_hidden else "")
            + f"Click a column header to sort. Whiskers show bootstrap confidence intervals.</p>"]
    if len(tables) > 1:
        body.append("<nav><ul>" + "".join(f'<li><a href="#{_anchor(t, i)}">{_e(t.title)}</a></li>'
                                          for i, t in enumerate(tables)) + "</ul></nav>")
    if not tables:
        body.append("<p>No run records.</p>")
    for i, t in enumerate(tables):
        body.append(f'<section id="{_anchor(t, i)}"><h2>{_e(t.title)}</h2>')
        body.append(_badges(t))
        body.append(_table_html(t, i))
        body.append(_notes_html(t))
        plots = [p for p in (_plot(t, c) for c in t.columns) if p]
        if plots:
            body.append('<div class="plots">' + "".join(plots) + "</div>")
        body.append("</section>")
    body.append(f"<footer>Generated by mmbench {_e(__version__)} from run records only; "
                f"this page loads nothing from the network.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")
