"""Bootstrap CIs, metric recomputation from per-sample data, and the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from mmbench.errors import MMBenchError
from mmbench.metrics import bootstrap as bs
from mmbench.metrics.retrieval import retrieval_metrics
from mmbench.tasks.base import TaskResult


def _retrieval_ps(seed=0, n=40, folds=1, noise=1.0):
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((n, 8))
    txt = np.repeat(img, 5, 0) + noise * rng.standard_normal((5 * n, 8))
    ti = np.arange(5 * n) // 5
    res = retrieval_metrics(img @ txt.T, ti, folds=folds)
    ps = {"i2t_rank": res["i2t_ranks"].tolist(), "t2i_rank": res["t2i_ranks"].tolist(), "t2i_image": ti.tolist()}
    if folds > 1:
        ps["image_fold"] = res["image_fold"].tolist()
    return res, ps


@pytest.mark.parametrize("folds", [1, 5])
def test_retrieval_metric_value_reproduces_every_metric(folds):
    res, ps = _retrieval_ps(folds=folds)
    for k, v in res["metrics"].items():
        assert bs.metric_value("retrieval", k, ps) == pytest.approx(v, abs=1e-12), k
    if folds == 1:  # exact, not approximately
        assert bs.all_metric_values("retrieval", ps) == res["metrics"]


def test_weighted_resample_equals_explicit_resample():
    res, ps = _retrieval_ps(seed=2)
    n, fn = bs._prepare("retrieval", ps)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, n, n)
    w = np.bincount(idx, minlength=n)
    got = fn(w)
    i2t = np.asarray(ps["i2t_rank"])[idx]
    caps = np.concatenate([np.arange(5 * i, 5 * i + 5) for i in idx])
    t2i = np.asarray(ps["t2i_rank"])[caps]
    from mmbench.metrics.retrieval import summarize

    want = summarize(i2t, t2i)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k


def test_task_cis_cover_point_and_are_seeded():
    res, ps = _retrieval_ps(n=60)
    tr = TaskResult(metrics=res["metrics"], per_sample=ps)
    ci = bs.task_cis("retrieval", tr, n_resamples=300, seed=1)
    assert set(ci) == set(res["metrics"])
    for k, (lo, hi) in ci.items():
        assert lo <= res["metrics"][k] <= hi, k
    assert ci["i2t.R@1"][1] - ci["i2t.R@1"][0] > 1.0  # 60 queries: a wide interval
    assert bs.task_cis("retrieval", tr, n_resamples=300, seed=1) == ci
    assert bs.task_cis("retrieval", tr, n_resamples=300, seed=2) != ci
    narrow = bs.task_cis("retrieval", tr, n_resamples=300, seed=1, confidence=0.5)
    assert narrow["rsum"][1] - narrow["rsum"][0] < ci["rsum"][1] - ci["rsum"][0]


def test_paired_bootstrap_identical_and_different_runs():
    _, a = _retrieval_ps(seed=0, n=80, noise=1.0)
    out = bs.paired_bootstrap("retrieval", "i2t.R@1", a, a, n_resamples=200)
    assert out["delta"] == 0.0 and out["ci"] == [0.0, 0.0] and out["p_value"] == 1.0 and out["n"] == 80
    # same images, a much better model
    rng = np.random.default_rng(0)
    b = dict(a, i2t_rank=[0] * 80, t2i_rank=[0] * 400)
    out = bs.paired_bootstrap("retrieval", "rsum", a, b, n_resamples=200, seed=3)
    assert out["b"] == 600.0 and out["delta"] == out["b"] - out["a"] > 0
    assert out["ci"][0] > 0 and out["p_value"] == pytest.approx(2 / 201)
    # a small random perturbation: not significant
    c = dict(a, i2t_rank=list(np.asarray(a["i2t_rank"])[rng.permutation(80)]))
    out = bs.paired_bootstrap("retrieval", "i2t.R@5", a, c, n_resamples=300)
    assert out["ci"][0] <= 0 <= out["ci"][1] and out["p_value"] > 0.05


def test_paired_bootstrap_errors():
    _, a = _retrieval_ps(n=10)
    _, b = _retrieval_ps(n=12)
    with pytest.raises(MMBenchError, match="same samples"):
        bs.paired_bootstrap("retrieval", "rsum", a, b)
    with pytest.raises(MMBenchError, match="cannot be recomputed"):
        bs.paired_bootstrap("retrieval", "BLEU", a, a)
    with pytest.raises(MMBenchError, match="Unknown task kind"):
        bs.metric_value("vqa", "acc", {})


def test_classification_scores_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)  # class 3 never occurs: counts as F1 0 in the macro mean
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    ps = {"label": y.tolist(), "pred": p.tolist(), "n_classes": [4] * 200}
    vals = bs.all_metric_values("classification", ps)
    labels = [0, 1, 2, 3]
    assert vals["accuracy"] == pytest.approx(100 * accuracy_score(y, p), abs=1e-12)
    assert vals["f1_macro"] == pytest.approx(100 * f1_score(y, p, labels=labels, average="macro", zero_division=0),
                                             abs=1e-12)
    assert vals["f1_weighted"] == pytest.approx(
        100 * f1_score(y, p, labels=labels, average="weighted", zero_division=0), abs=1e-12)
    out = bs.paired_bootstrap("classification", "f1_macro", ps, dict(ps, pred=y.tolist()), n_resamples=100)
    assert out["b"] == pytest.approx(75.0) and out["p_value"] < 0.05


def test_grounding_metrics_from_hit_ranks():
    ps = {"hit": [1, 0, 0, 1], "hit_rank": [1, 3, 0, 1]}
    vals = bs.all_metric_values("grounding", ps)
    assert vals == {"acc": 50.0, "P@1": 50.0, "P@5": 75.0, "P@10": 75.0}
    assert bs.metric_value("grounding", "acc@0.5", ps) == 50.0


def test_bleu_from_stats_brevity_penalty():
    # testlen 9 < reflen 10: BP exp(1 - 10/9) applies
    stats = np.array([[9, 10, 9, 8, 7, 6, 9, 8, 7, 6]])
    b = bs.bleu_from_stats(stats)
    bp = np.exp(1 - (10 + 1e-9) / (9 + 1e-15))
    assert b[0] == pytest.approx(bp * (9 + 1e-15) / (9 + 1e-9), rel=1e-12)
    assert b[3] == pytest.approx(bp, rel=1e-6)
