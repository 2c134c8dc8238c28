"""Image<->text retrieval: data type, the two model protocols, and the evaluate loop.

Two model shapes are first class:

- **Dual encoders** (CLIP, VSE++, CCA baselines): ``encode_images(list[ImageItem]) ->
  (B, D)`` and ``encode_texts(list[str]) -> (B, D)``; the harness forms similarities as
  dot products (normalise inside the model if you want cosine).
- **Cross-attention scorers** (SCAN, SGRAF): the same two encode methods returning any
  per-item block the model likes, plus ``score(image_block, text_block) -> (Bi, Bt)``;
  the harness calls ``score`` over image-block x text-block tiles, so memory stays bounded.

A model is a cross scorer when it has a ``score`` method. Any model may have
``fit(train: RetrievalData, val: RetrievalData | None)``, called on the train split first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmbench.errors import MMBenchError, PluginError
from mmbench.metrics import retrieval as M
from mmbench.metrics.retrieval import _RankCounter, _assemble, _check_ties, check_text_image, fold_slices, \
    retrieval_metrics_from_embeddings
from mmbench.tasks.base import DatasetMeta, ImageItem, MetricInfo, TaskKind, TaskOption, TaskResult, as_numpy, \
    batched, check_shape, progress_bar, timed

OPTIONS = (
    TaskOption("ties", str, "pessimistic", "how tied scores rank: pessimistic (default) or optimistic",
               choices=("pessimistic", "optimistic")),
    TaskOption("memory_budget_mb", float, 512.0, "working memory for similarities in MB (> 0)", low=0.0),
)



@dataclass(frozen=True)
class RetrievalProtocol:
    """A published retrieval protocol: how many test images, folds, captions per image (PROTOCOLS.md section 1)."""

    name: str
    images: int
    folds: int = 1
    captions_per_image: int = 5
    description: str = ""


#: the one table of retrieval protocols: ``mmbench score retrieval``, the Karpathy and precomp adapters read it
PROTOCOLS = {p.name: p for p in (
    RetrievalProtocol("flickr30k-1k", 1000, 1, 5, "Flickr30k Karpathy test: 1000 images x 5000 captions"),
    RetrievalProtocol("coco-5k", 5000, 1, 5, "COCO Karpathy test: one 5000 x 25000 matrix"),
    RetrievalProtocol("coco-1k-5fold", 5000, 5, 5, "COCO Karpathy test: 5 contiguous folds of 1000 images, "
                                                   "metrics averaged over folds"),
)}


@dataclass
class RetrievalData:
    """N images, T captions; caption j belongs to image ``text_image[j]``.

    ``folds`` > 1 selects a fold protocol (COCO 1K: 5 contiguous folds of 1000 images).
    """

    images: list[ImageItem]
    texts: list[str]
    text_image: np.ndarray
    meta: DatasetMeta
    folds: int = 1

    def __post_init__(self):
        from mmbench.datasets.common import data_where, first_duplicate

        self.text_image = check_text_image(self.text_image, len(self.images), len(self.texts))
        where = data_where(self.meta)
        dup = first_duplicate(im.id for im in self.images)
        if dup is not None:
            raise DataError(where, f"image id {dup!r} appears twice (it would be evaluated twice)", field="images.id",
                            expected="unique image ids")
        bad = [j for j, t in enumerate(self.texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise DataError(where, f"{len(bad)} empty or non-string caption(s) (first: text {bad[0]} = "
                                   f"{self.texts[bad[0]]!r})", field="texts", expected="non-empty caption text")

    @property
    def image_ids(self) -> list[str]:
        return [im.id for im in self.images]


@runtime_checkable
class DualEncoder(Protocol):
    def encode_images(self, images: list[ImageItem]) -> Any: ...
    def encode_texts(self, texts: list[str]) -> Any: ...


@runtime_checkable
class CrossScorer(Protocol):
    def encode_images(self, images: list[ImageItem]) -> Any: ...
    def encode_texts(self, texts: list[str]) -> Any: ...
    def score(self, image_block: Any, text_block: Any) -> Any: ...


def _encode(fn, items, batch_size, desc, show, name, dual: bool):
    blocks = []
    with progress_bar(desc, len(items), show) as advance:
        for chunk in batched(items, batch_size):
            out = fn(list(chunk))
            if dual:
                arr = as_numpy(out, what=f"{desc} output", plugin=name)
                check_shape(arr, (len(chunk), None), what=f"{desc} output", plugin=name)
                out = arr.astype(np.float32, copy=False)
            blocks.append(out)
            advance(len(chunk))
    return blocks


def _encode_both(model, data, batch_size, show_progress, name, dual, timings):
    """Image blocks and text blocks of ``data``, each encoding step timed."""
    with timed(timings, "encode_images"):
        img_blocks = _encode(model.encode_images, data.images, batch_size, "encode images", show_progress,
                             name, dual)
    with timed(timings, "encode_texts"):
        txt_blocks = _encode(model.encode_texts, data.texts, batch_size, "encode texts", show_progress,
                             name, dual)
    return img_blocks, txt_blocks


def compute_sims(model: Any, data: RetrievalData, *, batch_size: int = 64, show_progress: bool = True,
                 name: str = "", timings: dict | None = None) -> np.ndarray:
    """The (images, texts) similarity matrix of ``model`` on ``data``."""
    timings = {} if timings is None else timings
    if not hasattr(model, "score"):
        img, txt = encode_dual(model, data, batch_size=batch_size, show_progress=show_progress, name=name,
                               timings=timings)
        with timed(timings, "similarity"):
            return img @ txt.T
    img_blocks, txt_blocks = _encode_both(model, data, batch_size, show_progress, name, False, timings)
    n_img, n_txt = len(data.images), len(data.texts)
    sims = np.empty((n_img, n_txt), np.float32)
    i_sizes = [min(batch_size, n_img - s) for s in range(0, n_img, batch_size)]
    t_sizes = [min(batch_size, n_txt - s) for s in range(0, n_txt, batch_size)]
    with timed(timings, "score"), progress_bar("score pairs", len(img_blocks) * len(txt_blocks),
                                               show_progress) as advance:
        i0 = 0
        for ib, ni in zip(img_blocks, i_sizes):
            t0 = 0
            for tb, nt in zip(txt_blocks, t_sizes):
                s = as_numpy(model.score(ib, tb), what="score() output", plugin=name)
                check_shape(s, (ni, nt), what="score() output", plugin=name)
                sims[i0:i0 + ni, t0:t0 + nt] = s
                t0 += nt
                advance()
            i0 += ni
    return sims


def encode_dual(model: Any, data: RetrievalData, *, batch_size: int = 64, show_progress: bool = True,
                name: str = "", timings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A dual encoder's (images, D) and (texts, D) float32 embeddings on ``data``."""
    timings = {} if timings is None else timings
    img_blocks, txt_blocks = _encode_both(model, data, batch_size, show_progress, name, True, timings)
    img = np.concatenate(img_blocks) if img_blocks else np.zeros((0, 0), np.float32)
    txt = np.concatenate(txt_blocks) if txt_blocks else np.zeros((0, 0), np.float32)
    if img.shape[1] != txt.shape[1]:
        raise PluginError(f"{name}: image embeddings have dimension {img.shape[1]} but text "
                          f"embeddings {txt.shape[1]}; a dual encoder needs one shared space")
    return img, txt


