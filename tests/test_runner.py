"""The runner end to end on in-process toy plugins: every task kind, failures, mismatches, records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mmbench import records
from mmbench.errors import MismatchError, PluginError, UnknownNameError
from mmbench.plugins import Registry
from mmbench.runner import EvalConfig, run_eval, run_many

spec = importlib.util.spec_from_file_location("toy_plugin", Path(__file__).with_name("toy_plugin.py"))
toy_plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy_plugin)


@pytest.fixture(scope="module")
def reg():
    return Registry(entry_points=False, extra_modules=(toy_plugin,))


def cfg(**kw):
    kw.setdefault("bootstrap", 0)
    kw.setdefault("show_progress", False)
    return EvalConfig(**kw)


def test_oracle_retrieval_is_perfect_and_published_delta(reg):
    rec = run_eval("oracle", "toy", cfg(), registry=reg)
    assert rec.status == "ok" and rec.task == "retrieval"
    assert rec.metrics["i2t.R@1"] == 100.0 and rec.metrics["t2i.R@1"] == 100.0
    assert rec.metrics["rsum"] == 600.0 and rec.metrics["i2t.medr"] == 1.0
    assert rec.per_sample["t2i_rank"] == [0] * 30
    assert rec.published == [{"metric": "i2t.R@1", "published": 99.0, "measured": 100.0, "delta": 1.0,
                              "tolerance": 2.0, "within": True, "source": "toy paper", "protocol": None}]
    assert rec.dataset["data_fingerprint"] == "f" * 16 and rec.dataset["n_samples"] == 6
    assert rec.dataset["fingerprint"] not in ("", "f" * 16)  # covers options and fitted data too


def test_cross_scorer_gives_the_same_ranks_as_dual(reg):
    a = run_eval("oracle", "toy", cfg(), registry=reg)
    b = run_eval("cross-oracle", "toy", cfg(batch_size=4), registry=reg)  # tiles of 4 x 4 over 6 x 30
    assert a.metrics == b.metrics and b.details["scorer"] == "cross-attention"


def test_constant_scores_do_not_look_perfect(reg):
    rec = run_eval("constant", "toy", cfg(), registry=reg)
    # pessimistic ties: every caption is tied with all 30 -> rank 25 for i2t, 5 for t2i
    assert rec.metrics["i2t.R@1"] == 0.0 and rec.metrics["t2i.R@1"] == 0.0
    assert rec.details["t2i_tied_queries"] == 30 and rec.details["i2t_tied_queries"] == 6


@pytest.mark.parametrize("name,needle", [("nan", "NaN"), ("wrong-shape", "shape (31, 6)"),
                                         ("raising", "boom inside the plugin")])
def test_bad_plugins_give_plugin_errors(reg, name, needle):
    with pytest.raises(PluginError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        run_eval(name, "toy", cfg(), registry=reg)


def test_broken_factory_is_a_plugin_error(reg):
    with pytest.raises(PluginError, match="no_such_module_xyz"):
        run_eval("broken-factory", "toy", cfg(), registry=reg)


def test_input_form_mismatch_names_both_sides(reg):
    with pytest.raises(MismatchError) as exc:
        run_eval("pixels-only", "toy", cfg(), registry=reg)
    msg = str(exc.value)
    assert "'pixels-only' takes image" in msg and "'toy' offers regions" in msg


def test_task_mismatch_names_what_fits(reg):
    r2 = Registry(entry_points=False, extra_modules=(toy_plugin,))
    with pytest.raises(MismatchError, match="offers retrieval, captioning"):
        # the demo dataset has every task, so make a mismatch with a spec lacking it
        from dataclasses import replace

        r2.datasets["toy-ret"] = replace(r2.datasets["toy"], name="toy-ret", tasks=("retrieval", "captioning"))
        run_eval("fitter", "toy-ret", cfg(), registry=r2)


def test_unknown_names_suggest_the_closest(reg):
    with pytest.raises(UnknownNameError, match="Did you mean 'oracle'"):
        run_eval("oracel", "toy", cfg(), registry=reg)
    with pytest.raises(UnknownNameError, match="Unknown split 'tset' of dataset 'toy'.*Did you mean 'test'"):
        run_eval("oracle", "toy", cfg(split="tset"), registry=reg)


def test_captioning_grounding_classification(reg):
    cap = run_eval("echo", "toy", cfg(task_options={"tokenizer": "whitespace"}), registry=reg)
    assert cap.metrics["Bleu_1"] > 0.99 and "SPICE" not in cap.metrics
    assert "SPICE" in cap.details["unavailable"]
    gr = run_eval("box", "toy", cfg(), registry=reg)
    # predicted xywh (10,10,40,30) == gt xyxy (10,10,50,40): a hit on every sample
    assert gr.metrics["acc@0.5"] == 100.0 and gr.details["box_format"] == "xywh"
    cl = run_eval("fitter", "toy", cfg(), registry=reg)
    assert cl.metrics["accuracy"] == 100.0 and cl.timings["fit"] >= 0


def test_run_many_records_failures_and_goes_on(reg, tmp_path):
    seen = []
    recs = run_many(["raising", "oracle"], ["toy"], cfg(), registry=reg,
                    on_record=lambda r: seen.append(records.save(r, tmp_path)))
    assert [r.status for r in recs] == ["failed", "ok"]
    assert "boom inside the plugin" in recs[0].error
    loaded = records.load_many([tmp_path])
    assert sorted(r.status for r in loaded) == ["failed", "ok"]


def test_record_roundtrip_and_atomic_write(reg, tmp_path):
    rec = run_eval("oracle", "toy", cfg(bootstrap=200), registry=reg)
    path = records.save(rec, tmp_path)
    data = json.loads(path.read_text())
    assert data["schema"] == "mmbench.run/1" and data["environment"]["mmbench"]
    assert data["ci"]["i2t.R@1"] == [100.0, 100.0]
    back = records.load(path)
    assert back.metrics == rec.metrics and back.key == ("oracle", "toy", "test", "5-per-image")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left behind
