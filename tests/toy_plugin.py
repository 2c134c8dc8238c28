"""An in-process plugin module for harness tests: tiny datasets and models, good and broken."""

from __future__ import annotations

import numpy as np

from mmbench.hookspecs import hookimpl
from mmbench.specs import DatasetSpec, ModelSpec, PublishedNumber
from mmbench.tasks import (ClassificationData, ClassificationSample, DatasetMeta, GroundingData, GroundingSample,
                           ImageItem, RetrievalData)
from mmbench.tasks.captioning import CaptioningData

N_IMG = 6


def _images(n=N_IMG, regions=True, split="test"):
    # each split its own features: a model with fit() must not be fitted on the evaluated data
    rng = np.random.default_rng(["train", "val", "test"].index(split) if split in ("train", "val") else 0)
    return [ImageItem(id=f"im{i}", regions=rng.random((4, 8), dtype=np.float32) if regions else None,
                      size=(100, 80)) for i in range(n)]


def toy_data(task, split, data_root=None, **options):
    meta = DatasetMeta(name="toy", split=split, task=task, protocol="5-per-image", fingerprint="f" * 16)
    if task == "retrieval":
        texts = [f"caption {j // 5} variant {j % 5}" for j in range(N_IMG * 5)]
        return RetrievalData(_images(split=split), texts, np.arange(N_IMG * 5) // 5, meta)
    if task == "captioning":
        return CaptioningData(_images(split=split), [[f"a picture number {i}", f"image {i} here"]
                                                     for i in range(N_IMG)], meta)
    if task == "grounding":
        return GroundingData([GroundingSample(f"g{i}", im, "the thing", np.array([[10, 10, 50, 40]]))
                              for i, im in enumerate(_images(split=split))], meta)
    prefix = "" if split == "test" else f"{split}:"
    samples = [ClassificationSample(f"{prefix}c{i}", f"text {i % 3}", None, i % 3) for i in range(12)]
    return ClassificationData(samples, ["positive", "neutral", "negative"], meta)


class OracleRetrieval:
    """Image i and caption j embed to one-hot(i) and one-hot(j // 5): perfect retrieval."""

    def encode_images(self, images):
        return np.eye(N_IMG, dtype=np.float32)[[int(im.id[2:]) for im in images]]

    def encode_texts(self, texts):
        return np.eye(N_IMG, dtype=np.float32)[[int(t.split()[1]) for t in texts]]


class ConstantRetrieval:
    """Every similarity equal: must not look perfect."""

    def encode_images(self, images):
        return np.ones((len(images), 3), np.float32)

    def encode_texts(self, texts):
        return np.ones((len(texts), 3), np.float32)


class CrossOracle(OracleRetrieval):
    def score(self, image_block, text_block):
        return image_block @ text_block.T


class NaNRetrieval(OracleRetrieval):
    def encode_images(self, images):
        out = super().encode_images(images)
        out[0, 0] = np.nan
        return out


class WrongShapeRetrieval(OracleRetrieval):
    def encode_texts(self, texts):
        return np.zeros((len(texts) + 1, N_IMG), np.float32)


class Raising:
    def encode_images(self, images):
        raise RuntimeError("boom inside the plugin")

    def encode_texts(self, texts):
        raise RuntimeError("boom inside the plugin")


class EchoCaptioner:
    def generate(self, images):
        return [f"a picture number {im.id[2:]}" for im in images]


class BoxGrounder:
    box_format = "xywh"

    def predict(self, samples):
        return [np.array([[10, 10, 40, 30], [0, 0, 5, 5]]) for _ in samples]


class FitClassifier:
    def fit(self, train, val):
        self.fitted = len(train.samples)

    def predict_proba(self, samples):
        out = np.zeros((len(samples), 3))
        for i, s in enumerate(samples):
            out[i, int(s.text.split()[1])] = 1.0
        return out


@hookimpl
def mmbench_datasets():
    return [DatasetSpec(name="toy", tasks=("retrieval", "captioning", "grounding", "classification"),
                        factory=toy_data, splits=("train", "test"), forms=("regions",), needs_data_root=False)]


@hookimpl
def mmbench_models():
    M = lambda name, task, cls, **kw: ModelSpec(name=name, task=task, factory=cls, accepts=kw.pop("accepts", ("regions",)), **kw)  # noqa: E731
    return [
        M("oracle", "retrieval", OracleRetrieval,
          published=(PublishedNumber(dataset="toy", metric="i2t.R@1", value=99.0, tolerance=2.0, source="toy paper"),)),
        M("constant", "retrieval", ConstantRetrieval),
        M("cross-oracle", "retrieval", CrossOracle),
        M("nan", "retrieval", NaNRetrieval),
        M("wrong-shape", "retrieval", WrongShapeRetrieval),
        M("raising", "retrieval", Raising),
        M("pixels-only", "retrieval", OracleRetrieval, accepts=("image",)),
        M("echo", "captioning", EchoCaptioner),
        M("box", "grounding", BoxGrounder),
        M("fitter", "classification", FitClassifier, accepts=("text_only", "regions")),
        M("broken-factory", "retrieval", "no_such_module_xyz:build"),
    ]
