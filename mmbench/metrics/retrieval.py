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


def summarize(i2t_ranks, t2i_ranks, ks=KS) -> dict[str, float]:
    """R@K, medr, meanr for both directions and rsum, from 0-based ranks."""
    out: dict[str, float] = {}
    for d, r in (("i2t", np.asarray(i2t_ranks)), ("t2i", np.asarray(t2i_ranks))):
        for k in ks:
            out[f"{d}.R@{k}"] = 100.0 * float((r < k).sum()) / len(r)
        out[f"{d}.medr"] = float(np.floor(np.median(r)) + 1)
        out[f"{d}.meanr"] = float(r.mean() + 1)
    out["rsum"] = sum(out[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in ks)
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
    """Run ``rank_fn(lo, hi, t_idx)`` per fold and combine as the protocol does.

    Fold mode: each metric (medr and meanr included) is the mean over folds, rsum the
    sum of the mean R@K values (the references print a wrong rsum in fold mode:
    kuanghuei/SCAN issue 23, fartashf/vsepp PR 43).
    """
    if folds == 1:
        i2t, t2i, a, b = rank_fn(0, n_img, None)
        return {"metrics": summarize(i2t, t2i), "i2t_ranks": i2t, "t2i_ranks": t2i,
                "i2t_tied": a, "t2i_tied": b, "image_fold": np.zeros(n_img, np.int64)}
    i2t_all = np.empty(n_img, np.int64)
    t2i_all = np.empty(n_txt, np.int64)
    fold_of = np.empty(n_img, np.int64)
    fold_metrics = []
    tied = [0, 0]
    for f, (lo, hi, t_idx) in enumerate(fold_slices(n_img, ti, folds)):
        i2t, t2i, a, b = rank_fn(lo, hi, t_idx)
        i2t_all[lo:hi], t2i_all[t_idx] = i2t, t2i
        fold_of[lo:hi] = f
        tied[0] += a
        tied[1] += b
        fold_metrics.append(summarize(i2t, t2i))
    metrics = {k: float(np.mean([m[k] for m in fold_metrics])) for k in fold_metrics[0] if k != "rsum"}
    metrics["rsum"] = sum(metrics[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in KS)
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


def _check_starts(starts, what: str) -> np.ndarray:
    s = np.asarray(starts, dtype=np.int64).reshape(-1)
    if s.size < 1 or s[0] != 0 or (s.size > 1 and (np.diff(s) <= 0).any()):
        raise MMBenchError(f"{what} block starts must begin at 0 and increase strictly (one entry per block "
                           f"plus the total), got {s[:8].tolist()}{' ...' if s.size > 8 else ''}")
    return s


class _TileSweep:
    """Exact ranks of one (images x texts) part, e.g. one fold, from score tiles.

    The full matrix is made of tiles ``score_tile(k, m)``: image block k (rows
    ``i_starts[k] .. i_starts[k+1]``) x text block m. The part keeps rows ``lo .. hi`` and
    the sorted global columns ``cols``; only tiles meeting them are scored, and every score
    used comes from one of those tiles, so the ranks equal those of ranking the assembled
    matrix (as ``compute_sims`` + :func:`retrieval_metrics` would) for any deterministic scorer.

    Pass 1 scores the tiles holding a ground-truth pair and keeps each caption's
    ground-truth score (and, while they fit in half the budget, the tiles themselves, so
    pass 2 need not score them again). Pass 2 sweeps image block by image block, copying
    the block's tiles into a (block rows, W) buffer sized to the rest of the budget and
    counting each full buffer with :class:`_RankCounter`. Working memory: the buffer plus
    the cached tiles, at most ``budget_bytes`` or, if that is smaller, one tile; plus O(images
    + texts) counters.
    """

    def __init__(self, lo, hi, cols, ti, i_starts, t_starts, budget_bytes: float):
        self.lo, self.hi, self.cols = lo, hi, cols
        self.lti = ti[cols] - lo
        self.i_starts, self.t_starts = i_starts, t_starts
        # image blocks meeting rows lo..hi: (k, tile row slice, local first row)
        self.iblocks = []
        for k in range(np.searchsorted(i_starts, lo, "right") - 1, len(i_starts) - 1):
            r0, r1 = max(lo, i_starts[k]), min(hi, i_starts[k + 1])
            if r0 >= hi:
                break
            self.iblocks.append((k, slice(int(r0 - i_starts[k]), int(r1 - i_starts[k])), int(r0 - lo)))
        # text blocks meeting cols: (m, tile column selector, local first column, width)
        p = np.searchsorted(cols, t_starts)
        self.tblocks = []
        for m in range(len(t_starts) - 1):
            p0, p1 = int(p[m]), int(p[m + 1])
            if p1 == p0:
                continue
            c = cols[p0:p1] - t_starts[m]
            sel = slice(int(c[0]), int(c[-1]) + 1) if c[-1] - c[0] == p1 - p0 - 1 else c
            self.tblocks.append((m, sel, p0, p1 - p0))
        tb_index = {m: q for q, (m, *_rest) in enumerate(self.tblocks)}
        # pass-1 tiles: those holding a ground-truth pair, in sweep order
        order = np.argsort(self.lti, kind="stable")
        bounds = np.searchsorted(self.lti[order], np.arange(hi - lo + 1))
        tb_of = np.searchsorted(t_starts, cols, "right") - 1  # text block of each local column
        self.gt_tiles = []  # (iblock index, tblock index, local captions in it)
        for q, (k, rs, a) in enumerate(self.iblocks):
            caps = order[bounds[a]:bounds[a + rs.stop - rs.start]]
            blocks = tb_of[caps]
            for m in np.unique(blocks):
                self.gt_tiles.append((q, tb_index[int(m)], caps[blocks == m]))
        rows = max((rs.stop - rs.start for _, rs, _ in self.iblocks), default=1)
        widest = max((w for *_rest, w in self.tblocks), default=1)
        # cache pass-1 tiles while they fit in half the budget, leaving the buffer room for one tile
        cache_limit = cache_left = max(0.0, min(budget_bytes / 2, budget_bytes - 4 * rows * widest))
        self.cached = set()
        for q, r, _ in self.gt_tiles:
            nbytes = 4 * (self.iblocks[q][1].stop - self.iblocks[q][1].start) * self.tblocks[r][3]
            if nbytes > cache_left:
                break
            cache_left -= nbytes
            self.cached.add((q, r))
        self.cache_bytes = cache_limit - cache_left
        self.buf_cols = int(max(1, min(len(cols), max(widest, (budget_bytes - self.cache_bytes) // (4 * rows)))))
        self.buf_rows = rows
        self.n_calls = len(self.gt_tiles) + len(self.iblocks) * len(self.tblocks) - len(self.cached)

    @property
    def peak_bytes(self) -> int:
        """Bytes of the float32 buffer plus cached tiles (the budgeted working memory)."""
        return int(4 * self.buf_rows * self.buf_cols + self.cache_bytes)

    def _tile(self, score_tile, q, r) -> np.ndarray:
        k, rs, _ = self.iblocks[q]
        m, cs, _, _ = self.tblocks[r]
        # float32, as compute_sims stores it
        return np.asarray(score_tile(k, m), dtype=np.float32)[rs][:, cs]

    def run(self, score_tile, ties: str, advance):
        gt = np.empty(len(self.cols), np.float32)
        cache = {}
        for q, r, caps in self.gt_tiles:
            tile = self._tile(score_tile, q, r)
            advance()
            gt[caps] = tile[self.lti[caps] - self.iblocks[q][2], caps - self.tblocks[r][2]]
            if (q, r) in self.cached:
                cache[q, r] = tile.copy()  # a model may reuse its output buffer
        counter = _RankCounter(self.lti, self.hi - self.lo, gt)
        buf = np.empty((self.buf_rows, self.buf_cols), np.float32)
        for q, (_, rs, a) in enumerate(self.iblocks):
            n = rs.stop - rs.start
            c0 = w = 0
            for r, (_, _, p0, width) in enumerate(self.tblocks):
                if w + width > self.buf_cols:
                    counter.add(a, buf[:n, :w], writable=True, c0=c0)
                    c0, w = p0, 0
                tile = cache.pop((q, r), None)
                if tile is None:
                    tile = self._tile(score_tile, q, r)
                    advance()
                buf[:n, w:w + width] = tile
                w += width
            counter.add(a, buf[:n, :w], writable=True, c0=c0)
        return counter.result(ties)


def retrieval_metrics_from_tiles(score_tile, image_starts, text_starts, text_image, *, folds: int = 1,
                                 ties: str = "pessimistic", memory_budget_mb: float = 512, progress=None) -> dict:
    """All retrieval metrics of a matrix given as tiles, never holding it whole.

    ``score_tile(k, m)`` returns the scores of image block k (rows ``image_starts[k] ..
    image_starts[k+1]``) against text block m (``text_starts`` likewise; both end with the
    total). Ranks, tie counts and metrics equal :func:`retrieval_metrics` on the assembled
    float32 matrix, provided ``score_tile`` returns the same values when called twice (a
    tile holding ground-truth pairs is scored twice only when the budget cannot cache it).
    In fold mode only the tiles meeting a fold's rows and columns are scored.
    ``progress(total)``, if given, is a context manager yielding ``advance()``, called once
    per ``score_tile`` call. The result also holds ``score_calls`` and ``working_bytes``
    (the float32 buffer plus cached tiles, at most ``memory_budget_mb`` or one tile).
    """
    _check_ties(ties)
    i_starts = _check_starts(image_starts, "image")
    t_starts = _check_starts(text_starts, "text")
    n_img, n_txt = int(i_starts[-1]), int(t_starts[-1])
    ti = check_text_image(text_image, n_img, n_txt)
    if folds == 1:
        parts = [(0, n_img, np.arange(n_txt))]
    else:
        parts = [(lo, hi, t_idx) for lo, hi, t_idx in fold_slices(n_img, ti, folds)]
    budget = float(memory_budget_mb) * 2**20
    sweeps = [_TileSweep(lo, hi, cols, ti, i_starts, t_starts, budget) for lo, hi, cols in parts]
    total = sum(s.n_calls for s in sweeps)
    results = []
    if progress is None:
        for s in sweeps:
            results.append(s.run(score_tile, ties, lambda n=1: None))
    else:
        with progress(total) as advance:
            for s in sweeps:
                results.append(s.run(score_tile, ties, advance))
    it = iter(results)
    out = _assemble(n_img, n_txt, ti, folds, lambda lo, hi, t_idx: next(it))
    out["score_calls"] = total
    out["working_bytes"] = max(s.peak_bytes for s in sweeps)
    return out
