"""Every adapter on tiny synthetic copies of its on-disk format: protocols, quirks, validation."""

from __future__ import annotations

import importlib.util
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmbench.datasets import (coco_captions, flickr30k_entities, hf, jsonl, karpathy, mdetr, mvsa, precomp, refer,
                              safe_pickle)
from mmbench.datasets.common import DatasetSizeWarning
from mmbench.errors import DataError, MMBenchError, UnsafeFileError, UsageError

_spec = importlib.util.spec_from_file_location("dataset_builders",
                                               Path(__file__).parent / "fixtures" / "dataset_builders.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetSizeWarning)
        yield


# ---------------------------------------------------------------- Karpathy

def test_karpathy_flickr30k_protocols(tmp_path):
    B.karpathy(tmp_path, "flickr30k")
    d = karpathy.load_flickr30k("retrieval", "test", tmp_path)
    assert (len(d.images), len(d.texts), d.meta.protocol, d.folds) == (10, 50, "flickr30k-1k", 1)
    assert d.text_image.tolist()[:6] == [0, 0, 0, 0, 0, 1]
    assert d.texts[0] == "caption 0 of test_0.jpg"
    a = karpathy.load_flickr30k("retrieval", "test", tmp_path, captions="all")
    assert (len(a.texts), a.meta.protocol) == (51, "all-captions")
    c = karpathy.load_flickr30k("captioning", "test", tmp_path)  # captioning keeps every reference
    assert len(c.references[0]) == 6 and c.meta.protocol == "all-captions"
    with pytest.warns(DatasetSizeWarning, match="10 images where the standard copy has 1000"):
        warnings.simplefilter("always", DatasetSizeWarning)
        karpathy.load_flickr30k("retrieval", "test", tmp_path)


def test_karpathy_coco_folds_and_restval(tmp_path):
    B.karpathy(tmp_path, "coco")
    d = karpathy.load_coco("retrieval", "test", tmp_path, protocol="coco-1k-5fold")
    assert d.folds == 5 and d.meta.protocol == "coco-1k-5fold" and d.images[0].id == "1005"
    assert d.images[0].path == tmp_path / "val2014" / "test_0.jpg"
    assert karpathy.load_coco("retrieval", "test", tmp_path).meta.protocol == "coco-5k"
    assert len(karpathy.load_coco("retrieval", "train", tmp_path).images) == 5  # 3 train + 2 restval
    assert len(karpathy.load_coco("retrieval", "train", tmp_path, restval="false").images) == 3
    with pytest.raises(MMBenchError, match="coco-1k-5fold is defined on 5 captions"):
        karpathy.load_coco("retrieval", "test", tmp_path, protocol="coco-1k-5fold", captions="all")
    with pytest.raises(MMBenchError, match="protocol= applies to COCO test"):
        karpathy.load_flickr30k("retrieval", "test", tmp_path, protocol="coco-5k")


def test_karpathy_missing_and_escaping_paths(tmp_path):
    B.karpathy(tmp_path, "flickr30k")
    for i in range(7):
        (tmp_path / "flickr30k-images" / f"test_{i}.jpg").unlink()
    with pytest.raises(DataError) as ei:
        karpathy.load_flickr30k("retrieval", "test", tmp_path)
    msg = str(ei.value)
    assert "7 of 10 image files are missing (first: test_0.jpg, test_1.jpg" in msg and "flickr30k-images" in msg
    d = karpathy.load_flickr30k("retrieval", "test", tmp_path, missing="drop")
    assert len(d.images) == 3 and "dropped" in d.meta.notes[0]
    data = json.loads((tmp_path / "dataset_flickr30k.json").read_text())
    data["images"][0]["filename"] = "../../etc/passwd"
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"dataset_flickr30k.json: field 'images\[0\].filename': path .* escapes"):
        karpathy.load_flickr30k("retrieval", "train", tmp_path, missing="keep")
    data["images"][0]["filename"] = "/etc/passwd"
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="escapes the data root"):
        karpathy.load_flickr30k("retrieval", "train", tmp_path, missing="keep")


