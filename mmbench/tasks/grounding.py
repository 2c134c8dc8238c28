"""Grounding: (image, referring expression) -> ranked boxes.

Model protocol: ``predict(inputs: list[GroundingInput]) -> list[(K, 4) array]``, best
first. A ``GroundingInput`` has ``id``, ``image`` (an ``ImageItem``) and ``expression``
only: the ground-truth boxes stay with the scorer (``GroundingSample.boxes``, always pixel
xyxy) and never reach the model. The model declares its box format with attributes
``box_format`` ("xyxy", "xywh" or "cxcywh", default "xyxy") and ``box_normalized``
(default False: pixels).

Input form ``proposals`` (this kind's extra form): the image's region features
``ImageItem.regions`` (N, D), their pixel xyxy boxes ``ImageItem.region_boxes`` (N, 4) and
the image ``size``. A proposal-ranking model (ViLBERT's referring expressions: each
proposal scored, the best one's box is the prediction) returns the proposals' boxes in
its ranking. The boxes are detector outputs, inputs like the features; the ground truth
stays with the scorer.

Phrase grounding (Flickr30k Entities): the expression is a phrase of a sentence. Its
``GroundingInput`` then also has ``context`` (the whole sentence) and ``spans`` (the
phrase's (begin, end) character spans in it, MDETR's ``tokens_positive``), so a model that
reads the sentence once and scores each phrase from its tokens (MDETR's
``PostProcessFlickr``) can; ``context`` is None for a stand-alone referring expression. A
sample's ``category`` (the phrase types) only groups the results (``details.by_category``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmbench.errors import DataError, PluginError
from mmbench.metrics import grounding as M
from mmbench.metrics.grounding import BOX_FORMATS, box_problems, grounding_metrics, to_xyxy
from mmbench.tasks.base import DatasetMeta, ImageItem, MetricInfo, ModelInput, TaskKind, TaskOption, TaskResult, \
    as_numpy, progress_bar, timed

OPTIONS = (
    TaskOption("threshold", float, 0.5, "IoU a hit needs, in (0, 1] (default 0.5)", low=0.0, high=1.0),
    TaskOption("convention", str, "continuous", "IoU convention: continuous (default), inclusive (+1 pixel, "
                                                "MAttNet), giou (MDETR) or plus1 (ViLBERT)",
               choices=("continuous", "inclusive", "giou", "plus1")),
    TaskOption("strict", bool, False, "a hit needs IoU > threshold instead of >= (ViLBERT's refer evaluation: "
                                      "strict=true with convention=plus1)"),
    TaskOption("outside", str, "auto", "a predicted box more than 5% outside the image: miss (a failure), score "
                                       "(IoU as it is, as MDETR's evaluators do) or auto (default: score under "
                                       "giou, else miss)", choices=("auto", "miss", "score")),
)


class GroundingInput(ModelInput):
    """What a grounding model sees of one sample: the image and the expression."""

    __slots__ = ("id", "image", "expression", "context", "spans")
    TARGET_FIELDS = ("boxes",)

    def __init__(self, id: str, image: ImageItem, expression: str, context: str | None = None,
                 spans: tuple[tuple[int, int], ...] | None = None):
        self.id, self.image, self.expression = id, image, expression
        self.context, self.spans = context, spans


@dataclass
class GroundingSample:
    """One annotated sample: the model's inputs plus the target boxes (scorer only)."""

    id: str
    image: ImageItem
    expression: str
    boxes: np.ndarray  # (G, 4) pixel xyxy ground truth; a hit on any counts
    context: str | None = None  # the sentence a phrase comes from (phrase grounding), else None
    spans: tuple[tuple[int, int], ...] | None = None  # the phrase's (begin, end) character spans in context
    category: tuple[str, ...] = ()  # e.g. Flickr30k Entities phrase types; results are also given per category

    def input_view(self) -> GroundingInput:
        return GroundingInput(self.id, self.image, self.expression, self.context, self.spans)


