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
from mmbench.metrics import classification as M
from mmbench.metrics.classification import classification_metrics
from mmbench.tasks.base import DatasetMeta, ImageItem, MetricInfo, ModelInput, TaskKind, TaskResult, as_numpy, \
    batched, check_shape, progress_bar, timed


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
        from mmbench.datasets.common import data_where, first_duplicate

        where = data_where(self.meta)
        if isinstance(self.classes, str) or not all(isinstance(c, str) and c.strip() for c in self.classes):
            raise DataError(where, f"class names {self.classes!r:.80}", field="classes",
                            expected="a list of non-empty class-name strings")
        dup = first_duplicate(self.classes)
        if dup is not None:
            raise DataError(where, f"class name {dup!r} appears twice", field="classes", expected="distinct class names")
        dup = first_duplicate(s.id for s in list(self.samples) + list(self.unlabelled))
        if dup is not None:
            raise DataError(where, f"sample id {dup!r} appears twice", field="samples.id", expected="unique sample ids")
        for s in list(self.samples) + list(self.unlabelled):
            if (s.text is None or (isinstance(s.text, str) and not s.text.strip())) and s.image is None:
                raise DataError(where, f"sample {s.id!r} has neither text nor image", field="text/image",
                                expected="a non-empty text or an image")
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


def evaluate(model: Any, data: ClassificationData, *, batch_size: int | None = 256, show_progress: bool = True,
             name: str = "") -> TaskResult:
    timings: dict[str, float] = {}
    batch_size = batch_size or 256
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
        sample_ids={"sample": [s.id for s in data.samples]},
        details={"classes": data.classes, "per_class": res["per_class"],
                 "confusion_matrix": res["confusion_matrix"], "n_samples": len(y)},
        timings=timings, extra={"scores": scores_arr},
    )


class Classification(TaskKind):
    """Image+text classification: accuracy, macro and weighted F1 (scikit-learn's definitions)."""

    name = "classification"
    description = "image+text classification (MVSA-style sentiment and the like)"
    data_type = ClassificationData
    input_type = ClassificationInput
    protocol = Classifier
    protocol_summary = "predict_proba(inputs) -> (B, C) class scores; optional fit(train, val)"
    options = OPTIONS
    metrics = (MetricInfo("accuracy"), MetricInfo("f1_macro", help="macro-averaged F1"),
               MetricInfo("f1_weighted", help="support-weighted F1"))
    headline = ("accuracy", "f1_macro", "f1_weighted")
    main = "accuracy"
    extra_forms = ("text_only",)
    per_sample_units = {k: "sample" for k in ("label", "pred", "correct", "n_classes")}
    unit = "sample"
    default_batch_size = 256
    evaluate_loop = staticmethod(evaluate)
    metrics_module = M
    scaffold_description = "Scaffolded classifier (nearest class-mean colour histogram)."
    scaffold_template = "classification"


    def limit(self, data, n):
        return ClassificationData(samples=list(data.samples[:n]), classes=list(data.classes), meta=data.meta,
                                  unlabelled=list(data.unlabelled[:n]))

    def probe(self, a, b, data, n):
        from mmbench.tasks.checks import _as_array

        inputs = [s.input_view() for s in data.samples[:n]]
        return ["predict_proba()"], [_as_array(a.predict_proba(inputs), "scores")], \
            [_as_array(b.predict_proba(inputs), "scores")]

    def conformance(self, kit, model, data):
        with kit.check("methods", fatal=True):
            assert callable(getattr(model, "predict_proba", None)), \
                "classification model has no callable predict_proba()"
        samples = [s.input_view() for s in data.samples[:kit.batch]]
        n_cls = len(data.classes)
        with kit.check("inputs-only", fatal=True):
            kit.inputs_only(lambda: model.predict_proba(samples), "predict_proba()")

        def proba(items):
            return kit.numeric(model.predict_proba(items), "predict_proba() output", (len(items), n_cls))

        with kit.check("outputs", fatal=True):
            p = proba(samples)
        with kit.check("deterministic"):
            kit.same(p, proba(samples), "predict_proba() called twice", exact=True)
        with kit.check("batch-invariant"):
            p1 = np.concatenate([proba([s]) for s in samples])
            kit.same(p, p1, f"predict_proba(): batch of {len(samples)} vs batches of 1")
        with kit.check("empty-batch"):
            kit.raises_or_empty(model.predict_proba, [], "predict_proba([])", kit.empty_array("C"))
        s0 = samples[0]
        if "text_only" in kit.accepts and not ({"image", "image_file", "regions"} & set(kit.accepts)):
            with kit.check("wrong-input-form"):
                raise kit.Skip("text-only model: images are not an input form it reads")
        else:
            kit.wrong_form(s0.image, lambda item: model.predict_proba([ClassificationInput(s0.id, s0.text, item)]),
                           "predict_proba()")
        kit.check_evaluate(self, model, data)


KIND = Classification()
