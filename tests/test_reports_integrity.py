"""What reports tell a user (issue 10, section 4): failed runs are rows of their table in every
format, nothing printed off a terminal is cut, files get the user's umask, record notes show
everywhere (HTML escaped), and re-runs show once (the newest) unless --all-runs.

The records come from real ``mmbench eval`` runs of the toy plugins (tests/toy_plugin.py plus two
captioning models defined here), so a failure looks exactly as the runner writes it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import sys
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmbench.plugins as plugins_mod
from mmbench import records
from mmbench.cli import app
from mmbench.hookspecs import hookimpl
from mmbench.plugins import Registry
from mmbench.records import RunRecord
from mmbench.specs import ModelSpec

_spec = importlib.util.spec_from_file_location("toy_plugin_reports", Path(__file__).with_name("toy_plugin.py"))
toy_plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy_plugin)

runner = CliRunner()
LONG_NAME = "integrity-captioner-with-a-rather-long-name"
LONG_DESCRIPTION = ("A captioning model whose description is long enough to push a model table past eighty columns "
                    "in a CI log, where rich would otherwise squeeze the name column until it ends in an ellipsis.")
EVIL = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'


class RaisingCaptioner:
    def generate(self, images):
        raise RuntimeError("captioner exploded")


class EchoCaptioner:
    def generate(self, images):
        return [f"a picture number {im.id[2:]}" for im in images]


@hookimpl
def mmbench_models():
    return [ModelSpec(name="raising-captioner", task="captioning", factory=RaisingCaptioner, accepts=("regions",)),
            ModelSpec(name=LONG_NAME, task="captioning", factory=EchoCaptioner, accepts=("regions",),
                      description=LONG_DESCRIPTION)]


@pytest.fixture
def registry(monkeypatch):
    reg = Registry(entry_points=False, extra_modules=(toy_plugin, sys.modules[__name__]))
    monkeypatch.setattr(plugins_mod, "get_registry", lambda: reg)
    monkeypatch.setenv("COLUMNS", "80")  # what a CI log gets: rich's default width off a terminal
    return reg


@pytest.fixture
def eval_runs(registry, tmp_path):
    """Records of a real multi-run: a retrieval and a captioning failure beside successful runs.

    The successful captioning record is written here rather than evaluated (METEOR's JVM would
    take half a minute); it has what the runner writes for the toy data (protocol included).
    """
    out = tmp_path / "runs"
    res = runner.invoke(app, ["eval", "-p", "raising", "-p", "oracle", "-p", "raising-captioner",
                              "-d", "toy", "--out", str(out), "--bootstrap", "0", "--no-progress", "--json"])
    assert res.exit_code == 1, res.output  # two runs failed
    got = json.loads(res.stdout)
    assert sorted((r["plugin"]["name"], r["status"]) for r in got) == [
        ("oracle", "ok"), ("raising", "failed"), ("raising-captioner", "failed")]
    oracle = next(r for r in got if r["status"] == "ok")
    records.save(RunRecord(task="captioning", plugin={"name": "echo", "version": "", "options": {}},
                           dataset=dict(oracle["dataset"], task="captioning"),
                           metrics={"Bleu_1": 0.9, "Bleu_4": 0.5, "METEOR": 0.4, "ROUGE_L": 0.8, "CIDEr": 2.5},
                           config=oracle["config"]), out)
    return out


def _md_tables(md: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of cells (splitting on unescaped pipes)."""
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def _assert_valid_md(md: str) -> list[list[list[str]]]:
    tables = _md_tables(md)
    assert tables
    for t in tables:
        n = len(t[0])
        assert all(re.fullmatch(r":?-{3,}:?", c) for c in t[1]), t[1]  # the delimiter row
        for row in t:
            assert len(row) == n, (t[0], row)  # GFM: every row has the header's cell count
    return tables