def test_karpathy_bad_field_names_file_and_field(tmp_path):
    B.karpathy(tmp_path, "flickr30k")
    data = json.loads((tmp_path / "dataset_flickr30k.json").read_text())
    del data["images"][2]["split"]
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    with pytest.raises(DataError) as ei:
        karpathy.load_flickr30k("retrieval", "test", tmp_path)
    assert "dataset_flickr30k.json" in str(ei.value) and "field 'split'" in str(ei.value)
    with pytest.raises(MMBenchError, match="unknown dataset option"):
        karpathy.load_flickr30k("retrieval", "test", tmp_path, caption="all")


def test_flickr8k_original_layout_autodetected(tmp_path):
    lines = [f"{n}.jpg#{k}\tcap {k} of {n}" for n in ("a", "b", "c") for k in (1, 0, 2, 3, 4)]
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in (("train", "a\n"), ("dev", "b\n"), ("test", "c.jpg\nb.jpg\n")):
        (tmp_path / f"Flickr_8k.{split}Images.txt").write_text(names.replace("\n", ".jpg\n")
                                                               if "jpg" not in names else names)
        for n in ("a", "b", "c"):
            B.png(tmp_path / "Flicker8k_Dataset" / f"{n}.jpg")
    d = karpathy.load_flickr8k("retrieval", "test", tmp_path)
    assert [im.id for im in d.images] == ["c.jpg", "b.jpg"]
    assert d.texts[:2] == ["cap 0 of c", "cap 1 of c"]  # ordered by the #k number
    (tmp_path / "Flickr8k.token.txt").write_text("no tab here\n")
    with pytest.raises(DataError, match=r"Flickr8k.token.txt: field 'line 1'"):
        karpathy.load_flickr8k("retrieval", "test", tmp_path)


# ---------------------------------------------------------------- COCO official json

def test_coco_captions_first5_all_and_instances(tmp_path):
    B.coco_captions(tmp_path)
    d = coco_captions.load("retrieval", "val", tmp_path)
    assert (len(d.texts), d.meta.protocol) == (20, "5-per-image")
    a = coco_captions.load("retrieval", "val", tmp_path, captions="all")
    assert (len(a.texts), a.meta.protocol) == (22, "all-captions")
    assert a.images[0].size == (8, 6) and a.images[0].id == "10"
    g = coco_captions.load_instances("grounding", "val", tmp_path)
    assert [(s.id, s.expression) for s in g.samples] == [("10:1", "person"), ("11:2", "dog")]
    np.testing.assert_array_equal(g.samples[0].boxes, [[1, 1, 4, 3], [4, 2, 6, 4]])
    assert g.meta.notes == ["1 crowd box(es) left out"]
    with pytest.raises(DataError, match="no captions annotation file; looked for annotations/captions_train2017.json"):
        coco_captions.load("retrieval", "train", tmp_path)


# ---------------------------------------------------------------- precomp

