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
from mmbench.errors import DataError
from mmbench.tasks.base import ImageItem

SOURCE = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"

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
    "flickr8k": f"""DATA_ROOT/ (either layout, auto-detected)
  dataset_flickr8k.json      Karpathy splits ({SOURCE})
  -- or the original Flickr8k_text layout --
  Flickr8k.token.txt         '<image>.jpg#<k>\\t<caption>' lines
  Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, Flickr_8k.testImages.txt
  Flicker8k_Dataset/*.jpg    the 8091 images (also: Flickr8k_Dataset/, images/, Images/;
                             or --dataset-option images=DIR)
  (Flickr8k: Hodosh et al. 2013, research-use terms)""",
}

IMAGE_DIRS = {
    "flickr30k": ("flickr30k-images", "flickr30k_images", "images", "Images", "."),
    "flickr8k": ("Flicker8k_Dataset", "Flickr8k_Dataset/Flicker8k_Dataset", "Flickr8k_Dataset", "images", "Images",
                 "."),
    "coco": (".",),
}

OPTIONS = {
    "captions": "first5 (Karpathy/SCAN protocol, retrieval default) or all (every caption; captioning default)",
    "protocol": "COCO test retrieval: coco-5k (default) or coco-1k-5fold",
    "restval": "COCO train: include the 30504 'restval' images (default true, as SCAN/VSE++)",
    "images": "image folder relative to DATA_ROOT (default: auto-detected)",
    "annotations": "the Karpathy json relative to DATA_ROOT (default dataset_<name>.json)",
    "missing": "missing image files: error (default), drop (recorded in the run record) or keep",
}

TASKS = ("retrieval", "captioning")
SPLITS = ("train", "val", "test")


def _protocol(dataset: str, split: str, task: str, captions: str, protocol: str | None) -> tuple[str, int]:
    if dataset == "coco" and split == "test" and task == "retrieval":
        p = C.opt_choice(protocol or "coco-5k", "protocol", ("coco-5k", "coco-1k-5fold"), dataset=dataset)
        if captions == "all":
            if p == "coco-1k-5fold":
                from mmbench.errors import MMBenchError

                raise MMBenchError("dataset 'coco': protocol=coco-1k-5fold is defined on 5 captions per image; "
                                   "use captions=first5 (or protocol=coco-5k with captions=all)")
            return "all-captions", 1
        return p, (5 if p == "coco-1k-5fold" else 1)
    if protocol:
        from mmbench.errors import MMBenchError

        raise MMBenchError(f"dataset {dataset!r}: option protocol= applies to COCO test retrieval only "
                           f"(coco-5k / coco-1k-5fold); use captions=first5|all here")
    if captions == "all":
        return "all-captions", 1
    if dataset == "flickr30k" and split == "test" and task == "retrieval":
        return "flickr30k-1k", 1
    return "5-per-image", 1


def parse_karpathy(path: Path, *, dataset: str, layout: str) -> list[dict]:
    data = C.read_json(path, layout=layout)
    images = C.field(data, "images", list, source=path, where="top level",
                     expected="a list of images (Karpathy split format)")
    out = []
    for i, im in enumerate(images):
        where = f"images[{i}]"
        fn = C.field(im, "filename", str, source=path, where=where)
        sp = C.field(im, "split", str, source=path, where=where, expected="train, val, test or restval")
        sents = C.field(im, "sentences", list, source=path, where=where)
        caps = []
        for k, s in enumerate(sents):
            w = f"{where}.sentences[{k}]"
            if isinstance(s, dict) and isinstance(s.get("raw"), str):
                caps.append(s["raw"].strip())
            elif isinstance(s, dict) and isinstance(s.get("tokens"), list) and all(isinstance(t, str)
                                                                                    for t in s["tokens"]):
                caps.append(" ".join(s["tokens"]))
            else:
                raise DataError(path, f"{w} has no caption text", field="raw",
                                expected="a 'raw' string (or a 'tokens' list of strings)")
        fp = im.get("filepath", "")
        if not isinstance(fp, str):
            raise DataError(path, f"{where}: 'filepath' is {type(fp).__name__}", field="filepath", expected="str")
        cid = im.get("cocoid", None)
        ident = str(cid) if isinstance(cid, int) and not isinstance(cid, bool) else fn
        out.append({"filename": fn, "filepath": fp, "split": sp, "captions": caps, "id": ident})
    return out


def load(dataset: str, task: str, split: str, data_root=None, **options):
    layout = LAYOUTS[dataset]
    C.check_task(task, TASKS, dataset=dataset)
    C.check_split(split, SPLITS, dataset=dataset)
    C.no_extra_options(options, OPTIONS, dataset=dataset)
    root = C.root_dir(data_root, dataset=dataset, layout=layout)
    captions = C.opt_choice(options.get("captions", "first5" if task == "retrieval" else "all"), "captions",
                            C.CAPTION_MODES, dataset=dataset)
    missing = C.opt_choice(options.get("missing", "error"), "missing", C.MISSING_CHOICES, dataset=dataset)
    protocol, folds = _protocol(dataset, split, task, captions, options.get("protocol"))
    ann_name = options.get("annotations") or f"dataset_{dataset}.json"
    ann = C.inside(root, ann_name, source=root, field="option annotations")
    if dataset == "flickr8k" and not options.get("annotations") and not ann.is_file():
        from mmbench.datasets import flickr8k

        if (root / "Flickr8k.token.txt").is_file():
            return flickr8k.load_original(task, split, root, captions=captions, protocol=protocol,
                                          missing=missing, images=options.get("images"))
    C.require_file(ann, what=f"Karpathy split file {ann_name}", layout=layout)
    records = parse_karpathy(ann, dataset=dataset, layout=layout)
    want = {split} | ({"restval"} if dataset == "coco" and split == "train" and
                      C.opt_bool(options.get("restval", "true"), "restval", dataset=dataset) else set())
    img_dir = C.find_dir(root, IMAGE_DIRS[dataset], option=options.get("images"), dataset=dataset,
                         what="image", layout=layout)
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


def load_flickr30k(task: str, split: str, data_root=None, **options):
    return load("flickr30k", task, split, data_root, **options)


def load_flickr8k(task: str, split: str, data_root=None, **options):
    return load("flickr8k", task, split, data_root, **options)


def load_coco(task: str, split: str, data_root=None, **options):
    return load("coco", task, split, data_root, **options)
