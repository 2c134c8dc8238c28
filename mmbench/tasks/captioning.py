"""Captioning: images -> one caption each.

Model protocol: ``generate(images: list[ImageItem]) -> list[str]``; optional
``fit(train: CaptioningData, val: CaptioningData | None)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mmbench.errors import DataError, PluginError
from mmbench.metrics import captioning as M
from mmbench.metrics.captioning import caption_scores
from mmbench.tasks.base import DatasetMeta, ImageItem, MetricInfo, TaskKind, TaskOption, TaskResult, batched, \
    progress_bar, timed

OPTIONS = (
    TaskOption("metrics_impl", str, "fast", "fast (mmbench's vectorised BLEU / ROUGE-L / CIDEr-D, identical to "
               "pycocoevalcap, METEOR over parallel JVMs; default) or reference (pycocoevalcap's own scorers)",
               choices=("fast", "reference")),
    TaskOption("meteor_jobs", int, 0, "METEOR JVMs (0: one per idle core with >= 1000 images each; fast only)",
               low=-1),
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
        from mmbench.datasets.common import data_where, first_duplicate

        where = data_where(self.meta)
        empty = [im.id for im, r in zip(self.images, self.references) if not r]
        if empty:
            raise DataError(where, f"{len(empty)} image(s) have no reference caption (first: {empty[:5]})",
                            field="references", expected="at least one reference caption per image")
        dup = first_duplicate(im.id for im in self.images)
        if dup is not None:
            raise DataError(where, f"image id {dup!r} appears twice (it would be evaluated twice)", field="images.id",
                            expected="unique image ids")
        for im, refs in zip(self.images, self.references):
            bad = [r for r in refs if not isinstance(r, str) or not r.strip()]
            if bad:
                raise DataError(where, f"image {im.id!r} has an empty or non-string reference {bad[0]!r}",
                                field="references", expected="non-empty reference captions")


@runtime_checkable
class Captioner(Protocol):
    def generate(self, images: list[ImageItem]) -> list[str]: ...


def evaluate(model: Any, data: CaptioningData, *, batch_size: int | None = 32, show_progress: bool = True,
             name: str = "", tokenizer: str = "python", metrics_impl: str = "fast",
             meteor_jobs: int = 0) -> TaskResult:
    """Caption every image, then score with pycocoevalcap's numbers.

    ``tokenizer``: "python" (default; Java-free, token-identical to the PTB step on all COCO
    val2017 captions), "ptb" (the Java reference) or "whitespace". ``metrics_impl``: "fast"
    (default: mmbench's vectorised scorers, identical to pycocoevalcap, METEOR over ``meteor_jobs``
    parallel JVMs, 0 = automatic) or "reference" (pycocoevalcap's own scorers).
    """
    timings: dict[str, float] = {}
    batch_size = batch_size or 32
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
        sc = caption_scores(dict(zip(ids, data.references)), dict(zip(ids, preds)), tokenizer=tokenizer,
                            metrics_impl=metrics_impl, meteor_jobs=int(meteor_jobs) or None)
    order = sc["ids"]
    return TaskResult(
        metrics=sc["metrics"], per_sample=sc["per_image"], sample_ids={"image": order},
        details={"unavailable": sc["unavailable"], "tokenizer": tokenizer, "metrics_impl": metrics_impl,
                 "n_images": len(ids),
                 "bootstrap_unit": "image (BLEU from per-image sufficient statistics; CIDEr document "
                                   "frequencies fixed to the full evaluated reference set)",
                 "predictions": [{"image_id": i, "caption": c} for i, c in zip(ids, preds)]},
        timings=timings,
    )


class Captioning(TaskKind):
    """Image captioning: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D with pycocoevalcap's numbers."""

    name = "captioning"
    description = "image captioning: one caption per image, scored against its reference captions"
    data_type = CaptioningData
    protocol = Captioner
    protocol_summary = "generate(images) -> one caption (str) per image"
    options = OPTIONS
    metrics = tuple(MetricInfo(f"Bleu_{n}", unit="fraction", help=f"corpus BLEU-{n}") for n in range(1, 5)) + (
        MetricInfo("METEOR", unit="fraction", help="METEOR 1.5 (the official jar)"),
        MetricInfo("ROUGE_L", unit="fraction", help="ROUGE-L F (beta 1.2), mean over images"),
        MetricInfo("CIDEr", unit="x10", help="CIDEr-D, mean over images, pycocoevalcap's x10 scale"),
        MetricInfo("SPICE", unit="fraction", help="SPICE (needs CoreNLP; reported unavailable offline)"),
    )
    headline = ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
    main = "CIDEr"
    per_sample_units = {k: "image" for k in ("CIDEr", "ROUGE_L", "METEOR", "SPICE", "bleu_stats", "Bleu_4",
                                             "Bleu_1", "Bleu_2", "Bleu_3")}
    unit = "image"
    conventions = ("tokenizer",)
    default_batch_size = 32
    evaluate_loop = staticmethod(evaluate)
    metrics_module = M
    scaffold_description = "Scaffolded captioner (names the dominant palette colours)."
    scaffold_template = "captioning"


    def limit(self, data, n):
        return CaptioningData(images=list(data.images[:n]), references=list(data.references[:n]), meta=data.meta)

    def probe(self, a, b, data, n):
        ims = list(data.images[:n])
        ca, cb = a.generate(ims), b.generate(ims)
        return [f"generate() image {i}" for i in range(len(ims))], list(ca), list(cb)

    def conformance(self, kit, model, data):
        with kit.check("methods", fatal=True):
            assert callable(getattr(model, "generate", None)), "captioning model has no callable generate()"
        images = list(data.images[:kit.batch])

        def gen(items):
            out = model.generate(items)
            assert isinstance(out, (list, tuple)), f"generate() returned {type(out).__name__}, expected a list of str"
            out = list(out)
            assert len(out) == len(items), f"generate() returned {len(out)} captions for {len(items)} images"
            bad = [type(x).__name__ for x in out if not isinstance(x, str)]
            assert not bad, f"generate() returned non-string captions (first: {bad[0]})"
            return out

        with kit.check("outputs", fatal=True):
            caps = gen(images)
            empty = [i for i, x in enumerate(caps) if not x.strip()]
            assert not empty, f"generate() returned {len(empty)} empty caption(s) (first at index {empty[0]})"
        with kit.check("deterministic"):
            again = gen(images)
            diff = [i for i, (x, y) in enumerate(zip(caps, again)) if x != y]
            assert not diff, (f"generate() called twice differs at index {diff[0]}: {caps[diff[0]]!r} vs "
                              f"{again[diff[0]]!r}")
        with kit.check("batch-invariant"):
            one = [gen([x])[0] for x in images]
            diff = [i for i, (x, y) in enumerate(zip(caps, one)) if x != y]
            assert not diff, (f"generate(): batch of {len(images)} vs batches of 1 differ at index {diff[0]}: "
                              f"{caps[diff[0]]!r} vs {one[diff[0]]!r}")
        with kit.check("empty-batch"):
            kit.raises_or_empty(model.generate, [], "generate([])", kit.empty_list)
        kit.wrong_form(images[0], lambda item: model.generate([item]), "generate()")
        # no ``evaluate`` check: METEOR needs Java (the eval itself is exercised by the kit's ``run`` check)


KIND = Captioning()
