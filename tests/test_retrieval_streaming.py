"""Cross-attention scorers are ranked tile by tile within a memory budget, exactly as the full matrix.

Reference for every check: ``compute_sims`` (the full float32 matrix, same tiles) ranked by
``retrieval_metrics``; the streaming path must give identical ranks, tie counts and metrics.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mmbench.errors import MMBenchError, PluginError
from mmbench.metrics.retrieval import retrieval_metrics
from mmbench.tasks.base import DatasetMeta, ImageItem
from mmbench.tasks.retrieval import RetrievalData, compute_sims, evaluate, retrieval_metrics_from_tiles


class TableScorer:
    """A cross scorer whose score of (image i, caption j) is ``table[i, j]`` whatever the tiling.

    Blocks are index arrays; ``score`` looks the pairs up (float64 integers, or a float64
    elementwise function when ``table`` is None), so it is exactly batch-invariant.
    Records the shape of every tile it returns.
    """

    def __init__(self, table=None, reuse_output=False):
        self.table = table
        self.tiles: list[tuple[int, int]] = []
        self.reuse_output = reuse_output
        self._out = None

    def encode_images(self, images):
        return np.array([int(im.id) for im in images])

    def encode_texts(self, texts):
        return np.array([int(t) for t in texts])

    def score(self, a, b):
        if self.table is None:
            s = np.sin(a[:, None] * 0.37 + b[None, :] * 1.91) * np.cos(b[None, :] * 0.11)
        else:
            s = self.table[np.ix_(a, b)].astype(np.float64)
        self.tiles.append(s.shape)
        if self.reuse_output:  # a model that hands back the same buffer every call
            if self._out is None or self._out.shape != s.shape:
                self._out = np.empty_like(s)
            self._out[...] = s
            return self._out
        return s


def make_data(text_image, folds=1):
    n = int(np.max(text_image)) + 1
    return RetrievalData(images=[ImageItem(id=str(i)) for i in range(n)],
                         texts=[str(j) for j in range(len(text_image))], text_image=np.asarray(text_image),
                         meta=DatasetMeta("toy", "test", "retrieval"), folds=folds)


def caption_layout(kind, n, rng):
    if kind == "five":
        return np.arange(5 * n) // 5
    counts = rng.integers(1, 8, size=n)  # 1..7 captions per image, shuffled order
    ti = np.repeat(np.arange(n), counts)
    return ti[rng.permutation(ti.size)]


def make_table(kind, ti, n, rng):
    t = ti.size
    if kind == "tied":  # few distinct values: many ties, both directions
        table = rng.integers(0, 4, size=(n, t))
        table[ti[::2], np.arange(t)[::2]] += 2
        return table
    if kind == "distinct":  # a permutation: no ties anywhere
        table = rng.permutation(n * t).reshape(n, t)
        lucky = rng.random(t) < 0.4
        table[ti[lucky], np.nonzero(lucky)[0]] = n * t + np.nonzero(lucky)[0]
        return table
    return None  # "float": float64 function, rounded to float32 like compute_sims


def reference(model, data, batch_size, ties):
    sims = compute_sims(model, data, batch_size=batch_size, show_progress=False)
    return sims, retrieval_metrics(sims, data.text_image, folds=data.folds, ties=ties)


def assert_same(res, ref):
    np.testing.assert_array_equal(res["i2t_ranks"], ref["i2t_ranks"])
    np.testing.assert_array_equal(res["t2i_ranks"], ref["t2i_ranks"])
    np.testing.assert_array_equal(res["image_fold"], ref["image_fold"])
    assert (res["i2t_tied"], res["t2i_tied"]) == (ref["i2t_tied"], ref["t2i_tied"])
    assert res["metrics"] == ref["metrics"]


@pytest.mark.parametrize("table_kind", ["tied", "distinct", "float"])
@pytest.mark.parametrize("layout", ["five", "variable"])
@pytest.mark.parametrize("folds", [1, 5])
@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_evaluate_cross_equals_full_matrix(table_kind, layout, folds, ties):
    rng = np.random.default_rng(hash((table_kind, layout, folds)) % 2**32)
    n = 40
    ti = caption_layout(layout, n, rng)
    data = make_data(ti, folds)
    table = make_table(table_kind, ti, n, rng)
    sims, ref = reference(TableScorer(table), data, 7, ties)
    if table_kind == "tied":
        assert ref["i2t_tied"] > 0 and ref["t2i_tied"] > 0  # the case under test has ties
    if table_kind == "distinct":
        assert ref["i2t_tied"] == 0 and ref["t2i_tied"] == 0
    for budget in (1e-6, 0.002, 0.004, 0.02, 512):  # one tile per buffer ... everything cached
        model = TableScorer(table)
        out = evaluate(model, data, batch_size=7, show_progress=False, ties=ties, memory_budget_mb=budget)
        assert out.per_sample["i2t_rank"] == ref["i2t_ranks"].tolist(), budget
        assert out.per_sample["t2i_rank"] == ref["t2i_ranks"].tolist(), budget
        assert out.per_sample["t2i_image"] == ti.tolist()
        if folds > 1:
            assert out.per_sample["image_fold"] == ref["image_fold"].tolist()
            assert out.sample_ids["image"] == data.image_ids
        else:
            assert "image_fold" not in out.per_sample
        assert out.metrics == ref["metrics"], budget
        assert out.details["i2t_tied_queries"] == ref["i2t_tied"]
        assert out.details["t2i_tied_queries"] == ref["t2i_tied"]
        assert out.details["scorer"] == "cross-attention"
        assert out.details["score_calls"] == len(model.tiles)
        # the budgeted working memory (buffer + cached tiles) stays within max(budget, one tile)
        assert out.details["score_buffer_mb"] <= max(budget, 4 * 7 * 7 / 2**20) + 1e-3
        assert all(r <= 7 and c <= 7 for r, c in model.tiles)


def test_fold_mode_scores_only_tiles_inside_folds():
    ti = np.arange(5 * 50) // 5
    data = make_data(ti, folds=5)
    full = TableScorer(None)
    compute_sims(full, data, batch_size=10, show_progress=False)
    assert len(full.tiles) == 5 * 25  # the full matrix: every image block x every text block
    model = TableScorer(None)
    evaluate(model, data, batch_size=10, show_progress=False, memory_budget_mb=512)
    assert len(model.tiles) == 5 * 5  # folds of 10 images = one image block x its 5 text blocks


def test_every_tile_scored_once_when_the_cache_fits():
    ti = np.arange(5 * 30) // 5
    data = make_data(ti)
    model = TableScorer(None)
    out = evaluate(model, data, batch_size=8, show_progress=False, memory_budget_mb=512)
    assert len(model.tiles) == out.details["score_calls"] == 4 * 19  # as many as compute_sims
    model = TableScorer(None)
    out = evaluate(model, data, batch_size=8, show_progress=False, memory_budget_mb=1e-6)
    # no room to cache: the tiles holding ground-truth pairs (5 per image block) are scored twice
    assert len(model.tiles) == out.details["score_calls"] == 4 * 19 + 19


def test_reused_output_buffer_is_copied():
    rng = np.random.default_rng(3)
    ti = caption_layout("variable", 25, rng)
    data = make_data(ti)
    table = make_table("tied", ti, 25, rng)
    _, ref = reference(TableScorer(table), data, 4, "pessimistic")
    out = evaluate(TableScorer(table, reuse_output=True), data, batch_size=4, show_progress=False,
                   memory_budget_mb=512)
    assert out.per_sample["i2t_rank"] == ref["i2t_ranks"].tolist()
    assert out.per_sample["t2i_rank"] == ref["t2i_ranks"].tolist()


@pytest.mark.parametrize("seed", range(6))
def test_tiles_with_uneven_blocks(seed):
    """The metrics-level entry point with arbitrary block boundaries and budgets."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 31))
    ti = caption_layout("variable" if seed % 2 else "five", n, rng)
    t = ti.size
    sims = rng.integers(0, 5, size=(n, t)).astype(np.float32)
    i_starts = np.unique(np.concatenate([[0, n], rng.integers(1, n, size=4)]))
    t_starts = np.unique(np.concatenate([[0, t], rng.integers(1, t, size=9)]))
    folds = 5 if n % 5 == 0 else 1

    def tile(k, m):
        return sims[i_starts[k]:i_starts[k + 1], t_starts[m]:t_starts[m + 1]]

    ref = retrieval_metrics(sims, ti, folds=folds)
    for budget in (1e-6, 0.001, 1.0):
        calls = []
        res = retrieval_metrics_from_tiles(lambda k, m: calls.append((k, m)) or tile(k, m), i_starts, t_starts,
                                           ti, folds=folds, memory_budget_mb=budget)
        assert_same(res, ref)
        assert res["score_calls"] == len(calls)
        widest = max(np.diff(i_starts)) * max(np.diff(t_starts)) * 4
        assert res["working_bytes"] <= max(budget * 2**20, widest)


