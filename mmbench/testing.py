"""The plugin conformance kit: check a model plugin against mmbench's contract on tiny data.

Plugin authors call it from their own test suite, the way pytest plugins use ``pytester``::

    from mmbench.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin("my-model")                   # raises AssertionError on a violation

``check_plugin`` looks the model up in the installed plugins, loads the first ``limit``
samples of a dataset split (the built-in ``demo`` by default), builds the model, runs
``fit`` when the model has one, and then runs :func:`check_model`. Checks, per task kind:

- ``spec``: name, task, input forms, version and options of the ``ModelSpec`` make sense;
- ``fits-dataset``: the dataset offers the model's task and one of its input forms;
- ``build``: the factory returns a model; ``fit``: ``fit(train, val)`` runs when present;
- ``methods``: the task protocol's methods exist (``encode_images``/``encode_texts``
  [+ ``score``], ``generate``, ``predict`` + box attributes, ``predict_proba``);
- ``outputs``: types, shapes, finite numbers, right batch dimension, strings for captions,
  (K, 4) boxes that are possible in the declared ``box_format``/``box_normalized``;
- ``deterministic``: two calls on the same batch give identical outputs;
- ``batch-invariant``: one batch of N and N batches of 1 agree (to ``atol``/``rtol``);
- ``empty-batch``: an empty batch raises or gives an empty result, never garbage;
- ``wrong-input-form``: an input in a form the model does not accept raises;
- ``evaluate``: the harness's own evaluate loop runs on the model (not for captioning,
  whose metrics need Java).

Every failure names the check and the plugin. Nothing here downloads or needs a GPU.
"""

from __future__ import annotations

import math
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

__all__ = ["CheckResult", "ConformanceReport", "check_model", "check_plugin", "json_content", "limit_data"]


def json_content(path) -> Any:
    """A JSON file's content without the writing library's version stamps (``transformers_version``
    and any other ``*_version`` key, at any depth): compare shipped configs with freshly written ones
    through this, never byte for byte, so the next release of the writer does not fail the test."""
    import json
    from pathlib import Path

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if not k.endswith("_version")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass
class ConformanceReport:
    """What the kit checked on one model, and what failed."""

    plugin: str
    task: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    @property
    def passed(self) -> list[str]:
        return [c.name for c in self.checks if c.ok and not c.skipped]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        lines = [f"conformance of plugin {self.plugin!r} ({self.task}): "
                 f"{'OK' if self.ok else f'{len(self.failures)} check(s) FAILED'}"]
        for c in self.checks:
            mark = "skip" if c.skipped else ("ok" if c.ok else "FAIL")
            lines.append(f"  [{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
        return "\n".join(lines)

    __str__ = summary

    def raise_for_failures(self) -> "ConformanceReport":
        if not self.ok:
            first = self.failures[0]
            raise AssertionError(f"plugin {self.plugin!r} failed check {first.name!r}: {first.detail}\n"
                                 + self.summary())
        return self


class _Fatal(Exception):
    """A failed check after which the remaining checks cannot run."""


class _Checker:
    def __init__(self, report: ConformanceReport):
        self.report = report

    @contextmanager
    def check(self, name: str, *, fatal: bool = False) -> Iterator[None]:
        try:
            yield
        except _Skip as s:
            self.report.checks.append(CheckResult(name, True, str(s), skipped=True))
            return
        except AssertionError as exc:
            self.report.checks.append(CheckResult(name, False, str(exc)))
        except Exception as exc:  # a plugin raising where it should not is a failure of that check
            origin = exc.__cause__ if exc.__cause__ is not None and exc.__cause__.__traceback__ else exc
            tb = traceback.extract_tb(origin.__traceback__)
            where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            self.report.checks.append(CheckResult(name, False, f"raised {type(exc).__name__}: {exc}{where}"))
        else:
            self.report.checks.append(CheckResult(name, True))
            return
        if fatal:
            raise _Fatal(name)


class _Skip(Exception):
    pass


# --------------------------------------------------------------------------- data helpers

def limit_data(data: Any, limit: int) -> Any:
    """The first ``limit`` images/samples of a task data object (retrieval keeps their captions)."""
    from mmbench.tasks import CaptioningData, ClassificationData, GroundingData, RetrievalData

    if limit is None or limit <= 0:
        return data
    if isinstance(data, RetrievalData):
        n = min(limit, len(data.images))
        keep = [j for j, i in enumerate(data.text_image) if i < n]
        return RetrievalData(images=list(data.images[:n]), texts=[data.texts[j] for j in keep],
                             text_image=np.asarray(data.text_image)[keep], meta=data.meta, folds=1)
    if isinstance(data, CaptioningData):
        return CaptioningData(images=list(data.images[:limit]), references=list(data.references[:limit]),
                              meta=data.meta)
    if isinstance(data, GroundingData):
        return GroundingData(samples=list(data.samples[:limit]), meta=data.meta)
    if isinstance(data, ClassificationData):
        return ClassificationData(samples=list(data.samples[:limit]), classes=list(data.classes), meta=data.meta,
                                  unlabelled=list(data.unlabelled[:limit]))
    raise TypeError(f"unknown task data type {type(data).__name__}")


def _as_array(x: Any, what: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    assert x is not None, f"{what} is None"
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what} is not array-like ({type(x).__name__}): {exc}") from None
    assert arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool), \
        f"{what} is not a numeric array (dtype {arr.dtype}, type {type(x).__name__})"
    return arr