@dataclass
class GroundingData:
    samples: list[GroundingSample]
    meta: DatasetMeta

    def __post_init__(self):
        from mmbench.datasets.common import data_where, first_duplicate

        where = data_where(self.meta)
        dup = first_duplicate(s.id for s in self.samples)
        if dup is not None:
            raise DataError(where, f"sample id {dup!r} appears twice", field="samples.id", expected="unique sample ids")
        for s in self.samples:
            try:
                b = np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4)
            except (TypeError, ValueError):
                raise DataError(where, f"sample {s.id!r}: boxes {s.boxes!r:.60}", field="boxes",
                                expected="(G, 4) pixel xyxy numbers") from None
            if b.shape[0] == 0:
                raise DataError(where, f"sample {s.id!r} has no ground-truth box", field="boxes",
                                expected="at least one box")
            if not np.isfinite(b).all() or (b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any():
                raise DataError(where, f"sample {s.id!r} has an impossible ground-truth box {b.tolist()!r:.80}",
                                field="boxes", expected="finite xyxy boxes with x2 > x1, y2 > y1")
            size = s.image.size
            if size is not None and (b[:, :2] < -2).any() | (b[:, 2] > size[0] + 2).any() | (b[:, 3] > size[1] + 2).any():
                raise DataError(where, f"sample {s.id!r}: ground-truth box {b.tolist()!r:.80} lies outside the "
                                       f"{size[0]}x{size[1]} image", field="boxes",
                                expected="boxes inside the image (pixel xyxy)")
            rb = getattr(s.image, "region_boxes", None)
            if rb is not None:
                check_proposals(s.image, where)
            if not isinstance(s.expression, str) or not s.expression.strip():
                raise DataError(where, f"sample {s.id!r} has an empty expression {s.expression!r}", field="expression",
                                expected="non-empty expression text")
            if s.context is not None or s.spans is not None:
                s.spans = check_spans(s, where)
            s.category = tuple(str(c) for c in (s.category or ()))
            s.boxes = b


def check_spans(s: GroundingSample, where=None) -> tuple[tuple[int, int], ...]:
    """The sample's spans as a tuple of (begin, end) pairs inside ``context``, or DataError."""
    if not isinstance(s.context, str) or not s.context.strip():
        raise DataError(where, f"sample {s.id!r} has spans but context {s.context!r:.60}", field="context",
                        expected="the sentence the phrase comes from")
    try:
        spans = tuple((int(b), int(e)) for b, e in s.spans)
    except (TypeError, ValueError):
        raise DataError(where, f"sample {s.id!r}: spans {s.spans!r:.60}", field="spans",
                        expected="a list of (begin, end) character offsets") from None
    if not spans or any(not 0 <= b < e <= len(s.context) for b, e in spans):
        raise DataError(where, f"sample {s.id!r}: spans {list(spans)!r:.60} for a context of {len(s.context)} "
                               "characters", field="spans",
                        expected="at least one (begin, end) with 0 <= begin < end <= len(context)")
    return spans


def check_proposals(image: ImageItem, where=None) -> None:
    """Raise DataError unless ``image`` is a consistent ``proposals`` item: (N, D) regions, (N, 4) finite
    pixel xyxy ``region_boxes`` (x2 >= x1, y2 >= y1) and a known size."""
    feats, boxes = image.regions, image.region_boxes
    b = np.asarray(boxes)
    n = np.shape(feats)[0] if feats is not None and np.ndim(feats) == 2 else None
    if feats is None or n is None:
        raise DataError(where, f"image {image.id!r} has region boxes but no (N, D) region features",
                        field="regions", expected="region features with one row per proposal box")
    if b.ndim != 2 or b.shape != (n, 4) or b.dtype.kind not in "iuf":
        raise DataError(where, f"image {image.id!r}: region_boxes has shape {b.shape} ({b.dtype}) for {n} regions",
                        field="region_boxes", expected=f"({n}, 4) pixel xyxy numbers, one per region row")
    if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise DataError(where, f"image {image.id!r} has an impossible proposal box", field="region_boxes",
                        expected="finite xyxy boxes with x2 >= x1, y2 >= y1")
    if image.size is None:
        raise DataError(where, f"image {image.id!r} has proposals but no size", field="size",
                        expected="(width, height) in pixels")


def batch_bounds(samples, batch_size: int) -> list[tuple[int, int]]:
    """The evaluate loop's batches as [lo, hi) ranges: ``batch_size`` units each, where a unit is a run of
    consecutive phrases of one sentence (same image and ``context``) or one stand-alone expression. A sentence's
    phrases are never split across batches, so a model reads each sentence once, with the same batch partners
    as the official loader (MDETR batches sentences: ashkamath/mdetr:datasets/flickr.py)."""
    size = max(1, int(batch_size))
    out: list[tuple[int, int]] = []
    lo, units, prev = 0, 0, None
    for i, s in enumerate(samples):
        ctx = getattr(s, "context", None)
        key = None if ctx is None else (s.image.id, ctx)
        if key is None or key != prev:
            if units == size:
                out.append((lo, i))
                lo, units = i, 0
            units += 1
        prev = key
    if len(samples):
        out.append((lo, len(samples)))
    return out


@runtime_checkable
class Grounder(Protocol):
    def predict(self, inputs: list[GroundingInput]) -> list: ...


def evaluate(model: Any, data: GroundingData, *, batch_size: int | None = 32, show_progress: bool = True,
             name: str = "", threshold: float = 0.5, convention: str = "continuous", strict: bool = False,
             outside: str = "auto") -> TaskResult:
    fmt = getattr(model, "box_format", "xyxy")
    normalized = bool(getattr(model, "box_normalized", False))
    if fmt not in BOX_FORMATS:
        raise PluginError(f"{name}: box_format {fmt!r} is not one of {', '.join(BOX_FORMATS)}")
    timings: dict[str, float] = {}
    batch_size = batch_size or 32
    preds: list[np.ndarray] = []
    with timed(timings, "predict"), progress_bar("ground expressions", len(data.samples), show_progress) as adv:
        for lo, hi in batch_bounds(data.samples, batch_size):
            chunk = data.samples[lo:hi]
            out = model.predict([s.input_view() for s in chunk])
            if not isinstance(out, (list, tuple)) or len(out) != len(chunk):
                raise PluginError(f"{name}: predict() must return a list of {len(chunk)} box arrays")
            for s, boxes in zip(chunk, out):
                arr = as_numpy(boxes, what="predicted boxes", plugin=name).astype(np.float64)
                if arr.size % 4:
                    raise PluginError(f"{name}: predicted boxes for {s.id!r} have shape {arr.shape}, expected (K, 4)")
                size = s.image.size
                if normalized and size is None:
                    raise DataError(None, f"sample {s.id!r}: image size unknown, cannot use normalised boxes")
                preds.append(to_xyxy(arr, fmt, normalized=normalized, size=size))
            adv(len(chunk))
    with timed(timings, "metrics"):
        score_outside = M.scores_outside(outside, convention)
        res = grounding_metrics(preds, [s.boxes for s in data.samples], threshold=threshold,
                                convention=convention, strict=bool(strict), sizes=[s.image.size for s in data.samples],
                                score_outside=score_outside)
        details_extra = {}
        cats = [s.category for s in data.samples]
        if any(cats):
            details_extra["by_category"] = M.by_category(res["hit"], res["hit_rank"], cats)
    return TaskResult(
        metrics=res["metrics"], per_sample={"hit": res["hit"], "hit_rank": res["hit_rank"]},
        sample_ids={"sample": [s.id for s in data.samples]},
        details={"box_format": fmt, "box_normalized": normalized, "iou_convention": convention,
                 "threshold": threshold, "strict": bool(strict),
                 "outside": "score" if score_outside else "miss", "invalid_boxes": res["invalid"],
                 "invalid_reasons": res["invalid_reasons"], "n_samples": len(data.samples), **details_extra},
        timings=timings,
    )


class Grounding(TaskKind):
    """Referring-expression grounding: top-1 accuracy at an IoU threshold and Precision@K."""

    name = "grounding"
    description = "visual grounding: (image, referring expression) -> ranked boxes"
    data_type = GroundingData
    input_type = GroundingInput
    protocol = Grounder
    protocol_summary = "predict(inputs) -> ranked (K, 4) boxes per input, with box_format and box_normalized"
    options = OPTIONS
    metrics = (MetricInfo("acc@*", help="top-1 box with IoU >= threshold"),
               MetricInfo("P@*", help="a hit among the top K boxes"))
    headline = ("acc@*", "P@1", "P@5", "P@10")
    main = "acc@*"
    per_sample_units = {"hit": "sample", "hit_rank": "sample"}
    unit = "sample"
    conventions = ("iou_convention", "threshold", "strict", "outside")
    default_batch_size = 32
    evaluate_loop = staticmethod(evaluate)
    metrics_module = M
    extra_forms = ("proposals",)
    scaffold_description = "Scaffolded grounder (boxes the pixels of the named colour)."
    scaffold_template = "grounding"


    def batch_bounds(self, items, batch_size):
        return batch_bounds(items, batch_size)

    def canonical_metric(self, metric: str) -> str:
        return "acc" if metric.startswith("acc@") else metric

    def limit(self, data, n):
        return GroundingData(samples=list(data.samples[:n]), meta=data.meta)

    def probe(self, a, b, data, n):
        from mmbench.tasks.checks import _as_array

        inputs = [s.input_view() for s in data.samples[:n]]
        pa, pb = a.predict(inputs), b.predict(inputs)
        return ([f"predict() sample {x.id!r}" for x in inputs], [_as_array(x, "boxes") for x in pa],
                [_as_array(x, "boxes") for x in pb])

    def conformance(self, kit, model, data):
        with kit.check("methods", fatal=True):
            assert callable(getattr(model, "predict", None)), "grounding model has no callable predict()"
            fmt = getattr(model, "box_format", "xyxy")
            assert fmt in BOX_FORMATS, f"box_format {fmt!r} is not one of {', '.join(BOX_FORMATS)}"
            norm = getattr(model, "box_normalized", False)
            assert isinstance(norm, (bool, np.bool_)), f"box_normalized must be a bool, got {type(norm).__name__}"
        samples = [s.input_view() for s in data.samples[:kit.batch]]
        with kit.check("inputs-only", fatal=True):
            kit.inputs_only(lambda: model.predict(samples), "predict()")

        def pred(items):
            out = model.predict(items)
            assert isinstance(out, (list, tuple)), f"predict() returned {type(out).__name__}, expected a list of arrays"
            assert len(out) == len(items), f"predict() returned {len(out)} box arrays for {len(items)} samples"
            arrs = []
            for s, b in zip(items, out):
                arr = kit.numeric(b, f"predict() boxes for sample {s.id!r}", (None, 4))
                assert arr.shape[0] >= 1, f"predict() returned no box for sample {s.id!r}"
                arrs.append(arr)
            return arrs

        with kit.check("outputs", fatal=True):
            boxes = pred(samples)
            for s, b in zip(samples, boxes):
                if norm:
                    assert (b >= -0.05).all() and (b <= 1.05).all(), \
                        f"sample {s.id!r}: box_normalized is True but boxes are outside [0, 1]: {b[0].tolist()}"
                xyxy = to_xyxy(b, fmt, normalized=bool(norm), size=s.image.size)
                probs = [p for p in box_problems(xyxy, s.image.size) if p]
                assert not probs, (f"sample {s.id!r}: predicted box {b[0].tolist()} read as box_format={fmt!r}, "
                                   f"box_normalized={bool(norm)} is impossible: {probs[0]}")
        with kit.check("deterministic"):
            for s, x, y in zip(samples, boxes, pred(samples)):
                kit.same(x, y, f"predict() called twice, sample {s.id!r}", exact=True)
        with kit.check("batch-invariant"):
            for s, x in zip(samples, boxes):
                kit.same(x, pred([s])[0], f"predict(): batch of {len(samples)} vs batch of 1, sample {s.id!r}")
        with kit.check("empty-batch"):
            kit.raises_or_empty(model.predict, [], "predict([])", kit.empty_list)
        s0 = samples[0]
        kit.wrong_form(s0.image, lambda item: model.predict([GroundingInput(s0.id, item, s0.expression, s0.context,
                                                                            s0.spans)]),
                       "predict()")
        kit.check_evaluate(self, model, data)


KIND = Grounding()