class _Cells(HTMLParser):
    """Per <table>: the header cell count and, per body row, its cells counted with colspan."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.section = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"head": 0, "rows": []})
        elif tag == "thead":
            self.section = "head"
        elif tag == "tbody":
            self.section = "body"
        elif tag == "tr" and self.tables and self.section == "body":
            self.tables[-1]["rows"].append(0)
        elif tag in ("th", "td") and self.tables:
            span = int(a.get("colspan") or 1)
            if self.section == "head":
                self.tables[-1]["head"] += span
            else:
                self.tables[-1]["rows"][-1] += span


def _html_cells(page: str) -> list[dict]:
    p = _Cells()
    p.feed(page)
    return p.tables


def _lb(path, *args):
    res = runner.invoke(app, ["leaderboard", str(path), *args])
    assert res.exit_code == 0, res.output
    return res.output


def _failed(task, plugin, *, error="PluginError: boom", created="2026-01-01T00:00:00+00:00", protocol=""):
    """A failed record as mmbench.runner.failed_record writes it: no protocol, no metrics."""
    return RunRecord(task=task, plugin={"name": plugin, "options": {}},
                     dataset={"name": "toy", "split": "test", "protocol": protocol}, status="failed", error=error,
                     created=created)


def _ok(plugin="m", *, r1=50.0, created="2026-01-01T00:00:00+00:00", run_id=None, options=None, notes=(),
        dataset="toy", fp="f" * 16, protocol="5-per-image"):
    metrics = {"i2t.R@1": r1, "i2t.R@5": r1 + 10, "i2t.R@10": r1 + 20, "t2i.R@1": r1 - 5, "t2i.R@5": r1 + 5,
               "t2i.R@10": r1 + 15}
    metrics["rsum"] = sum(metrics.values())
    kw = {"run_id": run_id} if run_id else {}
    return RunRecord(task="retrieval", plugin={"name": plugin, "version": "1", "options": dict(options or {})},
                     dataset={"name": dataset, "split": "test", "protocol": protocol, "fingerprint": fp,
                              "n_samples": 6, "notes": list(notes)},
                     metrics=metrics, ci={k: [v - 1.25, v + 1.25] for k, v in metrics.items()}, created=created,
                     config={"dataset_options": {}, "task_options": {}}, **kw)


# --------------------------------------------------------------------------- 1. failed runs are rows


def test_failed_runs_are_rows_of_their_table_in_every_format(eval_runs):
    from mmbench.reports import leaderboard as lb
    from mmbench.reports.html import render_html

    recs = records.load_many([eval_runs])
    failed = {r.plugin["name"]: r for r in recs if r.status == "failed"}
    # what a failed record holds
    for name, task in (("raising", "retrieval"), ("raising-captioner", "captioning")):
        r = failed[name]
        assert (r.task, r.dataset["name"], r.dataset["split"], r.status) == (task, "toy", "test", "failed")
        assert r.error
    tables = lb.build_tables(recs)
    # one table per task, each holding the successful run AND the failure (they used to get a table apart)
    assert sorted((t.task, t.protocol, [row["plugin"] for row in t.rows]) for t in tables) == [
        ("captioning", "5-per-image", ["echo", "raising-captioner"]),
        ("retrieval", "5-per-image", ["oracle", "raising"])]
    md = _lb(eval_runs, "--format", "markdown")
    mds = _assert_valid_md(md)
    assert len(mds) == 2
    ret = next(t for t in mds if "i2t.R@1" in t[0])
    assert ret[2][0] == "oracle" and ret[3][0] == "raising"
    assert ret[3][1].startswith("failed: ") and "boom inside the plugin" in ret[3][1]
    cap = next(t for t in mds if "CIDEr" in t[0])
    assert cap[3][0] == "raising-captioner" and "captioner exploded" in cap[3][1]
    rows = list(csv.DictReader(io.StringIO(_lb(eval_runs, "-f", "csv"))))
    bad = {r["plugin"]: r for r in rows if r["status"] == "failed"}
    assert set(bad) == {"raising", "raising-captioner"}
    assert bad["raising"]["protocol"] == "5-per-image" and "boom inside the plugin" in bad["raising"]["error"]
    cap_row = bad["raising-captioner"]
    assert cap_row["task"] == "captioning" and "captioner exploded" in cap_row["error"]
    js = json.loads(_lb(eval_runs, "--json"))
    assert sorted((t["task"], [(r["plugin"], r["status"]) for r in t["rows"]]) for t in js) == [
        ("captioning", [("echo", "ok"), ("raising-captioner", "failed")]),
        ("retrieval", [("oracle", "ok"), ("raising", "failed")])]
    page = render_html(recs)
    assert page.count("<section") == 2
    assert "captioner exploded" in page and "boom inside the plugin" in page
    for t in _html_cells(page):
        assert all(n == t["head"] for n in t["rows"]), t
    table = _lb(eval_runs)  # the terminal table (here: not a terminal)
    assert "raising-captioner" in table and "captioner exploded" in table and "boom inside the plugin" in table


def test_sections_with_only_failed_rows_are_valid_in_every_format(tmp_path):
    from mmbench.reports import leaderboard as lb
    from mmbench.reports.html import render_html

    recs = [_failed("retrieval", "a"), _failed("captioning", "b", error="\nPluginError: second line first"),
            _failed("", "unknown-plugin", error="")]
    tables = lb.build_tables(recs)
    assert all(t.rows and all(r["status"] == "failed" for r in t.rows) for t in tables)
    md = lb.to_markdown(tables)
    mds = _assert_valid_md(md)
    assert [t[0] for t in mds] == [["plugin", "result"]] * len(mds)
    cells = {row[0]: row[1] for t in mds for row in t[2:]}
    assert cells == {"a": "failed: PluginError: boom", "b": "failed: PluginError: second line first",
                     "unknown-plugin": "failed (no error recorded)"}
    rows = list(csv.DictReader(io.StringIO(lb.to_csv(tables))))
    assert {(r["plugin"], r["status"], r["error"]) for r in rows} == {
        ("a", "failed", "PluginError: boom"), ("b", "failed", "PluginError: second line first"),
        ("unknown-plugin", "failed", "")}
    js = json.loads(json.dumps(lb.to_json(tables)))
    assert sorted(r["plugin"] for t in js for r in t["rows"]) == ["a", "b", "unknown-plugin"]
    page = render_html(recs)
    for t in _html_cells(page):
        assert t["head"] == 2 and t["rows"] and all(n == 2 for n in t["rows"]), t
    from rich.console import Console

    c = Console(width=120, record=True, file=io.StringIO())
    lb.print_rich(tables, c)
    text = c.export_text()
    assert "a failed: PluginError: boom" in text and "b failed: PluginError: second line first" in text


# --------------------------------------------------------------------------- 2. nothing cut off a terminal


def _whole(text: str, *words: str) -> None:
    assert "…" not in text, text
    for w in words:
        assert re.search(rf"(?<![\w.@-]){re.escape(w)}(?![\w.@-])", text), (w, text)


def test_non_terminal_leaderboard_and_eval_tables_print_names_whole(registry, tmp_path):
    from rich.console import Console

    from mmbench.reports import leaderboard as lb

    rec = _ok("clip-vit-b32-openai-zero-shot", dataset="coco_captions",
              notes=["non-standard size: 4000 of the 5000 images"])
    records.save(rec, tmp_path)
    out = _lb(tmp_path)  # CliRunner: stdout is a pipe, 80 columns
    _whole(out, "coco_captions", "clip-vit-b32-openai-zero-shot", "i2t.R@10", "t2i.R@10", "i2t.R@1", "rsum",
           "5-per-image")
    assert "non-standard size: 4000 of the 5000 images" in out
    # the eval summary table goes through the same printer
    buf = io.StringIO()
    console = Console(file=buf, width=80)
    assert not console.is_terminal
    lb.print_rich(lb.build_tables([rec]), console)
    _whole(buf.getvalue(), "coco_captions", "clip-vit-b32-openai-zero-shot", "i2t.R@10", "t2i.R@10")
    assert max(len(line) for line in buf.getvalue().splitlines()) > 80  # widened, not squeezed
    # a terminal keeps its width (folding, never an ellipsis)
    term = Console(file=io.StringIO(), width=60, force_terminal=True, record=True)
    lb.print_rich(lb.build_tables([rec]), term)
    text = term.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 60


def test_non_terminal_list_and_compare_print_names_whole(registry, tmp_path):
    res = runner.invoke(app, ["list", "plugins"])
    assert res.exit_code == 0, res.output
    _whole(res.output, LONG_NAME, "raising-captioner", "cross-oracle", "broken-factory")
    assert LONG_DESCRIPTION in res.output
    res = runner.invoke(app, ["list", "datasets"])
    assert res.exit_code == 0, res.output
    names = [d.name for d in registry.datasets.values()]
    assert "coco_captions" in names
    _whole(res.output, *names)
    base, new = _ok("clip-vit-b32-openai-zero-shot", dataset="coco_captions"), \
        _ok("clip-vit-b32-openai-zero-shot", dataset="coco_captions", r1=51.0)
    records.save(base, tmp_path / "base")
    records.save(new, tmp_path / "new")
    res = runner.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--bootstrap", "0",
                              "--gate", "i2t.R@10 drop<=0.5", "--gate", "dataset=coco_captions t2i.R@10 >= 1"])
    assert res.exit_code == 0, res.output
    _whole(res.output, "coco_captions", "clip-vit-b32-openai-zero-shot", "i2t.R@10", "t2i.R@10",
           "dataset=coco_captions")


# --------------------------------------------------------------------------- 3. the user's umask


@contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_records_and_pages_are_written_with_the_users_umask(tmp_path, mask, mode):
    with _umask(mask):
        path = records.save(_ok(), tmp_path / "runs")
        res = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), "-f", "html", "-o", str(tmp_path / "lb.html")])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), "-f", "markdown", "-o",
                                  str(tmp_path / "lb.md")])
        assert res.exit_code == 0, res.output
    for p in (path, tmp_path / "lb.html", tmp_path / "lb.md"):
        assert os.stat(p).st_mode & 0o777 == mode, (p, oct(os.stat(p).st_mode))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


# --------------------------------------------------------------------------- 4. notes in every format


def test_record_notes_show_in_every_format_html_escaped(tmp_path):
    from mmbench.reports import leaderboard as lb
    from mmbench.reports.html import render_html

    size = "toy test: 6 images, the standard copy has 1000"
    a = _ok("alpha", notes=[size, EVIL])
    b = _ok("beta", r1=40.0, notes=[size])
    b.notes = ["train/eval overlap allowed by --allow-overlap: 2 shared images"]  # a record-level notes list
    recs = [a, b]
    for r in recs:
        records.save(r, tmp_path)
    md = _lb(tmp_path, "--format", "markdown")
    _assert_valid_md(md)
    assert f"- note: {size}\n" in md  # shared by every row: said once, no plugin list
    assert "- note: &lt;script&gt;window.__pwned=1&lt;/script&gt;" in md and "(alpha)" in md and "<script>" not in md
    # a record-level list is not part of the saved schema; in memory it shows like the dataset's notes
    md_mem = lb.to_markdown(lb.build_tables(recs))
    assert "- note: train/eval overlap allowed by --allow-overlap: 2 shared images (beta)" in md_mem
    rows = list(csv.DictReader(io.StringIO(_lb(tmp_path, "-f", "csv"))))
    assert {r["notes"] for r in rows if r["plugin"] == "beta"} == {size}
    assert all(size in r["notes"] and EVIL in r["notes"] for r in rows if r["plugin"] == "alpha")
    js = json.loads(_lb(tmp_path, "--json"))
    assert {n["text"]: n["all"] for n in js[0]["notes"]} == {size: True, EVIL: False}
    assert [r["notes"] for r in js[0]["rows"]] == [[size, EVIL], [size]]
    table = _lb(tmp_path)
    assert f"note: {size}" in table
    page = render_html(recs)
    assert f"<li>note: {size}</li>" in page
    assert "<li>note: &lt;script&gt;window.__pwned=1&lt;/script&gt;&quot;&gt;&lt;img src=x" in page
    assert "<script>window.__pwned" not in page and "<img" not in page
    assert "overlap allowed by --allow-overlap: 2 shared images (beta)" in page


# --------------------------------------------------------------------------- 5. re-runs show once


def test_reruns_show_once_newest_unless_all_runs(tmp_path):
    from mmbench.reports import leaderboard as lb

    old = _ok("m", r1=10.0, created="2026-01-01T00:00:00+00:00", run_id="aaaaaaaaaaaa")
    new = _ok("m", r1=20.0, created="2026-02-01T00:00:00+00:00", run_id="bbbbbbbbbbbb")
    other_opts = _ok("m", r1=30.0, created="2026-01-15T00:00:00+00:00", options={"checkpoint": "b.pth"})
    stale_failure = _failed("retrieval", "m", created="2025-12-01T00:00:00+00:00")
    for r in (old, new, other_opts, stale_failure):
        records.save(r, tmp_path)
    js = json.loads(_lb(tmp_path, "--json"))
    assert len(js) == 1
    assert sorted(r[ "rsum" if "rsum" in r else "plugin"] for r in js[0]["rows"]) == sorted(
        [new.metrics["rsum"], other_opts.metrics["rsum"]])  # newest of each (plugin, options) only
    assert js[0]["hidden_reruns"] == 2
    md = _lb(tmp_path, "--format", "markdown")
    assert "2 older re-run(s) of the same plugin, options and data not shown" in md and "--all-runs" in md
    assert "failed" not in md  # the failure was superseded by the later successful run
    js_all = json.loads(_lb(tmp_path, "--json", "--all-runs"))
    assert len(js_all[0]["rows"]) == 4 and js_all[0]["hidden_reruns"] == 0
    assert "html" in _lb(tmp_path, "-f", "html", "--all-runs").lower()
    # a newer failure supersedes an older success: the newest attempt is what the table shows
    later_failure = _failed("retrieval", "m", created="2026-03-01T00:00:00+00:00")
    t = lb.build_tables([old, new, later_failure])
    assert [(r["plugin"], r["status"]) for r in t[0].rows] == [("m", "failed")] and t[0].hidden == 2


def test_newest_is_deterministic_on_created_ties_and_unparsable_times():
    from mmbench.reports import leaderboard as lb

    a = _ok("m", r1=10.0, created="2026-01-01T00:00:00+00:00", run_id="aaaaaaaaaaaa")
    b = _ok("m", r1=20.0, created="2026-01-01T00:00:00Z", run_id="bbbbbbbbbbbb")  # the same instant
    c = _ok("m", r1=30.0, created="2026-01-01T01:00:00+01:00", run_id="cccccccccccc")  # the same instant again
    junk = _ok("m", r1=40.0, created="not a time", run_id="zzzzzzzzzzzz")
    for order in ([a, b, c, junk], [junk, c, b, a], [b, junk, a, c]):
        rows = lb.build_tables(order)[0].rows
        assert [r["run_id"] for r in rows] == ["cccccccccccc"], order  # equal times: the larger run id
    naive = _ok("m", r1=50.0, created="2026-01-01T00:30:00", run_id="000000000000")  # naive = UTC
    assert lb.build_tables([a, naive, c])[0].rows[0]["run_id"] == "000000000000"
