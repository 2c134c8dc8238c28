"""Karpathy split files (``dataset_{flickr8k,flickr30k,coco}.json``) + image folders.

Retrieval and captioning. Retrieval protocols (PROTOCOLS.md section 1):
``flickr30k-1k`` (Flickr30k test, 1000 x 5000), ``coco-5k`` (COCO test, one 5000 x 25000
matrix), ``coco-1k-5fold`` (same images, 5 folds of 1000, ``RetrievalData.folds=5``),
``5-per-image`` (other splits) and ``all-captions`` (every caption an image has, as
CLIP_benchmark does). The Karpathy/SCAN protocol keeps the first five captions.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.datasets import flickr8k
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

SOURCE = C.KARPATHY_SOURCE

LAYOUTS = {
    "flickr30k": f"""DATA_ROOT/
  dataset_flickr30k.json     Karpathy splits ({SOURCE})
  flickr30k-images/*.jpg     the 31783 Flickr30k images (request form: https://shannon.cs.illinois.edu/DenotationGraph/)
                             (also found: images/, Images/; or --dataset-option images=DIR)""",
    "coco": f"""DATA_ROOT/
  dataset_coco.json          Karpathy splits ({SOURCE})
  train2014/COCO_train2014_*.jpg, val2014/COCO_val2014_*.jpg
                             COCO 2014 images (https://cocodataset.org/#download); the json's
                             'filepath' (train2014 / val2014) is resolved under DATA_ROOT, or under
                             --dataset-option images=DIR""",
    "flickr8k": flickr8k.LAYOUT,
}

IMAGE_DIRS = {
    "flickr30k": ("flickr30k-images", "flickr30k_images", "images", "Images", "."),
    "flickr8k": flickr8k.IMAGE_DIRS,
    "coco": (".",),
}

OPTIONS = (
    Option("captions", str, None, "first5 (Karpathy/SCAN protocol, retrieval default) or all (every caption; "
                                  "captioning default)", choices=C.CAPTION_MODES),
    Option("protocol", str, None, "COCO test retrieval: coco-5k (default) or coco-1k-5fold",
           choices=("coco-5k", "coco-1k-5fold")),
    Option("restval", bool, True, "COCO train: include the 30504 'restval' images (default true, as SCAN/VSE++)"),
    Option("images", str, None, "image folder relative to DATA_ROOT (default: auto-detected)"),
    Option("annotations", str, None, "the Karpathy json relative to DATA_ROOT (default dataset_<name>.json)"),
    C.MISSING,
)

TASKS = ("retrieval", "captioning")
SPLITS = ("train", "val", "test")


def _protocol(dataset: str, split: str, task: str, captions: str, protocol: str | None) -> tuple[str, int]:
    if dataset == "coco" and split == "test" and task == "retrieval":
        p = protocol or "coco-5k"
        if captions == "all":
            if p == "coco-1k-5fold":
                raise MMBenchError("dataset 'coco': protocol=coco-1k-5fold is defined on 5 captions per image; "
                                   "use captions=first5 (or protocol=coco-5k with captions=all)")
            return "all-captions", 1
        return p, (5 if p == "coco-1k-5fold" else 1)
    if protocol:
        raise MMBenchError(f"dataset {dataset!r}: option protocol= applies to COCO test retrieval only "
                           f"(coco-5k / coco-1k-5fold); use captions=first5|all here")
    if captions == "all":
        return "all-captions", 1
    if dataset == "flickr30k" and split == "test" and task == "retrieval":
        return "flickr30k-1k", 1
    return "5-per-image", 1


KARPATHY_SPLITS = ("train", "val", "test", "restval")


def parse_karpathy(path: Path, *, dataset: str, layout: str) -> list[dict]:
    """The records of a Karpathy split file, refusing what would silently change the numbers: an
    unknown split value (a typo drops the image), the same image twice (evaluated twice), a repeated
    cocoid or sentid, an empty caption."""
    data = C.read_json(path, layout=layout)
    images = C.field(data, "images", list, source=path, where="top level",
                     expected="a list of images (Karpathy split format)")
    out = []
    files = C.Unique(path, "filename", "image (filepath/filename)")
    cocoids = C.Unique(path, "cocoid", "cocoid")
    sentids = C.Unique(path, "sentid", "sentid")
    splits = []
    for i, im in enumerate(images):
        where = f"images[{i}]"
        fn = C.field(im, "filename", str, source=path, where=where)
        sp = C.field(im, "split", str, source=path, where=where, expected="train, val, test or restval")
        splits.append((i, sp))
        sents = C.field(im, "sentences", list, source=path, where=where)
        caps = []
        for k, s in enumerate(sents):
            w = f"{where}.sentences[{k}]"
            if isinstance(s, dict) and isinstance(s.get("raw"), str):
                caps.append(C.text_value(s["raw"], source=path, where=w, key="raw", what="caption"))
            elif isinstance(s, dict) and isinstance(s.get("tokens"), list) and all(isinstance(t, str)
                                                                                    for t in s["tokens"]):
                caps.append(C.text_value(" ".join(s["tokens"]), source=path, where=w, key="tokens", what="caption"))
            else:
                raise DataError(path, f"{w} has no caption text", field="raw",
                                expected="a 'raw' string (or a 'tokens' list of strings)")
            sid = s.get("sentid")
            if sid is not None:
                if isinstance(sid, bool) or not isinstance(sid, (int, str)):
                    raise DataError(path, f"{w}: sentid {C._short(sid)}", field="sentid", expected="an integer")
                sentids(sid, w)
        fp = im.get("filepath", "")
        if not isinstance(fp, str):
            raise DataError(path, f"{where}: 'filepath' is {type(fp).__name__}", field="filepath", expected="str")
        files(f"{fp}/{fn}" if fp else fn, where, detail="; it would be evaluated twice")
        cid = im.get("cocoid", None)
        if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int)):
            raise DataError(path, f"{where}: cocoid {C._short(cid)}", field="cocoid", expected="an integer")
        if cid is not None:
            cocoids(cid, where)
        ident = str(cid) if cid is not None else fn
        out.append({"filename": fn, "filepath": fp, "split": sp, "captions": caps, "id": ident})
    C.check_split_values(splits, KARPATHY_SPLITS, source=path)
    return out


def load(name: str, task: str, split: str, data_root=None, **options):
    """Karpathy split ``split`` of ``name`` (flickr30k, flickr8k, coco); options checked by its spec."""
    return C.checked_load(name, task, split, data_root, **options)


def read(dataset: str, task: str, split: str, data_root=None, *, captions, protocol, restval, images, annotations,
         missing):
    """One Karpathy split; task, split and options are checked and typed by the spec (``OPTIONS``)."""
    layout = LAYOUTS[dataset]
    root = C.root_dir(data_root, dataset=dataset, layout=layout)
    captions = captions or ("first5" if task == "retrieval" else "all")
    protocol, folds = _protocol(dataset, split, task, captions, protocol)
    ann_name = annotations or f"dataset_{dataset}.json"
    ann = C.inside(root, ann_name, source=root, field="option annotations")
    if dataset == "flickr8k" and not annotations and not ann.is_file() and (root / "Flickr8k.token.txt").is_file():
        return flickr8k.load_original(task, split, root, captions=captions, protocol=protocol, missing=missing,
                                      images=images)
    C.require_file(ann, what=f"Karpathy split file {ann_name}", layout=layout)
    records = parse_karpathy(ann, dataset=dataset, layout=layout)
    want = {split} | ({"restval"} if dataset == "coco" and split == "train" and restval else set())
    img_dir = C.find_dir(root, IMAGE_DIRS[dataset], option=images, dataset=dataset, what="image", layout=layout)
    entries = []
    for i, r in enumerate(records):
        if r["split"] not in want:
            continue
        rel = f"{r['filepath']}/{r['filename']}" if r["filepath"] else r["filename"]
        path = C.inside(img_dir, rel, source=ann, field=f"images[{i}].filename")
        entries.append((ImageItem(id=r["id"], path=path), r["captions"]))
    notes: list[str] = []
    return C.build_image_text(task, dataset, split, entries, captions=captions, protocol=protocol, files=[ann],
                              root=root, missing=missing, image_dir=img_dir, notes=notes, folds=folds, source=ann)


@C.adapter("flickr30k")
def load_flickr30k(task: str, split: str, data_root=None, **options):
    return read("flickr30k", task, split, data_root, **options)


@C.adapter("flickr8k")
def load_flickr8k(task: str, split: str, data_root=None, **options):
    return read("flickr8k", task, split, data_root, **options)


@C.adapter("coco")
def load_coco(task: str, split: str, data_root=None, **options):
    return read("coco", task, split, data_root, **options)
