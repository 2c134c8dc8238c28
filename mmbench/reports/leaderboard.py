"""Leaderboard tables from run records: terminal (rich), markdown, CSV, JSON.

One table per (task, dataset, split, protocol); rows are plugins, columns the task's
headline metrics, sorted by the task's main metric (best first). Failed runs are listed
with their error, never silently dropped.
"""

from __future__ import annotations

import csv
import io
from collections import OrderedDict
from dataclasses import dataclass

from mmbench.records import RunRecord

HEADLINE = {
    "retrieval": ["i2t.R@1", "i2t.R@5", "i2t.R@10", "t2i.R@1", "t2i.R@5", "t2i.R@10", "rsum"],
    "captioning": ["Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"],
    "grounding": ["acc@0.5", "P@1", "P@5", "P@10"],
    "classification": ["accuracy", "f1_macro", "f1_weighted"],
}
MAIN = {"retrieval": "rsum", "captioning": "CIDEr", "grounding": "acc@0.5", "classification": "accuracy"}


@dataclass
class Table:
    task: str
    dataset: str
    split: str
    protocol: str
    fingerprint: str
    columns: list[str]
    rows: list[dict]  # {"plugin", "status", "error", metric: value, "ci": {metric: [lo, hi]}, "published": [...]}

    @property
    def title(self) -> str:
        proto = f" [{self.protocol}]" if self.protocol else ""
        return f"{self.task} · {self.dataset} / {self.split}{proto}"


def _columns(task: str, recs: list[RunRecord]) -> list[str]:
    present = OrderedDict()
    for r in recs:
        for k in r.metrics:
            present[k] = True
    cols = [c for c in HEADLINE.get(task, []) if c in present]
    # metrics a model adds itself (e.g. TMC's ECE) follow the task's headline metrics
    cols += list(OrderedDict.fromkeys(m for r in recs for m in r.details.get("extra_metrics", []) if m in present))
    if task == "grounding":  # acc@<threshold> may use another threshold
        cols = [c for c in present if c.startswith("acc@")] + [c for c in cols if not c.startswith("acc@")]
    if not cols:
        cols = list(present)
    return list(OrderedDict.fromkeys(cols))


def build_tables(recs: list[RunRecord]) -> list[Table]:
    groups: dict[tuple, list[RunRecord]] = OrderedDict()
    for r in recs:
        key = (r.task, r.dataset.get("name", ""), r.dataset.get("split", ""), r.dataset.get("protocol", ""))
        groups.setdefault(key, []).append(r)
    tables = []
    for (task, ds, split, proto), rs in groups.items():
        cols = _columns(task, [r for r in rs if r.status == "ok"])
        rows = []
        for r in rs:
            row = {"plugin": r.plugin.get("name", "?"), "version": r.plugin.get("version", ""),
                   "status": r.status, "error": r.error, "ci": r.ci, "published": r.published,
                   "run_id": r.run_id, "fingerprint": r.dataset.get("fingerprint", "")}
            row.update({c: r.metrics.get(c) for c in cols})
            rows.append(row)
        main = MAIN.get(task)
        key_col = main if main in cols else (cols[0] if cols else None)

        def sort_key(row):
            v = row.get(key_col) if key_col else None
            return (row["status"] != "ok", -(v if isinstance(v, (int, float)) else float("-inf")))

        rows.sort(key=sort_key)
        fps = sorted({r.dataset.get("fingerprint", "") for r in rs} - {""})
        tables.append(Table(task, ds, split, proto, ",".join(fps), cols, rows))
    return tables


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 1 or v == 0 else f"{v:.4f}"
    return str(v)


def has_published(t: Table) -> bool:
    return any(row.get("published") for row in t.rows)