def _numeric(x: Any, what: str, shape: tuple) -> np.ndarray:
    arr = _as_array(x, what)
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    assert ok, f"{what} has shape {tuple(arr.shape)}, expected {want}"
    arr = arr.astype(np.float64)
    bad = int((~np.isfinite(arr)).sum())
    assert bad == 0, f"{what} contains {bad} NaN/inf value(s)"
    return arr


def _same(a: np.ndarray, b: np.ndarray, what: str, atol: float, rtol: float) -> None:
    assert a.shape == b.shape, f"{what}: shapes differ, {a.shape} vs {b.shape}"
    if atol == 0 and rtol == 0:
        diff = np.argwhere(a != b)
        assert diff.size == 0, (f"{what}: {len(diff)} value(s) differ, first at {tuple(diff[0])}: "
                                f"{a[tuple(diff[0])]!r} vs {b[tuple(diff[0])]!r}")
        return
    close = np.isclose(a, b, atol=atol, rtol=rtol)
    if not close.all():
        idx = tuple(np.argwhere(~close)[0])
        raise AssertionError(f"{what}: {int((~close).sum())} value(s) differ beyond atol={atol:g}, rtol={rtol:g}; "
                             f"max abs difference {float(np.abs(a - b).max()):.3g}, first at {idx}: "
                             f"{a[idx]!r} vs {b[idx]!r}")


def _wrong_form_image(item: Any, accepts: tuple[str, ...]) -> Any:
    """The same image in a form the model does not accept, or None when it accepts every form."""
    from mmbench.tasks import ImageItem

    pixel_forms = {"image", "image_file"}
    if "regions" not in accepts:
        return ImageItem(id=f"{item.id}-regions-only", regions=np.zeros((36, 2048), np.float32), size=item.size)
    if not pixel_forms & set(accepts):
        from PIL import Image

        return ImageItem(id=f"{item.id}-pixels-only", pil=Image.new("RGB", (32, 32), (128, 64, 32)),
                         size=(32, 32))
    return None


def _empty_array(width: str):
    """An empty-batch output check for array outputs: (0, width) or raising is fine."""
    def check(out, what):
        arr = _as_array(out, what)
        assert arr.size == 0 and arr.ndim >= 1 and arr.shape[0] == 0, \
            f"{what} on an empty batch returned shape {arr.shape} instead of raising or returning (0, {width})"
    return check


def _empty_list(out, what):
    assert isinstance(out, (list, tuple)) and len(out) == 0, \
        f"{what} returned {out!r:.80} instead of raising or returning []"


