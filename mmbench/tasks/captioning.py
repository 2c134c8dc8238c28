"""Captioning: images -> one caption each.

Model protocol: ``generate(images: list[ImageItem]) -> list[str]``; optional
``fit(train: CaptioningData, val: CaptioningData | None)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mmbench.errors import DataError, PluginError
from mmbench.metrics.captioning import caption_scores
from mmbench.tasks.base import DatasetMeta, ImageItem, TaskOption, TaskResult, batched, progress_bar, timed

OPTIONS = (
    TaskOption("tokenizer", str, "python", "python (Java-free PTB equivalent, default), ptb (the Java reference) "
               "or whitespace", choices=("python", "ptb", "whitespace")),
)


@dataclass
class CaptioningData:
    """Images and their reference captions (any number per image, at least one)."""

    images: list[ImageItem]
    references: list[list[str]]
    meta: DatasetMeta

    def __post_init__(self):
        if len(self.images) != len(self.references):
            raise DataError(None, f"{len(self.images)} images but {len(self.references)} reference lists")
        empty = [im.id for im, r in zip(self.images, self.references) if not r]
        if empty:
            raise DataError(None, f"{len(empty)} image(s) have no reference caption (first: {empty[:5]})")


@runtime_checkable
class Captioner(Protocol):
    def generate(self, images: list[ImageItem]) -> list[str]: ...


def evaluate(model: Any, data: CaptioningData, *, batch_size: int = 32, show_progress: bool = True,
             name: str = "", tokenizer: str = "python") -> TaskResult:
    """Caption every image, then score with pycocoevalcap's scorers.

    ``tokenizer``: "python" (default; Java-free, token-identical to the PTB step on all COCO
    val2017 captions), "ptb" (the Java reference) or "whitespace".
    """
    timings: dict[str, float] = {}
    preds: list[str] = []
    with timed(timings, "generate"), progress_bar("caption images", len(data.images), show_progress) as adv:
        for chunk in batched(data.images, batch_size):
            out = model.generate(list(chunk))
            if not isinstance(out, (list, tuple)) or len(out) != len(chunk):
                raise PluginError(f"{name}: generate() must return a list of {len(chunk)} strings, got "
                                  f"{type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}")
            bad = [type(c).__name__ for c in out if not isinstance(c, str)]
            if bad:
                raise PluginError(f"{name}: generate() returned non-string captions ({bad[0]})")
            preds.extend(out)
            adv(len(chunk))
    ids = [im.id for im in data.images]
    if len(set(ids)) != len(ids):
        raise DataError(None, "duplicate image ids in captioning data", field="id")
    with timed(timings, "metrics"):
        sc = caption_scores(dict(zip(ids, data.references)), dict(zip(ids, preds)), tokenizer=tokenizer)
    order = sc["ids"]
    return TaskResult(
        metrics=sc["metrics"], per_sample=sc["per_image"], sample_ids={k: order for k in sc["per_image"]},
        details={"unavailable": sc["unavailable"], "tokenizer": tokenizer, "n_images": len(ids),
                 "bootstrap_unit": "image (BLEU from per-image sufficient statistics; CIDEr document "
                                   "frequencies fixed to the full evaluated reference set)",
                 "predictions": [{"image_id": i, "caption": c} for i, c in zip(ids, preds)]},
        timings=timings,
    )