def _block_starts(n: int, batch_size: int) -> list[int]:
    """Start offsets of ``batched(range(n), batch_size)``'s blocks, plus ``n``."""
    return list(range(0, n, batch_size)) + [n]


def evaluate(model: Any, data: RetrievalData, *, batch_size: int | None = 64, show_progress: bool = True,
             name: str = "", ties: str = "pessimistic", memory_budget_mb: float | str = 512) -> TaskResult:
    """Rank every caption for every image and every image for every caption.

    No full (images, texts) matrix is formed; ``memory_budget_mb`` bounds the working
    memory. Dual encoders: similarities are formed and ranked one row block at a time from
    the embeddings. Cross scorers: ``score`` is called on the same image-block x text-block
    tiles as :func:`compute_sims` (blocks of ``batch_size``) and the tiles are counted as
    they come (:func:`retrieval_metrics_from_tiles`), so ranks
    equal those of the full matrix; in fold mode only the tiles inside a fold are scored.
    """
    timings: dict[str, float] = {}
    batch_size = batch_size or 64
    budget = float(memory_budget_mb)
    dual = not hasattr(model, "score")
    if dual:
        img, txt = encode_dual(model, data, batch_size=batch_size, show_progress=show_progress, name=name,
                               timings=timings)
        with timed(timings, "similarity_and_metrics"):
            res = retrieval_metrics_from_embeddings(img, txt, data.text_image, folds=data.folds, ties=ties,
                                                    memory_budget_mb=budget)
    else:
        img_blocks, txt_blocks = _encode_both(model, data, batch_size, show_progress, name, False, timings)
        i_starts = _block_starts(len(data.images), batch_size)
        t_starts = _block_starts(len(data.texts), batch_size)

        def score_tile(k: int, m: int) -> np.ndarray:
            with timed(timings, "score"):
                s = as_numpy(model.score(img_blocks[k], txt_blocks[m]), what="score() output", plugin=name)
            return check_shape(s, (i_starts[k + 1] - i_starts[k], t_starts[m + 1] - t_starts[m]),
                               what="score() output", plugin=name)

        timings["score"] = 0.0
        with timed(timings, "score_and_metrics"):
            res = retrieval_metrics_from_tiles(
                score_tile, i_starts, t_starts, data.text_image, folds=data.folds, ties=ties,
                memory_budget_mb=budget, progress=lambda total: progress_bar("score pairs", total, show_progress))
        timings["metrics"] = timings.pop("score_and_metrics") - timings["score"]
    return retrieval_result(data, res, dual, timings, ties)