def test_peak_memory_stays_within_budget():
    """Traced allocations of the streaming sweep stay within the budget, far below the full matrix."""
    n, t, bs, budget_mb = 600, 3000, 50, 0.2
    ti = np.arange(t) // 5
    data = make_data(ti)
    full_bytes = 4 * n * t  # 7.2 MB
    model = TableScorer(None)
    i_starts, t_starts = list(range(0, n + 1, bs)), list(range(0, t + 1, bs))
    img = [model.encode_images(data.images[a:a + bs]) for a in range(0, n, bs)]
    txt = [model.encode_texts(data.texts[a:a + bs]) for a in range(0, t, bs)]

    def peak(fn):
        fn()  # warm up (lazy imports, caches)
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    p_full = peak(lambda: compute_sims(model, data, batch_size=bs, show_progress=False))
    assert p_full >= full_bytes  # the instrument sees the full matrix
    out = {}

    def stream():
        out["r"] = retrieval_metrics_from_tiles(lambda k, m: model.score(img[k], txt[m]), i_starts, t_starts, ti,
                                                memory_budget_mb=budget_mb)

    p_stream = peak(stream)
    # budget + the scorer's float64 tile temporaries + O(images + texts) counters and results
    assert p_stream <= budget_mb * 2**20 + 5 * 8 * bs * bs + 160 * (n + t), p_stream
    assert p_stream < full_bytes / 8
    assert out["r"]["working_bytes"] <= budget_mb * 2**20
    assert out["r"]["metrics"] == retrieval_metrics(compute_sims(model, data, batch_size=bs, show_progress=False),
                                                    ti)["metrics"]
    r = evaluate(TableScorer(None), data, batch_size=bs, show_progress=False, memory_budget_mb=budget_mb)
    assert r.details["score_buffer_mb"] <= budget_mb
    assert r.metrics == out["r"]["metrics"]


