"""Hostile annotation files (issue 12, dataset part): every class of bad data on every adapter it applies
to must end as a DataError naming the file, the field and what was expected, or, where the data is odd
but usable, as a note in the dataset meta (shown in every report). Nothing may escape as a traceback
through ``mmbench eval`` / ``mmbench datasets check``.

Each case builds a tiny copy of the format in tmp_path (tests/fixtures/dataset_builders.py), damages it
one way, loads it and checks the outcome. ``CASES`` is counted by ``test_case_counts``.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench.cli import app
from mmbench.datasets import (cocobu, coco_captions, flickr30k_entities, hf, jsonl, karpathy, mdetr, mvsa,
                              precomp, refer)
from mmbench.errors import DataError, MMBenchError

pytestmark = [pytest.mark.filterwarnings("ignore::mmbench.datasets.common.DatasetSizeWarning"),
              pytest.mark.filterwarnings("ignore::mmbench.datasets.common.DataQualityWarning")]

_spec = importlib.util.spec_from_file_location("dataset_builders",
                                               Path(__file__).parent / "fixtures" / "dataset_builders.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


# --------------------------------------------------------------------------- helpers to damage files

def jedit(path: Path, fn: Callable) -> None:
    d = json.loads(path.read_text())
    fn(d)  # damages d in place
    path.write_text(json.dumps(d))


def jraw(path: Path, fn: Callable[[str], str]) -> None:
    path.write_text(fn(path.read_text()))


def jl_edit(path: Path, fn: Callable) -> None:
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    fn(rows)  # damages rows in place
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def refs_edit(root: Path, fn: Callable) -> None:
    import pickle

    p = root / "refcoco" / "refs(unc).p"
    refs = pickle.loads(p.read_bytes(), encoding="latin1")
    fn(refs)
    p.write_bytes(B.py2_pickle(refs))


def inst_edit(root: Path, fn: Callable) -> None:
    jedit(root / "refcoco" / "instances.json", fn)


def dup_last(lst: list, **changes) -> None:
    lst.append(dict(lst[-1], **changes))


# --------------------------------------------------------------------------- formats: build + load

def _karpathy(root):
    B.karpathy(root)


def _coco_k(root):
    B.karpathy(root, name="coco")


def _precomp(root):
    B.precomp(root)


def _hf_ret(root):
    for i in range(2):
        B.png(root / f"{i}.png")
    B.hf_parquet(root, {"image": ["0.png", "1.png"], "caption": ["a cat", "a dog"]})


def _hf_cls(root, names=("neg", "pos")):
    B.hf_parquet(root, {"text": ["x", "y"], "label": [1, 0]}, names=list(names) if names is not None else None)


LOADERS = {
    "karpathy": (_karpathy, lambda r: karpathy.load_flickr30k("retrieval", "test", r)),
    "karpathy_coco": (_coco_k, lambda r: karpathy.load_coco("retrieval", "test", r)),
    "flickr8k": (B.flickr8k_original, lambda r: karpathy.load_flickr8k("retrieval", "test", r)),
    "coco_captions": (B.coco_captions, lambda r: coco_captions.load("captioning", "val", r)),
    "coco_instances": (B.coco_captions, lambda r: coco_captions.load_instances("grounding", "val", r)),
    "precomp": (_precomp, lambda r: precomp.load_f30k("retrieval", "test", r)),
    "refer": (B.refer, lambda r: refer.load_refcoco("grounding", "testA", r)),
    "mdetr": (B.mdetr, lambda r: mdetr.load("grounding", "testA", r)),
    "f30ke": (B.flickr30k_entities, lambda r: flickr30k_entities.load("grounding", "test", r)),
    "mvsa_raw": (B.mvsa_raw, lambda r: mvsa.load_single("classification", "test", r)),
    "mvsa_clmlf": (B.mvsa_clmlf, lambda r: mvsa.load_single_clmlf("classification", "test", r)),
    "mvsa_clmlf_text": (lambda r: B.mvsa_clmlf(r, images=False),
                        lambda r: mvsa.load_single_clmlf("classification", "test", r, text_only=True)),
    "jsonl_ret": (B.jsonl, lambda r: jsonl.load("retrieval", "test", r / "retrieval")),
    "jsonl_gr": (B.jsonl, lambda r: jsonl.load("grounding", "test", r / "grounding")),
    "jsonl_cls": (B.jsonl, lambda r: jsonl.load("classification", "test", r / "classification")),
    "hf_ret": (_hf_ret, lambda r: hf.load("retrieval", "test", r)),
    "hf_cls": (_hf_cls, lambda r: hf.load("classification", "test", r)),
    "cocobu": (B.cocobu, lambda r: cocobu.load("captioning", "test", r)),
}

K = "dataset_flickr30k.json"
KC = "dataset_coco.json"
CAP = "annotations/captions_val2017.json"
INST = "annotations/instances_val2017.json"
MD = "mdetr_annotations/finetune_refcoco_testA.json"
JR, JG, JC = "retrieval/test.jsonl", "grounding/test.jsonl", "classification/test.jsonl"


@dataclass
class Case:
    cls: str  # the class
    fmt: str  # key of LOADERS
    name: str
    damage: Callable[[Path], None]
    file: str | None = None  # error: the file it names (suffix); None -> a note is expected
    field: str | None = None  # error: substring of DataError.field
    expected: str | None = None  # error: substring of DataError.expected
    note: str | None = None  # warning: substring of a meta note
    message: str | None = None  # substring of the message


def _k_images(root, fn, name=K):
    jedit(root / name, lambda d: fn(d["images"]))


def _set(path_fn, key, value):
    def f(root):
        jedit(root / path_fn, lambda d: d.__setitem__(key, value))
    return f


def _xml_box(root, box, iid="100"):
    p = root / "Annotations" / f"{iid}.xml"
    jraw(p, lambda t: t.replace("<xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax>",
                                "<xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax>".format(*box)))


def _png_bomb(root):
    pass


def _deep_pickle(root):
    p = root / "refcoco" / "refs(unc).p"
    p.write_bytes(b"(" * 200000 + b"l" * 200000 + b".")


def _deep_field_pickle(root):
    """A valid refs list whose one 'split' value is a list nested 100000 deep (repr() would recurse)."""
    refs_edit(root, lambda refs: refs[0].__setitem__("split", "DEEP"))
    p = root / "refcoco" / "refs(unc).p"
    p.write_bytes(p.read_bytes().replace(b"S'DEEP'\n", b"(" * 100000 + b"l" * 100000))


def _bad_utf8(path: Path):
    path.write_bytes(path.read_bytes().replace(b"caption", b"capti\xff\xfen", 1))


CASES: list[Case] = [
    # ---------------------------------------------------------------- duplicates
    Case("duplicates", "karpathy", "same image twice in the test split",
         lambda r: _k_images(r, lambda im: im.append(dict(im[5], sentences=[dict(s, sentid=9000 + k) for k, s in
                                                                            enumerate(im[5]["sentences"])]))),
         K, "filename", "each image (filepath/filename) once", message="evaluated twice"),
    Case("duplicates", "karpathy_coco", "duplicate cocoid",
         lambda r: _k_images(r, lambda im: im[6].__setitem__("cocoid", im[5]["cocoid"]), KC), KC, "cocoid", "once"),
    Case("duplicates", "karpathy", "duplicate sentence id",
         lambda r: _k_images(r, lambda im: im[6]["sentences"][0].__setitem__("sentid", im[5]["sentences"][0]["sentid"])),
         K, "sentid", "each sentid once"),
    Case("duplicates", "flickr8k", "image listed twice in the split list",
         lambda r: jraw(r / "Flickr_8k.testImages.txt", lambda t: t + "a.jpg\n"), "Flickr_8k.testImages.txt",
         "image name", "each image once"),
    Case("duplicates", "flickr8k", "duplicate caption id #k",
         lambda r: jraw(r / "Flickr8k.token.txt", lambda t: t + "a.jpg#0\tanother first caption\n"),
         "Flickr8k.token.txt", "line 16", "each '<image>#<k>' once"),
    Case("duplicates", "coco_captions", "duplicate image id",
         lambda r: jedit(r / CAP, lambda d: d["images"][1].__setitem__("id", 10)), CAP, "id", "unique ids"),
    Case("duplicates", "coco_captions", "two image ids, one file",
         lambda r: jedit(r / CAP, lambda d: d["images"][1].__setitem__("file_name", d["images"][0]["file_name"])),
         CAP, "file_name", "each file_name once"),
    Case("duplicates", "coco_captions", "duplicate annotation id",
         lambda r: jedit(r / CAP, lambda d: d["annotations"][3].__setitem__("id", d["annotations"][0]["id"])),
         CAP, "id", "each annotation id once"),
    Case("duplicates", "coco_instances", "duplicate category id, conflicting names",
         lambda r: jedit(r / INST, lambda d: d["categories"].append({"id": 1, "name": "cat"})), INST,
         "categories.id", "each category id once", message="'cat' here and 'person' before"),
    Case("duplicates", "coco_instances", "duplicate category id, same name (warning)",
         lambda r: jedit(r / INST, lambda d: d["categories"].append({"id": 1, "name": "person"})),
         note="category id 1 ('person') is listed twice"),
    Case("duplicates", "coco_instances", "duplicate annotation id",
         lambda r: jedit(r / INST, lambda d: d["annotations"][1].__setitem__("id", 1)), INST, "id",
         "each annotation id once"),
    Case("duplicates", "refer", "duplicate annotation id in instances.json",
         lambda r: inst_edit(r, lambda d: d["annotations"][2].__setitem__("id", 12)), "refcoco/instances.json", "id",
         "each annotation id once"),
    Case("duplicates", "refer", "duplicate ref_id",
         lambda r: refs_edit(r, lambda refs: refs[1].__setitem__("ref_id", 0)), "refs(unc).p", "ref_id", "once"),
    Case("duplicates", "refer", "duplicate sent_id",
         lambda r: refs_edit(r, lambda refs: refs[1]["sentences"][0].__setitem__("sent_id", 0)), "refs(unc).p",
         "sent_id", "each sent_id once"),
    Case("duplicates", "mdetr", "duplicate annotation id",
         lambda r: jedit(r / MD, lambda d: d["annotations"][1].__setitem__("id", 0)), MD, "id",
         "each annotation id once"),
    Case("duplicates", "f30ke", "image id twice in the split list",
         lambda r: jraw(r / "test.txt", lambda t: t + "100\n"), "test.txt", "image id", "each image id once"),
    Case("duplicates", "mvsa_raw", "duplicate ID with conflicting labels",
         lambda r: jraw(r / "labelResultAll.txt", lambda t: t + "1\tnegative,negative\n"), "labelResultAll.txt", "ID",
         "each ID once", message="conflicting labels"),
    Case("duplicates", "mvsa_clmlf", "duplicate id with conflicting labels",
         lambda r: jedit(r / "10-flod-1/test.json", lambda d: d.append(dict(d[0], emotion_label=2))),
         "10-flod-1/test.json", "id", "each id once", message="label 1 there, 2 here"),
    Case("duplicates", "jsonl_ret", "duplicate id",
         lambda r: jl_edit(r / JR, lambda rows: rows.append(dict(rows[0], image="img/1.png"))), JR, "id", "unique ids"),
    Case("duplicates", "jsonl_ret", "same image under two ids",
         lambda r: jl_edit(r / JR, lambda rows: rows.append(dict(rows[0], id="other"))), JR, "image",
         "each image file once"),
    Case("duplicates", "jsonl_gr", "duplicate sample id",
         lambda r: jl_edit(r / JG, lambda rows: rows.append(rows[0])), JG, "id", "each id once"),
    Case("duplicates", "jsonl_cls", "duplicate id with conflicting labels",
         lambda r: jl_edit(r / JC, lambda rows: rows.append(dict(rows[0], label="pos"))), JC, "id", "each id once",
         message="label 'pos' here"),
    Case("duplicates", "hf_ret", "same image file in two rows",
         lambda r: B.hf_parquet(r, {"image": ["0.png", "0.png"], "caption": ["a", "b"]}), "test.parquet", "image",
         "each image file once"),
    Case("duplicates", "hf_cls", "duplicate id (id_column)",
         lambda r: B.hf_parquet(r, {"id": ["a", "a"], "text": ["x", "y"], "label": [0, 1]}, names=["n", "p"]),
         "test.parquet", "id", "each id once"),
    Case("duplicates", "precomp", "duplicate image id in test_ids.txt",
         lambda r: (r / "f30k_precomp/test_ids.txt").write_text("1\n2\n2\n4\n"), "test_ids.txt", "id", "once"),
    Case("duplicates", "cocobu", "duplicate image id in cocotalk.json",
         lambda r: jedit(r / "cocotalk.json", lambda d: d["images"].append(d["images"][0])), "cocotalk.json", "id",
         "each image id once"),
    Case("duplicates", "cocobu", "duplicate cocoid in the reference json",
         lambda r: _k_images(r, lambda im: im[1].__setitem__("cocoid", 100), KC), KC, "cocoid", "once"),
    # ---------------------------------------------------------------- broken cross-references
    Case("cross-references", "refer", "ann_id of another image",
         lambda r: refs_edit(r, lambda refs: refs[0].__setitem__("ann_id", 12)), "refs(unc).p", "ann_id",
         "an annotation of the ref's own image_id", message="belongs to image 2"),
    Case("cross-references", "mdetr", "expression with two boxes",
         lambda r: jedit(r / MD, lambda d: d["annotations"].append(dict(d["annotations"][0], id=77))), MD,
         "annotations", "exactly one box per expression"),
    # ---------------------------------------------------------------- impossible geometry
    Case("geometry", "refer", "gt box far outside the image",
         lambda r: inst_edit(r, lambda d: d["annotations"][0].__setitem__("bbox", [30, 2, 30, 5])),
         "refcoco/instances.json", "bbox", "a box inside the 40x30 image"),
    Case("geometry", "refer", "gt box negative",
         lambda r: inst_edit(r, lambda d: d["annotations"][0].__setitem__("bbox", [-20, 2, 30, 5])),
         "refcoco/instances.json", "bbox", "inside the 40x30 image"),
    Case("geometry", "refer", "gt box zero-area",
         lambda r: inst_edit(r, lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, 0, 5])),
         "refcoco/instances.json", "bbox", "positive area"),
    Case("geometry", "refer", "gt box overflowing by rounding (warning, clipped)",
         lambda r: inst_edit(r, lambda d: d["annotations"][0].__setitem__("bbox", [30.5, 2, 10.0, 5])),
         note="clipped to it"),
    Case("geometry", "refer", "declared size 1x1 contradicts the image",
         lambda r: inst_edit(r, lambda d: d["images"][0].update(width=1, height=1)), "refs(unc).p",
         "width/height", "the size of the image file"),
    Case("geometry", "refer", "declared size 0x0",
         lambda r: inst_edit(r, lambda d: d["images"][0].update(width=0, height=0)), "refcoco/instances.json",
         "width/height", "positive whole numbers"),
    Case("geometry", "mdetr", "gt box outside the image",
         lambda r: jedit(r / MD, lambda d: d["annotations"][1].__setitem__("bbox", [35, 1, 20, 5])), MD, "bbox",
         "inside the 40x30 image"),
    Case("geometry", "mdetr", "declared size wrong (swapped)",
         lambda r: jedit(r / MD, lambda d: [im.update(width=30, height=40) for im in d["images"]]), MD,
         "width/height", "the size of the image file"),
    Case("geometry", "coco_instances", "gt box outside the image",
         lambda r: jedit(r / INST, lambda d: d["annotations"][0].__setitem__("bbox", [6, 1, 9, 2])), INST, "bbox",
         "inside the 8x6 image"),
    Case("geometry", "coco_instances", "declared size contradicts the file",
         lambda r: jedit(r / INST, lambda d: d["images"][0].update(width=640, height=480)), INST, "width/height",
         "the size of the image file"),
    Case("geometry", "f30ke", "gt box overflowing the image",
         lambda r: _xml_box(r, (1, 2, 90, 20)), "Annotations/100.xml", "bndbox", "inside the 50x40 image"),
    Case("geometry", "f30ke", "gt box zero-area",
         lambda r: _xml_box(r, (1, 2, 1, 20)), "Annotations/100.xml", "bndbox", "positive area"),
    Case("geometry", "f30ke", "gt box one pixel over (warning, clipped)",
         lambda r: _xml_box(r, (1, 2, 51, 20)), note="were clipped to it"),
    Case("geometry", "f30ke", "declared size 0x0",
         lambda r: jraw(r / "Annotations/100.xml", lambda t: t.replace("<width>50</width><height>40</height>",
                                                                       "<width>0</width><height>0</height>")),
         "Annotations/100.xml", "size", "positive whole numbers"),
    Case("geometry", "f30ke", "declared size contradicts the image",
         lambda r: B.png(r / "flickr30k-images/100.jpg", 500, 400), "test.txt", "width/height",
         "the size of the image file"),
    Case("geometry", "jsonl_gr", "gt box outside the declared image",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].__setitem__("boxes", [[0, 0, 80, 60]])), JG, "boxes",
         "inside the 8x6 image"),
    Case("geometry", "jsonl_gr", "gt box negative",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].__setitem__("boxes", [[-5, -5, 4, 3]])), JG, "boxes",
         "inside the 8x6 image"),
    Case("geometry", "jsonl_gr", "gt box zero-area",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].__setitem__("boxes", [[1, 1, 1, 3]])), JG, "boxes",
         "positive area"),
    Case("geometry", "jsonl_gr", "declared width 0",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].update(width=0)), JG, "width/height", "positive whole"),
    Case("geometry", "jsonl_gr", "declared size contradicts the file",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].update(width=800, height=600)), JG, "width/height",
         "the size of the image file"),
    Case("geometry", "jsonl_gr", "gt box overflowing by rounding (warning, clipped)",
         lambda r: jl_edit(r / JG, lambda rows: rows[0].__setitem__("boxes", [[0, 0, 8.4, 6]])), note="clipped"),
    Case("geometry", "jsonl_gr", "no declared size: size read from the file, box checked against it",
         lambda r: jl_edit(r / JG, lambda rows: [(x.pop("width"), x.pop("height"), x.__setitem__(
             "boxes", [[0, 0, 30, 30]])) for x in rows]), JG, "boxes", "inside the 8x6 image"),
    # ---------------------------------------------------------------- empty text
    Case("empty text", "karpathy", "empty raw caption",
         lambda r: _k_images(r, lambda im: im[5]["sentences"][0].__setitem__("raw", "   ")), K, "raw",
         "a non-empty caption"),
    Case("empty text", "flickr8k", "whitespace caption",
         lambda r: jraw(r / "Flickr8k.token.txt", lambda t: t.replace("caption 2 of b.jpg", "  ")),
         "Flickr8k.token.txt", "line 8", "a non-empty caption"),
    Case("empty text", "coco_captions", "whitespace caption",
         lambda r: jedit(r / CAP, lambda d: d["annotations"][2].__setitem__("caption", "\t \n")), CAP, "caption",
         "a non-empty caption"),
    Case("empty text", "coco_instances", "empty category name",
         lambda r: jedit(r / INST, lambda d: d["categories"][1].__setitem__("name", " ")), INST, "name",
         "a non-empty category name"),
    Case("empty text", "precomp", "empty caption line",
         lambda r: jraw(r / "f30k_precomp/test_caps.txt", lambda t: t.replace("caption 3\n", " \n")),
         "test_caps.txt", "line 4", "non-empty caption"),
    Case("empty text", "refer", "empty expression",
         lambda r: refs_edit(r, lambda refs: refs[0]["sentences"][1].__setitem__("sent", "  ")), "refs(unc).p",
         "sent", "a non-empty expression"),
    Case("empty text", "mdetr", "empty expression",
         lambda r: jedit(r / MD, lambda d: d["images"][1].__setitem__("caption", "")), MD, "caption",
         "a non-empty expression"),
    Case("empty text", "f30ke", "empty phrase",
         lambda r: jraw(r / "Sentences/100.txt", lambda t: t.replace("[/EN#3/other a ball]", "[/EN#3/other ]")),
         "Sentences/100.txt", "phrase", "a non-empty expression"),
    Case("empty text", "jsonl_ret", "empty caption",
         lambda r: jl_edit(r / JR, lambda rows: rows[1]["captions"].append(" ")), JR, "captions", "non-empty"),
    Case("empty text", "jsonl_gr", "empty expression",
         lambda r: jl_edit(r / JG, lambda rows: rows[2].__setitem__("expression", "  ")), JG, "expression",
         "a non-empty expression"),
    Case("empty text", "jsonl_cls", "row with neither text nor image",
         lambda r: jl_edit(r / JC, lambda rows: rows.append({"id": "z", "text": "  ", "label": "pos"})), JC,
         "text/image", "at least one"),
    Case("empty text", "jsonl_cls", "empty class name in classes=",
         lambda r: None, JC, "option classes", "a non-empty class name"),  # load patched below
    Case("empty text", "jsonl_cls", "whitespace label as class name",
         lambda r: jl_edit(r / JC, lambda rows: rows[0].__setitem__("label", "  ")), JC, "label",
         "a non-empty class name"),
    Case("empty text", "hf_ret", "empty caption",
         lambda r: B.hf_parquet(r, {"image": ["0.png", "1.png"], "caption": ["a", " "]}), "test.parquet",
         "captions", "non-empty"),
    Case("empty text", "hf_cls", "row with neither text nor image",
         lambda r: B.hf_parquet(r, {"text": ["x", " "], "label": [0, 1]}, names=["n", "p"]), "test.parquet",
         "text/image", "a non-empty text or an image"),
    Case("empty text", "mvsa_clmlf_text", "text-only sample with empty text",
         lambda r: jedit(r / "10-flod-1/test.json", lambda d: d[0].__setitem__("text", " ")), "test.json",
         "text/image", "a non-empty text or an image"),
    Case("empty text", "cocobu", "empty reference caption",
         lambda r: _k_images(r, lambda im: im[0]["sentences"][0].__setitem__("raw", ""), KC), KC, "raw",
         "a non-empty caption"),
    # ---------------------------------------------------------------- split typos
    Case("split typo", "karpathy", "split 'tset'",
         lambda r: _k_images(r, lambda im: im[5].__setitem__("split", "tset")), K, "split",
         "one of train, val, test, restval", message="did you mean 'test'?"),
    Case("split typo", "karpathy_coco", "unknown split value 'validation'",
         lambda r: _k_images(r, lambda im: im[0].__setitem__("split", "validation"), KC), KC, "split", "one of"),
    Case("split typo", "refer", "ref split 'tesA'",
         lambda r: refs_edit(r, lambda refs: refs[2].__setitem__("split", "tesA")), "refs(unc).p", "split",
         "one of train, val, testA, testB, test"),
    Case("split typo", "cocobu", "cocotalk split 'tset'",
         lambda r: jedit(r / "cocotalk.json", lambda d: d["images"][1].__setitem__("split", "tset")),
         "cocotalk.json", "split", "one of train, val, test, restval"),
    # ---------------------------------------------------------------- features
    Case("features", "precomp", "NaN in test_ims.npy",
         lambda r: np.save(r / "f30k_precomp/test_ims.npy", np.where(np.arange(24).reshape(4, 3, 2) == 7, np.nan,
                                                                      1.0).astype(np.float32)),
         "test_ims.npy", None, "finite float features", message="rows [1]"),
    Case("features", "precomp", "inf in test_ims.npy",
         lambda r: np.save(r / "f30k_precomp/test_ims.npy", np.full((4, 3, 2), np.inf, np.float32)),
         "test_ims.npy", None, "finite float features"),
    Case("features", "precomp", "wrong dimension (1-D array)",
         lambda r: np.save(r / "f30k_precomp/test_ims.npy", np.ones(4, np.float32)), "test_ims.npy",
         "shape/dtype", "float (N, regions, dim)"),
    Case("features", "precomp", "zero-width features",
         lambda r: np.save(r / "f30k_precomp/test_ims.npy", np.ones((4, 3, 0), np.float32)), "test_ims.npy",
         "shape", "dim > 0"),
    # (cocobu NaN / dimension: read lazily, see test_cocobu_features_* below)
    # ---------------------------------------------------------------- ClassLabel metadata (hf)
    Case("ClassLabel", "hf_cls", "names is a string",
         lambda r: _hf_cls(r, names=None) or B.hf_parquet(r, {"text": ["x", "y"], "label": [1, 0]}, names="abc"),
         "test.parquet", "features.label.names", "a list of class-name strings"),
    Case("ClassLabel", "hf_cls", "duplicate names",
         lambda r: B.hf_parquet(r, {"text": ["x", "y"], "label": [1, 0]}, names=["pos", "pos"]), "test.parquet",
         "features.label.names", "each class name once"),
    Case("ClassLabel", "hf_cls", "empty name",
         lambda r: B.hf_parquet(r, {"text": ["x", "y"], "label": [1, 0]}, names=["neg", ""]), "test.parquet",
         "features.label.names", "a non-empty class name"),
    Case("ClassLabel", "hf_cls", "duplicate names in classes=",
         lambda r: None, "test.parquet", "option classes", "each class name once"),  # load patched below
    # ---------------------------------------------------------------- hostile encodings / numbers / sizes
    Case("encoding", "karpathy", "integer of 5000 digits",
         lambda r: jraw(r / K, lambda t: t.replace('"imgid": 0,', '"imgid": ' + "9" * 5000 + ",", 1)), K, None,
         "finite JSON numbers"),
    Case("encoding", "coco_captions", "width NaN",
         lambda r: jraw(r / CAP, lambda t: t.replace('"width": 8', '"width": NaN', 1)), CAP, None,
         "finite JSON numbers"),
    Case("encoding", "coco_captions", "height Infinity",
         lambda r: jraw(r / CAP, lambda t: t.replace('"height": 6', '"height": Infinity', 1)), CAP, None,
         "finite JSON numbers"),
    Case("encoding", "mdetr", "width 1e400",
         lambda r: jraw(r / MD, lambda t: t.replace('"width": 40', '"width": 1e400', 1)), MD, None,
         "finite JSON numbers"),
    Case("encoding", "refer", "height 1e400 in instances.json",
         lambda r: jraw(r / "refcoco/instances.json", lambda t: t.replace('"height": 30', '"height": 1e400', 1)),
         "refcoco/instances.json", None, "finite JSON numbers"),
    Case("encoding", "jsonl_gr", "width NaN",
         lambda r: jraw(r / JG, lambda t: t.replace('"width": 8', '"width": NaN', 1)), JG, "line 1",
         "finite JSON numbers"),
    Case("encoding", "refer", "pickle nested 200000 deep",
         _deep_pickle, "refs(unc).p", "ref_id", "a JSON object holding it", message="refs[0] is list"),
    Case("encoding", "refer", "a field nested 100000 deep in the pickle",
         _deep_field_pickle, "refs(unc).p", "split", "str", message="nested too deeply to show"),
    Case("encoding", "refer", "ref_id of 5000 digits in the pickle",
         lambda r: refs_edit(r, lambda refs: refs[0].__setitem__("ref_id", 10 ** 400)), "refs(unc).p", "ref_id",
         "a 64-bit integer id"),
    Case("encoding", "jsonl_ret", "over-long image path (ENAMETOOLONG)",
         lambda r: jl_edit(r / JR, lambda rows: rows[0].__setitem__("image", "x" * 300 + ".png")), JR,
         "line 1: image", "file names of at most 255 bytes"),
    Case("encoding", "cocobu", "over-long image id (ENAMETOOLONG)",
         lambda r: jedit(r / "cocotalk.json", lambda d: d["images"][0].__setitem__("id", "9" * 300)), "cocotalk.json",
         "images[0].id", "file names of at most 255 bytes"),
    Case("encoding", "mvsa_clmlf", "over-long id",
         lambda r: jedit(r / "10-flod-1/test.json", lambda d: d[0].__setitem__("id", "1" * 300)), "test.json", "id",
         "at most 30 digits"),
    Case("encoding", "mvsa_raw", "over-long ID",
         lambda r: jraw(r / "labelResultAll.txt", lambda t: t + "1" * 300 + "\tpositive,positive\n"),
         "labelResultAll.txt", "line 42", "at most 30 digits"),
    Case("encoding", "f30ke", "over-long image id",
         lambda r: jraw(r / "test.txt", lambda t: t + "1" * 300 + "\n"), "test.txt", "line 3", "at most 30 digits"),
    Case("encoding", "karpathy", "non-UTF-8 json", lambda r: _bad_utf8(r / K), K, None, "a UTF-8 JSON file"),
    Case("encoding", "flickr8k", "non-UTF-8 token file", lambda r: _bad_utf8(r / "Flickr8k.token.txt"),
         "Flickr8k.token.txt", None, None, message="not utf-8 text"),
    Case("encoding", "precomp", "non-UTF-8 caption file", lambda r: _bad_utf8(r / "f30k_precomp/test_caps.txt"),
         "test_caps.txt", None, None, message="not utf-8 text"),
    Case("encoding", "jsonl_cls", "non-UTF-8 jsonl", lambda r: (r / JC).write_bytes(b'{"label": "\xff"}\n'), JC,
         None, None, message="not utf-8 text"),
    Case("encoding", "f30ke", "non-UTF-8 sentences", lambda r: (r / "Sentences/100.txt").write_bytes(b"\xff\xfe ["),
         "Sentences/100.txt", None, None, message="not utf-8 text"),
    Case("encoding", "mvsa_raw", "non-UTF-8 tweet (warning: read as latin-1)",
         lambda r: [(r / f"data/{i}.txt").write_bytes(b"caf\xe9") for i in range(1, 41)],
         note="not UTF-8 and were read as latin-1"),
    # ---------------------------------------------------------------- denial of service
    Case("denial of service", "jsonl_cls", "integer label 10**10",
         lambda r: jl_edit(r / JC, lambda rows: [x.__setitem__("label", 10 ** 10 if k == 0 else 0)
                                                 for k, x in enumerate(rows)]), JC, "label",
         "integer labels below 10000"),
    Case("denial of service", "jsonl_cls", "negative integer label",
         lambda r: jl_edit(r / JC, lambda rows: [x.__setitem__("label", -1 if k == 0 else 0)
                                                 for k, x in enumerate(rows)]), JC, "label", "labels >= 0"),
    Case("denial of service", "hf_cls", "integer label 10**10 (no ClassLabel)",
         lambda r: B.hf_parquet(r, {"text": ["x", "y"], "label": [10 ** 10, 0]}), "test.parquet", "label",
         "integer labels below 10000"),
]

# loads that need an option the damage cannot express
SPECIAL_LOADS = {
    "empty class name in classes=": lambda r: jsonl.load("classification", "test", r / "classification",
                                                         classes="neg, ,pos"),
    "duplicate names in classes=": lambda r: hf.load("classification", "test", r, classes="a,b,a"),
    "duplicate id (id_column)": lambda r: hf.load("classification", "test", r, id_column="id"),
}


def _run(case: Case, root: Path):
    build, load = LOADERS[case.fmt]
    build(root)
    case.damage(root)
    return SPECIAL_LOADS.get(case.name, load)(root)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.fmt}-{c.name}" for c in CASES])
def test_hostile_case(case, tmp_path):
    if case.fmt.startswith("hf"):
        pytest.importorskip("pyarrow")
    if case.file is None:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            data = _run(case, tmp_path)
        assert any(case.note in n for n in data.meta.notes), data.meta.notes
        return
    with pytest.raises(DataError) as ei:
        _run(case, tmp_path)
    exc = ei.value
    assert exc.path is not None and exc.path.replace("\\", "/").endswith(case.file), (exc.path, str(exc))
    if case.field is not None:
        assert exc.field is not None and case.field in exc.field, (exc.field, str(exc))
    if case.expected is not None:
        assert exc.expected is not None and case.expected in exc.expected, (exc.expected, str(exc))
    if case.message is not None:
        assert case.message.lower() in str(exc).lower(), str(exc)
    assert "\n" not in str(exc).split("\nExpected layout:")[0]  # one paragraph


def test_case_counts():
    """The numbers the issue asks for: cases / clear errors / warnings (notes)."""
    errors = sum(c.file is not None for c in CASES)
    notes = sum(c.file is None for c in CASES)
    assert errors + notes == len(CASES)
    classes = {c.cls for c in CASES}
    assert classes == {"duplicates", "cross-references", "geometry", "empty text", "split typo", "features",
                       "ClassLabel", "encoding", "denial of service"}
    print(f"hostile dataset cases: {len(CASES)} / errors {errors} / warnings {notes}")


# --------------------------------------------------------------------------- lazily read features (cocobu)

def test_cocobu_features_nan_named_on_access(tmp_path):
    B.cocobu(tmp_path)
    np.savez_compressed(tmp_path / "cocobu_att" / "101", feat=np.full((3, 8), np.nan, np.float32))
    data = cocobu.load("captioning", "test", tmp_path)
    with pytest.raises(DataError) as ei:
        data.images[1].regions
    assert ei.value.path.endswith("101.npz") and ei.value.field == "feat" and "finite" in ei.value.expected


def _check(args):
    res = CliRunner().invoke(app, ["datasets", "check", *args, "--json"])
    assert "Traceback" not in res.output, res.output
    return res, json.loads(res.stdout) if res.stdout.strip().startswith("{") else None


def test_datasets_check_reads_features_and_dimensions(tmp_path):
    B.cocobu(tmp_path)
    np.savez_compressed(tmp_path / "cocobu_att" / "101", feat=np.full((3, 8), np.nan, np.float32))
    np.savez_compressed(tmp_path / "cocobu_att" / "102", feat=np.ones((3, 5), np.float32))
    np.save(tmp_path / "cocobu_fc" / "103", np.full(8, np.inf, np.float32))
    res, rep = _check(["cocobu", "--data-root", str(tmp_path), "--split", "test"])
    assert res.exit_code == 1
    (r,) = rep["splits"]
    assert r["problems"] == {"unreadable or non-finite feature file(s)": 2,
                             "feature array(s) whose dimension differs from the split's": 1}, r["problems"]
    assert any("101.npz" in s for s in r["problems_first"]["unreadable or non-finite feature file(s)"])


def test_datasets_check_precomp_nan_is_a_split_error(tmp_path):
    B.precomp(tmp_path)
    a = np.ones((4, 3, 2), np.float32)
    a[2, 1, 0] = np.nan
    np.save(tmp_path / "f30k_precomp" / "test_ims.npy", a)
    res, rep = _check(["f30k_precomp", "--data-root", str(tmp_path), "--split", "test"])
    assert res.exit_code == 1
    assert "test_ims.npy" in rep["splits"][0]["error"] and "NaN" in rep["splits"][0]["error"]


def test_datasets_check_decodes_every_image_header(tmp_path, monkeypatch):
    from PIL import Image

    B.coco_captions(tmp_path)
    (tmp_path / "val2017" / "000000000001.jpg").write_bytes(b"not an image at all")
    B.png(tmp_path / "val2017" / "000000000002.jpg", 64, 64)  # over the (lowered) bomb limit
    jedit(tmp_path / CAP, lambda d: d["images"][3].update(width=1, height=1))  # captions do not use the size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    res, rep = _check(["coco_captions", "--data-root", str(tmp_path), "--split", "val"])
    assert res.exit_code == 1
    (r,) = rep["splits"]
    assert r["problems"] == {"image file(s) that cannot be used": 1,
                             "image file(s) over Pillow's decompression-bomb limit": 1,
                             "declared image size(s) that contradict the file": 1}, r["problems"]
    assert any("declared 1x1, file 8x6" in s for s in r["problems_first"]["declared image size(s) that contradict "
                                                                          "the file"])
    text = CliRunner().invoke(app, ["datasets", "check", "coco_captions", "--data-root", str(tmp_path),
                                    "--split", "val"])
    assert "decompression-bomb" in text.output and "Traceback" not in text.output


def test_datasets_check_reports_every_split(tmp_path):
    B.karpathy(tmp_path)
    _k_images(tmp_path, lambda im: im[5].__setitem__("split", "tset"))
    res, rep = _check(["flickr30k", "--data-root", str(tmp_path)])
    assert res.exit_code == 1 and not rep["ok"]
    assert all("tset" in r["error"] and "did you mean 'test'" in r["error"] for r in rep["splits"])


# --------------------------------------------------------------------------- through the CLI: exit 2, one paragraph

CLI = [  # (format, case name, plugin, dataset, split, data root below the built folder)
    ("karpathy", "same image twice in the test split", "cca", "flickr30k", "test", ""),
    ("karpathy", "split 'tset'", "cca", "flickr30k", "test", ""),
    ("refer", "ann_id of another image", "colour-box", "refcoco", "testA", ""),
    ("refer", "declared size 1x1 contradicts the image", "colour-box", "refcoco", "testA", ""),
    ("refer", "pickle nested 200000 deep", "colour-box", "refcoco", "testA", ""),
    ("mdetr", "expression with two boxes", "colour-box", "mdetr_refexp", "testA", ""),
    ("coco_captions", "whitespace caption", "nn-caption", "coco_captions", "val", ""),
    ("jsonl_cls", "integer label 10**10", "sk-text-only", "jsonl", "test", "classification"),
    ("hf_cls", "names is a string", "sk-text-only", "hf", "test", ""),
]


@pytest.mark.parametrize("fmt,name,plugin,dataset,split,sub", CLI, ids=[c[1] for c in CLI])
def test_eval_cli_one_paragraph_no_traceback(fmt, name, plugin, dataset, split, sub, tmp_path):
    """`mmbench eval` on hostile data: the run fails with the DataError as one paragraph, never a traceback.
    (The data is loaded inside the run, so the exit code is 1, "run failed", with a failed record.)"""
    if fmt.startswith("hf"):
        pytest.importorskip("pyarrow")
    case = next(c for c in CASES if c.name == name and c.fmt == fmt)
    root = tmp_path / "data"
    root.mkdir()
    LOADERS[case.fmt][0](root)
    case.damage(root)
    res = CliRunner().invoke(app, ["eval", "-p", plugin, "-d", dataset, "--split", split, "--data-root",
                                   str(root / sub) if sub else str(root), "--out", str(tmp_path / "runs")])
    out = res.output
    assert res.exit_code in (1, 2), out
    assert "Traceback" not in out and 'File "' not in out, out
    # the terminal wraps lines anywhere (inside a path or between words): compare without any whitespace
    flat = "".join(out.split())
    assert case.file.split("/")[-1] in flat and "".join((case.expected or "").split()) in flat, out


def test_datasets_check_cli_never_tracebacks(tmp_path):
    """Every error case, through `mmbench datasets check`: a per-split error naming the file, no traceback."""
    names = {"karpathy": "flickr30k", "karpathy_coco": "coco", "flickr8k": "flickr8k", "coco_captions": "coco_captions",
             "coco_instances": "coco_instances", "precomp": "f30k_precomp", "refer": "refcoco",
             "mdetr": "mdetr_refexp", "f30ke": "flickr30k_entities", "mvsa_raw": "mvsa_single",
             "mvsa_clmlf": "mvsa_single_clmlf", "cocobu": "cocobu"}
    splits = {"refcoco": "testA", "mdetr_refexp": "testA", "coco_captions": "val", "coco_instances": "val"}
    checked = 0
    for k, case in enumerate(c for c in CASES if c.file is not None and c.fmt in names and c.name not in SPECIAL_LOADS):
        root = tmp_path / str(k)
        root.mkdir()
        LOADERS[case.fmt][0](root)
        case.damage(root)
        ds = names[case.fmt]
        res = CliRunner().invoke(app, ["datasets", "check", ds, "--data-root", str(root), "--split",
                                       splits.get(ds, "test"), "--json"])
        assert "Traceback" not in res.output, (case.name, res.output)
        assert res.exit_code == 1, (case.name, res.output)
        rep = json.loads(res.stdout)
        assert case.file.split("/")[-1] in rep["splits"][0]["error"], (case.name, rep)
        checked += 1
    assert checked >= 60