def published_text(row: dict) -> str:
    """The row's paper-parity comparisons: ``i2t.R@1 78.90 (Δ -0.70 ✓)``, ``;``-separated."""
    parts = []
    for p in row.get("published") or []:
        if not isinstance(p, dict):
            continue
        d = p.get("delta")
        d = f"{d:+.2f}" if isinstance(d, (int, float)) else "?"
        parts.append(f"{p.get('metric')} {fmt(p.get('published'))} (Δ {d} {'✓' if p.get('within') else '✗'})")
    return "; ".join(parts)


def to_markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        pub = has_published(t)
        cols = len(t.columns) + (1 if pub else 0)
        out.append(f"### {_md_escape(t.title)}\n")
        if t.fingerprint:
            out.append(f"data fingerprint `{t.fingerprint}`\n")
        out.append("| plugin | " + " | ".join(_md_escape(c) for c in t.columns) + (" | vs published" if pub else "")
                   + " |")
        out.append("|---|" + "---:|" * len(t.columns) + ("---|" if pub else ""))
        for row in t.rows:
            name = _md_escape(row["plugin"])
            if row["status"] != "ok":
                out.append(f"| {name} | failed: {_md_escape(row['error'].splitlines()[0] if row['error'] else '')} |"
                           + " |" * (cols - 1))
                continue
            out.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in t.columns)
                       + (f" | {_md_escape(published_text(row)) or '–'}" if pub else "") + " |")
        out.append("")
    return "\n".join(out)


def _md_escape(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def to_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["task", "dataset", "split", "protocol", "plugin", "status", "metric", "value", "ci_low", "ci_high"])
    for t in tables:
        for row in t.rows:
            if row["status"] != "ok":
                w.writerow([t.task, t.dataset, t.split, t.protocol, row["plugin"], row["status"], "", "", "", ""])
                continue
            for c in t.columns:
                lo, hi = (row["ci"].get(c) or [None, None])[:2]
                w.writerow([t.task, t.dataset, t.split, t.protocol, row["plugin"], "ok", c, row.get(c), lo, hi])
    return buf.getvalue()


def to_json(tables: list[Table]) -> list[dict]:
    return [{"task": t.task, "dataset": t.dataset, "split": t.split, "protocol": t.protocol,
             "fingerprint": t.fingerprint, "columns": t.columns, "rows": t.rows} for t in tables]


def to_rich(tables: list[Table]):
    """A list of rich Tables for the terminal."""
    from rich.table import Table as RTable
    from rich.text import Text

    out = []
    for t in tables:
        cap = f"data fingerprint {t.fingerprint}" if t.fingerprint else None
        rt = RTable(title=Text(t.title), caption=cap, title_justify="left")
        rt.add_column("plugin", style="bold")
        for c in t.columns:
            rt.add_column(c, justify="right")
        pub = has_published(t)
        if pub:
            rt.add_column("vs published")
        failures: list[str] = []
        for row in t.rows:
            if row["status"] != "ok":
                # the cell is narrow: the full message goes under the table, where it can wrap
                failures.append(f"{row['plugin']} failed: {(row['error'] or '').splitlines()[0] if row['error'] else ''}")
                rt.add_row(Text(row["plugin"]), Text("failed ↓", style="red"),
                           *([""] * (len(t.columns) - 1 + (1 if pub else 0))))
                continue
            cells = []
            for c in t.columns:
                s = fmt(row.get(c))
                ci = row["ci"].get(c)
                if ci and None not in ci:
                    half = (ci[1] - ci[0]) / 2
                    # same precision as the value: 0..1-scale metrics (BLEU, METEOR) need 4 decimals
                    s += f" ±{half:.4f}" if isinstance(row.get(c), float) and abs(row[c]) < 1 else f" ±{half:.1f}"
                cells.append(s)
            if pub:
                cells.append(Text(published_text(row) or "–",
                                  style="" if all(p.get("within") for p in row.get("published") or []) else "red"))
            rt.add_row(Text(row["plugin"]), *cells)
        out.append(rt)
    return out
