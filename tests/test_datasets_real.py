"""Adapters over the real files in ../shared/data, reproducing the counts in ../shared/data/VERIFY.txt."""

from __future__ import annotations

import collections
import json
import os
import warnings

import numpy as np
import pytest

from mmbench.datasets import coco_captions, flickr30k_entities, flickr8k, karpathy, mvsa, precomp
from mmbench.datasets.common import DatasetSizeWarning
from mmbench.errors import DataError, MMBenchError


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetSizeWarning)
        yield


# ---------------------------------------------------------------- Flickr8k (original layout)

def test_flickr8k_token_file_counts(shared_data):
    caps = flickr8k.parse_tokens(shared_data / "flickr8k_text" / "Flickr8k.token.txt")
    assert len(caps) == 8092  # VERIFY: 8092 images (incl. the stray '2258277193_586949ec62.jpg.1')
    assert sum(len(v) for v in caps.values()) == 40460
    assert caps["1000268201_693b08cb0e.jpg"][0].startswith("A child in a pink dress is climbing up")


@pytest.mark.parametrize("split,n", [("train", 6000), ("val", 1000), ("test", 1000)])
def test_flickr8k_splits(shared_data, split, n):
    d = karpathy.load_flickr8k("retrieval", split, shared_data / "flickr8k_text", missing="keep")
    assert len(d.images) == n and len(d.texts) == 5 * n
    assert d.meta.protocol == "5-per-image" and len(d.meta.fingerprint) == 16
    assert not any("standard copy" in x for x in d.meta.notes)  # standard sizes reproduced
    # only 3 of the 8091 jpgs are in the snapshot: refused up front with a count
    with pytest.raises(DataError, match=r"image files are missing \(first: "):
        karpathy.load_flickr8k("retrieval", split, shared_data / "flickr8k_text")


def test_flickr8k_drop_keeps_present_images(shared_data):
    d = karpathy.load_flickr8k("captioning", "val", shared_data / "flickr8k_text", missing="drop")
    present = {"90011335_cfdf9674c2.jpg", "93922153_8d831f7f01.jpg", "94232465_a135df2711.jpg"}
    assert {im.id for im in d.images} <= present and len(d.images) == 2
    assert any("998 of 1000 image files are missing" in n for n in d.meta.notes)
    assert all(len(r) == 5 for r in d.references)
    assert d.images[0].load().size[0] > 0  # a real JPEG decodes


# ---------------------------------------------------------------- COCO captions (official json)

def _val2017(shared_data, **kw):
    return coco_captions.load("retrieval", "val", shared_data / "coco_captions_val2017",
                              annotations="captions_val2017.json", images="images", missing="keep", **kw)


def test_coco_val2017_all_and_first5(shared_data):
    d = _val2017(shared_data, captions="all")
    assert (len(d.images), len(d.texts)) == (5000, 25014)
    per = collections.Counter(np.bincount(d.text_image).tolist())
    assert per == {5: 4987, 6: 12, 7: 1}
    assert d.meta.protocol == "all-captions"
    assert not any("standard copy" in n for n in d.meta.notes)
    d5 = _val2017(shared_data, captions="first5")
    assert (len(d5.images), len(d5.texts), d5.meta.protocol) == (5000, 25000, "5-per-image")
    assert d5.meta.fingerprint != d.meta.fingerprint  # protocol is part of the fingerprint


def test_coco_val2017_missing_images_reported(shared_data):
    with pytest.raises(DataError) as ei:
        coco_captions.load("captioning", "val", shared_data / "coco_captions_val2017",
                           annotations="captions_val2017.json", images="images")
    assert "4999 of 5000 image files are missing" in str(ei.value) and "missing=drop" in str(ei.value)
    d = coco_captions.load("captioning", "val", shared_data / "coco_captions_val2017",
                           annotations="captions_val2017.json", images="images", missing="drop")
    assert [im.id for im in d.images] == ["397133"] and len(d.references[0]) == 5