def retrieval_result(data: RetrievalData, res: dict, dual: bool, timings: dict, ties: str) -> TaskResult:
    """The task result of ranks ``res`` (``_assemble``'s dict), single-process or sharded alike."""
    details = {
        "n_images": len(data.images), "n_texts": len(data.texts), "folds": data.folds, "ties": ties,
        "i2t_tied_queries": res["i2t_tied"], "t2i_tied_queries": res["t2i_tied"],
        "scorer": "dual-encoder" if dual else "cross-attention",
        "captions_per_image": _captions_per_image(data.text_image),
        "bootstrap_unit": "image with all its captions",
    }
    if not dual:
        details["score_calls"] = res["score_calls"]
        details["score_buffer_mb"] = round(res["working_bytes"] / 2**20, 3)
    image_ids = data.image_ids
    text_ids = [f"t{j}" for j in range(len(data.texts))]
    per_sample = {"i2t_rank": res["i2t_ranks"].tolist(), "t2i_rank": res["t2i_ranks"].tolist(),
                  "t2i_image": data.text_image.tolist()}
    sample_ids = {"image": image_ids, "caption": text_ids}
    if data.folds > 1:
        per_sample["image_fold"] = res["image_fold"].tolist()
    return TaskResult(metrics=res["metrics"], per_sample=per_sample, sample_ids=sample_ids, details=details,
                      timings=timings)


def _captions_per_image(text_image: np.ndarray) -> dict[str, int]:
    """{captions per image: number of images}, e.g. {"5": 4987, "6": 12, "7": 1} (protocol in force)."""
    counts = np.bincount(text_image)
    vals, n = np.unique(counts, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(vals, n)}


# --------------------------------------------------------------------------- cross scorers: tiles

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

    def gt_part(self, score_tile, qs, advance=lambda n=1: None) -> tuple[np.ndarray, np.ndarray]:
        """(local captions, ground-truth scores) from the pass-1 tiles of image blocks ``qs`` (a shard)."""
        qs = set(qs)
        caps_all, vals_all = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for q, r, caps in self.gt_tiles:
            if q not in qs:
                continue
            tile = self._tile(score_tile, q, r)
            advance()
            caps_all.append(caps)
            vals_all.append(tile[self.lti[caps] - self.iblocks[q][2], caps - self.tblocks[r][2]])
        return np.concatenate(caps_all), np.concatenate(vals_all)

    def _count_rows(self, counter, buf: np.ndarray, qs, tile_of) -> None:
        """Pass 2 for image blocks ``qs``: each block's tiles (``tile_of(q, r)``) copied into ``buf`` and
        counted whenever it is full."""
        for q in qs:
            _, rs, a = self.iblocks[q]
            n = rs.stop - rs.start
            c0 = w = 0
            for r, (_, _, p0, width) in enumerate(self.tblocks):
                if w + width > self.buf_cols:
                    counter.add(a, buf[:n, :w], writable=True, c0=c0)
                    c0, w = p0, 0
                buf[:n, w:w + width] = tile_of(q, r)
                w += width
            counter.add(a, buf[:n, :w], writable=True, c0=c0)

    def count_part(self, score_tile, gt: np.ndarray, qs, advance=lambda n=1: None) -> "_RankCounter":
        """A counter of image blocks ``qs`` (a shard) against every text block, given every caption's
        ground-truth score ``gt``: pass 2 of :meth:`run` for those rows, without its tile cache."""
        counter = _RankCounter(self.lti, self.hi - self.lo, gt)

        def fresh(q, r):
            advance()
            return self._tile(score_tile, q, r)

        self._count_rows(counter, np.empty((self.buf_rows, self.buf_cols), np.float32), qs, fresh)
        return counter

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

        def cached_or_fresh(q, r):
            tile = cache.pop((q, r), None)
            if tile is None:
                tile = self._tile(score_tile, q, r)
                advance()
            return tile

        self._count_rows(counter, np.empty((self.buf_rows, self.buf_cols), np.float32), range(len(self.iblocks)),
                         cached_or_fresh)
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


