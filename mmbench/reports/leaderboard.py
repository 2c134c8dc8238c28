"""Leaderboard tables from run records: terminal (rich), markdown, CSV, JSON.

One table per (task, dataset, split, protocol); rows are plugins, columns the task's
headline metrics, sorted by the task's main metric (best first). Failed runs are rows of
their table (last), with their error, never silently dropped: a failed record that carries
no protocol (the run failed before its data was loaded) joins the table(s) of its task,
dataset and split. Notes a record carries (``dataset.notes``, e.g. a non-standard dataset
size, and any record-level ``notes``) are shown under their table in every format.

**Re-runs.** Records of the same run — same (task, plugin, plugin options, dataset, split,
protocol, dataset options, task options) — show once: the newest (see :func:`newest_first`),
unless ``all_runs=True``; each table says how many older runs it hides. "Newest" is decided by
the record's ``created`` time, ties broken deterministically by ``run_id`` and then by the
record's content digest, so the choice never depends on file order. ``created`` is written by
the machine that made the run and is not authenticated: a record with a forged future
``created`` wins until that is hardened (issue 12). An unparsable ``created`` counts as oldest.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
from collections import OrderedDict
from dataclasses import dataclass, field

from mmbench.records import RunRecord
from mmbench.reports.format import ci_half, code_span, csv_cell, fmt, md_escape, published_delta, safe_text
from mmbench.tasks import kind_for_report
from mmbench.tasks.base import MetricInfo

#: the column a table shows when it has no metric column (every run failed)
RESULT_COLUMN = "result"


@dataclass
class Table:
    task: str
    dataset: str
    split: str
    protocol: str
    fingerprint: str
    columns: list[str]
    rows: list[dict]  # {"plugin", "status", "error", metric: value, "ci": {metric: [lo, hi]}, "published", "notes"}
    notes: list[dict] = field(default_factory=list)  # {"text", "plugins": [...], "all": bool}
    hidden: int = 0  # older re-runs not shown (``all_runs=False``)
    metric_info: dict = field(default_factory=dict)  # column -> {"higher_is_better", "unit"} (task kind / record)

    def higher_is_better(self, column: str) -> bool:
        return bool(self.metric_info.get(column, {}).get("higher_is_better", True))

    @property
    def title(self) -> str:
        proto = f" [{self.protocol}]" if self.protocol else ""
        return f"{self.task or '?'} · {self.dataset} / {self.split}{proto}"


# ----------------------------------------------------------------------------------- selecting runs


def _created_ts(r: RunRecord) -> float:
    try:
        d = _dt.datetime.fromisoformat(str(r.created))
    except (TypeError, ValueError):
        return float("-inf")
    if d.tzinfo is None:  # a naive time is taken as UTC (mmbench writes UTC with an offset)
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def _digest(r: RunRecord) -> str:
    return hashlib.sha256(json.dumps(r.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def newest_first(r: RunRecord) -> tuple:
    """Sort key, ascending = older: (created time, run_id, content digest). Deterministic for any input order."""
    return (_created_ts(r), str(r.run_id or ""), _digest(r))


def _canon(d) -> str:
    return json.dumps(d or {}, sort_keys=True, default=str)


def run_identity(r: RunRecord, protocol: str | None = None) -> tuple:
    """What makes two records re-runs of the same run (see the module docstring)."""
    cfg = r.config or {}
    return (r.task, r.plugin.get("name", ""), _canon(r.plugin.get("options")), r.dataset.get("name", ""),
            r.dataset.get("split", ""), r.dataset.get("protocol", "") if protocol is None else protocol,
            _canon(cfg.get("dataset_options")), _canon(cfg.get("task_options")))


def record_notes(r: RunRecord) -> list[str]:
    """Notes a record carries: ``dataset.notes``, a record-level ``notes`` list and ``details.notes``."""
    out: list[str] = []
    for src in (r.dataset.get("notes"), getattr(r, "notes", None), (r.details or {}).get("notes")):
        if isinstance(src, str):
            src = [src]
        if isinstance(src, (list, tuple)):
            out += [str(n).strip() for n in src if n is not None and str(n).strip()]
    return list(OrderedDict.fromkeys(out))


def _placements(recs: list[RunRecord]) -> list[tuple[RunRecord, str, str]]:
    """(record, task, protocol) per table a record is shown in.

    A failed record without a protocol (it failed before the data told it) goes into every table of
    its dataset and split (and task, when it knows it) that successful runs made; alone otherwise.
    """
    protos: dict[tuple, set] = {}
    for r in recs:
        if r.status == "ok":
            protos.setdefault((r.dataset.get("name", ""), r.dataset.get("split", "")), set()).add(
                (r.task, r.dataset.get("protocol", "")))
    out = []
    for r in recs:
        proto = r.dataset.get("protocol", "") or ""
        if r.status == "ok" or proto:
            out.append((r, r.task, proto))
            continue
        cands = sorted({(t, p) for t, p in protos.get((r.dataset.get("name", ""), r.dataset.get("split", "")), ())
                        if not r.task or t == r.task})
        if not cands or any(p == "" for _, p in cands):
            tasks = {t for t, _ in cands}
            out.append((r, r.task or (next(iter(tasks)) if len(tasks) == 1 else ""), ""))
        else:
            out.extend((r, t, p) for t, p in cands)
    return out


def build_tables(recs: list[RunRecord], all_runs: bool = False) -> list[Table]:
    """Leaderboard tables; with ``all_runs=False`` only the newest record of each run is shown."""
    from mmbench.reports.verify import future_text, in_future, result_digest

    placed = _placements(recs)
    hidden: dict[tuple, int] = {}
    dup_warn: dict[int, list[str]] = {}  # id(shown record) -> warnings about its disagreeing re-runs
    if not all_runs:
        newest: dict[tuple, tuple[RunRecord, str, str]] = {}
        group: dict[tuple, list[RunRecord]] = {}
        for item in placed:
            r, task, proto = item
            ident = (task,) + run_identity(r, proto)[1:]
            group.setdefault(ident, []).append(r)
            if ident not in newest or newest_first(r) > newest_first(newest[ident][0]):
                newest[ident] = item
        for ident, rs in group.items():
            shown = newest[ident][0]
            if len(rs) > 1 and len({result_digest(r) for r in rs}) > 1:
                others = sorted({str(r.run_id) for r in rs if r is not shown})
                dup_warn.setdefault(id(shown), []).append(
                    f"{len(rs)} records of this run disagree (different results); showing the newest by its "
                    f"unauthenticated 'created' (run {shown.run_id}), not shown: run(s) {', '.join(others)}"
                    + (" — and its date is in the future, so it cannot be trusted" if in_future(shown) else ""))
        keep = {(id(r), task, proto) for r, task, proto in newest.values()}
        kept = []
        for item in placed:
            r, task, proto = item
            if (id(r), task, proto) in keep:
                kept.append(item)
            else:
                tkey = (task, r.dataset.get("name", ""), r.dataset.get("split", ""), proto)
                hidden[tkey] = hidden.get(tkey, 0) + 1
        placed = kept
    groups: dict[tuple, list[RunRecord]] = OrderedDict()
    for r, task, proto in placed:
        key = (task, r.dataset.get("name", ""), r.dataset.get("split", ""), proto)
        groups.setdefault(key, []).append(r)
    for key in hidden:  # a table whose runs are all superseded elsewhere still says so
        groups.setdefault(key, [])
    tables = []
    for (task, ds, split, proto), rs in groups.items():
        cols = _columns(task, [r for r in rs if r.status == "ok"])
        rows = []
        for r in rs:
            row = {"plugin": r.plugin.get("name", "?"), "version": r.plugin.get("version", ""),
                   "status": r.status, "error": r.error, "ci": r.ci, "published": r.published,
                   "run_id": r.run_id, "created": r.created, "fingerprint": r.dataset.get("fingerprint", ""),
                   "n_samples": r.dataset.get("n_samples"), "notes": record_notes(r),
                   "warnings": record_warnings(r) + dup_warn.get(id(r), [])}
            if in_future(r):
                row["warnings"].append(future_text(r))
            row.update({c: r.metrics.get(c) for c in cols})
            rows.append(row)
        kind = kind_for_report(task)
        main = MetricInfo(kind.main) if kind.main else None
        key_col = next((c for c in cols if main and main.matches(c)), cols[0] if cols else None)
        declared = {k: v for r in rs for k, v in ((r.details or {}).get("extra_metric_info") or {}).items()}
        sign = -1.0 if key_col is None or kind.metric_info(key_col, declared).higher_is_better else 1.0

        def sort_key(row):
            v = row.get(key_col) if key_col else None
            ok = isinstance(v, (int, float)) and v == v
            return (row["status"] != "ok", not ok, sign * v if ok else 0.0)

        rows.sort(key=sort_key)
        fps = sorted({r.dataset.get("fingerprint", "") for r in rs} - {""})
        tables.append(Table(task, ds, split, proto, ",".join(fps), cols, rows, _table_notes(rows),
                            hidden.get((task, ds, split, proto), 0),
                            {c: kind.metric_info(c, declared).to_dict() for c in cols}))
    return tables


_VERIFY_CACHE: dict[int, tuple] = {}


def record_warnings(r: RunRecord) -> list[str]:
    """Why a record's numbers should not be trusted: stored metrics that disagree with its own
    per-sample outcomes, or per-sample outcomes that cannot be recomputed ([] when neither)."""
    from mmbench.reports.verify import verify_record

    hit = _VERIFY_CACHE.get(id(r))
    if hit is None or hit[0] is not r:
        hit = (r, verify_record(r))
        if len(_VERIFY_CACHE) > 4096:
            _VERIFY_CACHE.clear()
        _VERIFY_CACHE[id(r)] = hit
    v = hit[1]
    if v.status == "mismatch":
        return [f"stored metrics disagree with the record's own per-sample outcomes ({v.describe()}): a forged or "
                f"hand-edited record?"]
    if v.status == "unusable":
        return [f"the record's per-sample outcomes cannot be recomputed ({v.reason}): its metrics are unverified"]
    return []


def _table_notes(rows: list[dict]) -> list[dict]:
    by_text: dict[tuple[str, str], list[str]] = OrderedDict()
    for row in rows:
        for kind, key in (("warning", "warnings"), ("note", "notes")):
            for n in row.get(key) or []:
                by_text.setdefault((kind, n), [])
                if row["plugin"] not in by_text[(kind, n)]:
                    by_text[(kind, n)].append(row["plugin"])
    names = list(OrderedDict.fromkeys(row["plugin"] for row in rows))
    return [{"text": n, "plugins": ps, "all": set(ps) == set(names), "kind": kind}
            for (kind, n), ps in by_text.items()]


def _columns(task: str, recs: list[RunRecord]) -> list[str]:
    """The task kind's headline metrics present in the runs, then metrics a model adds itself (e.g. TMC's ECE)."""
    present = list(OrderedDict.fromkeys(k for r in recs for k in r.metrics))
    extra = list(OrderedDict.fromkeys(m for r in recs for m in r.details.get("extra_metrics", [])))
    return kind_for_report(task).columns(present, extra)


# ----------------------------------------------------------------------------------- text pieces


def has_published(t: Table) -> bool:
    return any(row.get("published") for row in t.rows)


def published_text(row: dict) -> str:
    """The row's paper-parity comparisons: ``i2t.R@1 78.90 (Δ -0.70 ✓)``, ``;``-separated."""
    parts = []
    for p in row.get("published") or []:
        if not isinstance(p, dict):
            continue
        d = published_delta(p.get("delta"), missing="?")
        parts.append(f"{p.get('metric')} {fmt(p.get('published'))} (Δ {d} {'✓' if p.get('within') else '✗'})")
    return "; ".join(parts)