@pytest.mark.parametrize("split,n_img,n_cap,n_box,n_crowd", [("train", 80, 400, 739, 8), ("val", 79, 395, 624, 5)])
def test_coco_mini(shared_data, split, n_img, n_cap, n_box, n_crowd):
    root = shared_data / "coco_mini"
    d = coco_captions.load("retrieval", split, root, captions="all")
    assert (len(d.images), len(d.texts)) == (n_img, n_cap)
    assert all(os.path.isfile(im.path) for im in d.images)
    c = coco_captions.load("captioning", split, root)
    assert len(c.images) == n_img and all(len(r) == 5 for r in c.references)
    g = coco_captions.load_instances("grounding", split, root)
    assert sum(len(s.boxes) for s in g.samples) + n_crowd == n_box
    assert f"{n_crowd} crowd box(es) left out" in g.meta.notes
    raw = json.loads((root / "annotations" / f"instances_{split}2017.json").read_text())
    a = next(x for x in raw["annotations"] if not x["iscrowd"])
    s = next(s for s in g.samples if s.image.id == str(a["image_id"]) and s.id.endswith(f":{a['category_id']}"))
    x, y, w, h = a["bbox"]
    assert any(np.allclose(b, [x, y, x + w, y + h]) for b in s.boxes)
    im = next(i for i in raw["images"] if i["id"] == a["image_id"])
    assert s.image.size == (im["width"], im["height"])


def test_coco_mini_size_warning_names_difference(shared_data):
    with pytest.warns(DatasetSizeWarning, match=r"79 images where the standard copy has 5000 \(-4921\)"):
        coco_captions.load("retrieval", "val", shared_data / "coco_mini", captions="all")


# ---------------------------------------------------------------- precomp captions + generated features

@pytest.fixture()
def precomp_root(shared_data, tmp_path):
    src = shared_data / "scan_precomp_caps"
    rows = {("f30k_precomp", "dev"): 1014, ("f30k_precomp", "test"): 1000, ("coco_precomp", "dev"): 1000,
            ("coco_precomp", "test"): 5000, ("coco_precomp", "testall"): 5000}
    for (name, split), n in rows.items():
        (tmp_path / name).mkdir(exist_ok=True)
        os.symlink(src / name / f"{split}_caps.txt", tmp_path / name / f"{split}_caps.txt")
        np.save(tmp_path / name / f"{split}_ims.npy", np.random.default_rng(0).random((n, 2, 3), dtype=np.float32))
    (tmp_path / "vocab").mkdir()
    for name in ("f30k_precomp", "coco_precomp"):
        os.symlink(src / "vocab_from_SGRAF" / f"{name}_vocab.json", tmp_path / "vocab" / f"{name}_vocab.json")
    return tmp_path


@pytest.mark.parametrize("name,split,n_lines,n_img,protocol", [
    ("f30k_precomp", "dev", 5070, 1000, "5-per-image"), ("f30k_precomp", "test", 5000, 1000, "flickr30k-1k"),
    ("coco_precomp", "dev", 5000, 1000, "5-per-image"), ("coco_precomp", "test", 5000, 1000, "5-per-image"),
    ("coco_precomp", "testall", 25000, 5000, "coco-5k")])
def test_precomp_real_captions(precomp_root, shared_data, name, split, n_lines, n_img, protocol):
    lines = (shared_data / "scan_precomp_caps" / name / f"{split}_caps.txt").read_text().splitlines()
    assert len(lines) == n_lines  # VERIFY.txt
    d = precomp.load(name, "retrieval", split, precomp_root)
    assert (len(d.images), len(d.texts), d.meta.protocol) == (n_img, 5 * n_img, protocol)
    assert d.texts[7] == lines[7].strip()
    assert any(f.endswith(f"{name}_vocab.json") for f in d.meta.files)
    feats = np.load(precomp_root / name / f"{split}_ims.npy")
    step = 5 if feats.shape[0] == n_lines else 1  # coco test has one feature row per caption
    np.testing.assert_array_equal(d.images[3].regions, feats[3 * step])
    assert isinstance(d.images[0].regions, np.memmap)


def test_precomp_coco_1k_5fold(precomp_root):
    d = precomp.load_coco("retrieval", "testall", precomp_root, protocol="coco-1k-5fold")
    assert d.folds == 5 and d.meta.protocol == "coco-1k-5fold"
    d5 = precomp.load_coco("retrieval", "testall", precomp_root)
    assert d5.folds == 1 and d5.meta.fingerprint != d.meta.fingerprint


# ---------------------------------------------------------------- Flickr30k Entities split lists

@pytest.mark.parametrize("split,n", [("train", 29783), ("val", 1000), ("test", 1000)])
def test_f30k_entities_split_lists(shared_data, split, n):
    ids = flickr30k_entities.parse_split_list(shared_data / "flickr30k_entities_splits" / f"{split}.txt")
    assert len(ids) == n and len(set(ids)) == n


