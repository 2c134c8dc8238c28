"""cocobu adapter: the AoANet / self-critical bottom-up feature layout, read lazily."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmbench.datasets.cocobu import LazyRegionItem, load
from mmbench.errors import DataError, MMBenchError, UsageError

pytestmark = pytest.mark.filterwarnings("ignore::mmbench.datasets.common.DatasetSizeWarning")


def _make(root, n=4, feats=True):
    (root / "cocobu_att").mkdir(parents=True)
    (root / "cocobu_fc").mkdir()
    images, kimgs = [], []
    for i in range(n):
        iid = 100 + i
        split = ["train", "val", "test", "restval"][i % 4]
        images.append({"split": split, "file_path": f"val2014/{iid}.jpg", "id": iid})
        kimgs.append({"filepath": "val2014", "filename": f"{iid}.jpg", "cocoid": iid, "split": split,
                      "sentences": [{"raw": f"caption {k} of {iid}", "tokens": []} for k in range(5)]})
        f = np.full((3 + i, 8), i, np.float32)
        if feats:
            np.savez_compressed(root / "cocobu_att" / str(iid), feat=f)
            np.save(root / "cocobu_fc" / str(iid), f.mean(0))
    images.append({"file_path": "x.jpg", "id": 999})  # no split key: every split (official DataLoader)
    kimgs.append({"filepath": "", "filename": "x.jpg", "cocoid": 999, "split": "test",
                  "sentences": [{"raw": "the unsplit one"}]})
    np.savez_compressed(root / "cocobu_att" / "999", feat=np.ones((2, 1, 8), np.float32))
    (root / "cocotalk.json").write_text(json.dumps({"ix_to_word": {"1": "a"}, "images": images}))
    (root / "dataset_coco.json").write_text(json.dumps({"images": kimgs, "dataset": "coco"}))


def test_splits_lazy_features_and_references(tmp_path):
    _make(tmp_path)
    test = load("captioning", "test", tmp_path)
    assert [im.id for im in test.images] == ["102", "999"]
    item = test.images[0]
    assert isinstance(item, LazyRegionItem) and item._regions is None and item.forms == {"regions"}
    np.testing.assert_array_equal(item.regions, np.full((5, 8), 2, np.float32))
    np.testing.assert_array_equal(item.fc, np.full(8, 2, np.float32))
    assert test.images[1].regions.shape == (2, 8)  # reshaped to (-1, D) as the official loader does
    assert test.images[1].fc is None
    assert test.references[0][0] == "caption 0 of 102" and test.meta.forms == ("regions",)
    train = load("captioning", "train", tmp_path)
    assert [im.id for im in train.images] == ["100", "103", "999"]  # restval joins train
    assert [im.id for im in load("captioning", "train", tmp_path, train_only="true").images] == ["100", "999"]


def test_coco_captions_references_and_errors(tmp_path):
    _make(tmp_path)
    (tmp_path / "caps.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i}.jpg"} for i in (102, 999)],
        "annotations": [{"image_id": 102, "caption": "coco caption", "id": 1},
                        {"image_id": 999, "caption": "other", "id": 2}]}))
    d = load("captioning", "test", tmp_path, references="caps.json")
    assert d.references == [["coco caption"], ["other"]]
    (tmp_path / "cocobu_att" / "102.npz").unlink()
    with pytest.raises(DataError, match="no cocobu_att"):
        load("captioning", "test", tmp_path)
    d = load("captioning", "test", tmp_path, missing="drop")
    assert [im.id for im in d.images] == ["999"] and "dropped" in d.meta.notes[0]
    with pytest.raises(MMBenchError, match="unknown dataset option"):
        load("captioning", "test", tmp_path, bogus="1")
    with pytest.raises(UsageError, match="Unknown task 'retrieval' of dataset 'cocobu'. Known tasks: captioning"):
        load("retrieval", "test", tmp_path)


def test_pickled_feature_file_is_refused(tmp_path):
    _make(tmp_path)
    np.savez(tmp_path / "cocobu_att" / "102.npz", feat=np.array([object()], dtype=object))
    item = load("captioning", "test", tmp_path).images[0]
    with pytest.raises(DataError, match="cannot read"):
        _ = item.regions


@pytest.mark.shared
def test_aoanet_parity_fixture_layout(parity_dir):
    d = parity_dir / "aoanet" / "data"
    data = load("captioning", "test", d, references="dataset_coco_subset.json")
    counts = [im.regions.shape[0] for im in data.images]
    assert counts == [20, 20, 28, 33, 34, 28, 28, 35, 23, 21, 15, 19]  # the fixture README's region counts
    assert all(len(r) == 5 for r in data.references)


def test_registered_with_the_builtin_datasets():
    from mmbench.plugins import get_registry

    spec = get_registry().dataset("cocobu")
    assert spec.forms == ("regions",) and spec.tasks == ("captioning",)
