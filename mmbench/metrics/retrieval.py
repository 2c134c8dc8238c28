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

Ranks are counted, never sorted: one pass over the similarities in cache-sized row
chunks compares each row with its best ground-truth score (i2t) and each column with
its ground-truth score (t2i). From embeddings, similarities are formed one row block at
a time (``memory_budget_mb`` bounds the block), so no full images x captions matrix ever
exists. From a cross scorer's score tiles (:func:`retrieval_metrics_from_tiles`), ground-truth
scores come first from the tiles holding them, then the tiles are swept and counted within
the budget, with the same counter, so ranks equal those of the assembled matrix.
"""

from __future__ import annotations

import math

import numpy as np

from mmbench.errors import MMBenchError

KS = (1, 5, 10)
TIES = ("pessimistic", "optimistic")
_CHUNK_ROWS = 32  # rows compared per step: 32 x 25000 floats stay in cache (and counts fit in uint8)
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


class _RankCounter:
    """Accumulates i2t and t2i rank counts over blocks of an (images, texts) score matrix.

    ``gt_t[j]`` is the ground-truth score of caption j. A block covers rows ``a ..`` and
    columns ``c0 ..``; each block's ground-truth entries are overwritten with ``gt_t``
    before counting (when it is writable), so every comparison is made on one consistent
    matrix even when ``gt_t`` was computed separately. Counts are sums, so the blocks may
    tile the matrix in any way, each entry counted once.
    """

    def __init__(self, ti: np.ndarray, n_images: int, gt_t: np.ndarray):
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
        self._width = 0  # scratch buffers sized to the widest block seen

    def _scratch(self, w: int):
        if w > self._width:
            self._width = w
            self._flat = np.empty(_CHUNK_ROWS * w, dtype=bool)
            self._acc_ge = np.zeros(w, np.int32)
            self._acc_gt = np.zeros(w, np.int32)
        return self._acc_ge[:w], self._acc_gt[:w]

    def add(self, a: int, block: np.ndarray, writable: bool, c0: int = 0) -> None:
        """Count rows ``a .. a + len(block)``, columns ``c0 .. c0 + block.shape[1]``;
        ``block`` may be overwritten when ``writable``."""
        n_rows, w = block.shape
        b, c1 = a + n_rows, c0 + w
        caps = self.order[self.bounds[a]:self.bounds[b]]
        if caps.size and writable:
            caps = caps[(caps >= c0) & (caps < c1)]
            block[self.ti[caps] - a, caps - c0] = self.gt_t[caps]
        gt_t = self.gt_t[c0:c1]
        acc_ge, acc_gt = self._scratch(w)
        for r0 in range(0, n_rows, _CHUNK_ROWS):
            chunk = block[r0:r0 + _CHUNK_ROWS]
            n = chunk.shape[0]
            # a NaN compares false both ways and would silently rank as "not ahead": refuse it.
            # Summing is cheaper than isfinite(); an overflowing sum falls back to the exact test.
            if not np.isfinite(np.add.reduce(chunk, axis=None)) and not np.isfinite(chunk).all():
                bad = np.argwhere(~np.isfinite(chunk))[0]
                raise MMBenchError(f"similarity matrix has a NaN/inf value at image {a + r0 + bad[0]}, "
                                   f"caption {c0 + bad[1]}")
            buf = self._flat[:n * w].reshape(n, w)
            u = buf.view(np.uint8)
            best = self.best[a + r0:a + r0 + n, None]
            # column counts of <= 32 rows fit in uint8
            np.greater_equal(chunk, gt_t, out=buf)
            acc_ge += np.add.reduce(u, axis=0, dtype=np.uint8)
            np.greater(chunk, gt_t, out=buf)
            acc_gt += np.add.reduce(u, axis=0, dtype=np.uint8)
            np.greater_equal(chunk, best, out=buf)
            for r in range(n):
                self.row_ge[a + r0 + r] += np.count_nonzero(buf[r])
            np.greater(chunk, best, out=buf)
            for r in range(n):
                self.row_gt[a + r0 + r] += np.count_nonzero(buf[r])
        # int32 partial sums cannot overflow within one block of < 2**31 rows
        self.col_ge[c0:c1] += acc_ge
        self.col_gt[c0:c1] += acc_gt
        acc_ge[:] = 0
        acc_gt[:] = 0

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


def ranks_from_embeddings(img, txt, text_image, ties: str = "pessimistic", *, memory_budget_mb: float = 512):
    """Like :func:`ranks_from_sims` for ``sims = img @ txt.T``, formed one row block at a time.

    Working memory is about ``memory_budget_mb`` on top of the embeddings. The ground-truth
    scores come from a small separate product per block (cost ~ 1/blocks of the total)
    and are written into each block before counting, so ranks are those of one
    consistent matrix (equal to the full product's up to float32 rounding of a dot product).
    """
    _check_ties(ties)
    img = np.ascontiguousarray(img, dtype=np.float32)
    txt = np.ascontiguousarray(txt, dtype=np.float32)
    if img.ndim != 2 or txt.ndim != 2:
        raise MMBenchError(f"embeddings must be 2-D, got image {img.shape} and text {txt.shape}")
    if img.shape[1] != txt.shape[1]:
        raise MMBenchError(f"image embeddings have dimension {img.shape[1]} but text embeddings {txt.shape[1]}")
    n_img, n_txt = img.shape[0], txt.shape[0]
    ti = check_text_image(text_image, n_img, n_txt)
    rows = _block_rows(n_txt, img.shape[1], memory_budget_mb)
    buf = np.empty((min(rows, n_img), n_txt), np.float32)
    txt_t = txt.T
    if rows >= n_img:  # one block: the ground truth comes from the block itself
        np.matmul(img, txt_t, out=buf)
        gt_t = buf[ti, np.arange(n_txt)]
        counter = _RankCounter(ti, n_img, gt_t)
        counter.add(0, buf, writable=False)
        return counter.result(ties)
    order = np.argsort(ti, kind="stable")
    bounds = np.searchsorted(ti[order], np.arange(n_img + 1))
    gt_t = np.empty(n_txt, np.float32)
    for a in range(0, n_img, _GT_ROWS):  # small products: ~_GT_ROWS / n_img of the full cost
        b = min(n_img, a + _GT_ROWS)
        caps = order[bounds[a]:bounds[b]]
        d = img[a:b] @ txt[caps].T
        gt_t[caps] = d[ti[caps] - a, np.arange(caps.size)]
    counter = _RankCounter(ti, n_img, gt_t)
    for a in range(0, n_img, rows):
        b = min(n_img, a + rows)
        blk = buf[:b - a]
        np.matmul(img[a:b], txt_t, out=blk)
        counter.add(a, blk, writable=True)
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