def error_line(row: dict) -> str:
    """The first non-empty line of a failed row's error (the rest, e.g. a traceback, stays in the record)."""
    for line in str(row.get("error") or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def failed_text(row: dict) -> str:
    e = error_line(row)
    return f"failed: {e}" if e else "failed (no error recorded)"


def note_text(t: Table, n: dict) -> str:
    """``note`` for a note every row shares, ``note (plugin-a, plugin-b)`` otherwise."""
    return n["text"] if n.get("all") else f"{n['text']} ({', '.join(str(p) for p in n['plugins'])})"


def note_kind(n: dict) -> str:
    """``note`` or ``warning`` (a reason not to trust a row: see :func:`record_warnings`)."""
    return "warning" if n.get("kind") == "warning" else "note"


def hidden_text(t: Table) -> str:
    if not t.hidden:
        return ""
    return (f"{t.hidden} older re-run(s) of the same plugin, options and data not shown "
            f"(the newest is; --all-runs shows every record)")


# ----------------------------------------------------------------------------------- formats


def to_markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        pub = has_published(t)
        metric_cols = t.columns or [RESULT_COLUMN]
        ncells = len(metric_cols) + (1 if pub else 0)
        out.append(f"### {md_escape(t.title)}\n")
        if t.fingerprint:
            out.append(f"data fingerprint `{code_span(t.fingerprint)}`\n")
        out.append("| plugin | " + " | ".join(md_escape(c) + ("" if t.higher_is_better(c) else " ↓") for c in metric_cols)
                   + (" | vs published" if pub else "")
                   + " |")
        out.append("|---|" + "---:|" * len(metric_cols) + ("---|" if pub else ""))
        for row in t.rows:
            name = md_escape(row["plugin"])
            if row["status"] != "ok":
                out.append(f"| {name} | {md_escape(failed_text(row))} |" + " |" * (ncells - 1))
                continue
            if not t.columns:
                out.append(f"| {name} | – |" + (f" {md_escape(published_text(row)) or '–'} |" if pub else ""))
                continue
            out.append(f"| {name} | " + " | ".join(md_escape(fmt(row.get(c))) for c in t.columns)
                       + (f" | {md_escape(published_text(row)) or '–'}" if pub else "") + " |")
        lower = any(not t.higher_is_better(c) for c in t.columns)
        if t.notes or t.hidden or lower:
            out.append("")
        for n in t.notes:
            out.append(f"- {note_kind(n)}: {md_escape(note_text(t, n))}")
        if t.hidden:
            out.append(f"- {md_escape(hidden_text(t))}")
        if lower:
            out.append("- ↓ = lower is better")
        out.append("")
    return "\n".join(out)


CSV_HEADER = ["task", "dataset", "split", "protocol", "plugin", "status", "metric", "value", "ci_low", "ci_high",
              "error", "notes"]


def to_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADER)
    for t in tables:
        for row in t.rows:
            notes = " | ".join([f"warning: {x}" for x in row.get("warnings") or []] + list(row.get("notes") or []))
            if row["status"] != "ok" or not t.columns:
                cells = [t.task, t.dataset, t.split, t.protocol, row["plugin"], row["status"], "", "", "", "",
                         error_line(row) if row["status"] != "ok" else "", notes]
                w.writerow([csv_cell(x) for x in cells])
                continue
            for c in t.columns:
                lo, hi = ((row.get("ci") or {}).get(c) or [None, None])[:2]
                cells = [t.task, t.dataset, t.split, t.protocol, row["plugin"], "ok", c, row.get(c), lo, hi, "", notes]
                w.writerow([csv_cell(x) for x in cells])
    return buf.getvalue()


