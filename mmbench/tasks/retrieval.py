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

from mmbench.errors import PluginError
from mmbench.metrics.retrieval import check_text_image, retrieval_metrics_from_embeddings, \
    retrieval_metrics_from_tiles
from mmbench.tasks.base import DatasetMeta, ImageItem, TaskOption, TaskResult, as_numpy, batched, check_shape, \
    progress_bar, timed

OPTIONS = (
    TaskOption("ties", str, "pessimistic", "how tied scores rank: pessimistic (default) or optimistic",
               choices=("pessimistic", "optimistic")),
    TaskOption("memory_budget_mb", float, 512.0, "working memory for similarities in MB (> 0)", low=0.0),
)


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
        self.text_image = check_text_image(self.text_image, len(self.images), len(self.texts))

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


def evaluate(model: Any, data: RetrievalData, *, batch_size: int = 64, show_progress: bool = True,
             name: str = "", ties: str = "pessimistic", memory_budget_mb: float | str = 512) -> TaskResult:
    """Rank every caption for every image and every image for every caption.

    No full (images, texts) matrix is formed; ``memory_budget_mb`` bounds the working
    memory. Dual encoders: similarities are formed and ranked one row block at a time from
    the embeddings. Cross scorers: ``score`` is called on the same image-block x text-block
    tiles as :func:`compute_sims` (blocks of ``batch_size``) and the tiles are counted as
    they come (:func:`mmbench.metrics.retrieval.retrieval_metrics_from_tiles`), so ranks
    equal those of the full matrix; in fold mode only the tiles inside a fold are scored.
    """
    timings: dict[str, float] = {}
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
    sample_ids = {"i2t_rank": image_ids, "t2i_rank": text_ids, "t2i_image": text_ids}
    if data.folds > 1:
        per_sample["image_fold"] = res["image_fold"].tolist()
        sample_ids["image_fold"] = image_ids
    return TaskResult(metrics=res["metrics"], per_sample=per_sample, sample_ids=sample_ids, details=details,
                      timings=timings)


def _captions_per_image(text_image: np.ndarray) -> dict[str, int]:
    """{captions per image: number of images}, e.g. {"5": 4987, "6": 12, "7": 1} (protocol in force)."""
    counts = np.bincount(text_image)
    vals, n = np.unique(counts, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(vals, n)}
