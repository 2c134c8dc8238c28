"""Image+text classification (MVSA-style sentiment and the like).

Model protocol: ``predict_proba(inputs: list[ClassificationInput]) -> (B, C)`` class
scores (argmax is the prediction). A ``ClassificationInput`` has ``id``, ``text`` and
``image`` only: the label of an evaluated sample never reaches the model. Optional
``fit(train: ClassificationData, val: ClassificationData | None)`` runs on the train split
first and sees the train/val labels (that is what training is). ``train.unlabelled`` holds
samples without labels for semi-supervised methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmbench.errors import DataError
from mmbench.metrics.classification import classification_metrics
from mmbench.tasks.base import DatasetMeta, ImageItem, ModelInput, TaskResult, as_numpy, batched, \
    check_shape, progress_bar, timed


class ClassificationInput(ModelInput):
    """What a classifier sees of one sample: its text and/or image."""

    __slots__ = ("id", "text", "image")
    TARGET_FIELDS = ("label",)

    def __init__(self, id: str, text: str | None, image: ImageItem | None):
        self.id, self.text, self.image = id, text, image

OPTIONS: tuple = ()


@dataclass
class ClassificationSample:
    """One annotated sample: the model's inputs plus the label (scorer and ``fit`` only)."""

    id: str
    text: str | None
    image: ImageItem | None
    label: int | None  # None: unlabelled

    def input_view(self) -> ClassificationInput:
        return ClassificationInput(self.id, self.text, self.image)


@dataclass
class ClassificationData:
    samples: list[ClassificationSample]
    classes: list[str]
    meta: DatasetMeta
    unlabelled: list[ClassificationSample] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.classes)
        for s in self.samples:
            if s.label is None or not (0 <= int(s.label) < n):
                raise DataError(None, f"sample {s.id!r} has label {s.label!r}", field="label",
                                expected=f"an integer in [0, {n}) for classes {self.classes}")

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


@runtime_checkable
class Classifier(Protocol):
    def predict_proba(self, inputs: list[ClassificationInput]) -> Any: ...


def evaluate(model: Any, data: ClassificationData, *, batch_size: int = 256, show_progress: bool = True,
             name: str = "") -> TaskResult:
    timings: dict[str, float] = {}
    scores = []
    n_cls = len(data.classes)
    with timed(timings, "predict"), progress_bar("classify", len(data.samples), show_progress) as adv:
        for chunk in batched(data.samples, batch_size):
            arr = as_numpy(model.predict_proba([s.input_view() for s in chunk]), what="predict_proba() output",
                           plugin=name)
            scores.append(check_shape(arr, (len(chunk), n_cls), what="predict_proba() output", plugin=name))
            adv(len(chunk))
    scores_arr = np.concatenate(scores) if scores else np.zeros((0, n_cls))
    pred = scores_arr.argmax(1)
    y = data.labels
    with timed(timings, "metrics"):
        res = classification_metrics(y, pred, n_cls, data.classes)
    return TaskResult(
        metrics=res["metrics"], per_sample={"correct": (pred == y).astype(int).tolist(),
                                            "pred": pred.tolist(), "label": y.tolist(),
                                            "n_classes": [n_cls] * len(y)},
        sample_ids={k: [s.id for s in data.samples] for k in ("correct", "pred", "label", "n_classes")},
        details={"classes": data.classes, "per_class": res["per_class"],
                 "confusion_matrix": res["confusion_matrix"], "n_samples": len(y)},
        timings=timings, extra={"scores": scores_arr},
    )