def _raises_or_empty(fn, arg, what: str, empty_ok) -> None:
    try:
        out = fn(arg)
    except Exception:  # noqa: BLE001 - raising is the preferred answer
        return
    empty_ok(out, what)


# --------------------------------------------------------------------------- per-task checks

def _probe(task: str, a, b, data, n: int):
    """(names, outputs of a, outputs of b) of the task's model calls on the first ``n`` items."""
    if task == "retrieval":
        ims, txts = list(data.images[:n]), list(data.texts[:n])
        names, out_a, out_b = ["encode_images()", "encode_texts()"], [], []
        for m, out in ((a, out_a), (b, out_b)):
            ib, tb = m.encode_images(ims), m.encode_texts(txts)
            out += [ib, tb] if not hasattr(m, "score") else [m.score(ib, tb), m.score(ib, tb)]
        if hasattr(a, "score"):
            names = ["score()", "score()"]
        return names, [_as_array(x, names[0]) for x in out_a], [_as_array(x, names[0]) for x in out_b]
    if task == "captioning":
        ims = list(data.images[:n])
        ca, cb = a.generate(ims), b.generate(ims)
        return [f"generate() image {i}" for i in range(len(ims))], list(ca), list(cb)
    inputs = [s.input_view() for s in data.samples[:n]]
    if task == "grounding":
        pa, pb = a.predict(inputs), b.predict(inputs)
        return ([f"predict() sample {x.id!r}" for x in inputs], [_as_array(x, "boxes") for x in pa],
                [_as_array(x, "boxes") for x in pb])
    return ["predict_proba()"], [_as_array(a.predict_proba(inputs), "scores")], \
        [_as_array(b.predict_proba(inputs), "scores")]


def _inputs_only(call, what: str) -> None:
    """Fail when the model reads a target from its inputs (models see inputs only)."""
    from mmbench.tasks.base import TargetAccessError

    try:
        call()
    except TargetAccessError as exc:
        raise AssertionError(f"{what} reads the ground truth: {exc}") from None
    except Exception:  # other failures are the "outputs" check's business
        pass


