"""The grounding kind's ``proposals`` input form and ViLBERT's feature LMDB adapters (mmbench.datasets.vilbert_lmdb)."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

from mmbench.errors import DataError, UnsafeFileError
from mmbench.tasks import ImageItem
from mmbench.tasks.grounding import KIND, GroundingData, GroundingSample, check_proposals


def _item(n=3, size=(40, 30), boxes=True):
    rng = np.random.default_rng(0)
    b = np.array([[0, 0, 10, 10], [5, 5, 30, 25], [20, 2, 39, 29]], np.float32)[:n]
    return ImageItem(id="im", regions=rng.random((n, 8)).astype(np.float32), size=size,
                     region_boxes=b if boxes else None)


def test_proposals_form_needs_features_boxes_and_size():
    assert _item().forms == {"regions", "proposals"}
    assert _item(boxes=False).forms == {"regions"}
    assert _item(size=None).forms == {"regions"}
    assert ImageItem(id="p", region_boxes=np.zeros((1, 4))).forms == set()  # boxes without features: no form
    assert "proposals" in KIND.extra_forms


def test_grounding_data_checks_proposals():
    meta = __import__("mmbench.tasks", fromlist=["DatasetMeta"]).DatasetMeta(name="t", split="val", task="grounding")

    def data(im):
        return GroundingData(samples=[GroundingSample(id="s", image=im, expression="the box",
                                                      boxes=np.array([[1.0, 1.0, 9.0, 9.0]]))], meta=meta)

    assert data(_item()).samples[0].image.region_boxes.shape == (3, 4)
    im = _item()
    im.region_boxes = im.region_boxes[:2]
    with pytest.raises(DataError, match="region_boxes"):
        data(im)
    im = _item()
    im.region_boxes = im.region_boxes.copy()
    im.region_boxes[0] = [5, 5, 1, 1]
    with pytest.raises(DataError, match="impossible proposal"):
        data(im)
    im = _item()
    im.size = None
    with pytest.raises(DataError, match="no size"):
        check_proposals(im)


def test_registry_accepts_a_proposals_model_for_grounding_only():
    from mmbench.plugins import get_registry
    from mmbench.specs import ModelSpec

    from mmbench.testing import _check_spec

    reg = get_registry()
    ok = ModelSpec(name="p-ground", task="grounding", factory=lambda **k: None, accepts=("proposals",), plugin="t")
    bad = ModelSpec(name="p-ret", task="retrieval", factory=lambda **k: None, accepts=("proposals",), plugin="t")

    _check_spec(ok, reg)
    with pytest.raises(AssertionError):
        _check_spec(bad, reg)


# --------------------------------------------------------------------------- the LMDB adapters

lmdb = pytest.importorskip("lmdb")


def _write_lmdb(path, records):
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for iid, rec in records.items():
            txn.put(str(iid).encode(), pickle.dumps(rec))
        txn.put(b"keys", pickle.dumps([str(i).encode() for i in records]))
    env.close()


def _rec(iid, w, h, n, seed):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, w / 2, n)
    y1 = rng.uniform(0, h / 2, n)
    b = np.stack([x1, y1, x1 + w / 4, y1 + h / 4], 1).astype(np.float32)
    return {"image_id": str(iid), "image_h": h, "image_w": w, "num_boxes": n, "boxes": b,
            "features": rng.random((n, 2048)).astype(np.float32)}


@pytest.fixture()
def refer_root(tmp_path):
    recs = {11: _rec(11, 64, 48, 4, 1), 12: _rec(12, 50, 60, 3, 2)}
    (tmp_path / "refcoco+_unc").mkdir()
    _write_lmdb(tmp_path / "refcoco+_unc" / "refcoco+_resnext152_faster_rcnn_genome.lmdb", recs)
    (tmp_path / "refcoco+").mkdir()
    inst = {"images": [{"id": 11, "width": 64, "height": 48, "file_name": "a.jpg"},
                       {"id": 12, "width": 50, "height": 61, "file_name": "b.jpg"}],
            "annotations": [{"id": 1, "image_id": 11, "bbox": [2, 3, 20, 10], "category_id": 1},
                            {"id": 2, "image_id": 12, "bbox": [1, 1, 10, 10], "category_id": 1}],
            "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "refcoco+" / "instances.json").write_text(json.dumps(inst))
    refs = [{"ref_id": 0, "ann_id": 1, "image_id": 11, "split": "val", "category_id": 1,
             "sentences": [{"raw": "Left Box", "sent": "left box", "sent_id": 0},
                           {"raw": "the one", "sent": "the one", "sent_id": 1}]},
            {"ref_id": 1, "ann_id": 2, "image_id": 12, "split": "testA", "category_id": 1,
             "sentences": [{"raw": "top", "sent": "top", "sent_id": 2}]}]
    (tmp_path / "refcoco+" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return tmp_path, recs


def test_vilbert_refer_adapter(refer_root):
    from mmbench.datasets import vilbert_lmdb

    root, recs = refer_root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = vilbert_lmdb.load_refer("grounding", "val", str(root))
        t = vilbert_lmdb.load_refer("grounding", "testA", str(root), text="sent")
    assert [s.id for s in d.samples] == ["0:0", "0:1"] and [s.expression for s in d.samples] == ["Left Box", "the one"]
    im = d.samples[0].image
    assert im is d.samples[1].image and im.forms == {"regions", "proposals"} and im.size == (64, 48)
    assert np.array_equal(im.regions, recs[11]["features"]) and np.array_equal(im.region_boxes, recs[11]["boxes"])
    np.testing.assert_allclose(d.samples[0].boxes, [[2, 3, 22, 13]])
    assert d.meta.forms == ("proposals", "regions") and d.meta.protocol == "refcoco+-unc"
    # image 12: instances.json says 50x61, the LMDB 50x60: the LMDB size is used and noted
    assert t.samples[0].image.size == (50, 60) and any("50x61" in n for n in t.meta.notes)


def test_vilbert_refer_errors(refer_root, tmp_path):
    from mmbench.datasets import vilbert_lmdb

    root, _ = refer_root
    with pytest.raises(DataError, match="data.mdb"):
        vilbert_lmdb.load_refer("grounding", "val", str(root), features="nowhere.lmdb")
    _write_lmdb(tmp_path / "bad.lmdb", {11: {"image_h": 1, "image_w": 1, "boxes": np.zeros((1, 4), np.float32),
                                             "features": np.zeros((2, 2048), np.float32)}})
    with pytest.raises(DataError, match="feature rows"):
        vilbert_lmdb.load_refer("grounding", "val", str(root), features="bad.lmdb")


def test_feature_records_are_unpickled_without_code(tmp_path):
    from mmbench.datasets.vilbert_lmdb import FeatureLMDB, loads

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    with pytest.raises(UnsafeFileError, match="system"):
        loads(pickle.dumps({"boxes": Evil()}))
    # numpy arrays, numpy scalars and plain containers are fine, under both pickle protocols ViLBERT used
    for proto in (2, 4):
        out = loads(pickle.dumps({"a": np.arange(3, dtype=np.float32), "h": np.int64(7), "k": [b"1", 2.0]},
                                 protocol=proto))
        assert out["a"].tolist() == [0, 1, 2] and int(out["h"]) == 7
    env = lmdb.open(str(tmp_path / "evil.lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"keys", pickle.dumps(Evil()))
    env.close()
    with pytest.raises(UnsafeFileError):
        FeatureLMDB(tmp_path / "evil.lmdb")


def test_vilbert_flickr30k_adapter(tmp_path):
    from mmbench.datasets import vilbert_lmdb

    recs = {5: _rec(5, 30, 20, 2, 3), 9: _rec(9, 40, 40, 3, 4)}
    _write_lmdb(tmp_path / "flickr30k_resnext152_faster_rcnn_genome.lmdb", recs)
    lines = [{"img_path": "9.jpg", "sentences": ["a dog", "two dogs"]}, {"img_path": "5.jpg", "sentences": ["a cat"]}]
    (tmp_path / "all_data_final_test_set0_2014.jsonline").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = vilbert_lmdb.load_flickr30k("retrieval", "test", str(tmp_path))
    assert [im.id for im in d.images] == ["9", "5"] and d.texts == ["a dog", "two dogs", "a cat"]
    assert d.text_image.tolist() == [0, 0, 1] and d.images[0].region_boxes.shape == (3, 4)
    assert d.meta.forms == ("regions",)


def test_builtin_specs_registered():
    from mmbench.datasets.builtin import spec

    assert spec("vilbert_refer").forms == ("proposals", "regions") and spec("vilbert_refer").tasks == ("grounding",)
    assert spec("vilbert_flickr30k").tasks == ("retrieval",)


def test_strict_threshold_counts_only_iou_above_it_as_vilbert_does():
    """facebookresearch/vilbert-multi-task:vilbert/task_utils.py counts a hit when `iou > 0.5` (strict)."""
    from mmbench.metrics.grounding import grounding_metrics

    gt = [np.array([[0.0, 0.0, 10.0, 10.0]])]
    half = [np.array([[0.0, 0.0, 10.0, 5.0]])]  # IoU exactly 0.5
    assert grounding_metrics(half, gt)["metrics"]["acc@0.5"] == 100.0
    assert grounding_metrics(half, gt, strict=True)["metrics"]["acc@0.5"] == 0.0
    more = [np.array([[0.0, 0.0, 10.0, 5.1]])]
    assert grounding_metrics(more, gt, strict=True)["metrics"]["acc@0.5"] == 100.0


def test_score_grounding_strict_and_plus1_reach_the_record(tmp_path):
    from mmbench.commands.score import score_grounding

    gts = tmp_path / "gts.json"
    preds = tmp_path / "preds.json"
    gts.write_text(json.dumps([{"id": "a", "boxes": [[0, 0, 10, 10]], "width": 20, "height": 20}]))
    preds.write_text(json.dumps([{"id": "a", "boxes": [[0, 0, 10, 5]]}]))  # IoU exactly 0.5 (continuous)
    loose = score_grounding(gts, preds)
    strict = score_grounding(gts, preds, strict=True)
    assert loose.metrics["acc@0.5"] == 100.0 and strict.metrics["acc@0.5"] == 0.0
    assert strict.details["strict"] is True and loose.details["strict"] is False
    plus1 = score_grounding(gts, preds, convention="plus1", strict=True)  # (11 x 6) / (11 x 11) > 0.5
    assert plus1.metrics["acc@0.5"] == 100.0 and plus1.details["iou_convention"] == "plus1"