def test_f30k_entities_without_annotations_is_clear(shared_data, tmp_path):
    for s in ("test",):
        os.symlink(shared_data / "flickr30k_entities_splits" / f"{s}.txt", tmp_path / f"{s}.txt")
    (tmp_path / "flickr30k-images").mkdir()
    with pytest.raises(DataError, match=r"1000 of 1000 listed images lack Sentences/<id>.txt"):
        flickr30k_entities.load("grounding", "test", tmp_path)


# ---------------------------------------------------------------- MVSA (CLMLF split files)

@pytest.mark.parametrize("name,folder,split,n,dist", [
    ("mvsa_single_clmlf", "MVSA-single", "train", 3611, [2147, 376, 1088]),
    ("mvsa_single_clmlf", "MVSA-single", "val", 450, [268, 47, 135]),
    ("mvsa_single_clmlf", "MVSA-single", "test", 450, [268, 47, 135]),
    ("mvsa_multiple_clmlf", "MVSA-multiple", "train", 13624, [9056, 3528, 1040]),
    ("mvsa_multiple_clmlf", "MVSA-multiple", "val", 1700, [1131, 440, 129]),
    ("mvsa_multiple_clmlf", "MVSA-multiple", "test", 1700, [1131, 440, 129])])
def test_mvsa_clmlf(shared_data, name, folder, split, n, dist):
    d = mvsa.load_clmlf(name, "classification", split, shared_data / "mvsa_clmlf", text_only="true")
    assert len(d.samples) == n and np.bincount(d.labels).tolist() == dist
    assert d.classes == ["positive", "neutral", "negative"]
    assert d.meta.protocol == "clmlf-fixed-split+text-only" and d.meta.forms == ("text_only",)
    assert all(s.image is None and s.text for s in d.samples)


def test_mvsa_clmlf_needs_explicit_text_only(shared_data):
    with pytest.raises(MMBenchError, match="text_only=true"):
        mvsa.load_clmlf("mvsa_single_clmlf", "classification", "test", shared_data / "mvsa_clmlf")


# ---------------------------------------------------------------- datasets check / end to end

def test_check_coco_mini(shared_data):
    from mmbench.datasets.check import check_dataset

    rep = check_dataset("coco_captions", shared_data / "coco_mini", options={"captions": "all"})
    assert rep["ok"]
    assert [(r["split"], r["counts"]) for r in rep["splits"]] == [
        ("train", {"images": 80, "texts": 400}), ("val", {"images": 79, "texts": 395})]
    assert all(r["missing_images"] == 0 and len(r["fingerprint"]) == 16 for r in rep["splits"])
    assert "591753" in rep["splits"][0]["size_differences"][0]


def test_check_flickr8k_counts_missing(shared_data):
    from mmbench.datasets.check import check_dataset

    rep = check_dataset("flickr8k", shared_data / "flickr8k_text", split="val")
    (r,) = rep["splits"]
    assert not rep["ok"] and r["counts"] == {"images": 1000, "texts": 5000} and r["missing_images"] == 998


def _have(plugin: str) -> bool:
    from mmbench.plugins import get_registry

    return plugin in get_registry().models


@pytest.mark.parametrize("plugin,dataset,opts", [("cca", "coco_captions", ["captions=all"]),
                                                 pytest.param("nn-caption", "coco_captions", [],
                                                              marks=[pytest.mark.slow, pytest.mark.java])])
def test_eval_baseline_on_coco_mini(shared_data, tmp_path, plugin, dataset, opts):
    if not _have(plugin):
        pytest.skip(f"baseline {plugin!r} is not registered yet")
    from typer.testing import CliRunner

    from mmbench.cli import app

    args = ["eval", "--plugin", plugin, "--dataset", dataset, "--split", "val", "--data-root",
            str(shared_data / "coco_mini"), "--out", str(tmp_path), "--json", "--bootstrap", "0", "--no-progress"]
    for o in opts:
        args += ["--dataset-option", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert len(recs) == 1 and recs[0]["status"] == "ok"
    ds = recs[0]["dataset"]
    assert ds["name"] == dataset and ds["split"] == "val" and len(ds["fingerprint"]) == 16
    assert ds["n_samples"] == 79 and ds["protocol"] == "all-captions"
    assert any("79 images where the standard copy has 5000" in n for n in ds["notes"])
    assert all(isinstance(v, float) for v in recs[0]["metrics"].values()) and recs[0]["metrics"]
