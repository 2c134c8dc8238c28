"""The conformance kit (mmbench.testing) catches each kind of contract violation and passes good models."""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from mmbench import hookimpl
from mmbench.plugins import Registry
from mmbench.specs import DatasetSpec, ModelSpec
from mmbench.tasks import (CaptioningData, ClassificationData, ClassificationSample, DatasetMeta, GroundingData,
                           GroundingSample, ImageItem, RetrievalData)
from mmbench.testing import check_model, check_plugin, limit_data

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 210), (230, 220, 40), (200, 40, 200), (40, 210, 210)]
NAMES = ["red", "green", "blue", "yellow", "magenta", "cyan"]


def _images(n=6):
    out = []
    for i in range(n):
        im = Image.new("RGB", (40, 30), COLOURS[i % 6])
        out.append(ImageItem(id=f"im{i}", pil=im, regions=np.full((4, 8), i, np.float32), size=(40, 30)))
    return out


def _meta(task, split="test"):
    return DatasetMeta(name="tiny", split=split, task=task)


def tiny(task, split="test"):
    ims = _images()
    if task == "retrieval":
        texts = [f"a {NAMES[i % 6]} square number {k}" for i in range(len(ims)) for k in range(2)]
        return RetrievalData(ims, texts, np.repeat(np.arange(len(ims)), 2), _meta(task, split))
    if task == "captioning":
        return CaptioningData(ims, [[f"a {NAMES[i % 6]} square"] for i in range(len(ims))], _meta(task, split))
    if task == "grounding":
        return GroundingData([GroundingSample(f"g{i}", im, f"the {NAMES[i % 6]} one", np.array([[2, 3, 20, 25]]))
                              for i, im in enumerate(ims)], _meta(task, split))
    return ClassificationData([ClassificationSample(f"c{i}", f"text {i}", im, i % 3) for i, im in enumerate(ims)],
                              ["positive", "neutral", "negative"], _meta(task, split))


def _pixels(item):
    if "image" not in item.forms:
        raise ValueError(f"image {item.id} has no pixels")
    return np.asarray(item.load(), np.float64).mean((0, 1)) / 255.0


def _text_vec(t):
    v = np.array([t.count(n) for n in NAMES], np.float64) + 1e-3
    return v


# ----------------------------------------------------------------------------- good models

class GoodDual:
    accepts = ("image",)

    def encode_images(self, images):
        if not images:
            raise ValueError("empty batch")
        return np.stack([np.array([p @ np.array(c) / 255 for c in COLOURS]) for p in map(_pixels, images)])

    def encode_texts(self, texts):
        if not texts:
            raise ValueError("empty batch")
        return np.stack([_text_vec(t) for t in texts])


class GoodCross:
    accepts = ("regions",)

    def encode_images(self, images):
        return [im.regions.mean(0) for im in images]  # AttributeError on images without regions

    def encode_texts(self, texts):
        return [np.full(8, len(t), np.float32) for t in texts]

    def score(self, ib, tb):
        return np.array([[float(i @ t) for t in tb] for i in ib])


class GoodCaptioner:
    def generate(self, images):
        return [f"a {NAMES[int(np.argmax([p @ np.array(c) for c in COLOURS]))]} square" for p in map(_pixels, images)]


class GoodGrounder:
    box_format = "xywh"
    box_normalized = False

    def predict(self, samples):
        out = []
        for s in samples:
            _pixels(s.image)
            w, h = s.image.size
            out.append(np.array([[1, 2, w / 2, h / 2], [0, 0, w, h]]))
        return out


class GoodClassifier:
    accepts = ("image",)

    def __init__(self):
        self.fitted = None

    def fit(self, train, val):
        self.fitted = (len(train.samples), None if val is None else len(val.samples))
        self.prior = np.bincount(train.labels, minlength=3) / len(train.samples)

    def predict_proba(self, samples):
        return np.stack([self.prior + _pixels(s.image) for s in samples]) if samples else np.zeros((0, 3))


@pytest.mark.parametrize("model,task", [(GoodDual(), "retrieval"), (GoodCross(), "retrieval"),
                                        (GoodCaptioner(), "captioning"), (GoodGrounder(), "grounding")])
def test_good_models_pass(model, task):
    rep = check_model(model, task, tiny(task), name="good")
    assert rep.ok
    names = rep.passed
    for check in ("outputs", "deterministic", "batch-invariant", "empty-batch", "wrong-input-form"):
        assert check in names, rep.summary()
    if task != "captioning":
        assert "evaluate" in names


