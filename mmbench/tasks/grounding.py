"""Grounding: (image, referring expression) -> ranked boxes.

Model protocol: ``predict(inputs: list[GroundingInput]) -> list[(K, 4) array]``, best
first. A ``GroundingInput`` has ``id``, ``image`` (an ``ImageItem``) and ``expression``
only: the ground-truth boxes stay with the scorer (``GroundingSample.boxes``, always pixel
xyxy) and never reach the model. The model declares its box format with attributes
``box_format`` ("xyxy", "xywh" or "cxcywh", default "xyxy") and ``box_normalized``
(default False: pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmbench.errors import DataError, PluginError
from mmbench.metrics.grounding import BOX_FORMATS, grounding_metrics, to_xyxy
from mmbench.tasks.base import DatasetMeta, ImageItem, ModelInput, TaskOption, TaskResult, as_numpy, batched, \
    progress_bar, timed

OPTIONS = (
    TaskOption("threshold", float, 0.5, "IoU a hit needs, in (0, 1] (default 0.5)", low=0.0, high=1.0),
    TaskOption("convention", str, "continuous", "IoU convention: continuous (default), inclusive (+1 pixel) or giou",
               choices=("continuous", "inclusive", "giou")),
)


class GroundingInput(ModelInput):
    """What a grounding model sees of one sample: the image and the expression."""

    __slots__ = ("id", "image", "expression")
    TARGET_FIELDS = ("boxes",)

    def __init__(self, id: str, image: ImageItem, expression: str):
        self.id, self.image, self.expression = id, image, expression


@dataclass
class GroundingSample:
    """One annotated sample: the model's inputs plus the target boxes (scorer only)."""

    id: str
    image: ImageItem
    expression: str
    boxes: np.ndarray  # (G, 4) pixel xyxy ground truth; a hit on any counts

    def input_view(self) -> GroundingInput:
        return GroundingInput(self.id, self.image, self.expression)


@dataclass
class GroundingData:
    samples: list[GroundingSample]
    meta: DatasetMeta

    def __post_init__(self):
        for s in self.samples:
            b = np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4)
            if b.shape[0] == 0:
                raise DataError(None, f"sample {s.id!r} has no ground-truth box", field="boxes")
            s.boxes = b


@runtime_checkable
class Grounder(Protocol):
    def predict(self, inputs: list[GroundingInput]) -> list: ...


def evaluate(model: Any, data: GroundingData, *, batch_size: int = 32, show_progress: bool = True,
             name: str = "", threshold: float = 0.5, convention: str = "continuous") -> TaskResult:
    fmt = getattr(model, "box_format", "xyxy")
    normalized = bool(getattr(model, "box_normalized", False))
    if fmt not in BOX_FORMATS:
        raise PluginError(f"{name}: box_format {fmt!r} is not one of {', '.join(BOX_FORMATS)}")
    timings: dict[str, float] = {}
    preds: list[np.ndarray] = []
    with timed(timings, "predict"), progress_bar("ground expressions", len(data.samples), show_progress) as adv:
        for chunk in batched(data.samples, batch_size):
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
        res = grounding_metrics(preds, [s.boxes for s in data.samples], threshold=threshold,
                                convention=convention, sizes=[s.image.size for s in data.samples])
    return TaskResult(
        metrics=res["metrics"], per_sample={"hit": res["hit"], "hit_rank": res["hit_rank"]},
        sample_ids={k: [s.id for s in data.samples] for k in ("hit", "hit_rank")},
        details={"box_format": fmt, "box_normalized": normalized, "iou_convention": convention,
                 "threshold": threshold, "invalid_boxes": res["invalid"],
                 "invalid_reasons": res["invalid_reasons"], "n_samples": len(data.samples)},
        timings=timings,
    )
