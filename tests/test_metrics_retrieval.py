"""Retrieval metrics against a reimplementation of the SCAN/SGRAF/VSE++ numpy loops.

The loops below follow the logic of Paranioar/SGRAF:evaluation.py i2t/t2i (argsort each
row, take the best position of the ground truth) written for these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmbench.errors import MMBenchError
from mmbench.metrics.retrieval import (ranks_from_embeddings, ranks_from_sims, retrieval_metrics,
                                       retrieval_metrics_from_embeddings)


def reference_loops(sims, per=5):
    """SGRAF-style: i2t best position of the image's 5 captions, t2i position of the image."""
    n_img = sims.shape[0]
    i2t = np.zeros(n_img, np.int64)
    for i in range(n_img):
        inds = np.argsort(sims[i])[::-1]
        i2t[i] = min(np.where(inds == j)[0][0] for j in range(per * i, per * i + per))
    t2i = np.zeros(sims.shape[1], np.int64)
    st = sims.T
    for j in range(sims.shape[1]):
        inds = np.argsort(st[j])[::-1]
        t2i[j] = np.where(inds == j // per)[0][0]
    r = {}
    for d, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            r[f"{d}.R@{k}"] = 100.0 * len(np.where(ranks < k)[0]) / len(ranks)
        r[f"{d}.medr"] = np.floor(np.median(ranks)) + 1
        r[f"{d}.meanr"] = ranks.mean() + 1
    return i2t, t2i, r


def tie_free(n, per=5, seed=0, dim=8):
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((n, dim)).astype(np.float32)
    txt = (np.repeat(img, per, 0) + rng.standard_normal((n * per, dim)).astype(np.float32) * 1.5)
    return img, txt.astype(np.float32), np.arange(n * per) // per


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_equals_reference_loops_on_tie_free_matrix(ties):
    img, txt, ti = tie_free(60)
    sims = img.astype(np.float64) @ txt.astype(np.float64).T
    assert len(np.unique(sims)) == sims.size
    i2t_ref, t2i_ref, m_ref = reference_loops(sims)
    res = retrieval_metrics(sims, ti, ties=ties)
    np.testing.assert_array_equal(res["i2t_ranks"], i2t_ref)
    np.testing.assert_array_equal(res["t2i_ranks"], t2i_ref)
    for k, v in m_ref.items():
        assert res["metrics"][k] == v, k
    assert res["metrics"]["rsum"] == sum(m_ref[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert res["i2t_tied"] == res["t2i_tied"] == 0
    # not a trivial case: some ranks are large
    assert res["i2t_ranks"].max() > 10 and res["t2i_ranks"].max() > 10


def test_constant_scores_rank_pessimistically():
    sims = np.zeros((100, 500), np.float32)
    ti = np.arange(500) // 5
    res = retrieval_metrics(sims, ti)
    # every other caption/image ties the ground truth and counts as ahead
    assert (res["i2t_ranks"] == 495).all() and (res["t2i_ranks"] == 99).all()
    assert res["metrics"]["i2t.R@1"] == 0.0 and res["metrics"]["t2i.R@10"] == 0.0
    assert res["i2t_tied"] == 100 and res["t2i_tied"] == 500
    opt = retrieval_metrics(sims, ti, ties="optimistic")
    assert opt["metrics"]["i2t.R@1"] == 100.0  # what an unstable argsort may give: the trap
    assert opt["i2t_tied"] == 100


def test_partial_ties_counted_exactly():
    sims = np.array([[1.0, 0.5, 1.0, 0.2],
                     [1.0, 0.9, 0.3, 0.3]])
    ti = np.array([0, 0, 1, 1])
    i2t, t2i, a, b = ranks_from_sims(sims, ti)
    # image 0: best own 1.0; caption 2 (other) ties -> 1. image 1: best own 0.3; 1.0, 0.9 above -> 2
    assert i2t.tolist() == [1, 2]
    # caption 0: image 1 ties -> 1; caption 1: image 1 above -> 1; caption 2: image 0 above -> 1;
    # caption 3: image 0 (0.2) below -> 0
    assert t2i.tolist() == [1, 1, 1, 0]
    assert (a, b) == (1, 1)
    i2t_o, t2i_o, _, _ = ranks_from_sims(sims, ti, "optimistic")
    assert i2t_o.tolist() == [0, 2] and t2i_o.tolist() == [0, 1, 1, 0]


def test_fold_mode_means_and_rsum_fix():
    img, txt, ti = tie_free(50, seed=3)
    sims = img.astype(np.float64) @ txt.astype(np.float64).T
    res = retrieval_metrics(sims, ti, folds=5)
    folds = [reference_loops(sims[10 * f:10 * f + 10, 50 * f:50 * f + 50])[2] for f in range(5)]
    for k in folds[0]:
        assert res["metrics"][k] == pytest.approx(np.mean([m[k] for m in folds]), abs=1e-12), k
    want_rsum = sum(np.mean([m[f"{d}.R@{k}"] for m in folds]) for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert res["metrics"]["rsum"] == pytest.approx(want_rsum, abs=1e-12)
    assert res["image_fold"].tolist() == sorted(list(range(5)) * 10)
    # within-fold ranks are smaller than the 5K-style ranks
    full = retrieval_metrics(sims, ti)
    assert (res["t2i_ranks"] <= full["t2i_ranks"]).all() and (res["t2i_ranks"] < full["t2i_ranks"]).any()


def test_variable_captions_per_image():
    rng = np.random.default_rng(1)
    ti = np.array([0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3])
    sims = rng.standard_normal((4, len(ti)))
    i2t, t2i, _, _ = ranks_from_sims(sims, ti)
    for i in range(4):
        best = sims[i, ti == i].max()
        assert i2t[i] == (sims[i, ti != i] >= best).sum()
    for j in range(len(ti)):
        assert t2i[j] == (np.delete(sims[:, j], ti[j]) >= sims[ti[j], j]).sum()


@pytest.mark.parametrize("budget", [0.01, 0.05, 512])
@pytest.mark.parametrize("folds", [1, 5])
def test_embeddings_path_equals_matrix_path(budget, folds):
    img, txt, ti = tie_free(100, seed=4, dim=16)
    ref = retrieval_metrics(img @ txt.T, ti, folds=folds)
    got = retrieval_metrics_from_embeddings(img, txt, ti, folds=folds, memory_budget_mb=budget)
    np.testing.assert_array_equal(got["i2t_ranks"], ref["i2t_ranks"])
    np.testing.assert_array_equal(got["t2i_ranks"], ref["t2i_ranks"])
    assert got["metrics"] == ref["metrics"]


def test_embeddings_constant_and_shuffled_captions():
    img = np.ones((20, 4), np.float32)
    txt = np.ones((100, 4), np.float32)
    rng = np.random.default_rng(0)
    ti = rng.permutation(np.arange(100) // 5)
    i2t, t2i, a, b = ranks_from_embeddings(img, txt, ti, memory_budget_mb=0.001)
    assert (i2t == 95).all() and (t2i == 19).all() and a == 20 and b == 100


def test_bad_inputs():
    with pytest.raises(MMBenchError, match="no caption"):
        retrieval_metrics(np.zeros((3, 4)), [0, 0, 1, 1])
    with pytest.raises(MMBenchError, match="4 entries for 5 captions"):
        retrieval_metrics(np.zeros((2, 5)), [0, 0, 1, 1])
    sims = np.zeros((2, 4))
    sims[1, 2] = np.nan
    with pytest.raises(MMBenchError, match="NaN/inf value at image 1, caption 2"):
        retrieval_metrics(sims, [0, 0, 1, 1])
    with pytest.raises(MMBenchError, match="ties must be"):
        retrieval_metrics(np.zeros((2, 4)), [0, 0, 1, 1], ties="random")
    with pytest.raises(MMBenchError, match="dimension"):
        retrieval_metrics_from_embeddings(np.zeros((2, 3)), np.zeros((4, 2)), [0, 0, 1, 1])
    with pytest.raises(MMBenchError, match="equal folds"):
        retrieval_metrics(np.zeros((3, 6)), [0, 0, 1, 1, 2, 2], folds=2)
