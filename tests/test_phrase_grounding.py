"""Phrase grounding in the grounding kind: context / spans / category, batch bounds, the outside option."""

from __future__ import annotations

import numpy as np
import pytest

from mmbench.errors import DataError
from mmbench.metrics.grounding import by_category, grounding_metrics
from mmbench.tasks.base import DatasetMeta, ImageItem, TargetAccessError
from mmbench.tasks.grounding import GroundingData, GroundingSample, evaluate

META = DatasetMeta(name="t", split="test", task="grounding")
IM = ImageItem(id="im", size=(100, 80))


def _data(*samples):
    return GroundingData(samples=list(samples), meta=META)


def test_a_box_outside_the_image_is_a_miss_unless_scored_as_it_is():
    gt = [np.array([[80.0, 10.0, 100.0, 30.0]])]
    pred = [np.array([[82.0, 10.0, 110.0, 30.0]])]  # 10 px (10 %) right of the 100 px image; IoU 18/28
    miss = grounding_metrics(pred, gt, sizes=[(100, 80)])
    score = grounding_metrics(pred, gt, sizes=[(100, 80)], score_outside=True)
    assert miss["metrics"]["acc@0.5"] == 0.0 and miss["invalid"] == 1
    assert score["metrics"]["acc@0.5"] == 100.0 and score["invalid"] == 0
    assert grounding_metrics(pred, gt, sizes=[(100, 80)], convention="giou")["invalid"] == 0  # giou: scored


class Fixed:
    box_format, box_normalized = "xyxy", False

    def __init__(self, boxes):
        self.boxes, self.calls = boxes, []

    def predict(self, xs):
        self.calls.append([x.id for x in xs])
        return [self.boxes for _ in xs]


def test_the_outside_task_option_reaches_the_metric_and_the_record():
    s = GroundingSample("a", IM, "the box", np.array([[80.0, 10.0, 100.0, 30.0]]))
    m = Fixed(np.array([[82.0, 10.0, 110.0, 30.0]]))
    assert evaluate(m, _data(s), show_progress=False).metrics["acc@0.5"] == 0.0
    res = evaluate(m, _data(s), show_progress=False, outside="score")
    assert res.metrics["acc@0.5"] == 100.0 and res.details["outside"] == "score"
    assert evaluate(m, _data(s), show_progress=False, convention="giou").details["outside"] == "score"


def test_phrases_carry_their_sentence_and_are_batched_by_sentence():
    ctx = "a red box and a blue box"
    mk = lambda i, b, e, im=IM: GroundingSample(f"p{i}", im, ctx[b:e], np.array([[1.0, 1.0, 9.0, 9.0]]),
                                               context=ctx, spans=[(b, e)], category=("other",))
    other = ImageItem(id="im2", size=(100, 80))
    data = _data(mk(0, 0, 9), mk(1, 14, 24), mk(2, 0, 9, other), mk(3, 14, 24, other))
    x = data.samples[0].input_view()
    assert (x.context, x.spans, x.expression) == (ctx, ((0, 9),), "a red box")
    with pytest.raises(TargetAccessError):
        x.boxes
    m = Fixed(np.array([[1.0, 1.0, 9.0, 9.0]]))
    res = evaluate(m, data, batch_size=1, show_progress=False)
    assert m.calls == [["p0", "p1"], ["p2", "p3"]]  # one batch per (image, sentence)
    assert res.details["by_category"] == {"other": {"n": 4, "acc": 100.0, "P@1": 100.0, "P@5": 100.0,
                                                    "P@10": 100.0}}


@pytest.mark.parametrize("spans,context,why", [([(3, 2)], "abc", "spans"), ([(0, 9)], "abc", "spans"),
                                               ([], "abc", "spans"), ([(0, 1)], "  ", "context"),
                                               ("x", "abc", "spans")])
def test_bad_spans_are_refused_naming_the_field(spans, context, why):
    with pytest.raises(DataError) as e:
        _data(GroundingSample("s", IM, "a", np.array([[1.0, 1.0, 9.0, 9.0]]), context=context, spans=spans))
    assert e.value.field == why


def test_by_category_counts_a_phrase_once_per_listed_type():
    """As ashkamath/mdetr:datasets/flickr_eval.py RecallTracker: every listed type, duplicates included."""
    out = by_category([1, 0, 1], [1, 0, 2], [("people",), ("people", "other"), ("other", "other")])
    assert out["people"] == {"n": 2, "acc": 50.0, "P@1": 50.0, "P@5": 50.0, "P@10": 50.0}
    assert out["other"]["n"] == 3 and out["other"]["acc"] == pytest.approx(200 / 3)
    assert out["other"]["P@5"] == pytest.approx(200 / 3)
