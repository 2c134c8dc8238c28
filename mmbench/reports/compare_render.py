"""Rendering a :class:`mmbench.reports.compare.Comparison`: markdown (a pull-request comment or
``$GITHUB_STEP_SUMMARY``), JUnit XML (one test case per gate check), rich tables and JSON.

Numbers and markdown cells are formatted by :mod:`mmbench.reports.format`, as in every report.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from mmbench.reports.format import code_span, delta, delta_ci, fmt, md_escape, p_value, safe_text

if TYPE_CHECKING:  # the comparison is only read here; importing it at run time would be circular
    from mmbench.reports.compare import Comparison

#: settings that weaken a comparison's guarantees: every report format says when one was given
OVERRIDES = {
    "allow_missing_fingerprint": "--allow-missing-fingerprint: runs without a data fingerprint were compared "
                                 "anyway (nothing shows they saw the same data)",
    "newest": "--newest: of several disagreeing records of a run, the newest by its (unauthenticated) 'created' "
              "time was used",
}


def overrides(c: Comparison) -> list[str]:
    """One line per override given (see OVERRIDES)."""
    return [text for key, text in OVERRIDES.items() if c.settings.get(key)]


def to_markdown(c: Comparison) -> str:
    n, nf = len(c.checks), len(c.failures)
    if not c.checks:
        head = "## mmbench compare: no gates checked"
    elif c.passed:
        head = f"## ✅ mmbench compare: all {n} gate check(s) hold"
    else:
        head = f"## ❌ mmbench compare: {nf} of {n} gate check(s) failed"
    out = [head, ""]
    if c.failures:
        out += ["### Failed gates", "", "| run | gate | result |", "|---|---|---|"]
        out += [f"| {md_escape(x.run)} | `{code_span(x.rule)}` | {md_escape(x.message)} |" for x in c.failures]
        out.append("")
    conf = int(round(100 * c.settings.get("confidence", 0.95)))
    for p in c.pairs:
        out.append(f"### {md_escape(p.label)}")
        fp = p.new.record.dataset.get("fingerprint", "")
        meta = [f"task {md_escape(p.new.record.task)}"] + ([f"data `{code_span(fp)}`"] if fp else [])
        if p.n_shared:
            meta.append(f"{p.n_shared} paired samples")
        meta.append(f"runs `{code_span(p.baseline.record.run_id)}` → `{code_span(p.new.record.run_id)}`")
        out += [" · ".join(meta), ""]
        if not p.rows:
            out += ["(no metrics)", ""]
            continue
        out += [f"| metric | baseline | new | Δ | {conf}% CI of Δ | p | gate |",
                "|---|---:|---:|---:|---:|---:|:---:|"]
        for r in p.rows:
            ci = delta_ci(r.ci)
            mark = {"pass": "✅", "fail": "❌"}.get(r.gate, "")
            name = md_escape(r.metric) + ("" if r.higher_is_better else " ↓")
            out.append(f"| {name} | {fmt(r.baseline)} | {fmt(r.new)} | {delta(r.delta)} | {ci} | "
                       f"{p_value(r.p_value)} | {mark} |")
        for note in p.notes:
            out.append(f"\n> {md_escape(note)}")
        out.append("")
    if c.checks and c.passed:
        out += ["<details><summary>Gate checks</summary>", "", "| run | gate | result |", "|---|---|---|"]
        out += [f"| {md_escape(x.run)} | `{code_span(x.rule)}` | {md_escape(x.message)} |" for x in c.checks]
        out += ["", "</details>", ""]
    for note in c.notes:
        out.append(f"- {md_escape(note)}")
    if c.notes:
        out.append("")
    for line in overrides(c):
        out.append(f"- ⚠️ {md_escape(line)}")
    if overrides(c):
        out.append("")
    out.append(f"<sub>paired bootstrap: {md_escape(c.settings.get('n_resamples'))} resamples, seed "
               f"{md_escape(c.settings.get('seed'))}; ↓ = lower is better; Δ = new − baseline</sub>")
    return "\n".join(out) + "\n"


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def to_junit(c: Comparison) -> str:
    """JUnit XML: one <testsuite> per gate rule, one <testcase> per check (run × metric)."""
    import xml.etree.ElementTree as ET

    clean = lambda s: _XML_BAD.sub("?", safe_text(s, newlines=True))  # noqa: E731
    root = ET.Element("testsuites", name="mmbench compare", tests=str(len(c.checks)),
                      failures=str(len(c.failures)))
    suites: dict[str, Any] = {}
    flags = [(key, text) for key, text in OVERRIDES.items() if c.settings.get(key)]

    def suite(name: str):
        s = ET.SubElement(root, "testsuite", name=clean(name), tests="0", failures="0")
        if flags:  # the overrides given, on every suite (CI test views show suite properties)
            props = ET.SubElement(s, "properties")
            for key, text in flags:
                ET.SubElement(props, "property", name=key, value=clean(text))
        return s

    if flags and not c.checks:
        suite("mmbench compare settings")
    for chk in c.checks:
        if chk.rule not in suites:
            suites[chk.rule] = suite(chk.rule)
        s = suites[chk.rule]
        s.set("tests", str(int(s.get("tests")) + 1))
        name = f"{chk.run}: {chk.metric}" if chk.metric else chk.run
        tc = ET.SubElement(s, "testcase", classname=clean(f"mmbench.compare.{chk.rule}"), name=clean(name))
        if chk.passed:
            ET.SubElement(tc, "system-out").text = clean(chk.message)
        else:
            s.set("failures", str(int(s.get("failures")) + 1))
            f = ET.SubElement(tc, "failure", message=clean(chk.message), type="GateFailed")
            f.text = clean(f"{chk.message}\nrule: {chk.rule} ({chk.origin})")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_rich(c: Comparison) -> list:
    from rich.table import Table
    from rich.text import Text

    out = []
    conf = int(round(100 * c.settings.get("confidence", 0.95)))
    for p in c.pairs:
        t = Table(title=Text(safe_text(p.label)), title_justify="left",
                  caption=Text(safe_text("; ".join(p.notes))) if p.notes else None)
        for col, just in (("metric", "left"), ("baseline", "right"), ("new", "right"), ("Δ", "right"),
                          (f"{conf}% CI of Δ", "right"), ("p", "right"), ("gate", "center")):
            t.add_column(col, justify=just, overflow="fold")  # fold, never "…" (print_whole widens off a terminal)
        for r in p.rows:
            style = "red" if r.gate == "fail" else ("green" if r.gate == "pass" else "")
            ci = delta_ci(r.ci)
            t.add_row(Text(safe_text(r.metric) + ("" if r.higher_is_better else " ↓")), Text(fmt(r.baseline)),
                      Text(fmt(r.new)), Text(delta(r.delta), style=style), Text(ci), Text(p_value(r.p_value)),
                      Text({"pass": "ok", "fail": "FAIL"}.get(r.gate, ""), style=style))
        out.append(t)
    if c.checks:
        g = Table(title="gates", title_justify="left")
        for col in ("result", "run", "gate", "detail"):
            g.add_column(col, overflow="fold")
        for x in sorted(c.checks, key=lambda x: x.passed):
            g.add_row(Text("ok", style="green") if x.passed else Text("FAIL", style="bold red"),
                      Text(safe_text(x.run)), Text(safe_text(x.rule)), Text(safe_text(x.message)))
        out.append(g)
    for line in overrides(c):
        out.append(Text(f"warning: {line}", style="yellow"))
    return out


def to_json(c: Comparison) -> str:
    """The comparison as indented JSON (``Comparison.to_dict``)."""
    return json.dumps(c.to_dict(), indent=2, default=str)
