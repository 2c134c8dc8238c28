"""Image-text retrieval metrics under the SCAN/SGRAF/VSE++ protocol, vectorised and streaming.

Reference: Paranioar/SGRAF:evaluation.py (i2t, t2i), kuanghuei/SCAN:evaluation.py,
fartashf/vsepp:evaluation.py. Caption j belongs to image ``text_image[j]`` (j // 5 in
the 5-captions layout). Ranks are 0-based; R@K in percent; medr = floor(median)+1;
meanr = mean+1; rsum = sum of the six R@K.

i2t: the rank of an image is the number of *other images'* captions scoring above its
best-placed own caption (the references' "best of the 5 positions"); t2i: the number of
other images scoring above the caption's own image.

Ties: the references use an unstable argsort, so tied scores give numpy-dependent
ranks. mmbench ranks ties pessimistically by default: every non-ground-truth item
scoring >= the ground truth counts as ahead of it (a constant-score model gets R@1
near chance, not 100). ``ties="optimistic"`` counts only strictly greater scores.
On tie-free matrices both equal the references exactly. The number of queries whose
ground truth shares its score with a non-ground-truth item is reported either way.

Ranks are counted, never sorted: the similarities are read in cache-sized row steps, and
for each step a column's maximum tells whether any of its scores can reach the column's
ground-truth score (t2i) or a row's best ground-truth score (i2t); only those columns are
compared (the whole step when most can, see :func:`_count_rows`). From embeddings,
similarities are formed one row block at a time (``memory_budget_mb`` bounds the block), so
no full images x captions matrix ever exists. From a cross scorer's score tiles (:func:`retrieval_metrics_from_tiles`), ground-truth
scores come first from the tiles holding them, then the tiles are swept and counted within
the budget, with the same counter, so ranks equal those of the assembled matrix.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mmbench.errors import MMBenchError

KS = (1, 5, 10)
TIES = ("pessimistic", "optimistic")
_CHUNK_ROWS = 32  # rows counted per step: one step's float32 rows stay in cache; <= 255 (uint8 lanes)
_SPARSE = 8  # gather a step's candidate columns while there are at most 1/_SPARSE of the block's columns
_PROBE = 8  # after a step compared whole, the next steps are too, but every 8th probes again
_PARALLEL_MIN = 1 << 22  # scores in a block before it is split across threads
_MAX_THREADS = 8  # memory bandwidth, not cores, bounds the count beyond this
_GT_ROWS = 64  # images per ground-truth product in the multi-block embeddings path


def check_text_image(text_image, n_images: int, n_texts: int) -> np.ndarray:
    ti = np.asarray(text_image, dtype=np.int64).reshape(-1)
    if ti.shape[0] != n_texts:
        raise MMBenchError(f"caption-to-image index has {ti.shape[0]} entries for {n_texts} captions")
    if n_texts and (ti.min() < 0 or ti.max() >= n_images):
        raise MMBenchError(f"caption-to-image index out of range [0, {n_images}) (min {ti.min()}, max {ti.max()})")
    has = np.zeros(n_images, dtype=bool)
    has[ti] = True
    if not has.all():
        missing = np.nonzero(~has)[0]
        raise MMBenchError(f"{missing.size} image(s) have no caption (first: {missing[:5].tolist()}); "
                           "every image needs at least one ground-truth caption for i2t")
    return ti


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise MMBenchError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")


class _NonFinite(Exception):
    """A NaN/inf score at (row, column) of the rows being counted (internal)."""


def _lanes(w: int) -> tuple[int, int, int]:
    """Byte layout of a w-column boolean step buffer read as uint64 words: (groups, words per group,
    padded row bytes). A row's words sum group-wise without carries (<= 255 words per group)."""
    words = max(1, -(-w // 8))
    groups = -(-words // 255)
    per = -(-words // groups)
    return groups, per, 8 * groups * per


def _default_threads() -> int:
    """Counting threads for a big block: the usable cores, at most ``_MAX_THREADS``."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, n))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The counting threads beside the caller's (started on first use, at most ``_MAX_THREADS - 1``)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_MAX_THREADS - 1, thread_name_prefix="mmbench-rank")
        return _POOL


class _StepBuffers:
    """Scratch of one counting thread, grown to the widest block seen."""

    def __init__(self):
        self.capacity = 0
        self.width = -1

    def get(self, w: int, dtype, thr_dtype):
        groups, per, wp = _lanes(w)
        if wp > self.capacity:
            self.capacity = wp
            self._bits = np.zeros(_CHUNK_ROWS * wp, dtype=bool)
            self._lane = np.empty(wp // 8, np.uint64)
            self._acc = np.zeros((2, wp // 8), np.uint64)
            self._m = {}
            self.width = -1
        if w != self.width:
            self.width, self.groups, self.per = w, groups, per
            self.bits = self._bits[:_CHUNK_ROWS * wp].reshape(_CHUNK_ROWS, wp)
            self.bits[:, w:] = False  # padding columns are summed with the rest: keep them False
            self.words = self.bits.view(np.uint64)
            self.lane = self._lane[:wp // 8]
            self.acc_ge, self.acc_gt = self._acc[0, :wp // 8], self._acc[1, :wp // 8]
        key = (np.dtype(dtype), np.dtype(thr_dtype))
        if key not in self._m or self._m[key][0].shape[0] < w:
            self._m[key] = (np.empty(max(w, self.capacity), key[0]), np.empty(max(w, self.capacity), key[1]))
        self.m, self.low = self._m[key][0][:w], self._m[key][1][:w]
        return self


def _count_rows(block: np.ndarray, thr: np.ndarray, best: np.ndarray, s: _StepBuffers):
    """(col_ge, col_gt, row_ge, row_gt) of ``block`` against the column thresholds ``thr`` and the
    row thresholds ``best``: for every column how many rows score >= / > its threshold, for every
    row how many columns score >= / > its threshold. Raises :class:`_NonFinite` at the first
    NaN/inf score in row-major order.

    Per step of ``_CHUNK_ROWS`` rows: a pass for the step's minimum and one for every column's
    maximum (NaN and +/-inf show in these two). Only columns whose maximum reaches a threshold
    can be counted at all, and for a model worth evaluating they are few: those columns are
    gathered and compared exactly. Otherwise (a weak or untrained model, near-constant scores) the
    step is compared whole, the boolean results summed eight columns (uint64 lanes) at a time, and the
    next steps skip the column maxima (a flat maximum checks for NaN/inf) until a probe every
    ``_PROBE`` steps finds sparse columns again.
    """
    n_rows, w = block.shape
    col_ge = np.zeros(w, np.int64)
    col_gt = np.zeros(w, np.int64)
    row_ge = np.zeros(n_rows, np.int64)
    row_gt = np.zeros(n_rows, np.int64)
    s = s.get(w, np.result_type(block.dtype), thr.dtype)
    bits, words, lane, m, low = s.bits, s.words, s.lane, s.m, s.low
    acc_ge, acc_gt = s.acc_ge, s.acc_gt
    acc_ge[:] = 0
    acc_gt[:] = 0
    pending = 0  # rows summed in acc_* since the last flush (each uint8 lane holds <= 255)
    sparse_max = w // _SPARSE
    skip = 0  # steps left to compare whole without probing the column maxima
    for r0 in range(0, n_rows, _CHUNK_ROWS):
        chunk = block[r0:r0 + _CHUNK_ROWS]
        n = chunk.shape[0]
        lo = np.minimum.reduce(chunk, axis=None)  # NaN propagates through min and max
        if skip:
            skip -= 1
            hi = np.maximum.reduce(chunk, axis=None)
        else:
            np.maximum.reduce(chunk, axis=0, out=m)
            hi = np.maximum.reduce(m)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bad = np.argwhere(~np.isfinite(chunk))[0]
            raise _NonFinite(r0 + int(bad[0]), int(bad[1]))
        b = best[r0:r0 + n, None]
        rows_done = cols_done = False
        if not skip:
            # a column holds counts only where its maximum reaches its threshold or a row's
            # (fmin: a NaN threshold counts nothing, every comparison with it being false)
            np.fmin(thr, np.fmin.reduce(b, axis=None), out=low)
            cand = np.flatnonzero(m >= low)
            rows_done = cand.size <= sparse_max
            if not rows_done:
                cand = np.flatnonzero(m >= thr)
            cols_done = cand.size <= sparse_max
            if cols_done:
                sub = chunk[:, cand]
                t = thr[cand]
                col_ge[cand] += np.add.reduce((sub >= t).view(np.uint8), axis=0, dtype=np.uint8)
                col_gt[cand] += np.add.reduce((sub > t).view(np.uint8), axis=0, dtype=np.uint8)
                if rows_done:
                    row_ge[r0:r0 + n] += np.count_nonzero(sub >= b, axis=1)
                    row_gt[r0:r0 + n] += np.count_nonzero(sub > b, axis=1)
                    continue
            else:
                skip = _PROBE - 1
        if not cols_done:
            if pending + n > 255:
                col_ge += acc_ge.view(np.uint8)[:w]
                col_gt += acc_gt.view(np.uint8)[:w]
                acc_ge[:] = 0
                acc_gt[:] = 0
                pending = 0
            pending += n
            out = bits[:n, :w]
            np.greater_equal(chunk, thr, out=out)
            acc_ge += np.add.reduce(words[:n], axis=0, out=lane)
            np.greater(chunk, thr, out=out)
            acc_gt += np.add.reduce(words[:n], axis=0, out=lane)
        # rows compared whole; a row's count is its words summed per group, then the group bytes
        out = bits[:n, :w]
        grouped = words[:n].reshape(n, s.groups, s.per)
        np.greater_equal(chunk, b, out=out)
        row_ge[r0:r0 + n] += np.add.reduce(grouped, axis=2).view(np.uint8).sum(axis=1, dtype=np.int64)
        np.greater(chunk, b, out=out)
        row_gt[r0:r0 + n] += np.add.reduce(grouped, axis=2).view(np.uint8).sum(axis=1, dtype=np.int64)
    if pending:
        col_ge += acc_ge.view(np.uint8)[:w]
        col_gt += acc_gt.view(np.uint8)[:w]
    return col_ge, col_gt, row_ge, row_gt


class _RankCounter:
    """Accumulates i2t and t2i rank counts over blocks of an (images, texts) score matrix.

    ``gt_t[j]`` is the ground-truth score of caption j. A block covers rows ``a ..`` and
    columns ``c0 ..``; each block's ground-truth entries are overwritten with ``gt_t``
    before counting (when it is writable), so every comparison is made on one consistent
    matrix even when ``gt_t`` was computed separately. Counts are sums, so the blocks may
    tile the matrix in any way, each entry counted once, and counters that saw disjoint
    blocks of one matrix (same ``gt_t``) combine with :meth:`counts` / :meth:`add_counts`.

    ``threads``: a block of at least ``_PARALLEL_MIN`` scores is split by rows over this many
    threads (numpy releases the GIL while comparing); default: the usable cores, at most 8.
    """

    _KEYS = ("row_ge", "row_gt", "col_ge", "col_gt")

    def __init__(self, ti: np.ndarray, n_images: int, gt_t: np.ndarray, threads: int | None = None):
        self.ti = ti
        self.n_img = n_images
        self.gt_t = gt_t
        n_txt = ti.shape[0]
        self.order = np.argsort(ti, kind="stable")
        self.bounds = np.searchsorted(ti[self.order], np.arange(n_images + 1))
        # best ground-truth score per image and how many own captions reach it
        best = np.full(n_images, -np.inf, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            np.maximum.at(best, ti, gt_t.astype(np.float64))
        self.best = best.astype(gt_t.dtype)
        self.own_at_best = np.bincount(ti, weights=(gt_t == self.best[ti]), minlength=n_images).astype(np.int64)
        self.col_ge = np.zeros(n_txt, np.int64)
        self.col_gt = np.zeros(n_txt, np.int64)
        self.row_ge = np.zeros(n_images, np.int64)
        self.row_gt = np.zeros(n_images, np.int64)
        self.threads = _default_threads() if threads is None else max(1, min(_MAX_THREADS, int(threads)))
        self._buffers: list[_StepBuffers] = []

    def add(self, a: int, block: np.ndarray, writable: bool, c0: int = 0) -> None:
        """Count rows ``a .. a + len(block)``, columns ``c0 .. c0 + block.shape[1]``;
        ``block`` may be overwritten when ``writable``. A NaN/inf score raises
        :class:`MMBenchError` naming the first one (row-major) and leaves the counts unchanged."""
        n_rows, w = block.shape
        b, c1 = a + n_rows, c0 + w
        caps = self.order[self.bounds[a]:self.bounds[b]]
        if caps.size and writable:
            caps = caps[(caps >= c0) & (caps < c1)]
            block[self.ti[caps] - a, caps - c0] = self.gt_t[caps]
        if n_rows == 0 or w == 0:
            return
        thr = self.gt_t[c0:c1]
        best = self.best[a:b]
        # parts of whole steps, one per thread; a NaN/inf is reported from the first part holding one
        k = min(self.threads, -(-n_rows // _CHUNK_ROWS)) if n_rows * w >= _PARALLEL_MIN else 1
        step = -(-n_rows // (k * _CHUNK_ROWS)) * _CHUNK_ROWS
        starts = range(0, n_rows, step)
        while len(self._buffers) < len(starts):
            self._buffers.append(_StepBuffers())

        def part(q):
            r0 = starts[q]
            try:
                return _count_rows(block[r0:r0 + step], thr, best[r0:r0 + step], self._buffers[q])
            except _NonFinite as e:
                return _NonFinite(r0 + e.args[0], e.args[1])

        futures = [_pool().submit(part, q) for q in range(1, len(starts))]
        results = [part(0)] + [f.result() for f in futures]
        for res in results:
            if isinstance(res, _NonFinite):
                raise MMBenchError(f"similarity matrix has a NaN/inf value at image {a + res.args[0]}, "
                                   f"caption {c0 + res.args[1]}")
        for r0, (col_ge, col_gt, row_ge, row_gt) in zip(starts, results):
            self.col_ge[c0:c1] += col_ge
            self.col_gt[c0:c1] += col_gt
            self.row_ge[a + r0:a + r0 + len(row_ge)] += row_ge
            self.row_gt[a + r0:a + r0 + len(row_gt)] += row_gt

    def counts(self) -> dict[str, np.ndarray]:
        """The additive state (copies): ``row_ge`` / ``row_gt`` (per image, captions scoring >= / >
        its best ground-truth score) and ``col_ge`` / ``col_gt`` (per caption, images scoring >= / >
        its ground-truth score), int64. Counters that saw disjoint blocks of one matrix with the
        same ``gt_t`` sum elementwise (:meth:`add_counts`)."""
        return {k: getattr(self, k).copy() for k in self._KEYS}

    def add_counts(self, counts: dict) -> None:
        """Add another counter's :meth:`counts` (disjoint blocks of the same matrix and ``gt_t``)."""
        missing = [k for k in self._KEYS if k not in counts]
        if missing:
            raise MMBenchError(f"rank counts lack {missing}; expected the keys {list(self._KEYS)}")
        arrays = {}
        for k in self._KEYS:
            v = np.asarray(counts[k])
            mine = getattr(self, k)
            if v.shape != mine.shape or not np.issubdtype(v.dtype, np.integer):
                raise MMBenchError(f"rank counts {k!r} has shape {v.shape} and dtype {v.dtype}; expected "
                                   f"integers of shape {mine.shape}")
            arrays[k] = v
        for k, v in arrays.items():
            getattr(self, k)[...] += v

    def result(self, ties: str):
        # t2i: the caption's own image always ties its own score (>=, not >)
        t2i_ge = self.col_ge - 1
        t2i_gt = self.col_gt
        # i2t: own captions never exceed the best own score; those equal to it are not "others"
        i2t_ge = self.row_ge - self.own_at_best
        i2t_gt = self.row_gt
        pess = ties == "pessimistic"
        i2t = i2t_ge if pess else i2t_gt
        t2i = t2i_ge if pess else t2i_gt
        return i2t, t2i, int((i2t_ge > i2t_gt).sum()), int((t2i_ge > t2i_gt).sum())


def ranks_from_sims(sims: np.ndarray, text_image, ties: str = "pessimistic"):
    """Per-query 0-based ranks and tie counts from an (images, texts) similarity matrix.

    Returns ``(i2t_ranks, t2i_ranks, i2t_tied, t2i_tied)``; ``*_tied`` are the number of
    queries whose ground truth shares its score with at least one non-ground-truth item.
    """
    _check_ties(ties)
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise MMBenchError(f"similarity matrix must be 2-D (images, captions), got shape {sims.shape}")
    if not np.issubdtype(sims.dtype, np.floating):
        sims = sims.astype(np.float64)
    n_img, n_txt = sims.shape
    ti = check_text_image(text_image, n_img, n_txt)
    gt_t = sims[ti, np.arange(n_txt)]
    counter = _RankCounter(ti, n_img, gt_t)
    counter.add(0, sims, writable=False)
    return counter.result(ties)


def _block_rows(n_txt: int, dim: int, memory_budget_mb: float) -> int:
    per_row = 4 * n_txt + 4 * dim
    return int(max(1, min(65536, memory_budget_mb * 2**20 // per_row)))


_MAX_BLOCK_ROWS = 1024  # rows of one similarity block: fixed, so a sharded run cuts the same blocks


class EmbeddingBlocks:
    """The one decomposition of ``sims = img @ txt.T`` into row blocks, shared by the single-process
    path (:func:`ranks_from_embeddings`) and the sharded one (``mmbench.execution.retrieval``).

    Block k covers images ``starts[k] .. starts[k+1]``: at most ``_MAX_BLOCK_ROWS`` rows and what
    ``memory_budget_mb`` allows, a multiple of ``_GT_ROWS`` when it can be. Every similarity is computed
    by the same numpy call in either path (``block_sims``), and every ground-truth score by the same
    small product (``gt_scores``), so a run cut into shards of whole blocks counts exactly the numbers
    one process counts: rank counts are sums over blocks (:class:`_RankCounter`).
    """

    def __init__(self, n_img: int, n_txt: int, dim: int, text_image, memory_budget_mb: float = 512):
        self.n_img, self.n_txt = int(n_img), int(n_txt)
        self.ti = check_text_image(text_image, n_img, n_txt)
        rows = min(_block_rows(n_txt, dim, memory_budget_mb), _MAX_BLOCK_ROWS)
        if rows >= _GT_ROWS:
            rows -= rows % _GT_ROWS
        self.rows = rows
        self.starts = list(range(0, self.n_img, rows)) + [self.n_img]
        self.order = np.argsort(self.ti, kind="stable")
        self.bounds = np.searchsorted(self.ti[self.order], np.arange(self.n_img + 1))

    def __len__(self) -> int:
        return len(self.starts) - 1

    def gt_scores(self, img: np.ndarray, txt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(captions, their ground-truth scores) of block k's images: products of ``_GT_ROWS`` images
        with their own captions only (~``_GT_ROWS`` / images of the full cost)."""
        caps_all, vals_all = [], []
        for a in range(self.starts[k], self.starts[k + 1], _GT_ROWS):
            b = min(self.starts[k + 1], a + _GT_ROWS)
            caps = self.order[self.bounds[a]:self.bounds[b]]
            d = img[a:b] @ txt[caps].T
            caps_all.append(caps)
            vals_all.append(d[self.ti[caps] - a, np.arange(caps.size)].astype(np.float32, copy=False))
        if not caps_all:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(caps_all), np.concatenate(vals_all)

    def all_gt(self, parts) -> np.ndarray:
        """Every caption's ground-truth score from the blocks' ``gt_scores`` (in any order)."""
        gt_t = np.empty(self.n_txt, np.float32)
        seen = np.zeros(self.n_txt, bool)
        for caps, vals in parts:
            gt_t[caps] = vals
            seen[caps] = True
        if not seen.all():
            raise MMBenchError(f"ground-truth scores missing for {int((~seen).sum())} captions")
        return gt_t

    def block_sims(self, img: np.ndarray, txt_t: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
        a, b = self.starts[k], self.starts[k + 1]
        blk = out[:b - a]
        np.matmul(img[a:b], txt_t, out=blk)
        return blk

    def count(self, counter: "_RankCounter", img: np.ndarray, txt: np.ndarray, blocks) -> None:
        """Add blocks ``blocks`` of the similarity matrix to ``counter`` (its ground truth written in)."""
        blocks = list(blocks)
        if not blocks:
            return
        txt_t = txt.T
        buf = np.empty((min(self.rows, self.n_img), self.n_txt), np.float32)
        for k in blocks:
            counter.add(self.starts[k], self.block_sims(img, txt_t, k, buf), writable=True)


def _embeddings_2d(img, txt) -> tuple[np.ndarray, np.ndarray]:
    img = np.ascontiguousarray(img, dtype=np.float32)
    txt = np.ascontiguousarray(txt, dtype=np.float32)
    if img.ndim != 2 or txt.ndim != 2:
        raise MMBenchError(f"embeddings must be 2-D, got image {img.shape} and text {txt.shape}")
    if img.shape[1] != txt.shape[1]:
        raise MMBenchError(f"image embeddings have dimension {img.shape[1]} but text embeddings {txt.shape[1]}")
    return img, txt


def ranks_from_embeddings(img, txt, text_image, ties: str = "pessimistic", *, memory_budget_mb: float = 512):
    """Like :func:`ranks_from_sims` for ``sims = img @ txt.T``, formed one row block at a time.

    Working memory is about ``memory_budget_mb`` on top of the embeddings. The ground-truth
    scores come from a small separate product per block (cost ~ 1/blocks of the total)
    and are written into each block before counting, so ranks are those of one
    consistent matrix (equal to the full product's up to float32 rounding of a dot product).
    The blocks are :class:`EmbeddingBlocks`', the same a sharded run cuts.
    """
    _check_ties(ties)
    img, txt = _embeddings_2d(img, txt)
    plan = EmbeddingBlocks(img.shape[0], txt.shape[0], img.shape[1], text_image, memory_budget_mb)
    gt_t = plan.all_gt(plan.gt_scores(img, txt, k) for k in range(len(plan)))
    counter = _RankCounter(plan.ti, plan.n_img, gt_t)
    plan.count(counter, img, txt, range(len(plan)))
    return counter.result(ties)


def _rank_stats(r: np.ndarray, w: np.ndarray | None, prefix: str, out: dict, order: np.ndarray | None = None,
                ks=KS) -> None:
    """R@K, medr, meanr of one direction from 0-based ranks, query i counted ``w[i]`` times (None: once).

    The one definition of these metrics: the evaluate loop's values (weights None), bootstrap
    resamples and paired tests (integer weights) all come from here. medr = floor(median) + 1 and
    meanr = mean + 1, as SGRAF/SCAN/VSE++ evaluation.py; the weighted median equals ``np.median`` of
    the expanded multiset.
    """
    r = np.asarray(r, dtype=np.int64)
    w = np.ones(len(r), dtype=np.int64) if w is None else np.asarray(w)
    tot = w.sum()
    if tot == 0:
        for k in ks:
            out[f"{prefix}.R@{k}"] = math.nan
        out[f"{prefix}.medr"] = out[f"{prefix}.meanr"] = math.nan
        return
    for k in ks:
        out[f"{prefix}.R@{k}"] = 100.0 * float(w[r < k].sum()) / float(tot)
    order = np.argsort(r, kind="stable") if order is None else order
    cw = np.cumsum(w[order])
    lo = np.searchsorted(cw, (tot - 1) // 2, side="right")
    hi = np.searchsorted(cw, tot // 2, side="right")
    out[f"{prefix}.medr"] = float(np.floor((float(r[order[lo]]) + float(r[order[hi]])) / 2) + 1)
    out[f"{prefix}.meanr"] = float((w * r).sum()) / float(tot) + 1


def summarize(i2t_ranks, t2i_ranks, ks=KS) -> dict[str, float]:
    """R@K, medr, meanr for both directions and rsum, from 0-based ranks (every query once)."""
    out: dict[str, float] = {}
    _rank_stats(i2t_ranks, None, "i2t", out, ks=ks)
    _rank_stats(t2i_ranks, None, "t2i", out, ks=ks)
    out["rsum"] = sum(out[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


class RankStats:
    """Per-unit statistics of a retrieval run: each image's i2t rank, each caption's t2i rank and image,
    and each image's fold (COCO 1K). The resampling unit is an image together with its captions."""

    def __init__(self, i2t, t2i, t2i_image, image_fold=None):
        self.i2t = np.asarray(i2t, dtype=np.int64)
        self.t2i = np.asarray(t2i, dtype=np.int64)
        self.ti = np.asarray(t2i_image, dtype=np.int64)
        n = len(self.i2t)
        if len(self.ti) != len(self.t2i):
            raise MMBenchError(f"retrieval per-sample 't2i_image' has {len(self.ti)} entries for "
                               f"{len(self.t2i)} captions")
        self.folds = np.zeros(n, np.int64) if image_fold is None else np.asarray(image_fold, dtype=np.int64)
        self.groups = []
        for f in np.unique(self.folds):
            im = np.nonzero(self.folds == f)[0]
            tx = np.nonzero(self.folds[self.ti] == f)[0]
            self.groups.append((im, tx, np.argsort(self.i2t[im], kind="stable"),
                                np.argsort(self.t2i[tx], kind="stable")))

    def __len__(self) -> int:
        return len(self.i2t)


def unit_stats(per_sample) -> tuple[int, RankStats]:
    """(images, :class:`RankStats`) from a record's per-sample lists (``i2t_rank``, ``t2i_rank``,
    ``t2i_image``, optional ``image_fold``; records without ``t2i_image`` use the 5-per-image layout)."""
    i2t = np.asarray(per_sample.get("i2t_rank", []), dtype=np.int64)
    t2i = np.asarray(per_sample.get("t2i_rank", []), dtype=np.int64)
    n = len(i2t)
    if "t2i_image" in per_sample:
        ti = np.asarray(per_sample["t2i_image"], dtype=np.int64)
    elif n and len(t2i) % n == 0:
        ti = np.arange(len(t2i)) // (len(t2i) // n)
    else:
        raise MMBenchError(f"retrieval per-sample data has {n} image and {len(t2i)} caption ranks but no "
                           "'t2i_image' caption-to-image index")
    stats = RankStats(i2t, t2i, ti, per_sample.get("image_fold"))
    return n, stats


def compute(stats: RankStats, weights=None) -> dict[str, float]:
    """Every retrieval metric, image i (with its captions) counted ``weights[i]`` times (None: once).

    Fold mode (COCO 1K): each metric (medr and meanr included) is the mean over folds and rsum the
    sum of the mean R@K values (the references print a wrong rsum in fold mode: kuanghuei/SCAN
    issue 23, fartashf/vsepp PR 43).
    """
    w = np.ones(len(stats), dtype=np.int64) if weights is None else np.asarray(weights)
    per_fold = []
    for im, tx, oi, ot in stats.groups:
        m: dict = {}
        _rank_stats(stats.i2t[im], w[im], "i2t", m, order=oi)
        _rank_stats(stats.t2i[tx], w[stats.ti[tx]], "t2i", m, order=ot)
        per_fold.append(m)
    if not per_fold:
        return {}
    out = per_fold[0] if len(per_fold) == 1 else {k: float(np.mean([m[k] for m in per_fold])) for k in per_fold[0]}
    out["rsum"] = sum(out[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in KS)
    return out


def fold_slices(n_images: int, text_image: np.ndarray, n_folds: int):
    """Image and text index ranges of the COCO 1K protocol's folds (contiguous blocks)."""
    if n_folds < 1 or n_images % n_folds:
        raise MMBenchError(f"{n_images} images cannot be split into {n_folds} equal folds")
    size = n_images // n_folds
    out = []
    for f in range(n_folds):
        lo, hi = f * size, (f + 1) * size
        t_idx = np.nonzero((text_image >= lo) & (text_image < hi))[0]
        out.append((lo, hi, t_idx))
    return out


def _assemble(n_img: int, n_txt: int, ti: np.ndarray, folds: int, rank_fn) -> dict:
    """Run ``rank_fn(lo, hi, t_idx)`` per fold (within-fold ranks) and compute the metrics (:func:`compute`)."""
    i2t_all = np.empty(n_img, np.int64)
    t2i_all = np.empty(n_txt, np.int64)
    fold_of = np.zeros(n_img, np.int64)
    tied = [0, 0]
    if folds == 1:
        i2t_all, t2i_all, tied[0], tied[1] = rank_fn(0, n_img, None)
    else:
        for f, (lo, hi, t_idx) in enumerate(fold_slices(n_img, ti, folds)):
            i2t, t2i, a, b = rank_fn(lo, hi, t_idx)
            i2t_all[lo:hi], t2i_all[t_idx] = i2t, t2i
            fold_of[lo:hi] = f
            tied[0] += a
            tied[1] += b
    metrics = compute(RankStats(i2t_all, t2i_all, ti, fold_of if folds > 1 else None))
    return {"metrics": metrics, "i2t_ranks": i2t_all, "t2i_ranks": t2i_all,
            "i2t_tied": tied[0], "t2i_tied": tied[1], "image_fold": fold_of}


def retrieval_metrics(sims: np.ndarray, text_image, *, folds: int = 1, ties: str = "pessimistic") -> dict:
    """All retrieval metrics from a similarity matrix.

    ``folds > 1``: the COCO 1K protocol (contiguous image folds, see :func:`_assemble`).
    Returns ``{"metrics", "i2t_ranks", "t2i_ranks", "i2t_tied", "t2i_tied", "image_fold"}``
    where ranks are per query (within-fold ranks in fold mode).
    """
    _check_ties(ties)
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise MMBenchError(f"similarity matrix must be 2-D (images, captions), got shape {sims.shape}")
    ti = check_text_image(text_image, *sims.shape)

    def rank_fn(lo, hi, t_idx):
        if t_idx is None:
            return ranks_from_sims(sims, ti, ties)
        return ranks_from_sims(sims[lo:hi][:, t_idx], ti[t_idx] - lo, ties)

    return _assemble(sims.shape[0], sims.shape[1], ti, folds, rank_fn)


def retrieval_metrics_from_embeddings(img, txt, text_image, *, folds: int = 1, ties: str = "pessimistic",
                                      memory_budget_mb: float = 512) -> dict:
    """All retrieval metrics for ``sims = img @ txt.T`` without forming the full matrix."""
    _check_ties(ties)
    img = np.asarray(img)
    txt = np.asarray(txt)
    if img.ndim != 2 or txt.ndim != 2:
        raise MMBenchError(f"embeddings must be 2-D, got image {img.shape} and text {txt.shape}")
    ti = check_text_image(text_image, img.shape[0], txt.shape[0])

    def rank_fn(lo, hi, t_idx):
        if t_idx is None:
            return ranks_from_embeddings(img, txt, ti, ties, memory_budget_mb=memory_budget_mb)
        return ranks_from_embeddings(img[lo:hi], txt[t_idx], ti[t_idx] - lo, ties,
                                     memory_budget_mb=memory_budget_mb)

    return _assemble(img.shape[0], txt.shape[0], ti, folds, rank_fn)