def to_json(tables: list[Table]) -> list[dict]:
    return [{"task": t.task, "dataset": t.dataset, "split": t.split, "protocol": t.protocol,
             "fingerprint": t.fingerprint, "columns": t.columns, "metric_info": t.metric_info, "rows": t.rows,
             "notes": t.notes, "hidden_reruns": t.hidden} for t in tables]


def to_rich(tables: list[Table]):
    """One rich renderable per table for the terminal: its title, the table, then fingerprint, failures and notes.

    Print them with :func:`mmbench.reports.console.print_whole` (or :func:`print_rich`): on a
    non-terminal (CI log, file, pipe) it widens the output so that no cell is cut or ellipsised.
    In a terminal, cells fold rather than being ellipsised.
    """
    from rich.console import Group
    from rich.table import Table as RTable
    from rich.text import Text

    out = []
    for t in tables:
        pub = has_published(t)
        metric_cols = t.columns or [RESULT_COLUMN]
        rt = RTable()
        rt.add_column("plugin", style="bold", overflow="fold")
        for c in metric_cols:  # headers are Text: a metric name is never read as rich markup
            rt.add_column(Text(safe_text(c) + ("" if t.higher_is_better(c) else " ↓")),
                          justify="right" if t.columns else "left", overflow="fold")
        if pub:
            rt.add_column("vs published", overflow="fold")
        below: list[str] = []
        for row in t.rows:
            if row["status"] != "ok":
                # the cell is narrow: the full message goes under the table, where it can wrap
                below.append(f"{row['plugin']} {failed_text(row)}")
                rt.add_row(Text(safe_text(row["plugin"])), Text("failed (below)", style="red"),
                           *([""] * (len(metric_cols) - 1 + (1 if pub else 0))))
                continue
            cells = []
            for c in t.columns:
                cells.append(Text(safe_text(fmt(row.get(c)) + ci_half(row.get(c), (row.get("ci") or {}).get(c)))))
            if not t.columns:
                cells.append("–")
            if pub:
                cells.append(Text(safe_text(published_text(row) or "–"),
                                  style="" if all(isinstance(p, dict) and p.get("within")
                                                  for p in row.get("published") or []) else "red"))
            rt.add_row(Text(safe_text(row["plugin"])), *cells)
        cap = ([f"data fingerprint {t.fingerprint}"] if t.fingerprint else []) + below
        if any(not t.higher_is_better(c) for c in t.columns):
            cap.append("↓ = lower is better")
        cap += [f"{note_kind(n)}: {note_text(t, n)}" for n in t.notes]
        if t.hidden:
            cap.append(hidden_text(t))
        # title and notes as lines of their own, not the table's title/caption: those wrap at the table's
        # width, these at the console's (and print_whole measures them, so off a terminal they stay whole)
        parts = [Text(safe_text(t.title), style="italic"), rt] + (
            [Text("\n".join(safe_text(line) for line in cap))] if cap else []) + [Text("")]
        out.append(Group(*parts))
    return out


def print_rich(tables: list[Table], console=None) -> None:
    """Print the rich tables whole (nothing cut in a CI log or a file); ``console`` defaults to stdout's."""
    from mmbench.reports.console import print_whole

    if console is None:
        from mmbench.commands.common import console
    print_whole(console, *to_rich(tables))