def test_fit_is_called_and_classifier_passes():
    m = GoodClassifier()
    rep = check_model(m, "classification", tiny("classification"), train=tiny("classification", "train"))
    assert m.fitted == (6, None)
    assert rep.check("fit").ok and not rep.check("fit").skipped
    assert rep.ok


def test_fit_without_train_data_is_skipped_not_passed():
    m = GoodClassifier()
    m.prior = np.zeros(3)
    rep = check_model(m, "classification", tiny("classification"))
    assert rep.check("fit").skipped and m.fitted is None


# ----------------------------------------------------------------------------- broken models

class WrongShape(GoodDual):
    def encode_images(self, images):
        out = super().encode_images(images)
        return np.concatenate([out, out[:1]])  # one row too many


class NaNs(GoodDual):
    def encode_texts(self, texts):
        out = super().encode_texts(texts)
        out[0, 0] = np.nan
        return out


class Nondeterministic(GoodDual):
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def encode_images(self, images):
        return super().encode_images(images) + self.rng.normal(0, 1e-3, (len(images), 6))


class BatchDependent(GoodDual):
    def encode_images(self, images):
        out = super().encode_images(images)
        return out - out.mean(0)  # batch statistics leak into each embedding


class DimMismatch(GoodDual):
    def encode_texts(self, texts):
        return super().encode_texts(texts)[:, :4]


class GarbageOnWrongForm(GoodDual):
    def encode_images(self, images):
        return np.stack([np.ones(6) if im.pil is None else super(GarbageOnWrongForm, self).encode_images([im])[0]
                         for im in images])


class GarbageOnEmpty(GoodDual):
    def encode_texts(self, texts):
        return np.zeros((1, 6)) if not texts else super().encode_texts(texts)


class NoEncodeTexts:
    def encode_images(self, images):
        return np.zeros((len(images), 3))


@pytest.mark.parametrize("model,check,words", [
    (WrongShape(), "outputs", "shape (7, 6), expected (6, *)"),
    (NaNs(), "outputs", "NaN/inf"),
    (Nondeterministic(), "deterministic", "called twice"),
    (BatchDependent(), "batch-invariant", "batches of 1"),
    (DimMismatch(), "outputs", "dimension 6 but text embeddings 4"),
    (GarbageOnWrongForm(), "wrong-input-form", "must raise"),
    (GarbageOnEmpty(), "empty-batch", "encode_texts([])"),
    (NoEncodeTexts(), "methods", "no callable encode_texts()"),
])
def test_broken_retrieval_models_are_caught(model, check, words):
    with pytest.raises(AssertionError) as ei:
        check_model(model, "retrieval", tiny("retrieval"), name="broken-thing")
    msg = str(ei.value)
    assert f"plugin 'broken-thing' failed check {check!r}" in msg
    assert words in msg
    rep = check_model(model, "retrieval", tiny("retrieval"), name="broken-thing", raise_on_failure=False)
    assert not rep.ok and rep.failures[0].name == check


class CrossBadShape(GoodCross):
    def score(self, ib, tb):
        return super().score(ib, tb).T


def test_cross_scorer_wrong_shape_caught():
    rep = check_model(CrossBadShape(), "retrieval", tiny("retrieval"), raise_on_failure=False)
    assert [f.name for f in rep.failures] == ["outputs"]
    assert "score() output has shape (8, 6), expected (6, 8)" in rep.failures[0].detail


class NonStringCaptions(GoodCaptioner):
    def generate(self, images):
        return [1 for _ in images]


class RandomCaptions(GoodCaptioner):
    n = 0

    def generate(self, images):
        RandomCaptions.n += 1
        return [f"caption {self.n}" for _ in images]


@pytest.mark.parametrize("model,check,words", [
    (NonStringCaptions(), "outputs", "non-string captions (first: int)"),
    (RandomCaptions(), "deterministic", "called twice differs"),
])
def test_broken_captioners_caught(model, check, words):
    rep = check_model(model, "captioning", tiny("captioning"), raise_on_failure=False)
    assert rep.failures and rep.failures[0].name == check and words in rep.failures[0].detail


class DeclaresXyxyReturnsXywh(GoodGrounder):
    box_format = "xyxy"

    def predict(self, samples):
        return [np.array([[15, 12, 5, 6]]) for _ in samples]  # x2 < x1 when read as xyxy


class NormalizedButPixels(GoodGrounder):
    box_normalized = True


class BadBoxFormatName(GoodGrounder):
    box_format = "ltrb"


class FlatBoxes(GoodGrounder):
    def predict(self, samples):
        return [np.array([1, 2, 3, 4]) for _ in samples]


