"""Hostile records through `mmbench leaderboard` and `mmbench compare` (issue 12, the report/gate part).

Every case runs the CLI and checks the exit code (0 ok, 1 a gate fails, 2 refused / bad input), that
no traceback is printed, and the exact message. Classes:

1. gates that cannot be fooled: a metric the baseline has but the new run deletes, nulls or turns
   into text fails every matching gate, a glob included;
2. missing provenance: a record without a data fingerprint is refused unless
   --allow-missing-fingerprint, which every report format then shows;
3. forged records: stored metrics that disagree with the record's own per-sample outcomes are
   refused by compare and flagged by the leaderboard in every format;
4. duplicates: disagreeing records of one run are ambiguous (compare refuses unless --newest), and a
   `created` in the future is untrusted;
5. output injection: markdown, CSV, terminal, JUnit, HTML and error messages neutralise record text;
6. hand-edited or truncated records: a DataError naming the file and field, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench import records
from mmbench.cli import app
from mmbench.metrics.bootstrap import all_metric_values
from mmbench.records import RunRecord

runner = CliRunner()
N = 60
ESC = "\x1b"


# --------------------------------------------------------------------------- builders


def _ranks(seed, worse=0.0):
    rng = np.random.default_rng(seed)
    i2t = np.minimum(rng.geometric(0.35, N) - 1, 5 * N - 1)
    t2i = np.minimum(rng.geometric(0.25, 5 * N) - 1, N - 1)
    if worse:
        i2t = np.where(rng.random(N) < worse, i2t + 4, i2t)
        t2i = np.where(rng.random(5 * N) < worse, t2i + 4, t2i)
    return i2t, t2i


def retrieval(plugin="cca", *, seed=1, worse=0.0, fp="fp1", created="2026-01-01T00:00:00+00:00", run_id=None):
    i2t, t2i = _ranks(seed, worse)
    ps = {"i2t_rank": [int(x) for x in i2t], "t2i_rank": [int(x) for x in t2i]}
    kw = {"run_id": run_id} if run_id else {}
    return RunRecord(task="retrieval", plugin={"name": plugin, "version": "1", "options": {}},
                     dataset={"name": "demo", "split": "test", "protocol": "", "fingerprint": fp, "n_samples": N},
                     metrics=all_metric_values("retrieval", ps), per_sample=ps,
                     sample_ids={"image": [f"img{i}" for i in range(N)], "caption": [f"t{j}" for j in range(5 * N)]},
                     per_sample_units={"i2t_rank": "image", "t2i_rank": "caption"},
                     details={"ties": "pessimistic"}, config={"dataset_options": {}, "task_options": {}},
                     created=created, **kw)


def grounding(hit, *, acc=None):
    ps = {"hit": [int(h) for h in hit]}
    return RunRecord(task="grounding", plugin={"name": "colour-box"},
                     dataset={"name": "refcoco", "split": "val", "protocol": "unc", "fingerprint": "g"},
                     metrics={"acc@0.5": 100.0 * float(np.mean(hit)) if acc is None else acc}, per_sample=ps,
                     sample_ids={"hit": [f"s{i}" for i in range(len(hit))]},
                     details={"iou_convention": "continuous", "threshold": 0.5})


def classification(pred, label, *, bump=0.0):
    ps = {"label": [int(x) for x in label], "pred": [int(x) for x in pred]}
    m = all_metric_values("classification", ps)
    m = {k: v + bump for k, v in m.items()}
    return RunRecord(task="classification", plugin={"name": "sk"},
                     dataset={"name": "mvsa", "split": "test", "protocol": "clmlf", "fingerprint": "c"},
                     metrics=m, per_sample=ps, sample_ids={"sample": [f"s{i}" for i in range(len(label))]},
                     per_sample_units={"label": "sample", "pred": "sample"})


def write(path: Path, rec: RunRecord | dict | list | str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rec, RunRecord):
        path.write_text(records.to_json(rec), encoding="utf-8")
    elif isinstance(rec, (dict, list)):
        path.write_text(json.dumps(rec), encoding="utf-8")
    elif isinstance(rec, bytes):
        path.write_bytes(rec)
    else:
        path.write_text(rec, encoding="utf-8")
    return path


def as_dict(rec: RunRecord) -> dict:
    return json.loads(records.to_json(rec))


def forged(plugin="cca", points=5.0):
    """Stored metrics raised by ``points`` over the per-sample outcomes of a worse model."""
    rec = retrieval(plugin, worse=0.5)
    good = retrieval(plugin).metrics
    rec.metrics = {k: v + points for k, v in good.items()}
    return rec


def cli(*args, env=None):
    res = runner.invoke(app, [str(a) for a in args], env=env or {})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output, res.output
    return res


def expect(res, code: int, *needles: str):
    assert res.exit_code == code, (res.exit_code, res.output)
    for n in needles:
        assert n in res.output, (n, res.output)
    return res.output


@pytest.fixture
def base(tmp_path):
    return write(tmp_path / "base.json", retrieval())


# --------------------------------------------------------------------------- 1. gates that cannot be fooled


def _new_with(tmp_path, metric, value, *, delete=False, raw=None):
    d = as_dict(retrieval())
    if delete:
        del d["metrics"][metric]
    else:
        d["metrics"][metric] = value
    if raw is not None:  # a JSON token json.dumps would not write (NaN)
        text = json.dumps(d).replace(f'"{metric}": "__RAW__"', f'"{metric}": {raw}')
        return write(tmp_path / "new.json", text)
    return write(tmp_path / "new.json", d)


GATE_CASES = [
    # (gate, metric, value, delete, raw, what the message says the new value is)
    ("* drop<=0", "rsum", None, True, None, "missing in the new run"),
    ("* drop<=0", "rsum", None, False, None, "null in the new run (NaN or no value)"),
    ("* drop<=0", "rsum", "999", False, None, "not a number in the new run (str '999')"),
    ("* drop<=0", "rsum", "__RAW__", False, "NaN", "not finite in the new run (nan)"),
    ("* drop<=0", "rsum", True, False, None, "not a number in the new run (bool 'True')"),
    ("i2t.R@* no-sig-drop", "i2t.R@1", None, True, None, "missing in the new run"),
    ("rsum drop<=1", "rsum", None, False, None, "null in the new run (NaN or no value)"),
    ("* >= 0", "t2i.R@5", None, True, None, "missing in the new run"),
    ("dataset=demo *.R@1 drop<=100%", "t2i.R@1", "high", False, None, "not a number in the new run (str 'high')"),
]


@pytest.mark.parametrize("gate,metric,value,delete,raw,what", GATE_CASES)
def test_gate_fails_when_a_baseline_metric_is_not_a_number_in_the_new_run(tmp_path, base, gate, metric, value, delete,
                                                                          raw, what):
    new = _new_with(tmp_path, metric, value, delete=delete, raw=raw)
    b = retrieval().metrics[metric]
    out = expect(cli("compare", base, new, "--gate", gate, "--bootstrap", "50", "--format", "json"), 1)
    got = json.loads(out)
    fails = [c for c in got["checks"] if not c["passed"]]
    msg = f"{metric}: baseline {b:.2f}, but the metric is {what}: a metric of the baseline must be a number in the " \
          f"new run"
    assert [c["message"] for c in fails] == [msg]


def test_identical_records_pass_a_glob_gate(tmp_path, base):
    expect(cli("compare", base, base, "--gate", "* drop<=0", "--gate", "* no-sig-drop", "--bootstrap", "50"), 0,
           "PASS: all gate checks hold")


# --------------------------------------------------------------------------- 2. missing provenance


@pytest.mark.parametrize("side", ["new", "baseline"])
def test_missing_fingerprint_is_refused(tmp_path, side):
    plain = write(tmp_path / "plain.json", retrieval())
    bare = write(tmp_path / "bare.json", retrieval(fp=""))
    args = (plain, bare) if side == "new" else (bare, plain)
    expect(cli("compare", *args, "--gate", "* drop<=1", "--bootstrap", "0"), 2,
           "error: refusing to compare runs whose data cannot be verified (no data fingerprint: nothing shows that "
           "both runs saw the same data; --allow-missing-fingerprint compares them anyway):",
           f"cca · demo/test: {bare}: field 'dataset.fingerprint' is missing in the {side} record")


@pytest.mark.parametrize("fmt", ["markdown", "json", "junit", "table"])
def test_allow_missing_fingerprint_is_shown_in_every_format(tmp_path, fmt):
    plain = write(tmp_path / "plain.json", retrieval())
    bare = write(tmp_path / "bare.json", retrieval(fp=""))
    out = expect(cli("compare", plain, bare, "--allow-missing-fingerprint", "--gate", "* drop<=1", "--bootstrap", "0",
                     "--format", fmt), 0)
    if fmt == "json":
        d = json.loads(out)
        assert d["settings"]["allow_missing_fingerprint"] is True
        assert f"data fingerprint missing in the new record ({bare})" in d["runs"][0]["notes"][0]
    elif fmt == "junit":
        root = ET.fromstring(out.split("\n", 1)[1])
        props = [p.get("name") for p in root.iter("property")]
        assert props and set(props) == {"allow_missing_fingerprint"}
    else:
        assert "--allow-missing-fingerprint: runs without a data fingerprint were compared anyway" in out


# --------------------------------------------------------------------------- 3. forged records


def _mismatch_line(path, rec, metric):
    from mmbench.metrics.bootstrap import metric_value

    return (f"{path}: metric {metric!r}: stored {rec.metrics[metric]:.10g}, recomputed "
            f"{metric_value(rec.task, metric, rec.per_sample):.10g} from per_sample")


@pytest.mark.parametrize("gate", ["* drop<=0", "* no-sig-drop", "rsum >= 0"])
def test_forged_new_record_is_refused_whatever_the_gate(tmp_path, base, gate):
    rec = forged()
    new = write(tmp_path / "forged.json", rec)
    expect(cli("compare", base, new, "--gate", gate, "--bootstrap", "50"), 2,
           "error: refusing to compare records whose stored metrics disagree with their own per-sample outcomes "
           "(a forged or hand-edited record?):", _mismatch_line(new, rec, "rsum"), _mismatch_line(new, rec, "i2t.R@1"))


def test_forged_baseline_is_refused(tmp_path):
    rec = retrieval(worse=0.5)
    rec.metrics = {k: v - 5 for k, v in rec.metrics.items()}  # a lowered baseline lets a regression through
    base = write(tmp_path / "base.json", rec)
    new = write(tmp_path / "new.json", retrieval(worse=0.5))
    expect(cli("compare", base, new, "--gate", "* drop<=0", "--bootstrap", "0"), 2, _mismatch_line(base, rec, "rsum"))


def test_forged_grounding_accuracy_is_refused(tmp_path):
    hit = (np.random.default_rng(0).random(80) < 0.6).astype(int)
    a = write(tmp_path / "a.json", grounding(hit))
    b = write(tmp_path / "b.json", grounding(hit, acc=99.0))
    expect(cli("compare", a, b, "--gate", "acc@0.5 drop<=0", "--bootstrap", "0"), 2,
           f"{b}: metric 'acc@0.5': stored 99, recomputed {100.0 * hit.mean():.10g} from per_sample")


def test_forged_classification_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    label = rng.integers(0, 3, 100)
    pred = np.where(rng.random(100) < 0.6, label, rng.integers(0, 3, 100))
    a = write(tmp_path / "a.json", classification(pred, label))
    b = write(tmp_path / "b.json", classification(pred, label, bump=1e-6))  # a millionth of a point is caught
    expect(cli("compare", a, b, "--gate", "accuracy drop<=0", "--bootstrap", "0"), 2, f"{b}: metric 'accuracy'")


def test_meteor_and_extra_metrics_are_not_recomputed(tmp_path):
    n = 40
    rng = np.random.default_rng(2)
    ps = {"CIDEr": list(rng.random(n)), "METEOR": list(rng.random(n) / 3)}
    m = all_metric_values("captioning", ps)
    m["METEOR"] += 0.01  # the jar's corpus METEOR is not the per-image mean
    m["ECE"] = 0.2
    rec = RunRecord(task="captioning", plugin={"name": "cap"},
                    dataset={"name": "coco", "split": "val", "protocol": "", "fingerprint": "c"}, metrics=m,
                    per_sample=ps, sample_ids={"image": [f"i{i}" for i in range(n)]},
                    per_sample_units={"CIDEr": "image", "METEOR": "image"},
                    details={"extra_metrics": ["ECE"], "extra_metric_info": {"ECE": {"higher_is_better": False}}})
    p = write(tmp_path / "cap.json", rec)
    expect(cli("compare", p, p, "--gate", "* drop<=0", "--bootstrap", "0"), 0, "PASS")
    out = expect(cli("leaderboard", p, "--format", "json"), 0)
    assert json.loads(out)[0]["rows"][0]["warnings"] == []


def test_record_without_per_sample_gets_a_note_and_fails_significance(tmp_path):
    rec = retrieval()
    rec.per_sample, rec.sample_ids, rec.per_sample_units = {}, {}, {}
    p = write(tmp_path / "bare.json", rec)
    out = expect(cli("compare", p, p, "--gate", "* drop<=0", "--bootstrap", "50", "--format", "json"), 0)
    assert f"new record {p}: stored metrics not verified (the record has no per-sample outcomes)" in \
        json.loads(out)["runs"][0]["notes"]
    expect(cli("compare", p, p, "--gate", "rsum no-sig-drop", "--bootstrap", "50"), 1,
           "significance cannot be tested")


def test_unusable_per_sample_is_a_data_error(tmp_path, base):
    d = as_dict(retrieval())
    d["per_sample"]["i2t_rank"] = ["first"] * N
    p = write(tmp_path / "junk.json", d)
    expect(cli("compare", base, p, "--bootstrap", "0"), 2,
           f"error: {p}: field 'per_sample': the per-sample outcomes cannot be recomputed: ValueError")


@pytest.mark.parametrize("fmt", ["markdown", "csv", "json", "table", "html"])
def test_leaderboard_flags_a_forged_record_in_every_format(tmp_path, fmt):
    write(tmp_path / "runs" / "honest.json", retrieval("honest"))
    write(tmp_path / "runs" / "forged.json", forged("forger"))
    out = expect(cli("leaderboard", tmp_path / "runs", "--format", fmt), 0)
    warning = "stored metrics disagree with the record's own per-sample outcomes (i2t.R@1 stored"
    if fmt == "json":
        rows = {r["plugin"]: r for r in json.loads(out)[0]["rows"]}
        assert rows["forger"]["warnings"][0].startswith(warning) and rows["honest"]["warnings"] == []
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert all(("warning: " + warning) in r["notes"] for r in rows if r["plugin"] == "forger")
        assert all("warning" not in r["notes"] for r in rows if r["plugin"] == "honest")
    elif fmt == "html":
        import html

        assert f"<li>warning: {html.escape(warning)}" in out and "(forger)</li>" in out
    else:
        assert ("warning: " + warning) in out and "(forger)" in out


# --------------------------------------------------------------------------- 4. duplicates


def test_disagreeing_duplicates_are_ambiguous(tmp_path, base):
    a = write(tmp_path / "new" / "a.json", retrieval(created="2026-01-01T00:00:00+00:00"))
    b = write(tmp_path / "new" / "b.json", retrieval(worse=0.3, created="2026-02-01T00:00:00+00:00"))
    expect(cli("compare", base, tmp_path / "new", "--bootstrap", "0"), 2,
           "error: new: several records of the same run with different results (metrics or per-sample outcomes); "
           "which one to compare is ambiguous, and their 'created' times are not authenticated. Pass one record (or a "
           "folder holding one record per run), or --newest to use the newest by 'created':",
           f"cca · demo/test: {a} (created 2026-01-01T00:00:00+00:00), {b} (created 2026-02-01T00:00:00+00:00)")


def test_newest_picks_by_created_with_a_note(tmp_path, base):
    a = write(tmp_path / "new" / "a.json", retrieval(worse=0.3, created="2026-01-01T00:00:00+00:00"))
    b = write(tmp_path / "new" / "b.json", retrieval(created="2026-02-01T00:00:00+00:00"))
    out = expect(cli("compare", base, tmp_path / "new", "--newest", "--gate", "* drop<=0", "--bootstrap", "0",
                     "--format", "json"), 0)
    d = json.loads(out)
    assert d["settings"]["newest"] is True and d["runs"][0]["new_record"] == str(b)
    assert f"new: 2 records for cca · demo/test; using the newest ({b}), ignoring {a}" in d["notes"]


def test_newest_refuses_a_future_dated_record(tmp_path, base):
    write(tmp_path / "new" / "a.json", retrieval(created="2026-01-01T00:00:00+00:00"))
    b = write(tmp_path / "new" / "b.json", retrieval(worse=0.3, created="2999-01-01T00:00:00+00:00"))
    expect(cli("compare", base, tmp_path / "new", "--newest", "--bootstrap", "0"), 2,
           "error: new: --newest cannot pick the newest record: a record is dated in the future, so its date cannot "
           f"be trusted:\n  {b}: created '2999-01-01T00:00:00+00:00' is in the future of this machine's clock")


def test_identical_duplicates_are_one_run(tmp_path, base):
    write(tmp_path / "new" / "a.json", retrieval(run_id="aaaaaaaaaaaa"))
    write(tmp_path / "new" / "b.json", retrieval(run_id="bbbbbbbbbbbb", created="2026-03-01T00:00:00+00:00"))
    out = expect(cli("compare", base, tmp_path / "new", "--gate", "* drop<=0", "--bootstrap", "0", "--format", "json"),
                 0)
    assert any("2 records for cca · demo/test (same results); using the newest" in n for n in json.loads(out)["notes"])


def test_leaderboard_warns_when_duplicates_disagree_and_flags_the_future(tmp_path):
    write(tmp_path / "runs" / "a.json", retrieval(run_id="aaaaaaaaaaaa"))
    write(tmp_path / "runs" / "b.json", retrieval(worse=0.3, run_id="ffffffffffff", created="2999-01-01T00:00:00+00:00"))
    out = expect(cli("leaderboard", tmp_path / "runs", "--format", "markdown"), 0)
    assert "- warning: 2 records of this run disagree (different results); showing the newest by its unauthenticated " \
           "'created' (run ffffffffffff), not shown: run(s) aaaaaaaaaaaa — and its date is in the future, so it " \
           "cannot be trusted" in out
    assert "- warning: created '2999-01-01T00:00:00+00:00' is in the future of this machine's clock: the record's " \
           "date is not trusted (it decides which re-run is the newest)" in out


# --------------------------------------------------------------------------- 5. output injection


def _md_rows(md: str) -> list[list[str]]:
    return [re.split(r"(?<!\\)\|", line.strip())[1:-1] for line in md.splitlines() if line.startswith("|")]


def test_markdown_escapes_plugin_names_and_text_values(tmp_path):
    rec = retrieval("evil|`x`[click](http://e.example)![i](http://t.example/p.png)<img src=x>")
    rec.metrics["i2t.R@1"] = "<b>99</b>|[x](y)"
    rec.dataset["fingerprint"] = "ab`c|d"
    p = write(tmp_path / "evil.json", rec)
    out = expect(cli("leaderboard", p, "--format", "markdown"), 0)
    rows = _md_rows(out)
    assert len({len(r) for r in rows}) == 1  # every row has the header's cell count
    assert "<img" not in out and "<b>" not in out and "[click](" not in out and "![i](" not in out
    assert "evil\\|\\`x\\`\\[click\\](http://e.example)!\\[i\\]" in out
    assert "&lt;b&gt;99&lt;/b&gt;\\|\\[x\\](y)" in out
    fp_line = next(line for line in out.splitlines() if line.startswith("data fingerprint"))
    assert fp_line == "data fingerprint `ab'c\\|d`"


def test_compare_markdown_escapes_metric_names_and_strips_escapes(tmp_path):
    rec = retrieval(f"ansi{ESC}[31m{ESC}]0;title{ESC}\\")
    rec.metrics["bad|<i>metric`"] = 1.0
    p = write(tmp_path / "r.json", rec)
    out = expect(cli("compare", p, p, "--gate", "* drop<=0", "--bootstrap", "0", "--format", "markdown"), 0)
    assert ESC not in out and "<i>" not in out
    assert "| bad\\|&lt;i&gt;metric\\` |" in out and "### ansi · demo/test" in out


def test_csv_neutralises_formulas_but_keeps_negative_numbers(tmp_path):
    rec = retrieval("=HYPERLINK(\"http://e\",\"x\")")
    rec.metrics["@SUM(A1)"] = -1.5
    rec.metrics["i2t.R@1"] = "-2+3"
    rec.details["extra_metrics"] = ["@SUM(A1)"]
    p = write(tmp_path / "r.json", rec)
    out = expect(cli("leaderboard", p, "--format", "csv"), 0)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["plugin"] for r in rows} == {"'=HYPERLINK(\"http://e\",\"x\")"}
    by = {r["metric"]: r["value"] for r in rows}
    assert by["'@SUM(A1)"] == "-1.5"  # a number stays a number
    assert by["i2t.R@1"] == "'-2+3"  # text that looks like a formula does not
    assert by["rsum"] == repr(rec.metrics["rsum"])


def test_terminal_leaderboard_strips_escapes_and_markup(tmp_path):
    rec = retrieval(f"[red]pwn[/red]{ESC}[2J{ESC}]8;;http://e{ESC}\\link\x07\u202ecod")
    rec.metrics[f"m{ESC}[1m"] = 1.0
    p = write(tmp_path / "r.json", rec)
    out = expect(cli("leaderboard", p), 0)
    assert ESC not in out and "\x07" not in out and "\u202e" not in out
    assert "[red]pwn[/red]linkcod" in out  # shown literally, never as markup


def test_terminal_compare_and_errors_strip_escapes(tmp_path):
    rec = retrieval(f"p{ESC}[2Jq")
    rec.metrics[f"x{ESC}[31m\x00"] = 2.0
    p = write(tmp_path / "r.json", rec)
    out = expect(cli("compare", p, p, "--gate", "* drop<=0", "--bootstrap", "0"), 0, "pq · demo/test")
    assert ESC not in out and "\x00" not in out
    bare = write(tmp_path / "bare.json", retrieval(f"p{ESC}[2Jq", fp=""))
    out = expect(cli("compare", p, bare, "--bootstrap", "0"), 2, f"pq · demo/test: {bare}: field 'dataset.fingerprint'")
    assert ESC not in out


def test_junit_strips_escapes(tmp_path):
    rec = retrieval(f"p{ESC}[31mq\x01")
    p = write(tmp_path / "r.json", rec)
    out = expect(cli("compare", p, p, "--gate", "rsum drop<=0", "--bootstrap", "0", "--format", "junit"), 0)
    assert ESC not in out
    case = next(ET.fromstring(out.split("\n", 1)[1]).iter("testcase"))
    assert case.get("name") == "pq · demo/test: rsum"


def test_html_strips_escapes(tmp_path):
    p = write(tmp_path / "r.json", retrieval(f"p{ESC}[31m<q>"))
    out = expect(cli("leaderboard", p, "--format", "html"), 0)
    assert ESC not in out and "p&lt;q&gt;" in out


# --------------------------------------------------------------------------- 6. hand-edited or truncated records


def _edit(fn):
    def make():
        d = as_dict(retrieval())
        fn(d)
        return d
    return make


BAD_RECORDS = [
    ("metrics-list", _edit(lambda d: d.update(metrics=[1, 2])),
     "field 'metrics': wrong type: got a list (expected a JSON object)"),
    ("metrics-null", _edit(lambda d: d.update(metrics=None)),
     "field 'metrics': wrong type: got null (expected a JSON object)"),
    ("per-sample-not-list", _edit(lambda d: d["per_sample"].update(i2t_rank=3)),
     "field 'per_sample.i2t_rank': wrong type: got an integer (expected a list (one value per sample))"),
    ("sample-ids-not-dict", _edit(lambda d: d.update(sample_ids=["a", "b"])),
     "field 'sample_ids': wrong type: got a list (expected a JSON object)"),
    ("sample-ids-bad-items", _edit(lambda d: d["sample_ids"].update(image=[{"id": 1}])),
     "field 'sample_ids.image': wrong type: got an object (expected a list of sample ids (strings))"),
    ("plugin-string", _edit(lambda d: d.update(plugin="cca")),
     "field 'plugin': wrong type: got a string (expected a JSON object)"),
    ("plugin-name-number", _edit(lambda d: d["plugin"].update(name=7)),
     "field 'plugin.name': wrong type: got an integer (expected a string)"),
    ("ci-short", _edit(lambda d: d.update(ci={"rsum": [1]})),
     "field 'ci.rsum': malformed confidence interval: [1] (expected [low, high], two numbers)"),
    ("ci-text", _edit(lambda d: d.update(ci={"rsum": ["a", "b"]})),
     "field 'ci.rsum': malformed confidence interval: [\"a\", \"b\"] (expected [low, high], two numbers)"),
    ("ci-not-dict", _edit(lambda d: d.update(ci=[[1, 2]])),
     "field 'ci': wrong type: got a list (expected a JSON object)"),
    ("metric-dict", _edit(lambda d: d["metrics"].update(rsum={"v": 1})),
     "field 'metrics.rsum': wrong type: got an object (expected a number (or null))"),
    ("fingerprint-number", _edit(lambda d: d["dataset"].update(fingerprint=12)),
     "field 'dataset.fingerprint': wrong type: got an integer (expected a string)"),
    ("extra-metrics-string", _edit(lambda d: d["details"].update(extra_metrics="ECE")),
     "field 'details.extra_metrics': wrong type: got a string (expected a list of metric names)"),
    ("published-dict", _edit(lambda d: d.update(published={"metric": "x"})),
     "field 'published': wrong type: got an object (expected a list of paper-parity comparisons)"),
    ("published-number-text", _edit(lambda d: d.update(published=[{"metric": "rsum", "delta": "big"}])),
     "field 'published[0].delta': wrong type: got a string (expected a number)"),
    ("created-number", _edit(lambda d: d.update(created=20260101)),
     "field 'created': wrong type: got an integer (expected a string)"),
    ("status-unknown", _edit(lambda d: d.update(status="great")),
     "field 'status': unknown status 'great' (expected 'ok' or 'failed')"),
    ("options-list", _edit(lambda d: d["config"].update(dataset_options=["x"])),
     "field 'config.dataset_options': wrong type: got a list (expected a JSON object)"),
    ("huge-int-metric", _edit(lambda d: d["metrics"].update(rsum=10 ** 400)),
     "field 'metrics.rsum': an integer of 401 digits, beyond any float (expected a number a float can hold)"),
    ("top-level-list", lambda: [1, 2], "a run record must be a JSON object, got a list"),
    ("schema", _edit(lambda d: d.update(schema="mmbench.run/9")),
     "field 'schema': unsupported record schema 'mmbench.run/9' (expected 'mmbench.run/1')"),
    ("no-task", _edit(lambda d: d.pop("task")), "field 'task': missing field"),
    ("nested-64", _edit(lambda d: d["details"].update(deep=json.loads("[" * 70 + "]" * 70))),
     "nested deeper than 64 levels"),
    ("truncated", lambda: records.to_json(retrieval())[:500], "not valid JSON (the file looks truncated): "),
    ("empty", lambda: "", "not valid JSON (the file looks truncated): Expecting value"),
    ("5000-digit-int", lambda: '{"schema": "mmbench.run/1", "task": "retrieval", "x": ' + "9" * 5000 + "}",
     "not a usable JSON record: Exceeds the limit (4300 digits) for integer string conversion"),
    ("non-utf8", lambda: b'{"schema": "mmbench.run/1", "task": "\xff\xfe"}', "not UTF-8 text (byte 0xff at offset 37)"),
    ("deep-recursion", lambda: "[" * 200000 + "]" * 200000, "not a usable JSON record: nested too deeply"),
]


@pytest.mark.parametrize("name,make,message", BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
@pytest.mark.parametrize("command", ["leaderboard", "compare"])
def test_bad_records_are_clear_errors(tmp_path, command, name, make, message):
    bad = write(tmp_path / f"{name}.json", make())
    good = write(tmp_path / "good" / "good.json", retrieval())
    args = ["leaderboard", bad] if command == "leaderboard" else ["compare", good, bad, "--bootstrap", "0"]
    out = expect(cli(*args), 2, f"error: {bad}: ", message)
    assert out.count("error:") == 1
