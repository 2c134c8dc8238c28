"""The task evaluate loops store per-sample data from which every corpus metric is recomputed."""

from __future__ import annotations

import numpy as np
import pytest

from mmbench.metrics.bootstrap import metric_value, task_cis
from mmbench.metrics.retrieval import retrieval_metrics
from mmbench.tasks.base import DatasetMeta, ImageItem
from mmbench.tasks.retrieval import RetrievalData, evaluate as eval_retrieval


class Dual:
    def __init__(self, img, txt):
        self.img, self.txt = img, txt

    def encode_images(self, images):
        return self.img[[int(im.id) for im in images]]

    def encode_texts(self, texts):
        return self.txt[[int(t) for t in texts]]


class Cross(Dual):
    def score(self, a, b):
        return a @ b.T


@pytest.mark.parametrize("folds", [1, 2])
def test_retrieval_evaluate_dual_and_cross_agree(folds):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((20, 8)).astype(np.float32)
    txt = (np.repeat(img, 5, 0) + rng.standard_normal((100, 8))).astype(np.float32)
    data = RetrievalData(images=[ImageItem(id=str(i)) for i in range(20)], texts=[str(j) for j in range(100)],
                         text_image=np.arange(100) // 5, meta=DatasetMeta("t", "test", "retrieval"), folds=folds)
    a = eval_retrieval(Dual(img, txt), data, batch_size=7, show_progress=False, memory_budget_mb="0.001")
    b = eval_retrieval(Cross(img, txt), data, batch_size=7, show_progress=False)
    assert a.metrics == b.metrics == retrieval_metrics(img @ txt.T, np.arange(100) // 5, folds=folds)["metrics"]
    assert a.details["scorer"] == "dual-encoder" and b.details["scorer"] == "cross-attention"
    assert a.details["captions_per_image"] == {"5": 20}
    for k, v in a.metrics.items():
        assert metric_value("retrieval", k, a.per_sample) == pytest.approx(v, abs=1e-12), k
    ci = task_cis("retrieval", a, n_resamples=50, seed=0)
    assert set(ci) == set(a.metrics)


def test_giou_scores_out_of_image_boxes_as_mdetr_does():
    """Under ``giou`` a predicted box reaching outside the image is scored as it is (MDETR's RefExpEvaluator
    scores unclamped boxes with generalized_box_iou); under the IoU conventions it is an invalid box."""
    from mmbench.metrics.grounding import grounding_metrics, iou

    gt = [np.array([[80.0, 10.0, 100.0, 30.0]])]
    pred = [np.array([[82.0, 10.0, 104.0, 30.0]])]  # 4 px (4%) past the right edge of a 100 px image: fine
    far = [np.array([[80.0, 10.0, 108.0, 30.0]])]  # 8% past it (the tolerance is 5%)
    g = float(iou(far[0], gt[0], "giou")[0, 0])
    assert g >= 0.5
    res = grounding_metrics(far, gt, convention="giou", sizes=[(100, 100)])
    assert res["metrics"]["acc@0.5"] == 100.0 and res["invalid"] == 0
    res = grounding_metrics(far, gt, convention="continuous", sizes=[(100, 100)])
    assert res["metrics"]["acc@0.5"] == 0.0 and res["invalid"] == 1
    assert "outside the 100x100 image" in next(iter(res["invalid_reasons"]))
    assert grounding_metrics(pred, gt, convention="continuous", sizes=[(100, 100)])["invalid"] == 0
    # still invalid under giou: a box of negative size or with a NaN
    bad = grounding_metrics([np.array([[90.0, 10.0, 80.0, 30.0]]), np.array([[np.nan, 0, 1, 1]])], gt * 2,
                            convention="giou", sizes=[(100, 100)] * 2)
    assert bad["invalid"] == 2 and bad["metrics"]["acc@0.5"] == 0.0