@pytest.mark.parametrize("model,check,words", [
    (DeclaresXyxyReturnsXywh(), "outputs", "negative width or height"),
    (NormalizedButPixels(), "outputs", "outside [0, 1]"),
    (BadBoxFormatName(), "methods", "box_format 'ltrb'"),
    (FlatBoxes(), "outputs", "expected (*, 4)"),
])
def test_broken_grounders_caught(model, check, words):
    rep = check_model(model, "grounding", tiny("grounding"), raise_on_failure=False)
    assert rep.failures and rep.failures[0].name == check and words in rep.failures[0].detail, rep.summary()


class WrongClassCount(GoodClassifier):
    def predict_proba(self, samples):
        return np.zeros((len(samples), 2))


class FitRaises(GoodClassifier):
    def fit(self, train, val):
        raise RuntimeError("cannot fit")


def test_broken_classifiers_caught():
    rep = check_model(WrongClassCount(), "classification", tiny("classification"),
                      train=tiny("classification", "train"), raise_on_failure=False)
    assert rep.failures[0].name == "outputs" and "expected (6, 3)" in rep.failures[0].detail
    rep = check_model(FitRaises(), "classification", tiny("classification"), train=tiny("classification", "train"),
                      raise_on_failure=False)
    assert rep.failures[0].name == "fit" and "RuntimeError: cannot fit" in rep.failures[0].detail
    assert len(rep.checks) == 2  # nothing runs after a failed fit


def test_limit_data_keeps_captions_of_kept_images():
    d = limit_data(tiny("retrieval"), 2)
    assert [i.id for i in d.images] == ["im0", "im1"]
    assert d.texts == ["a red square number 0", "a red square number 1", "a green square number 0",
                       "a green square number 1"]
    assert d.text_image.tolist() == [0, 0, 1, 1]
    assert len(limit_data(tiny("grounding"), 3).samples) == 3


# ----------------------------------------------------------------------------- check_plugin through a registry

def _registry(models):
    mod = types.ModuleType("kit_test_plugin")

    @hookimpl
    def mmbench_models():
        return models

    @hookimpl
    def mmbench_datasets():
        return [DatasetSpec(name="tiny", tasks=("retrieval", "classification"), factory=lambda task, split,
                            data_root=None: tiny(task, split), splits=("train", "test"), forms=("image", "regions"),
                            needs_data_root=False)]

    mod.mmbench_models, mod.mmbench_datasets = mmbench_models, mmbench_datasets
    return Registry(entry_points=False, extra_modules=(mod,))


def test_check_plugin_good_and_options_reach_factory():
    seen = {}

    def build(**options):
        seen.update(options)
        return GoodDual()

    reg = _registry([ModelSpec(name="good-dual", task="retrieval", factory=build, options={"k": "help"}),
                     ModelSpec(name="good-cls", task="classification", factory=GoodClassifier)])
    rep = check_plugin("good-dual", options={"k": "3"}, dataset="tiny", registry=reg, limit=4)
    assert rep.ok and seen == {"k": "3"}
    assert {"registered", "spec", "fits-dataset", "load-data", "build", "outputs", "evaluate"} <= set(rep.passed)
    rep = check_plugin("good-cls", dataset="tiny", registry=reg)
    assert rep.check("fit").ok and not rep.check("fit").skipped


def test_check_plugin_reports_unknown_mismatch_and_bad_spec():
    reg = _registry([ModelSpec(name="bad name", task="retrieval", factory=GoodDual),
                     ModelSpec(name="capper", task="captioning", factory=GoodCaptioner),
                     ModelSpec(name="nodelimiter", task="retrieval", factory="mmbench.testing")])
    with pytest.raises(AssertionError, match="no model plugin named 'nope'"):
        check_plugin("nope", dataset="tiny", registry=reg)
    with pytest.raises(AssertionError, match="'bad name' failed check 'spec'.*contains whitespace"):
        check_plugin("bad name", dataset="tiny", registry=reg)
    with pytest.raises(AssertionError, match="'capper' failed check 'fits-dataset'.*does captioning"):
        check_plugin("capper", dataset="tiny", registry=reg)
    with pytest.raises(AssertionError, match="failed check 'spec'.*'package.module:attribute'"):
        check_plugin("nodelimiter", dataset="tiny", registry=reg)


def test_check_plugin_factory_error_is_a_build_failure():
    def build(**options):
        raise OSError("weights missing")

    reg = _registry([ModelSpec(name="x", task="retrieval", factory=build)])
    rep = check_plugin("x", dataset="tiny", registry=reg, raise_on_failure=False)
    assert [f.name for f in rep.failures] == ["build"] and "OSError in its factory: weights missing" in rep.failures[0].detail