def test_bad_scores_and_blocks_raise():
    data = make_data(np.arange(20) // 5)

    class NaNScorer(TableScorer):
        def score(self, a, b):
            s = super().score(a, b)
            s[0, 0] = np.nan
            return s

    with pytest.raises(PluginError, match="NaN"):
        evaluate(NaNScorer(None), data, batch_size=3, show_progress=False)

    class Overflow(TableScorer):
        def score(self, a, b):  # finite in float64, inf once stored as float32 (as compute_sims does)
            return super().score(a, b) * 1e300

    with pytest.raises(MMBenchError, match="NaN/inf"), np.errstate(over="ignore", invalid="ignore"):
        evaluate(Overflow(None), data, batch_size=3, show_progress=False)

    class WrongShape(TableScorer):
        def score(self, a, b):
            return super().score(a, b)[:, :1]

    with pytest.raises(PluginError, match=r"score\(\) output has shape"):
        evaluate(WrongShape(None), data, batch_size=3, show_progress=False)

    with pytest.raises(MMBenchError, match="block starts"):
        retrieval_metrics_from_tiles(lambda k, m: None, [0, 5, 5, 10], [0, 20], np.arange(20) // 2)
    with pytest.raises(MMBenchError, match="ties"):
        retrieval_metrics_from_tiles(lambda k, m: None, [0, 10], [0, 20], np.arange(20) // 2, ties="random")
