"""Hostile plugins and outputs (issue 12, runs and records): a plugin that exits, kills its process, hangs,
returns unserialisable details or non-finite extra metrics ends as a failed run of its own with a clear
message, the other runs go on, and no record holds NaN / Infinity (invalid JSON)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import types

import numpy as np
import pytest

from mmbench import records
from mmbench.hookspecs import hookimpl
from mmbench.plugins import Registry
from mmbench.runner import EvalConfig, run_many
from mmbench.specs import ModelSpec


class _Base:
    """A text-only classifier that predicts class 0; subclasses misbehave in predict_proba."""

    def predict_proba(self, inputs):
        out = np.zeros((len(inputs), 3))
        out[:, 0] = 1.0
        return out


class Exits(_Base):
    def predict_proba(self, inputs):
        sys.exit(0)


class KillsProcess(_Base):
    def predict_proba(self, inputs):
        os._exit(0)


class Hangs(_Base):
    def predict_proba(self, inputs):
        time.sleep(600)


class BadDetails(_Base):
    details = {"when": object()}


class NanExtra(_Base):
    extra_metric_info = {"score": {"higher_is_better": True, "unit": "score"}}

    def extra_metrics(self, data, result):
        return {"score": float("nan")}


class Fine(_Base):
    pass


class StringEmbeddings:
    def encode_images(self, images):
        return [["1", "0"] for _ in images]

    def encode_texts(self, texts):
        return [["0", "1"] for _ in texts]


class ComplexScores:
    def encode_images(self, images):
        return list(range(len(images)))

    def encode_texts(self, texts):
        return list(range(len(texts)))

    def score(self, a, b):
        return np.ones((len(a), len(b)), dtype=np.complex128)


def _registry():
    mod = types.ModuleType("hostile_plugins")
    specs = [ModelSpec(name=n, task="classification", factory=cls, accepts=("image", "text_only"))
             for n, cls in (("exits", Exits), ("kills", KillsProcess), ("hangs", Hangs), ("bad-details", BadDetails),
                            ("nan-extra", NanExtra), ("fine", Fine))]
    specs += [ModelSpec(name="str-emb", task="retrieval", factory=StringEmbeddings, accepts=("image",)),
              ModelSpec(name="complex-scores", task="retrieval", factory=ComplexScores, accepts=("image",))]
    mod.mmbench_models = hookimpl(lambda: specs)
    return Registry(entry_points=False, extra_modules=(mod,))


CFG = dict(bootstrap=0, show_progress=False)


def test_sys_exit_in_a_plugin_is_a_failed_run_in_process():
    reg = _registry()
    (rec, ok) = run_many(["exits", "fine"], ["demo"], EvalConfig(**CFG), registry=reg)
    assert rec.status == "failed" and "called sys.exit(0)" in rec.error and "must raise" in rec.error
    assert ok.status == "ok" and ok.metrics["accuracy"] > 0


def test_os_exit_and_a_hang_are_failed_runs_when_isolated_and_the_others_go_on():
    reg = _registry()
    t0 = time.perf_counter()
    recs = run_many(["kills", "hangs", "fine"], ["demo"], EvalConfig(**CFG, isolate=True, timeout=20), registry=reg)
    assert time.perf_counter() - t0 < 120
    kills, hangs, fine = recs
    assert kills.status == "failed" and "os._exit() or crashed" in kills.error
    assert hangs.status == "failed" and "--timeout 20 s" in hangs.error
    assert hangs.config["timeout"] == 20 and hangs.config["isolate"] is True
    assert fine.status == "ok" and fine.config["isolate"] is True and fine.metrics["accuracy"] > 0
    # the isolated record is the in-process one
    again = run_many(["fine"], ["demo"], EvalConfig(**CFG), registry=reg)[0]
    assert again.metrics == fine.metrics and again.per_sample == fine.per_sample


def test_unserialisable_details_and_non_finite_extra_metrics_are_failed_runs():
    reg = _registry()
    bad, nan, fine = run_many(["bad-details", "nan-extra", "fine"], ["demo"], EvalConfig(**CFG), registry=reg)
    assert bad.status == "failed" and "details.model.when is a object" in bad.error
    assert nan.status == "failed" and "non-finite" in nan.error and "'score'" in nan.error
    assert fine.status == "ok"


def test_records_never_hold_nan_or_infinity(tmp_path):
    reg = _registry()
    (rec,) = run_many(["fine"], ["demo"], EvalConfig(**CFG), registry=reg)
    rec.metrics["weird"] = float("nan")
    rec.ci["accuracy"] = [float("-inf"), 1.0]
    path = records.save(rec, tmp_path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert d["metrics"]["weird"] is None and d["ci"]["accuracy"] == [None, 1.0]
    assert set(d["details"]["non_finite"]) == {"metrics.weird", "ci.accuracy[0]"}
    back = records.load(path)
    assert back.metrics["accuracy"] == rec.metrics["accuracy"] and not math.isnan(back.metrics["accuracy"])


def test_out_that_is_a_file_or_read_only_is_refused_before_any_run(tmp_path):
    from mmbench.errors import DataError

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="names a file"):
        records.check_writable(f)
    with pytest.raises(DataError, match="is a file, so the folder cannot be created"):
        records.check_writable(f / "sub")
    assert records.check_writable(tmp_path / "new" / "runs") == tmp_path / "new" / "runs"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(DataError, match="cannot write run records"):
            records.check_writable(ro)
    finally:
        ro.chmod(0o700)


def test_a_record_that_cannot_be_written_is_kept_in_a_fallback_folder(tmp_path, monkeypatch):
    reg = _registry()
    (rec,) = run_many(["fine"], ["demo"], EvalConfig(**CFG), registry=reg)
    real = records.atomic_write_text
    calls = []

    def fail_first(path, text):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(records, "atomic_write_text", fail_first)
    with pytest.warns(RuntimeWarning, match="No space left on device.*saved to"):
        path = records.save(rec, tmp_path / "full")
    assert "mmbench-unsaved-records" in str(path) and records.load(path).metrics == rec.metrics
    path.unlink()


def test_string_embeddings_and_complex_scores_are_refused_not_converted():
    reg = _registry()
    strs, cplx = run_many(["str-emb", "complex-scores"], ["demo"], EvalConfig(bootstrap=0, show_progress=False),
                          registry=reg)
    assert strs.status == "failed" and "not a real-valued numeric array (got strings" in strs.error
    assert cplx.status == "failed" and "(got complex numbers" in cplx.error


def test_a_runaway_caption_is_refused_before_meteor_sees_it():
    from mmbench.errors import DataError
    from mmbench.metrics.captioning import caption_scores

    with pytest.raises(DataError, match="has 50000 words.*at most 1000 words"):
        caption_scores({"1": ["a dog"]}, {"1": " ".join(["dog"] * 50000)}, metrics=("bleu",))
    with pytest.raises(DataError, match="reference caption of image '1'"):
        caption_scores({"1": ["x " * 3000]}, {"1": "a dog"}, metrics=("bleu",))
    # lone surrogates never reach the Java process
    from mmbench.metrics.meteor import score_line

    assert "\ud800" not in score_line("a \ud800 dog", ["a dog"])