# --------------------------------------------------------------------------- the task kind

class Retrieval(TaskKind):
    """Image<->text retrieval: Recall@K, medr, meanr both ways and rsum (SCAN/SGRAF/VSE++ protocol)."""

    name = "retrieval"
    description = "image<->text retrieval: rank every caption for every image and every image for every caption"
    data_type = RetrievalData
    protocol = DualEncoder
    protocol_summary = ("encode_images(images) -> (B, D) and encode_texts(texts) -> (B, D) (dual encoder), plus "
                        "score(image_block, text_block) -> (Bi, Bt) for a cross-attention scorer")
    options = OPTIONS
    metrics = tuple(MetricInfo(f"{d}.R@{k}", help=f"{d} recall at {k}") for d in ("i2t", "t2i") for k in M.KS) + (
        MetricInfo("i2t.medr", False, "rank", "median rank of the first ground-truth caption"),
        MetricInfo("t2i.medr", False, "rank", "median rank of the ground-truth image"),
        MetricInfo("i2t.meanr", False, "rank", "mean rank of the first ground-truth caption"),
        MetricInfo("t2i.meanr", False, "rank", "mean rank of the ground-truth image"),
        MetricInfo("rsum", True, "percent", "sum of the six R@K"),
    )
    headline = ("i2t.R@1", "i2t.R@5", "i2t.R@10", "t2i.R@1", "t2i.R@5", "t2i.R@10", "rsum")
    main = "rsum"
    per_sample_units = {"i2t_rank": "image", "image_fold": "image", "t2i_rank": "caption", "t2i_image": "caption"}
    unit = "image"
    conventions = ("ties",)
    default_batch_size = 64
    evaluate_loop = staticmethod(evaluate)
    metrics_module = M
    scaffold_description = "Scaffolded dual encoder (palette-colour histogram vs named colours)."
    scaffold_template = "retrieval"


    def evaluate_sharded(self, model, data, plan, **kwargs):
        """Encodings by shard, ranks as sums of per-block counts (``mmbench.execution.retrieval``)."""
        from mmbench.execution.retrieval import evaluate_retrieval

        return evaluate_retrieval(model, data, plan, **kwargs)

    def limit(self, data, n):
        n = min(n, len(data.images))
        keep = [j for j, i in enumerate(data.text_image) if i < n]
        return RetrievalData(images=list(data.images[:n]), texts=[data.texts[j] for j in keep],
                             text_image=np.asarray(data.text_image)[keep], meta=data.meta, folds=1)

    def align(self, ps_a, ids_a, ps_b, ids_b):
        """Images pair by id; captions (``t2i_rank``, ``t2i_image``) by caption id, following their images."""
        from mmbench.errors import MismatchError

        out_a, out_b, na, nb, n_shared = super().align(ps_a, ids_a, ps_b, ids_b)
        if not ("t2i_rank" in ps_a and "t2i_rank" in ps_b) or not out_a:
            return out_a, out_b, na, nb, n_shared
        img_ids_a = [str(x) for x in (ids_a.get("image") or range(na))]
        img_ids_b = [str(x) for x in (ids_b.get("image") or range(nb))]
        pos_b = {s: i for i, s in enumerate(img_ids_b)}
        ia = [i for i, s in enumerate(img_ids_a) if s in pos_b]
        ib = [pos_b[img_ids_a[i]] for i in ia]
        img_a, img_b = _caption_images(ps_a), _caption_images(ps_b)
        tid_a = [str(x) for x in ids_a.get("caption") or range(len(img_a))]
        tid_b = [str(x) for x in ids_b.get("caption") or range(len(img_b))]
        if len(tid_a) != len(img_a) or len(tid_b) != len(img_b):
            tid_a, tid_b = [str(j) for j in range(len(img_a))], [str(j) for j in range(len(img_b))]
        new_a = {old: new for new, old in enumerate(ia)}
        new_b = {old: new for new, old in enumerate(ib)}
        cap_b = {s: j for j, s in enumerate(tid_b)}
        ra, rb, ta, tb = [], [], [], []
        for j, s in enumerate(tid_a):
            jb = cap_b.get(s)
            if jb is None or img_a[j] not in new_a or img_b[jb] not in new_b:
                continue
            if img_ids_a[img_a[j]] != img_ids_b[img_b[jb]]:
                raise MismatchError(f"caption {s!r} belongs to image {img_ids_a[img_a[j]]!r} in the baseline but to "
                                    f"{img_ids_b[img_b[jb]]!r} in the new run")
            ra.append(ps_a["t2i_rank"][j])
            rb.append(ps_b["t2i_rank"][jb])
            ta.append(new_a[img_a[j]])
            tb.append(new_b[img_b[jb]])
        out_a["t2i_rank"], out_b["t2i_rank"] = ra, rb
        out_a["t2i_image"], out_b["t2i_image"] = ta, tb
        return out_a, out_b, na, nb, n_shared

    def probe(self, a, b, data, n):
        ims, txts = list(data.images[:n]), list(data.texts[:n])
        from mmbench.tasks.checks import _as_array

        names, out_a, out_b = ["encode_images()", "encode_texts()"], [], []
        for m, out in ((a, out_a), (b, out_b)):
            ib, tb = m.encode_images(ims), m.encode_texts(txts)
            out += [ib, tb] if not hasattr(m, "score") else [m.score(ib, tb), m.score(ib, tb)]
        if hasattr(a, "score"):
            names = ["score()", "score()"]
        return names, [_as_array(x, names[0]) for x in out_a], [_as_array(x, names[0]) for x in out_b]

    def conformance(self, kit, model, data):
        cross = hasattr(model, "score")
        with kit.check("methods", fatal=True):
            for m in ("encode_images", "encode_texts") + (("score",) if cross else ()):
                assert callable(getattr(model, m, None)), f"retrieval model has no callable {m}()"
            assert data.images and data.texts, "the conformance data has no images or texts"
        images = list(data.images[:kit.batch])
        texts = list(data.texts[:kit.batch])

        def dual_out(fn, items, what):
            return kit.numeric(fn(items), what, (len(items), None))

        if not cross:
            with kit.check("outputs", fatal=True):
                im = dual_out(model.encode_images, images, "encode_images() output")
                tx = dual_out(model.encode_texts, texts, "encode_texts() output")
                assert im.shape[1] == tx.shape[1], (f"image embeddings have dimension {im.shape[1]} but text "
                                                    f"embeddings {tx.shape[1]}; a dual encoder needs one space")
                assert im.shape[1] > 0, "embeddings have dimension 0"
            with kit.check("deterministic"):
                kit.same(im, dual_out(model.encode_images, images, "encode_images() output"),
                         "encode_images() called twice", exact=True)
                kit.same(tx, dual_out(model.encode_texts, texts, "encode_texts() output"),
                         "encode_texts() called twice", exact=True)
            with kit.check("batch-invariant"):
                im1 = np.concatenate([dual_out(model.encode_images, [x], "encode_images() output") for x in images])
                tx1 = np.concatenate([dual_out(model.encode_texts, [t], "encode_texts() output") for t in texts])
                kit.same(im, im1, f"encode_images(): batch of {len(images)} vs batches of 1")
                kit.same(tx, tx1, f"encode_texts(): batch of {len(texts)} vs batches of 1")
        else:
            with kit.check("outputs", fatal=True):
                ib, tb = model.encode_images(images), model.encode_texts(texts)
                s = kit.numeric(model.score(ib, tb), "score() output", (len(images), len(texts)))
            with kit.check("deterministic"):
                s2 = kit.numeric(model.score(model.encode_images(images), model.encode_texts(texts)),
                                 "score() output", (len(images), len(texts)))
                kit.same(s, s2, "encode + score called twice", exact=True)
            with kit.check("batch-invariant"):
                ib1 = [model.encode_images([x]) for x in images]
                tb1 = [model.encode_texts([t]) for t in texts]
                s1 = np.array([[kit.numeric(model.score(i, t), "score() output", (1, 1))[0, 0] for t in tb1]
                               for i in ib1])
                kit.same(s, s1, f"score(): blocks of {len(images)}x{len(texts)} vs 1x1")
        with kit.check("empty-batch"):
            kit.raises_or_empty(model.encode_images, [], "encode_images([])", kit.empty_array("D"))
            kit.raises_or_empty(model.encode_texts, [], "encode_texts([])", kit.empty_array("D"))
        kit.wrong_form(images[0], lambda item: model.encode_images([item]), "encode_images()")
        kit.check_evaluate(self, model, data)


def _caption_images(ps: dict) -> list[int]:
    """Each caption's image index (the record's ``t2i_image``, or the 5-per-image layout of older records)."""
    from mmbench.errors import MismatchError

    try:
        return M.unit_stats(ps)[1].ti.tolist()
    except MMBenchError as exc:
        raise MismatchError(str(exc)) from None


KIND = Retrieval()