@pytest.mark.parametrize("per_caption", [False, True])
def test_precomp_im_div(tmp_path, per_caption):
    B.precomp(tmp_path, per_caption=per_caption)
    d = precomp.load_f30k("retrieval", "test", tmp_path)
    feats = np.load(tmp_path / "f30k_precomp" / "test_ims.npy")
    assert len(d.images) == 4 and d.text_image.tolist() == [j // 5 for j in range(20)]
    np.testing.assert_array_equal(d.images[1].regions, feats[5 if per_caption else 1])
    assert d.meta.forms == ("regions",)


def test_precomp_dev_cut_and_bad_shapes(tmp_path):
    B.precomp(tmp_path, split="dev", n_img=1002)
    d = precomp.load_f30k("retrieval", "dev", tmp_path)
    assert (len(d.images), len(d.texts)) == (1000, 5000) and "dev cut" in d.meta.notes[0]
    assert len(precomp.load_f30k("retrieval", "dev", tmp_path, dev_cut="false").texts) == 5010
    np.save(tmp_path / "f30k_precomp" / "dev_ims.npy", np.zeros((7, 2, 2), np.float32))
    with pytest.raises(DataError, match="7 feature rows for 5010 captions"):
        precomp.load_f30k("retrieval", "dev", tmp_path)
    np.save(tmp_path / "f30k_precomp" / "dev_ims.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="dev_ims.npy"):
        precomp.load_f30k("retrieval", "dev", tmp_path)


# ---------------------------------------------------------------- refer + safe pickle

def test_refer_layout(tmp_path):
    B.refer(tmp_path)
    d = refer.load_refcoco("grounding", "testA", tmp_path)
    assert [(s.id, s.expression) for s in d.samples] == [("0:0", "the man left"), ("0:1", "guy")]
    np.testing.assert_array_equal(d.samples[0].boxes, [[1.5, 2.0, 11.5, 7.0]])
    assert d.samples[0].image.size == (40, 30) and d.meta.protocol == "refcoco-unc"
    assert refer.load_refcoco("grounding", "testA", tmp_path, text="raw").samples[0].expression == "The Man, left"
    with pytest.raises(UsageError, match="Unknown split 'test' of dataset 'refcoco'"):  # no split_by has it
        refer.load_refcoco("grounding", "test", tmp_path)
    with pytest.raises(MMBenchError, match="split 'testA' is not available with split_by=google"):
        refer.load_refcoco("grounding", "testA", tmp_path, split_by="google")
    with pytest.raises(DataError, match=r"refs\(google\).p not found"):
        refer.load_refcoco("grounding", "val", tmp_path, split_by="google")


def test_safe_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps([{"ref_id": 1}, Evil()], protocol=2))
    with pytest.raises(UnsafeFileError, match=r"refs\(unc\).p: refusing to unpickle (__builtin__|builtins).print"):
        safe_pickle.load(p)
    assert safe_pickle.loads(pickle.dumps({"a": [1, 2.5, None, True, ("t",)], "s": {1, 2}}, protocol=4)) == \
        {"a": [1, 2.5, None, True, ("t",)], "s": {1, 2}}
    assert safe_pickle.loads(b"(lp0\nS'caf\\xe9'\np1\na.") == ["caf\xe9"]  # Python 2 str, latin-1
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_pickle.loads(b"(lp0\nS'abc", source="x.p")


def test_mdetr(tmp_path):
    B.mdetr(tmp_path)
    d = mdetr.load("grounding", "testA", tmp_path)
    assert [s.expression for s in d.samples] == ["thing 0", "thing 1", "thing 2"]
    assert len({id(s.image) for s in d.samples}) == 1  # one image file shared by its expressions
    np.testing.assert_array_equal(d.samples[2].boxes, [[2, 2, 12, 12]])
    assert d.meta.protocol == "refcoco-unc"
    with pytest.raises(MMBenchError, match="split 'testA' is not available for dataset=refcocog"):
        mdetr.load("grounding", "testA", tmp_path, dataset="refcocog")


# ---------------------------------------------------------------- Flickr30k Entities

def test_f30k_entities_any_and_merged(tmp_path):
    B.flickr30k_entities(tmp_path)
    sents = flickr30k_entities.parse_sentences(tmp_path / "Sentences" / "100.txt")
    assert sents[0]["sentence"] == "A man in a red shirt holds a ball ."
    assert [p["phrase_id"] for p in sents[0]["phrases"]] == ["1", "2", "3"]
    d = flickr30k_entities.load("grounding", "test", tmp_path)
    # phrases 1, 2, 3 in sentence 0 and phrase 1 in sentence 1; 'notvisual' (0) has no box
    assert [s.id for s in d.samples[:4]] == ["100:0:0", "100:0:1", "100:0:2", "100:1:0"]
    assert len(d.samples) == 8 and d.meta.protocol == "any-box"
    np.testing.assert_array_equal(d.samples[0].boxes, [[1, 2, 10, 20], [20, 5, 30, 25]])
    np.testing.assert_array_equal(d.samples[2].boxes, [[2, 3, 8, 9]])  # a box named by two phrases
    m = flickr30k_entities.load("grounding", "test", tmp_path, protocol="merged")
    np.testing.assert_array_equal(m.samples[0].boxes, [[1, 2, 30, 25]])
    assert m.meta.protocol == "merged-box" and m.meta.fingerprint != d.meta.fingerprint
    (tmp_path / "Annotations" / "200.xml").write_text("<annotation><size>")
    with pytest.raises(DataError, match=r"200.xml: not valid XML"):
        flickr30k_entities.load("grounding", "test", tmp_path)


# ---------------------------------------------------------------- MVSA raw

def test_mvsa_label_rule():
    assert mvsa.combine("positive", "positive") == "positive"
    assert mvsa.combine("neutral", "negative") == "negative"
    assert mvsa.combine("positive", "neutral") == "positive"
    assert mvsa.combine("positive", "negative") is None


@pytest.mark.parametrize("multiple", [False, True])
def test_mvsa_raw_split(tmp_path, multiple):
    B.mvsa_raw(tmp_path, multiple=multiple, n=90)
    name = "mvsa_multiple" if multiple else "mvsa_single"
    parts = {s: mvsa.load_raw(name, "classification", s, tmp_path) for s in ("train", "val", "test")}
    ids = [set(x.id for x in parts[s].samples) for s in parts]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # 90 rows over 9 combos: 20 positive/negative conflicts dropped, 70 kept
    assert sum(map(len, ids)) == 70 and "dropped 20 positive/negative conflicts" in parts["train"].meta.notes[0]
    counts = [np.bincount(parts[s].labels, minlength=3).tolist() for s in parts]
    totals = np.sum(counts, axis=0).tolist()
    # multiple: the third annotator's neutral text vote never wins a majority, so labels match single
    assert totals == [30, 10, 30]
    assert counts[0] == [24, 8, 24] and counts[1] == [3, 1, 3] and counts[2] == [3, 1, 3]
    again = mvsa.load_raw(name, "classification", "train", tmp_path)
    assert [s.id for s in again.samples] == [s.id for s in parts["train"].samples]
    other = mvsa.load_raw(name, "classification", "train", tmp_path, seed="1")
    assert [s.id for s in other.samples] != [s.id for s in parts["train"].samples]
    t = mvsa.load_raw(name, "classification", "test", tmp_path, text_only="true")
    assert t.samples[0].image is None and t.meta.protocol.endswith("+text-only")


def test_mvsa_clmlf_with_images(tmp_path):
    B.mvsa_clmlf(tmp_path)
    d = mvsa.load_clmlf("mvsa_single_clmlf", "classification", "val", tmp_path)
    assert d.samples[0].image.path == tmp_path / "dataset_image" / "1.jpg"
    assert d.meta.protocol == "clmlf-fixed-split"


# ---------------------------------------------------------------- JSONL and HF

def test_jsonl_all_tasks(tmp_path):
    files = B.jsonl(tmp_path)
    r = jsonl.load("retrieval", "test", files["retrieval"].parent)
    assert (len(r.images), r.texts[1], r.meta.protocol) == (3, "cap 0 b", "all-captions")
    g = jsonl.load("grounding", "test", files["grounding"].parent)
    np.testing.assert_array_equal(g.samples[0].boxes, [[0, 0, 4, 3]])
    gw = jsonl.load("grounding", "test", files["grounding"].parent, box_format="xywh")
    np.testing.assert_array_equal(gw.samples[0].boxes, [[0, 0, 4, 3]])
    c = jsonl.load("classification", "test", files["classification"].parent)
    assert c.classes == ["neg", "pos"] and c.labels.tolist() == [0, 1, 0]
    (files["grounding"]).write_text('{"image": "img/0.png", "expression": "x", "boxes": [[5, 5, 1, 1]]}\n')
    with pytest.raises(DataError, match=r"test.jsonl: field 'boxes': line 1: impossible box"):
        jsonl.load("grounding", "test", files["grounding"].parent)


def test_hf_parquet_and_saved_arrow(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (1, 2, 3)).save(buf, format="PNG")
    img = {"bytes": buf.getvalue(), "path": None}
    meta = {b"huggingface": json.dumps({"info": {"features": {"label": {"_type": "ClassLabel",
                                                                         "names": ["neg", "pos"]}}}}).encode()}
    t = pa.table({"image": [img, img], "caption": ["a cat", "a dog"], "text": ["x", "y"], "label": [1, 0]}
                 ).replace_schema_metadata(meta)
    pq.write_table(t, tmp_path / "test.parquet")
    d = hf.load("retrieval", "test", tmp_path)
    assert d.texts == ["a cat", "a dog"] and d.images[0].load().size == (4, 3)
    c = hf.load("classification", "test", tmp_path)
    assert c.classes == ["neg", "pos"] and c.labels.tolist() == [1, 0]
    saved = tmp_path / "saved"
    (saved / "validation").mkdir(parents=True)
    (saved / "dataset_dict.json").write_text('{"splits": ["validation"]}')
    with pa.OSFile(str(saved / "validation" / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
    v = hf.load("captioning", "val", saved)
    assert v.references == [["a cat"], ["a dog"]]
    with pytest.raises(DataError, match="no column 'nope'"):
        hf.load("classification", "val", saved, label_column="nope")
