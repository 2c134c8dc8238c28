"""`mmbench compare`: gate parsing, run alignment, paired tests, refusals, reports and exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench import records
from mmbench.errors import DataError, MismatchError, MMBenchError
from mmbench.metrics.bootstrap import all_metric_values, paired_bootstrap
from mmbench.records import RunRecord
from mmbench.reports import compare as cmp
from mmbench.reports.gates import canonical, load_rules, parse_rule
from mmbench.tasks import get_kind

REPO = Path(__file__).resolve().parents[1]
N_IMG = 300
B = 200  # bootstrap resamples in unit tests (fast; the CLI default is 1000)


# --------------------------------------------------------------------------- record builders


def _ranks(seed, n_img=N_IMG, worse=0.0):
    rng = np.random.default_rng(seed)
    i2t = np.minimum(rng.geometric(0.35, n_img) - 1, 5 * n_img - 1)
    t2i = np.minimum(rng.geometric(0.25, 5 * n_img) - 1, n_img - 1)
    if worse:  # push a share of the queries down by a few places: a real regression
        i2t = np.where(rng.random(n_img) < worse, i2t + 3, i2t)
        t2i = np.where(rng.random(5 * n_img) < worse, t2i + 3, t2i)
    return i2t, t2i


def _noisy(i2t, t2i, seed, share=0.1):
    """The same model, re-run with noise: a share of the queries get a fresh rank from the same distribution."""
    rng = np.random.default_rng(seed)
    f_i2t, f_t2i = _ranks(seed + 1000, len(i2t))
    return (np.where(rng.random(len(i2t)) < share, f_i2t, i2t),
            np.where(rng.random(len(t2i)) < share, f_t2i, t2i))


def retrieval_record(i2t, t2i, *, plugin="cca", dataset="demo", protocol="", fp="fp1", order=None, **kw):
    n = len(i2t)
    img_ids = [f"img{i:04d}" for i in range(n)]
    ps = {"i2t_rank": [int(x) for x in i2t], "t2i_rank": [int(x) for x in t2i]}
    metrics = all_metric_values("retrieval", ps)
    sids = {"i2t_rank": img_ids, "t2i_rank": [f"t{j}" for j in range(len(t2i))]}
    if order is not None:  # the same outcomes listed in another order (explicit caption -> image index)
        caps = [j for i in order for j in range(5 * i, 5 * i + 5)]
        ps = {"i2t_rank": [ps["i2t_rank"][i] for i in order], "t2i_rank": [ps["t2i_rank"][j] for j in caps],
              "t2i_image": [k // 5 for k in range(len(caps))]}
        sids = {"i2t_rank": [img_ids[i] for i in order], "t2i_rank": [f"t{j}" for j in caps]}
    return RunRecord(task="retrieval", plugin={"name": plugin, "version": "1"},
                     dataset={"name": dataset, "split": "test", "protocol": protocol, "fingerprint": fp,
                              "n_samples": n},
                     metrics=metrics, per_sample=ps, sample_ids=sids, details={"ties": "pessimistic"}, **kw)


def classification_record(pred, label, *, plugin="sk-early-fusion", fp="fpc"):
    ps = {"label": [int(x) for x in label], "pred": [int(x) for x in pred],
          "correct": [int(a == b) for a, b in zip(pred, label)]}
    ids = [f"s{i}" for i in range(len(label))]
    return RunRecord(task="classification", plugin={"name": plugin},
                     dataset={"name": "mvsa_single_clmlf", "split": "test", "protocol": "clmlf", "fingerprint": fp},
                     metrics={k: v for k, v in all_metric_values("classification", ps).items()},
                     per_sample=ps, sample_ids={k: ids for k in ps})


def runs(*recs):
    return [cmp.LoadedRun(r, f"<{r.plugin['name']}-{r.run_id}>") for r in recs]


def rules(*texts):
    return [parse_rule(t) for t in texts]


@pytest.fixture(scope="module")
def base_ranks():
    return _ranks(1)


# --------------------------------------------------------------------------- gate rules


def test_parse_rule_forms():
    r = parse_rule("t2i R@1 may not drop more than 0.5 points")
    assert (r.kind, r.threshold, r.relative) == ("max_drop", 0.5, False)
    assert r.matches_metric("t2i.R@1") and not r.matches_metric("t2i.R@10") and not r.matches_metric("i2t.R@1")
    assert parse_rule("t2i.R@1 drop<=0.5") == parse_rule("t2i.R@1 drop<=0.5")
    r = parse_rule("rsum drop<=2%")
    assert (r.kind, r.threshold, r.relative) == ("max_drop", 2.0, True)
    r = parse_rule("CIDEr may not drop significantly at p<0.05")
    assert (r.kind, r.threshold) == ("no_sig_drop", 0.05)
    assert parse_rule("CIDEr no-sig-drop").threshold == 0.05
    assert parse_rule("CIDEr no-significant-drop p<0.01").threshold == 0.01
    r = parse_rule("acc@0.5 >= 80")
    assert (r.kind, r.op, r.threshold, r.metric) == ("min", ">=", 80.0, "acc@0.5")
    r = parse_rule("i2t.medr<=3")
    assert (r.kind, r.op, r.threshold) == ("max", "<=", 3.0)
    assert parse_rule("published").metric == "*" and parse_rule("published").kind == "published"
    assert parse_rule("i2t.R@1 within-published").metric == "i2t.R@1"
    r = parse_rule("dataset=coco* split=test Bleu 4 drop<=0.01")
    assert r.scopes == (("dataset", "coco*"), ("split", "test")) and r.matches_metric("Bleu_4")
    assert r.matches_run({"dataset": "coco_captions", "split": "test"})
    assert not r.matches_run({"dataset": "flickr30k", "split": "test"})
    g = parse_rule("i2t.R@* drop<=1")
    assert g.is_glob and g.matches_metric("i2t.R@5") and not g.matches_metric("t2i.R@5")
    assert parse_rule("* no-sig-drop").matches_metric("anything")
    assert canonical("t2i R@1") == canonical("T2I.r@1") == "t2ir@1"
    # directions come from the task kind, never from a guess on the metric's name
    r = get_kind("retrieval")
    assert not r.metric_info("i2t.medr").higher_is_better and not r.metric_info("t2i.meanr").higher_is_better
    assert r.metric_info("rsum").higher_is_better and r.metric_info("rsum").unit == "percent"
    assert get_kind("captioning").metric_info("CIDEr").unit == "x10"
    assert get_kind("grounding").metric_info("acc@0.7").higher_is_better


@pytest.mark.parametrize("text,needle", [
    ("t2i.R@1", "cannot parse gate rule 't2i.R@1'"),
    ("t2i.R@1 drop<=-1", "must be >= 0"),
    ("CIDEr no-sig-drop p<1.5", "significance level must be in (0, 1)"),
    ("", "empty gate rule"),
    ("drop<=1", "cannot parse"),
])
def test_parse_rule_errors(text, needle):
    with pytest.raises(MMBenchError) as ei:
        parse_rule(text, origin="gates.txt:3")
    assert needle in str(ei.value) and "gates.txt:3" in str(ei.value)


def test_load_rules_files(tmp_path):
    f = tmp_path / "gates.txt"
    f.write_text("# CI gates\n\nt2i.R@1 drop<=0.5   # half a point\nrsum no-sig-drop p<0.05\n")
    got = load_rules(f)
    assert [r.describe() for r in got] == ["t2i.R@1 drop<=0.5", "rsum no-sig-drop p<0.05"]
    assert got[1].origin == f"{f}:4"
    bad = tmp_path / "bad.txt"
    bad.write_text("rsum drop<=1\nnonsense here\n")
    with pytest.raises(MMBenchError, match=r"bad.txt:2: cannot parse gate rule 'nonsense here'"):
        load_rules(bad)
    j = tmp_path / "gates.json"
    j.write_text(json.dumps({"gates": ["CIDEr no-sig-drop", "published"]}))
    assert [r.kind for r in load_rules(j)] == ["no_sig_drop", "published"]
    j.write_text(json.dumps({"gates": [1]}))
    with pytest.raises(DataError, match="field 'gates'"):
        load_rules(j)
    with pytest.raises(DataError, match="gate file not found"):
        load_rules(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="holds no rules"):
        load_rules(tmp_path / "empty.txt")


# --------------------------------------------------------------------------- comparing


def test_noise_passes(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    new = retrieval_record(*_noisy(i2t, t2i, 7))
    c = cmp.compare(runs(base), runs(new), rules("t2i.R@1 drop<=1", "i2t R@1 may not drop more than 2 points",
                                                 "i2t.R@* no-sig-drop p<0.05", "t2i.R@* no-sig-drop",
                                                 "rsum no-sig-drop"), n_resamples=B)
    assert c.passed and c.exit_code == 0, cmp.to_markdown(c)
    rows = {r.metric: r for r in c.pairs[0].rows}
    assert rows["rsum"].delta == pytest.approx(new.metrics["rsum"] - base.metrics["rsum"], abs=0)
    assert all(r.p_value is not None and r.p_value >= 0.05 for r in rows.values())
    assert c.pairs[0].n_shared == N_IMG
    assert len(c.checks) == 2 + 3 + 3 + 1  # the globs match each R@K
    assert all(r.p_value > 0.2 for r in rows.values()), [(r.metric, r.p_value) for r in rows.values()]


def test_real_drop_fails_with_readable_markdown(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    worse = retrieval_record(*_ranks(1, worse=0.3))
    c = cmp.compare(runs(base), runs(worse), rules("t2i.R@1 drop<=0.5", "rsum no-sig-drop p<0.05",
                                                   "i2t.medr <= 10"), n_resamples=B)
    assert not c.passed and c.exit_code == 1
    failed = {(x.metric, x.rule) for x in c.failures}
    assert failed == {("t2i.R@1", "t2i.R@1 drop<=0.5"), ("rsum", "rsum no-sig-drop p<0.05")}
    row = next(r for r in c.pairs[0].rows if r.metric == "rsum")
    assert row.delta < -10 and row.ci[1] < 0 and row.p_value < 0.05 and row.gate == "fail"
    md = cmp.to_markdown(c)
    assert md.startswith("## ❌ mmbench compare: 2 of 3 gate check(s) failed")
    assert "### Failed gates" in md
    d = worse.metrics["t2i.R@1"] - base.metrics["t2i.R@1"]
    assert (f"| cca · demo/test | `t2i.R@1 drop<=0.5` | t2i.R@1: baseline {base.metrics['t2i.R@1']:.2f}, new "
            f"{worse.metrics['t2i.R@1']:.2f} (Δ {d:+.2f}): dropped {-d:.4g}, allowed 0.5 |") in md
    assert f"| rsum | {base.metrics['rsum']:.2f} | {worse.metrics['rsum']:.2f} | {row.delta:+.2f} | " \
           f"[{row.ci[0]:+.2f}, {row.ci[1]:+.2f}] | {cmp._p(row.p_value)} | ❌ |" in md
    assert "| i2t.medr ↓ |" in md


def test_paired_test_uses_aligned_samples_exactly(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    new_i2t, new_t2i = _noisy(i2t, t2i, 3, share=0.2)
    new = retrieval_record(new_i2t, new_t2i)
    # the same new outcomes listed in a shuffled order must give bit-identical paired results
    order = list(np.random.default_rng(5).permutation(N_IMG))
    shuffled = retrieval_record(new_i2t, new_t2i, order=order)
    assert shuffled.metrics == new.metrics
    c1 = cmp.compare(runs(base), runs(new), n_resamples=B, seed=4)
    c2 = cmp.compare(runs(base), runs(shuffled), n_resamples=B, seed=4)
    ref = paired_bootstrap("retrieval", "t2i.R@5", base.per_sample, new.per_sample, n_resamples=B, seed=4)
    for c in (c1, c2):
        row = next(r for r in c.pairs[0].rows if r.metric == "t2i.R@5")
        assert row.ci == ref["ci"] and row.p_value == ref["p_value"] and row.n == N_IMG
    assert [r.to_dict() for r in c1.pairs[0].rows] == [r.to_dict() for r in c2.pairs[0].rows]


def test_one_pass_paired_tests_equal_paired_bootstrap_per_metric(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    new = retrieval_record(*_noisy(i2t, t2i, 3, share=0.3))
    names = list(base.metrics)
    fast = cmp.paired_tests("retrieval", names, base.per_sample, new.per_sample, n_resamples=B, seed=2,
                            confidence=0.9)
    for m in names:
        ref = paired_bootstrap("retrieval", m, base.per_sample, new.per_sample, n_resamples=B, seed=2,
                               confidence=0.9)
        assert fast[m] == ref, m
    # a metric that cannot be recomputed from per-sample data gets a reason, not numbers
    got = cmp.paired_tests("retrieval", ["rsum", "ECE"], base.per_sample, new.per_sample, n_resamples=B, seed=0,
                           confidence=0.95)
    assert isinstance(got["rsum"], dict) and "cannot be recomputed" in got["ECE"]


def test_identical_runs_have_zero_delta_and_p_one(base_ranks):
    rec = retrieval_record(*base_ranks)
    c = cmp.compare(runs(rec), runs(rec), rules("* no-sig-drop", "* drop<=0"), n_resamples=B)
    assert c.passed
    for r in c.pairs[0].rows:
        assert r.delta == 0 and r.ci == [0.0, 0.0] and r.p_value == 1.0


def test_subset_alignment_restricts_to_shared_images(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    keep = list(range(0, N_IMG, 2))  # the new run only has every second image
    caps = [j for i in keep for j in range(5 * i, 5 * i + 5)]
    new = retrieval_record(i2t[keep], t2i[caps])
    new.sample_ids = {"image": [f"img{i:04d}" for i in keep], "caption": [f"t{j}" for j in caps]}
    c = cmp.compare(runs(base), runs(new), n_resamples=B)
    p = c.pairs[0]
    assert (p.n_baseline, p.n_new, p.n_shared) == (N_IMG, len(keep), len(keep))
    assert any("150 samples both runs share" in n for n in p.notes)
    sub = {"i2t_rank": [int(i2t[i]) for i in keep], "t2i_rank": [int(t2i[j]) for j in caps],
           "t2i_image": [k // 5 for k in range(len(caps))]}
    ref = paired_bootstrap("retrieval", "i2t.R@1", sub, new.per_sample, n_resamples=B)
    row = next(r for r in p.rows if r.metric == "i2t.R@1")
    assert (row.ci, row.p_value, row.n) == (ref["ci"], ref["p_value"], len(keep))
    assert ref["delta"] == 0.0  # same outcomes on the shared images
    a, b, *_ = cmp.align_per_sample("retrieval", base, new)
    assert a == sub


def test_lower_is_better_and_relative_gates(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    worse = retrieval_record(*_ranks(1, worse=0.5))
    c = cmp.compare(runs(base), runs(worse), rules("t2i.meanr drop<=0.1", "rsum drop<=50%", "rsum drop<=1%"),
                    n_resamples=0)
    res = {x.rule: x.passed for x in c.checks}
    assert worse.metrics["t2i.meanr"] > base.metrics["t2i.meanr"] + 0.1
    assert res == {"t2i.meanr drop<=0.1": False, "rsum drop<=50%": True, "rsum drop<=1%": False}
    # n_resamples=0: no paired tests, and a significance gate cannot silently pass
    assert all(r.p_value is None and r.ci is None for r in c.pairs[0].rows)
    c = cmp.compare(runs(base), runs(base), rules("rsum no-sig-drop"), n_resamples=0)
    assert not c.passed and "significance cannot be tested" in c.failures[0].message


def test_refuses_different_protocol_fingerprint_and_conventions(base_ranks):
    i2t, t2i = base_ranks
    a = retrieval_record(i2t, t2i, protocol="coco-1k-5fold")
    b = retrieval_record(i2t, t2i, protocol="coco-5k")
    with pytest.raises(MismatchError) as ei:
        cmp.compare(runs(a), runs(b))
    msg = str(ei.value)
    assert "field 'dataset.protocol' differs: baseline 'coco-1k-5fold'" in msg and "new 'coco-5k'" in msg
    with pytest.raises(MismatchError, match=r"field 'dataset.fingerprint' differs: baseline 'fp1' .* new 'fp2'"):
        cmp.compare(runs(retrieval_record(i2t, t2i)), runs(retrieval_record(i2t, t2i, fp="fp2")))
    c = retrieval_record(i2t, t2i)
    c.details = {"ties": "optimistic"}
    with pytest.raises(MismatchError, match=r"field 'details.ties' differs: baseline 'pessimistic'"):
        cmp.compare(runs(retrieval_record(i2t, t2i)), runs(c))
    d = retrieval_record(i2t, t2i)
    d.config = {"dataset_options": {"text_only": "true"}}
    with pytest.raises(MismatchError, match=r"config.dataset_options"):
        cmp.compare(runs(retrieval_record(i2t, t2i)), runs(d))


def test_missing_and_failed_runs_fail_and_unknown_gates_are_bad_input(base_ranks):
    i2t, t2i = base_ranks
    a, b = retrieval_record(i2t, t2i), retrieval_record(i2t, t2i, plugin="lsa")
    c = cmp.compare(runs(a, b), runs(a), n_resamples=0)
    assert not c.passed and c.failures[0].message.startswith("no new run for baseline lsa · demo/test")
    failed = RunRecord(task="retrieval", plugin={"name": "lsa"}, dataset={"name": "demo", "split": "test",
                                                                           "protocol": ""},
                       status="failed", error="PluginError: out of memory\ntrace")
    c = cmp.compare(runs(a, b), runs(a, failed), rules("rsum drop<=1"), n_resamples=0)
    assert [x.rule for x in c.failures] == ["new run succeeds"]
    assert "PluginError: out of memory" in c.failures[0].message and "trace" not in c.failures[0].message
    assert c.exit_code == 1
    with pytest.raises(MMBenchError, match=r"gate 'CIDEr drop<=1' \(--gate\) matches no metric.*rsum"):
        cmp.compare(runs(a), runs(a), rules("CIDEr drop<=1"), n_resamples=0)
    with pytest.raises(MMBenchError, match="matches no declared metric"):
        cmp.compare(runs(a), runs(a), rules("published"), n_resamples=0)
    with pytest.raises(MMBenchError, match="no new run matches a baseline run"):
        cmp.compare(runs(a), runs(retrieval_record(i2t, t2i, dataset="flickr30k")))
    # new runs without a baseline are reported, not failed
    c = cmp.compare(runs(a), runs(a, retrieval_record(i2t, t2i, dataset="flickr30k")), n_resamples=0)
    assert c.passed and any("has no baseline" in n for n in c.notes)


def test_published_gate(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i)
    new = retrieval_record(i2t, t2i, published=[
        {"metric": "i2t.R@1", "published": 40.0, "measured": 40.3, "delta": 0.3, "tolerance": 0.5, "within": True,
         "source": "paper", "protocol": None},
        {"metric": "t2i.R@1", "published": 30.0, "measured": 25.0, "delta": -5.0, "tolerance": 0.5,
         "within": False, "source": "paper", "protocol": None}])
    c = cmp.compare(runs(base), runs(new), rules("i2t.R@1 within-published"), n_resamples=0)
    assert c.passed and len(c.checks) == 1
    c = cmp.compare(runs(base), runs(new), rules("published"), n_resamples=0)
    assert [x.metric for x in c.failures] == ["t2i.R@1"]
    assert "outside the published tolerance" in c.failures[0].message


def test_classification_compare_and_duplicates():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, 400)
    pred_a = np.where(rng.random(400) < 0.7, label, rng.integers(0, 3, 400))
    pred_b = np.where(rng.random(400) < 0.4, label, rng.integers(0, 3, 400))
    a, b = classification_record(pred_a, label), classification_record(pred_b, label)
    older = classification_record(pred_a, label)
    older.created = "2000-01-01T00:00:00+00:00"
    # two records of one run with different results are ambiguous (issue 12) unless --newest picks one
    with pytest.raises(MMBenchError, match="new: several records of the same run with different results"):
        cmp.compare(runs(a), runs(older, b), rules("accuracy no-sig-drop"), n_resamples=B)
    c = cmp.compare(runs(a), runs(older, b), rules("accuracy no-sig-drop", "f1_weighted drop<=1"), n_resamples=B,
                    newest=True)
    assert not c.passed and {x.metric for x in c.failures} == {"accuracy", "f1_weighted"}
    assert any("2 records for sk-early-fusion" in n for n in c.notes)
    row = next(r for r in c.pairs[0].rows if r.metric == "accuracy")
    ref = paired_bootstrap("classification", "accuracy", a.per_sample, b.per_sample, n_resamples=B)
    assert (row.ci, row.p_value) == (ref["ci"], ref["p_value"])


def test_junit_and_json_reports(base_ranks):
    i2t, t2i = base_ranks
    base = retrieval_record(i2t, t2i, plugin="a<b>&\x01")
    worse = retrieval_record(*_ranks(1, worse=0.3), plugin="a<b>&\x01")
    c = cmp.compare(runs(base), runs(worse), rules("t2i.R@1 drop<=0.5", "i2t.R@* drop<=100"), n_resamples=0)
    root = ET.fromstring(cmp.to_junit(c).split("\n", 1)[1])
    assert root.get("tests") == "4" and root.get("failures") == "1"
    suites = {s.get("name"): s for s in root}
    assert set(suites) == {"t2i.R@1 drop<=0.5", "i2t.R@* drop<=100"}
    case = suites["t2i.R@1 drop<=0.5"].find("testcase")
    # control characters are removed (issue 12: safe_text), XML specials escaped by the writer
    assert case.get("name") == "a<b>& · demo/test: t2i.R@1" and case.find("failure") is not None
    assert len(suites["i2t.R@* drop<=100"].findall("testcase")) == 3
    d = json.loads(json.dumps(c.to_dict()))
    assert d["passed"] is False and d["n_failed"] == 1
    assert {m["metric"] for m in d["runs"][0]["metrics"]} >= {"rsum", "i2t.medr"}


# --------------------------------------------------------------------------- CLI


def _save(tmp_path, name, *recs):
    d = tmp_path / name
    for r in recs:
        records.save(r, d)
    return d


def _cli(args, env=None):
    from mmbench.cli import app

    return CliRunner().invoke(app, ["compare", *args], env=env)


def test_cli_exit_codes_and_outputs(tmp_path, base_ranks):
    i2t, t2i = base_ranks
    base = _save(tmp_path, "base", retrieval_record(i2t, t2i))
    noisy = _save(tmp_path, "noisy", retrieval_record(*_noisy(i2t, t2i, 7)))
    worse = _save(tmp_path, "worse", retrieval_record(*_ranks(1, worse=0.3)))
    gates = tmp_path / "gates.txt"
    gates.write_text("t2i.R@1 drop<=1\nrsum no-sig-drop p<0.05\n")
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    res = _cli([str(base), str(noisy), "--gates", str(gates), "--bootstrap", "200"],
               env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output
    text = summary.read_text()
    assert text.startswith("previous step\n## ✅ mmbench compare: all 2 gate check(s) hold")
    md, xml, js = tmp_path / "r.md", tmp_path / "r.xml", tmp_path / "r.json"
    res = _cli([str(base), str(worse), "--gates", str(gates), "--bootstrap", "200", "--format", "markdown",
                "--markdown-out", str(md), "--junit-out", str(xml), "--json-out", str(js)], env={})
    assert res.exit_code == 1
    assert res.output.startswith("## ❌ mmbench compare: 2 of 2 gate check(s) failed")
    assert md.read_text() == res.output
    assert ET.parse(xml).getroot().get("failures") == "2"
    assert json.loads(js.read_text())["n_failed"] == 2
    res = _cli([str(base), str(worse), "--gate", "t2i.R@1 drop<=100", "--json", "--bootstrap", "0"], env={})
    assert res.exit_code == 0 and json.loads(res.output)["passed"] is True
    res = _cli([str(base), str(worse), "--gate", "t2i.R@1 drop<=100", "--format", "junit", "--bootstrap", "0"],
               env={})
    assert res.exit_code == 0 and ET.fromstring(res.output.split("\n", 1)[1]).get("tests") == "1"


@pytest.mark.parametrize("args,needle", [
    (["--gate", "t2i.R@1 sinks"], "cannot parse gate rule"),
    (["--gate", "BLEU drop<=1"], "matches no metric"),
    (["--format", "pdf"], "unknown --format"),
])
def test_cli_bad_input_exits_2(tmp_path, base_ranks, args, needle):
    base = _save(tmp_path, "base", retrieval_record(*base_ranks))
    res = _cli([str(base), str(base), "--bootstrap", "0", *args], env={})
    assert res.exit_code == 2 and needle in res.output, res.output


def test_cli_refusal_and_missing_files_exit_2(tmp_path, base_ranks):
    a = _save(tmp_path, "a", retrieval_record(*base_ranks, protocol="coco-1k-5fold"))
    b = _save(tmp_path, "b", retrieval_record(*base_ranks, protocol="coco-5k"))
    res = _cli([str(a), str(b)], env={})
    assert res.exit_code == 2 and "dataset.protocol" in res.output
    res = _cli([str(a), str(tmp_path / "nope")], env={})
    assert res.exit_code == 2 and "no such record file or folder" in res.output
    (tmp_path / "empty").mkdir()
    res = _cli([str(a), str(tmp_path / "empty")], env={})
    assert res.exit_code == 2 and "holds no record files" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = _cli([str(a), str(bad)], env={})
    assert res.exit_code == 2 and "not valid JSON" in res.output


def test_documented_example_gates_and_baseline_work(tmp_path):
    """The committed example: a real `cca` on `demo` record, the gate file and the workflow."""
    ex = REPO / "docs" / "examples"
    rules_ = load_rules(ex / "mmbench-gates.txt")
    assert len(rules_) == 6
    baseline = cmp.load_runs([ex / "baseline"], "baseline")
    assert len(baseline) == 1 and baseline[0].record.status == "ok"
    rec = baseline[0].record
    assert rec.key == ("cca", "demo", "test", "5-per-image")
    # the record's metrics are exactly what its per-sample outcomes give
    assert all_metric_values("retrieval", rec.per_sample) == pytest.approx(rec.metrics, abs=1e-9)
    c = cmp.compare(baseline, baseline, rules_, n_resamples=B)
    assert c.passed, cmp.to_markdown(c)
    # the same run with a third of the image queries pushed down 5 places must fail the gates
    worse = RunRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    rng = np.random.default_rng(0)
    worse.per_sample["i2t_rank"] = [r + 5 if rng.random() < 0.33 else r for r in rec.per_sample["i2t_rank"]]
    worse.metrics = all_metric_values("retrieval", worse.per_sample)
    c = cmp.compare(baseline, [cmp.LoadedRun(worse, "worse.json")], rules_, n_resamples=B)
    assert not c.passed and "i2t.R@1" in {x.metric for x in c.failures}
    assert {x.metric for x in c.failures} <= {"i2t.R@1", "i2t.R@5", "i2t.R@10", "rsum", "t2i.meanr"}
    wf = (ex / "mmbench-regression.yml").read_text()
    for needle in ("mmbench eval --plugin cca --dataset demo", "mmbench compare docs/examples/baseline runs/",
                   "--gates docs/examples/mmbench-gates.txt", "GITHUB_STEP_SUMMARY", "--junit-out"):
        assert needle in wf
    try:
        import yaml
    except ImportError:  # PyYAML is optional; the text checks above still ran
        return
    steps = yaml.safe_load(wf)["jobs"]["regression"]["steps"]
    assert any("mmbench compare" in s.get("run", "") for s in steps)


def test_captioning_and_grounding_pairs():
    rng = np.random.default_rng(3)
    n = 120
    ids = [f"im{i}" for i in range(n)]

    def cap(cider, seed):
        r = np.random.default_rng(seed)
        stats = [[int(t), int(t) + int(r.integers(-2, 3)), int(t), int(t) - 1, int(t) - 2, int(t) - 3,
                  int(r.integers(0, t + 1)), int(r.integers(0, t)), int(r.integers(0, t - 1)), int(r.integers(0, t - 2))]
                 for t in r.integers(6, 14, n)]
        ps = {"CIDEr": list(cider), "ROUGE_L": list(r.random(n)), "bleu_stats": stats}
        metrics = all_metric_values("captioning", ps)
        return RunRecord(task="captioning", plugin={"name": "nn-caption"},
                         dataset={"name": "coco_captions", "split": "val", "protocol": "", "fingerprint": "c"},
                         metrics=metrics, per_sample=ps, sample_ids={k: ids for k in ps},
                         details={"tokenizer": "ptb"})

    cider = rng.gamma(2.0, 0.5, n)
    a, b = cap(cider, 1), cap(cider * 0.7, 1)
    c = cmp.compare(runs(a), runs(b), rules("CIDEr no-sig-drop", "Bleu 4 drop<=0.5", "ROUGE_L no-sig-drop"),
                    n_resamples=B)
    assert [x.metric for x in c.failures] == ["CIDEr"]
    row = next(r for r in c.pairs[0].rows if r.metric == "Bleu_4")
    assert row.delta == 0.0 and row.p_value == 1.0  # same statistics: corpus BLEU recomputed identically
    b.details = {"tokenizer": "python"}
    with pytest.raises(MismatchError, match="details.tokenizer"):
        cmp.compare(runs(a), runs(b))

    hit_a = (rng.random(n) < 0.8).astype(int)
    hit_b = np.where(rng.random(n) < 0.2, 0, hit_a)

    def gr(hit):
        return RunRecord(task="grounding", plugin={"name": "colour-box"},
                         dataset={"name": "refcoco", "split": "val", "protocol": "unc", "fingerprint": "g"},
                         metrics={"acc@0.5": 100.0 * float(np.mean(hit))}, per_sample={"hit": [int(h) for h in hit]},
                         sample_ids={"hit": ids}, details={"iou_convention": "continuous", "threshold": 0.5})

    c = cmp.compare(runs(gr(hit_a)), runs(gr(hit_b)), rules("acc@0.5 no-sig-drop", "acc@0.5 >= 50"), n_resamples=B)
    assert [x.rule for x in c.failures] == ["acc@0.5 no-sig-drop p<0.05"]
    ref = paired_bootstrap("grounding", "acc@0.5", {"hit": list(hit_a)}, {"hit": list(hit_b)}, n_resamples=B)
    assert c.pairs[0].rows[0].p_value == ref["p_value"] and c.pairs[0].rows[0].ci == ref["ci"]


# --------------------------------------------------------------------------- --pair-by samples


def test_pair_by_samples_pairs_two_plugins_on_the_same_samples(base_ranks):
    i2t, t2i = base_ranks
    vsepp = retrieval_record(i2t, t2i, plugin="vsepp")
    # another model on the same images and captions, its outcomes listed in another order
    order = list(np.random.default_rng(9).permutation(N_IMG))
    new_i2t, new_t2i = _ranks(1, worse=0.3)
    sgraf = retrieval_record(new_i2t, new_t2i, plugin="sgraf", order=order)
    in_order = retrieval_record(new_i2t, new_t2i, plugin="sgraf")
    # by plugin (the default) two models never pair
    by_plugin = r"no new run matches a baseline run by \(plugin, dataset, split, protocol\)"
    with pytest.raises(MMBenchError, match=by_plugin):
        cmp.compare(runs(vsepp), runs(sgraf), n_resamples=B)
    c = cmp.compare(runs(vsepp), runs(sgraf), rules("plugin=sgraf rsum no-sig-drop p<0.05"), n_resamples=B,
                    seed=3, pair_by="samples")
    p = c.pairs[0]
    assert p.label == "vsepp → sgraf · demo/test" and (p.n_baseline, p.n_new, p.n_shared) == (N_IMG,) * 3
    assert not p.notes
    # the paired bootstrap on outcomes aligned by sample id: exactly the per-metric reference
    for m in ("i2t.R@1", "t2i.R@5", "rsum", "i2t.medr"):
        ref = paired_bootstrap("retrieval", m, vsepp.per_sample, in_order.per_sample, n_resamples=B, seed=3)
        row = next(r for r in p.rows if r.metric == m)
        assert (row.ci, row.p_value, row.n) == (ref["ci"], ref["p_value"], N_IMG), m
        assert row.delta == pytest.approx(sgraf.metrics[m] - vsepp.metrics[m], abs=1e-12)
    assert [x.metric for x in c.failures] == ["rsum"] and c.failures[0].run == "vsepp → sgraf · demo/test"
    d = c.to_dict()
    assert (d["settings"]["pair_by"], d["runs"][0]["baseline_plugin"], d["runs"][0]["plugin"]) == \
        ("samples", "vsepp", "sgraf")
    assert "### vsepp → sgraf · demo/test" in cmp.to_markdown(c)


def test_pair_by_samples_refuses_other_samples_or_data(base_ranks):
    i2t, t2i = base_ranks
    a = retrieval_record(i2t, t2i, plugin="vsepp")
    with pytest.raises(MismatchError, match=r"field 'dataset.data_fingerprint' differs: baseline 'fp1'.* vs new 'fp2'"):
        cmp.compare(runs(a), runs(retrieval_record(i2t, t2i, plugin="sgraf", fp="fp2")), pair_by="samples")
    with pytest.raises(MismatchError, match="needs the data fingerprint of both runs; missing in the new record"):
        cmp.compare(runs(a), runs(retrieval_record(i2t, t2i, plugin="sgraf", fp="")), pair_by="samples")
    keep = list(range(0, N_IMG, 2))  # other (fewer) images: pairing by samples refuses instead of subsetting
    caps = [j for i in keep for j in range(5 * i, 5 * i + 5)]
    sub = retrieval_record(i2t[keep], t2i[caps], plugin="sgraf")
    sub.sample_ids = {"image": [f"img{i:04d}" for i in keep], "caption": [f"t{j}" for j in caps]}
    with pytest.raises(MismatchError) as ei:
        cmp.compare(runs(a), runs(sub), pair_by="samples")
    msg = str(ei.value)
    assert "vsepp → sgraf · demo/test: sample ids differ (i2t_rank): baseline 300, new 150, shared 150; " \
           "only in baseline: 'img0001', 'img0003', 'img0005', …" in msg
    assert "or samples" in msg
    renamed = retrieval_record(i2t, t2i, plugin="sgraf")
    renamed.sample_ids = {k: [f"x{s}" for s in v] for k, v in renamed.sample_ids.items()}
    with pytest.raises(MismatchError, match=r"only in new: 'ximg0000'"):
        cmp.compare(runs(a), runs(renamed), pair_by="samples")
    no_ids = retrieval_record(i2t, t2i, plugin="sgraf")
    no_ids.sample_ids = {}
    with pytest.raises(MismatchError, match="new record has no sample ids for 'i2t_rank'"):
        cmp.compare(runs(a), runs(no_ids), pair_by="samples")
    bare = retrieval_record(i2t, t2i, plugin="sgraf")
    bare.per_sample, bare.sample_ids = {}, {}
    with pytest.raises(MismatchError, match="new record has no per-sample outcomes to pair"):
        cmp.compare(runs(a), runs(bare), pair_by="samples")
    # two plugins on the same data in one side: which to pair is ambiguous
    ambiguous = r"(?s)new holds runs of several plugins on the same dataset.*demo/test: x \("
    with pytest.raises(MMBenchError, match=ambiguous):
        cmp.compare(runs(a), runs(retrieval_record(i2t, t2i, plugin="x"), retrieval_record(i2t, t2i, plugin="y")),
                    pair_by="samples")
    with pytest.raises(MMBenchError, match="unknown pairing 'images'"):
        cmp.compare(runs(a), runs(a), pair_by="images")


def test_pair_by_samples_cli_and_failed_new_run(tmp_path, base_ranks):
    i2t, t2i = base_ranks
    base = _save(tmp_path, "base", retrieval_record(i2t, t2i, plugin="vsepp"))
    new = _save(tmp_path, "new", retrieval_record(*_noisy(i2t, t2i, 7), plugin="sgraf"))
    res = _cli([str(base), str(new), "--pair-by", "samples", "--gate", "rsum no-sig-drop", "--bootstrap", "200"],
               env={})
    assert res.exit_code == 0, res.output
    assert "vsepp → sgraf · demo/test" in res.output and "PASS" in res.output
    res = _cli([str(base), str(new), "--bootstrap", "0"], env={})
    assert res.exit_code == 2 and "no new run matches" in res.output
    res = _cli([str(base), str(new), "--pair-by", "image"], env={})
    assert res.exit_code == 2 and "unknown --pair-by 'image'; choose plugin or samples" in res.output
    other = _save(tmp_path, "other", retrieval_record(i2t, t2i, plugin="sgraf", fp="fp9"))
    res = _cli([str(base), str(other), "--pair-by", "samples"], env={})
    assert res.exit_code == 2 and "dataset.data_fingerprint" in res.output
    failed = RunRecord(task="retrieval", plugin={"name": "sgraf"}, dataset={"name": "demo", "split": "test",
                                                                             "protocol": ""},
                       status="failed", error="PluginError: sgraf: out of memory")
    c = cmp.compare(cmp.load_runs([base]), runs(failed), pair_by="samples")
    assert not c.passed and "out of memory" in c.failures[0].message


def test_newest_of_duplicates_does_not_depend_on_paths_or_order(base_ranks):
    i2t, t2i = base_ranks
    a = retrieval_record(i2t, t2i, created="2026-01-01T00:00:00+00:00", run_id="aaaaaaaaaaaa")
    b = retrieval_record(*_noisy(i2t, t2i, 7), created="2026-01-01T00:00:00+00:00", run_id="bbbbbbbbbbbb")
    c = retrieval_record(*_noisy(i2t, t2i, 8), created="2025-12-31T23:00:00-01:00", run_id="cccccccccccc")
    paths = {"aaaaaaaaaaaa": "runs/z.json", "bbbbbbbbbbbb": "runs/a.json", "cccccccccccc": "runs/b.json"}
    for order in ((a, b, c), (c, b, a), (b, c, a)):
        loaded = [cmp.LoadedRun(r, paths[r.run_id]) for r in order]
        notes: list[str] = []
        pairs, *_ = cmp.match_runs(loaded, loaded, notes, newest=True)  # they disagree: --newest (issue 12)
        # the same instant three times (one written with another offset): the largest run id, not the path
        assert pairs[0].new.record.run_id == "cccccccccccc"
        assert "using the newest (runs/b.json)" in notes[0]