def _chunks(items: list, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _check_retrieval(c: _Checker, model, data, accepts, atol, rtol, n_batch, evaluate: bool, name: str):
    from mmbench.tasks import retrieval

    cross = hasattr(model, "score")
    with c.check("methods", fatal=True):
        for m in ("encode_images", "encode_texts") + (("score",) if cross else ()):
            assert callable(getattr(model, m, None)), f"retrieval model has no callable {m}()"
        assert data.images and data.texts, "the conformance data has no images or texts"
    images = list(data.images[:n_batch])
    texts = list(data.texts[:n_batch])

    def dual_out(fn, items, what):
        return _numeric(fn(items), what, (len(items), None))

    if not cross:
        with c.check("outputs", fatal=True):
            im = dual_out(model.encode_images, images, "encode_images() output")
            tx = dual_out(model.encode_texts, texts, "encode_texts() output")
            assert im.shape[1] == tx.shape[1], (f"image embeddings have dimension {im.shape[1]} but text "
                                                f"embeddings {tx.shape[1]}; a dual encoder needs one space")
            assert im.shape[1] > 0, "embeddings have dimension 0"
        with c.check("deterministic"):
            _same(im, dual_out(model.encode_images, images, "encode_images() output"),
                  "encode_images() called twice", 0, 0)
            _same(tx, dual_out(model.encode_texts, texts, "encode_texts() output"),
                  "encode_texts() called twice", 0, 0)
        with c.check("batch-invariant"):
            im1 = np.concatenate([dual_out(model.encode_images, [x], "encode_images() output") for x in images])
            tx1 = np.concatenate([dual_out(model.encode_texts, [t], "encode_texts() output") for t in texts])
            _same(im, im1, f"encode_images(): batch of {len(images)} vs batches of 1", atol, rtol)
            _same(tx, tx1, f"encode_texts(): batch of {len(texts)} vs batches of 1", atol, rtol)
    else:
        with c.check("outputs", fatal=True):
            ib, tb = model.encode_images(images), model.encode_texts(texts)
            s = _numeric(model.score(ib, tb), "score() output", (len(images), len(texts)))
        with c.check("deterministic"):
            s2 = _numeric(model.score(model.encode_images(images), model.encode_texts(texts)), "score() output",
                          (len(images), len(texts)))
            _same(s, s2, "encode + score called twice", 0, 0)
        with c.check("batch-invariant"):
            ib1 = [model.encode_images([x]) for x in images]
            tb1 = [model.encode_texts([t]) for t in texts]
            s1 = np.array([[_numeric(model.score(i, t), "score() output", (1, 1))[0, 0] for t in tb1] for i in ib1])
            _same(s, s1, f"score(): blocks of {len(images)}x{len(texts)} vs 1x1", atol, rtol)

    with c.check("empty-batch"):
        _raises_or_empty(model.encode_images, [], "encode_images([])", _empty_array("D"))
        _raises_or_empty(model.encode_texts, [], "encode_texts([])", _empty_array("D"))
    _check_wrong_form(c, accepts, images[0], lambda item: model.encode_images([item]), "encode_images()")
    if evaluate:
        with c.check("evaluate"):
            res = retrieval.evaluate(model, data, batch_size=max(1, n_batch), show_progress=False, name=name)
            _check_metrics(res.metrics)
    return


def _check_metrics(metrics: dict) -> None:
    assert metrics, "evaluate() produced no metrics"
    bad = {k: v for k, v in metrics.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
    assert not bad, f"evaluate() produced non-finite metrics {bad}"


def _check_wrong_form(c: _Checker, accepts, item, call, what: str):
    with c.check("wrong-input-form"):
        if item is None:
            raise _Skip("no image input")
        bad = _wrong_form_image(item, accepts)
        if bad is None:
            raise _Skip(f"the model accepts every input form ({', '.join(accepts)})")
        try:
            out = call(bad)
        except Exception:  # noqa: BLE001 - raising is the contract
            return
        raise AssertionError(f"{what} returned {type(out).__name__} for an input in form(s) "
                             f"{sorted(bad.forms)} that the model does not accept (accepts: {', '.join(accepts)}); "
                             f"it must raise instead of returning garbage")


def _check_captioning(c: _Checker, model, data, accepts, n_batch, name):
    with c.check("methods", fatal=True):
        assert callable(getattr(model, "generate", None)), "captioning model has no callable generate()"
    images = list(data.images[:n_batch])

    def gen(items):
        out = model.generate(items)
        assert isinstance(out, (list, tuple)), f"generate() returned {type(out).__name__}, expected a list of str"
        out = list(out)
        assert len(out) == len(items), f"generate() returned {len(out)} captions for {len(items)} images"
        bad = [type(x).__name__ for x in out if not isinstance(x, str)]
        assert not bad, f"generate() returned non-string captions (first: {bad[0]})"
        return out

    with c.check("outputs", fatal=True):
        caps = gen(images)
        empty = [i for i, x in enumerate(caps) if not x.strip()]
        assert not empty, f"generate() returned {len(empty)} empty caption(s) (first at index {empty[0]})"
    with c.check("deterministic"):
        again = gen(images)
        diff = [i for i, (a, b) in enumerate(zip(caps, again)) if a != b]
        assert not diff, f"generate() called twice differs at index {diff[0]}: {caps[diff[0]]!r} vs {again[diff[0]]!r}"
    with c.check("batch-invariant"):
        one = [gen([x])[0] for x in images]
        diff = [i for i, (a, b) in enumerate(zip(caps, one)) if a != b]
        assert not diff, (f"generate(): batch of {len(images)} vs batches of 1 differ at index {diff[0]}: "
                          f"{caps[diff[0]]!r} vs {one[diff[0]]!r}")

    with c.check("empty-batch"):
        _raises_or_empty(model.generate, [], "generate([])", _empty_list)
    _check_wrong_form(c, accepts, images[0], lambda item: model.generate([item]), "generate()")


def _check_grounding(c: _Checker, model, data, accepts, atol, rtol, n_batch, evaluate, name):
    from mmbench.metrics.grounding import BOX_FORMATS, box_problems, to_xyxy
    from mmbench.tasks import grounding

    with c.check("methods", fatal=True):
        assert callable(getattr(model, "predict", None)), "grounding model has no callable predict()"
        fmt = getattr(model, "box_format", "xyxy")
        assert fmt in BOX_FORMATS, f"box_format {fmt!r} is not one of {', '.join(BOX_FORMATS)}"
        norm = getattr(model, "box_normalized", False)
        assert isinstance(norm, (bool, np.bool_)), f"box_normalized must be a bool, got {type(norm).__name__}"
    samples = [s.input_view() for s in data.samples[:n_batch]]
    with c.check("inputs-only", fatal=True):
        _inputs_only(lambda: model.predict(samples), "predict()")

    def pred(items):
        out = model.predict(items)
        assert isinstance(out, (list, tuple)), f"predict() returned {type(out).__name__}, expected a list of arrays"
        assert len(out) == len(items), f"predict() returned {len(out)} box arrays for {len(items)} samples"
        arrs = []
        for s, b in zip(items, out):
            arr = _numeric(b, f"predict() boxes for sample {s.id!r}", (None, 4))
            assert arr.shape[0] >= 1, f"predict() returned no box for sample {s.id!r}"
            arrs.append(arr)
        return arrs

    with c.check("outputs", fatal=True):
        boxes = pred(samples)
        for s, b in zip(samples, boxes):
            if norm:
                assert (b >= -0.05).all() and (b <= 1.05).all(), \
                    f"sample {s.id!r}: box_normalized is True but boxes are outside [0, 1]: {b[0].tolist()}"
            xyxy = to_xyxy(b, fmt, normalized=bool(norm), size=s.image.size)
            probs = [p for p in box_problems(xyxy, s.image.size) if p]
            assert not probs, (f"sample {s.id!r}: predicted box {b[0].tolist()} read as box_format={fmt!r}, "
                               f"box_normalized={bool(norm)} is impossible: {probs[0]}")
    with c.check("deterministic"):
        for s, a, b in zip(samples, boxes, pred(samples)):
            _same(a, b, f"predict() called twice, sample {s.id!r}", 0, 0)
    with c.check("batch-invariant"):
        for s, a in zip(samples, boxes):
            _same(a, pred([s])[0], f"predict(): batch of {len(samples)} vs batch of 1, sample {s.id!r}", atol, rtol)

    with c.check("empty-batch"):
        _raises_or_empty(model.predict, [], "predict([])", _empty_list)
    s0 = samples[0]

    def call_wrong(item):
        return model.predict([grounding.GroundingInput(s0.id, item, s0.expression)])

    _check_wrong_form(c, accepts, s0.image, call_wrong, "predict()")
    if evaluate:
        with c.check("evaluate"):
            res = grounding.evaluate(model, data, batch_size=max(1, n_batch), show_progress=False, name=name)
            _check_metrics(res.metrics)


def _check_classification(c: _Checker, model, data, accepts, atol, rtol, n_batch, evaluate, name):
    from mmbench.tasks import classification

    with c.check("methods", fatal=True):
        assert callable(getattr(model, "predict_proba", None)), "classification model has no callable predict_proba()"
    samples = [s.input_view() for s in data.samples[:n_batch]]
    n_cls = len(data.classes)
    with c.check("inputs-only", fatal=True):
        _inputs_only(lambda: model.predict_proba(samples), "predict_proba()")

    def proba(items):
        return _numeric(model.predict_proba(items), "predict_proba() output", (len(items), n_cls))

    with c.check("outputs", fatal=True):
        p = proba(samples)
    with c.check("deterministic"):
        _same(p, proba(samples), "predict_proba() called twice", 0, 0)
    with c.check("batch-invariant"):
        p1 = np.concatenate([proba([s]) for s in samples])
        _same(p, p1, f"predict_proba(): batch of {len(samples)} vs batches of 1", atol, rtol)

    with c.check("empty-batch"):
        _raises_or_empty(model.predict_proba, [], "predict_proba([])", _empty_array("C"))
    s0 = samples[0]
    if "text_only" in accepts and not ({"image", "image_file", "regions"} & set(accepts)):
        with c.check("wrong-input-form"):
            raise _Skip("text-only model: images are not an input form it reads")
    else:
        _check_wrong_form(c, accepts, s0.image, lambda item: model.predict_proba([classification.ClassificationInput(s0.id, s0.text, item)]),
                          "predict_proba()")
    if evaluate:
        with c.check("evaluate"):
            res = classification.evaluate(model, data, batch_size=max(1, n_batch), show_progress=False, name=name)
            _check_metrics(res.metrics)


# --------------------------------------------------------------------------- entry points

def check_model(model: Any, task: str, data: Any, *, name: str = "", accepts: tuple[str, ...] | None = None,
                train: Any = None, val: Any = None, batch: int = 8, atol: float = 1e-5, rtol: float = 1e-4,
                evaluate: bool = True, raise_on_failure: bool = True,
                report: ConformanceReport | None = None) -> ConformanceReport:
    """Check one model object against the ``task`` protocol on ``data`` (a task data object).

    ``accepts``: the input forms the model declares (default: ``model.accepts`` or
    ``("image",)``); ``train``/``val``: when given and the model has ``fit``, it is
    fitted first; ``batch``: how many items the checks use; ``atol``/``rtol``: how
    close batch-of-N and batch-of-1 outputs must be. Raises AssertionError naming the
    failed check(s) unless ``raise_on_failure`` is False; returns the report.
    """
    from mmbench.specs import TASKS

    name = name or type(model).__name__
    accepts = tuple(accepts or getattr(model, "accepts", None) or ("image",))
    report = report or ConformanceReport(plugin=name, task=task)
    c = _Checker(report)
    try:
        with c.check("task", fatal=True):
            assert task in TASKS, f"task {task!r} is not one of {', '.join(TASKS)}"
            from mmbench.tasks import DATA_TYPES

            assert isinstance(data, DATA_TYPES[task]), \
                f"data is {type(data).__name__}, expected {DATA_TYPES[task].__name__} for task {task}"
        if hasattr(model, "fit"):
            with c.check("fit", fatal=True):
                if train is None:
                    raise _Skip("the model has fit() but no train data was given")
                assert callable(model.fit), "fit is not callable"
                model.fit(train, val)
        if task == "retrieval":
            _check_retrieval(c, model, data, accepts, atol, rtol, batch, evaluate, name)
        elif task == "captioning":
            _check_captioning(c, model, data, accepts, batch, name)
        elif task == "grounding":
            _check_grounding(c, model, data, accepts, atol, rtol, batch, evaluate, name)
        else:
            _check_classification(c, model, data, accepts, atol, rtol, batch, evaluate, name)
    except _Fatal:
        pass
    if raise_on_failure:
        report.raise_for_failures()
    return report


def _check_spec(spec) -> None:
    from mmbench.specs import INPUT_FORMS, TASKS

    assert isinstance(spec.name, str) and spec.name.strip() == spec.name and spec.name, \
        f"spec name {spec.name!r} must be a non-empty string without surrounding spaces"
    assert not any(ch.isspace() for ch in spec.name), f"spec name {spec.name!r} contains whitespace"
    assert spec.task in TASKS, f"spec task {spec.task!r} is not one of {', '.join(TASKS)}"
    assert isinstance(spec.accepts, tuple) and spec.accepts, "spec accepts must be a non-empty tuple of input forms"
    bad = [f for f in spec.accepts if f not in INPUT_FORMS]
    assert not bad, f"spec accepts unknown input form(s) {bad}; known: {', '.join(INPUT_FORMS)}"
    if "text_only" in spec.accepts:
        assert spec.task == "classification", "only classification models can accept text_only"
    assert isinstance(spec.version, str) and spec.version, f"spec version {spec.version!r} must be a non-empty string"
    assert isinstance(spec.options, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in spec.options.items()), \
        "spec options must map option name -> help text (both str)"
    assert isinstance(spec.factory, str) or callable(spec.factory), "spec factory must be 'module:attr' or callable"
    if isinstance(spec.factory, str):
        assert ":" in spec.factory, f"spec factory {spec.factory!r} must be 'package.module:attribute'"


def check_plugin(name: str, *, options: dict[str, str] | None = None, dataset: str = "demo", split: str = "test",
                 limit: int = 24, registry: Any = None, dataset_options: dict[str, str] | None = None,
                 data_root: str | None = None, batch: int = 8, atol: float = 1e-5, rtol: float = 1e-4,
                 raise_on_failure: bool = True, seed: int = 0) -> ConformanceReport:
    """Check installed model plugin ``name`` against the contract on ``limit`` samples of a dataset split.

    ``options`` are the model's ``--option`` values (strings, as on the command line). The model
    is built (and fitted) the way ``mmbench eval`` does it, with ``seed``; the ``seeded`` check
    builds a second one with the same seed and requires the same outputs.
    Raises AssertionError naming the plugin and the failed check(s); returns the report.
    """
    from mmbench.plugins import get_registry
    from mmbench.runner import check_fit

    reg = registry or get_registry()
    report = ConformanceReport(plugin=name, task="?")
    c = _Checker(report)
    try:
        with c.check("registered", fatal=True):
            from mmbench.errors import MMBenchError

            try:
                spec = reg.model(name)
            except MMBenchError as exc:
                broken = "; ".join(f"{p.name} ({p.package}): {p.error}" for p in reg.failures())
                raise AssertionError(f"no model plugin named {name!r} can be chosen: {exc}"
                                     + (f"; plugins that failed to load: {broken}" if broken else "")) from None
        report.task = spec.task
        with c.check("spec", fatal=True):
            _check_spec(spec)
        with c.check("fits-dataset", fatal=True):
            dspec = reg.dataset(dataset)
            check_fit(spec, dspec, reg)
            assert split in dspec.splits, f"dataset {dataset!r} has no split {split!r} (splits: {dspec.splits})"

        def load(sp):
            data = dspec.load(spec.task, sp, data_root, **(dataset_options or {}))
            return limit_data(data, limit)

        with c.check("load-data", fatal=True):
            data = load(split)
        from mmbench.runner import build_model, fit_model

        with c.check("build", fatal=True):
            model = build_model(spec, options or {}, seed)
            assert model is not None, "the factory returned None"
        train = val = None
        if hasattr(model, "fit"):
            with c.check("load-train-data", fatal=True):
                assert "train" in dspec.splits, f"the model has fit() but dataset {dataset!r} has no train split"
                train = load("train")
                val = load("val") if "val" in dspec.splits and split != "val" else None
            with c.check("fit", fatal=True):
                fit_model(name, model, train, val, seed)
        check_model(model, spec.task, data, name=name, accepts=spec.accepts, train=None, val=None, batch=batch,
                    atol=atol, rtol=rtol, raise_on_failure=False, report=report)
        if report.ok:
            with c.check("seeded"):
                # the same seed must give the same model: build (and fit) a second one and compare
                again = build_model(spec, options or {}, seed)
                if hasattr(again, "fit"):
                    fit_model(name, again, train, val, seed)
                for what, a, b in zip(*_probe(spec.task, model, again, data, batch)):
                    if isinstance(a, str) or isinstance(b, str):
                        assert a == b, f"{what}: two models built with seed {seed} differ: {a!r} vs {b!r}"
                    else:
                        _same(a, b, f"{what}: two models built (and fitted) with seed {seed}", atol, rtol)
    except _Fatal:
        pass
    if raise_on_failure:
        report.raise_for_failures()
    return report
