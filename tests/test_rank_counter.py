"""The rank counter behind every retrieval path: exact ranks and tie counts from blocks of a score matrix.

Reference: per-query sorting as in Paranioar/SGRAF:evaluation.py i2t/t2i (rank = position of the
best ground truth in the descending order), with ties broken explicitly instead of by an unstable
argsort: pessimistic puts the ground truth after every other item of equal score, optimistic
before. Counters that saw disjoint blocks of one matrix must combine (``counts`` / ``add_counts``)
into the counter that saw them all, whatever the split, the code path (gathered columns, whole
steps, threads) or the tie mode.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from mmbench.errors import MMBenchError
from mmbench.metrics import retrieval
from mmbench.metrics.retrieval import _RankCounter, ranks_from_sims

TIES = ("pessimistic", "optimistic")


def sorted_ranks(sims: np.ndarray, ti: np.ndarray, ties: str):
    """SGRAF-style loops: sort each query's scores, find the ground truth's position."""
    n_img, n_txt = sims.shape
    after = ties == "pessimistic"  # the ground truth goes after the other items of equal score
    i2t = np.empty(n_img, np.int64)
    for i in range(n_img):
        own = ti == i
        order = np.lexsort((own if after else ~own, -sims[i].astype(np.float64)))
        i2t[i] = np.nonzero(own[order])[0].min()
    t2i = np.empty(n_txt, np.int64)
    for j in range(n_txt):
        own = np.arange(n_img) == ti[j]
        order = np.lexsort((own if after else ~own, -sims[:, j].astype(np.float64)))
        t2i[j] = np.nonzero(own[order])[0][0]
    return i2t, t2i


def reference(sims, ti, ties):
    """Ranks and tied-query counts from the sorting loops (a query is tied when the modes differ)."""
    p = sorted_ranks(sims, ti, "pessimistic")
    o = sorted_ranks(sims, ti, "optimistic")
    i2t, t2i = p if ties == "pessimistic" else o
    return i2t, t2i, int((p[0] != o[0]).sum()), int((p[1] != o[1]).sum())


def make_matrix(rng, kind: str, n_img: int = 45, dtype=np.float32):
    """(sims, text_image): 1-6 captions per image, shuffled, with forced ties of several kinds."""
    ti = rng.permutation(np.repeat(np.arange(n_img), rng.integers(1, 7, n_img)))
    n_txt = ti.size
    sims = rng.standard_normal((n_img, n_txt))
    if kind == "good":  # few items above the ground truth: the gathered-columns path
        sims = 0.3 * sims
        sims[ti, np.arange(n_txt)] += 1.5
    elif kind == "coarse":  # scores on a 0.5 grid: many ties with the ground truth
        sims = np.round(2 * sims) / 2
        sims[ti, np.arange(n_txt)] += 0.5
    elif kind == "constant":
        sims[:] = 0.25
    elif kind == "mixed":  # the first rows tie everywhere (whole steps), the rest are easy (gathered)
        sims = 0.3 * sims
        sims[ti, np.arange(n_txt)] += 1.5
        sims[: n_img // 2] = 1.0
    # duplicated captions (identical columns, a tie in i2t) and a duplicated image (t2i ties)
    dup = rng.choice(n_txt, 6, replace=False)
    sims[:, dup[3:]] = sims[:, dup[:3]]
    sims[1] = sims[0]
    return sims.astype(dtype), ti


def counter_over(sims, ti, blocks, **kw) -> _RankCounter:
    gt_t = sims[ti, np.arange(sims.shape[1])]
    c = _RankCounter(ti, sims.shape[0], gt_t, **kw)
    for (r0, r1), (c0, c1), writable in blocks:
        blk = sims[r0:r1, c0:c1]
        c.add(r0, blk.copy() if writable else blk, writable, c0=c0)
    return c


def splits(rng, n_img: int, n_txt: int):
    """Several ways to cut the matrix into blocks and deal them to two counters."""
    r = int(rng.integers(1, n_img))
    c = int(rng.integers(1, n_txt))
    rows = [((0, r), (0, n_txt), False), ((r, n_img), (0, n_txt), False)]
    cols = [((0, n_img), (0, c), True), ((0, n_img), (c, n_txt), True)]
    tiles = [((r0, r1), (c0, c1), bool((r0 + c0) % 2))
             for r0, r1 in ((0, r), (r, n_img)) for c0, c1 in ((0, c), (c, n_txt))]
    edges = np.unique(np.r_[0, rng.integers(1, n_img, 4), n_img])
    strips = [((int(a), int(b)), (0, n_txt), False) for a, b in zip(edges[:-1], edges[1:])]
    return {
        "rows": (rows[:1], rows[1:]),
        "columns": (cols[:1], cols[1:]),
        "checkerboard": (tiles[0::3], tiles[1:3]),  # (0, 3) to one counter, (1, 2) to the other
        "interleaved strips": (strips[0::2], strips[1::2]),
        "all in one": (rows, []),
    }


@pytest.mark.parametrize("kind", ["normal", "good", "coarse", "constant", "mixed"])
@pytest.mark.parametrize("path", ["default", "gathered", "whole", "threads"])
def test_split_counters_equal_one_counter_and_sorting(kind, path, monkeypatch):
    if path == "gathered":
        monkeypatch.setattr(retrieval, "_SPARSE", 1)  # never compare a step whole
    elif path == "whole":
        monkeypatch.setattr(retrieval, "_SPARSE", 10**9)  # always compare steps whole
        monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 7)
    elif path == "threads":
        monkeypatch.setattr(retrieval, "_PARALLEL_MIN", 1)
        monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 4)
    threads = 3 if path == "threads" else None
    rng = np.random.default_rng(zlib.crc32(f"{kind} {path}".encode()))
    for dtype in (np.float32, np.float64):
        sims, ti = make_matrix(rng, kind, dtype=dtype)
        n_img, n_txt = sims.shape
        for ties in TIES:
            ref = reference(sims, ti, ties)
            strided = np.zeros((n_img, 2 * n_txt), dtype)
            strided[:, ::2] = sims
            for layout in (sims, np.asfortranarray(sims), strided[:, ::2]):  # any memory layout
                for got, want in zip(ranks_from_sims(layout, ti, ties), ref):
                    np.testing.assert_array_equal(got, want)
            for name, (mine, theirs) in splits(rng, n_img, n_txt).items():
                c1 = counter_over(sims, ti, mine, threads=threads)
                c2 = counter_over(sims, ti, theirs, threads=threads)
                state = c2.counts()
                assert set(state) == {"row_ge", "row_gt", "col_ge", "col_gt"}
                assert all(v.dtype == np.int64 for v in state.values())
                c1.add_counts(state)
                for got, want in zip(c1.result(ties), ref):
                    np.testing.assert_array_equal(got, want, err_msg=f"{kind} {path} {name} {ties}")
                # counts() is a copy: combining must not have touched the other counter
                assert all(np.array_equal(v, c2.counts()[k]) for k, v in state.items())


def test_forced_ties_are_counted():
    # image 0's best caption (0) ties caption 3 of image 1; on caption 1 image 1 ties its own image 0
    sims = np.array([[0.9, 0.1, 0.0, 0.9, 0.2, 0.3],
                     [0.2, 0.1, 0.8, 0.1, 0.3, 0.0],
                     [0.1, 0.3, 0.5, 0.2, 0.6, 0.9]], np.float32)
    ti = np.array([0, 0, 1, 1, 2, 2])
    i2t, t2i, a, b = ranks_from_sims(sims, ti, "pessimistic")
    assert i2t.tolist() == [1, 0, 0] and t2i.tolist() == [0, 2, 0, 2, 0, 0] and (a, b) == (1, 1)
    i2t, t2i, a, b = ranks_from_sims(sims, ti, "optimistic")
    assert i2t.tolist() == [0, 0, 0] and t2i.tolist() == [0, 1, 0, 2, 0, 0] and (a, b) == (1, 1)


def test_benchmark_sized_blocks_take_every_path():
    """Wide blocks: steps gathered, steps compared whole, and probes switching between them."""
    rng = np.random.default_rng(7)
    n_img, per = 400, 5
    ti = np.arange(n_img * per) // per
    img = rng.standard_normal((n_img, 32)).astype(np.float32)
    txt = np.repeat(img, per, 0) + 0.6 * rng.standard_normal((n_img * per, 32)).astype(np.float32)
    sims = img @ txt.T
    sims[100:200] = np.round(sims[100:200])  # a band of heavy ties in the middle
    sims[:, 7] = sims[:, 12]  # a duplicated caption
    for ties in TIES:
        ref = reference(sims, ti, ties)
        for threads in (1, 2):
            gt_t = sims[ti, np.arange(ti.size)]
            c = _RankCounter(ti, n_img, gt_t, threads=threads)
            c.add(0, sims, False)
            for got, want in zip(c.result(ties), ref):
                np.testing.assert_array_equal(got, want)
    # more rows than one uint8 lane counts (255), every score tied
    n_img = 300
    ti = np.arange(2 * n_img) // 2
    c = _RankCounter(ti, n_img, np.full(2 * n_img, 0.5, np.float32))
    c.add(0, np.full((n_img, 2 * n_img), 0.5, np.float32), False)
    i2t, t2i, a, b = c.result("pessimistic")
    assert (i2t == 2 * n_img - 2).all() and (t2i == n_img - 1).all() and (a, b) == (n_img, 2 * n_img)
    i2t, t2i, a, b = c.result("optimistic")
    assert (i2t == 0).all() and (t2i == 0).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_refused_at_the_first_position(bad, monkeypatch):
    monkeypatch.setattr(retrieval, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(retrieval, "_CHUNK_ROWS", 3)
    rng = np.random.default_rng(3)
    sims, ti = make_matrix(rng, "good", n_img=30)
    sims[22, 5] = bad  # in a later thread's part
    sims[17, 9] = bad  # the first one, row-major
    gt_t = sims[ti, np.arange(ti.size)]
    c = _RankCounter(ti, 30, gt_t, threads=4)
    before = c.counts()
    with pytest.raises(MMBenchError, match=r"NaN/inf value at image 17, caption 9$"):
        c.add(0, sims, False)
    # a refused block leaves the counts as they were
    assert all(np.array_equal(v, c.counts()[k]) for k, v in before.items())
    with pytest.raises(MMBenchError, match=r"NaN/inf value at image 22, caption 5$"):
        c.add(20, sims[20:], False)  # block offsets are added to the position
    with pytest.raises(MMBenchError, match=r"NaN/inf value at image 17, caption 9$"):
        ranks_from_sims(sims, ti)


def test_add_counts_rejects_foreign_state():
    ti = np.arange(6) // 2
    gt_t = np.zeros(6, np.float32)
    c = _RankCounter(ti, 3, gt_t)
    other = _RankCounter(np.arange(8) // 2, 4, np.zeros(8, np.float32))
    with pytest.raises(MMBenchError, match="shape"):
        c.add_counts(other.counts())
    with pytest.raises(MMBenchError, match="lack"):
        c.add_counts({"row_ge": np.zeros(3, np.int64)})
    state = c.counts()
    state["col_gt"] = state["col_gt"].astype(np.float64)
    with pytest.raises(MMBenchError, match="integers"):
        c.add_counts(state)
