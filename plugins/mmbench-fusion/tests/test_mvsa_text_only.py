"""End to end on the real MVSA-Single CLMLF split files (text only: no images here)."""

from __future__ import annotations

import numpy as np
import pytest

from mmbench.tasks.classification import ClassificationData
from mmbench_fusion.classifier import FusionClassifier


def _load(shared_data, split, n):
    from mmbench.plugins import get_registry

    root = shared_data / "mvsa_clmlf"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    data = get_registry().dataset("mvsa_single_clmlf").load("classification", split, str(root), text_only="true")
    return ClassificationData(samples=data.samples[:n], classes=data.classes, meta=data.meta)


@pytest.mark.shared
def test_mvsa_single_text_only_end_to_end(shared_data, tmp_path):
    train, val, test = _load(shared_data, "train", 400), _load(shared_data, "val", 100), \
        _load(shared_data, "test", 100)
    assert all(s.image is None for s in train.samples) and train.classes[0] == "positive"
    for method in ("tmc", "cmml", "lmf"):
        model = FusionClassifier(method, epochs="3", cache_dir=str(tmp_path)).fit(train, val)
        assert model.modalities == ["text"] and model.details["text_only"] is True
        probs = model.predict_proba(test.samples)
        assert probs.shape == (100, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
        extra = model.extra_metrics(test.samples, probs)
        assert 0 <= extra["ECE"] <= 100
    assert model.details["feature_dims"][0] == 256  # LSA of the hashed tweet words
