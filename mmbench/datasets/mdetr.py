"""MDETR's referring-expression files: ``finetune_{refcoco,refcoco+,refcocog}_{split}.json``.

COCO-style (ashkamath/mdetr:datasets/refexp.py): one ``images`` entry per expression
(``caption``, ``file_name``, ``width``, ``height``) with exactly one annotation whose
``bbox`` is ``[x, y, w, h]``; images are COCO train2014. MDETR's own evaluation uses
generalised IoU >= 0.5 (pass ``--task-option iou=giou`` style options to the grounding
task if the metric helper offers it); the samples here are the same either way.
"""

from __future__ import annotations

from mmbench.datasets import common as C
from mmbench.datasets.refer import grounding_data
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option

SUBSETS = {"refcoco": ("train", "val", "testA", "testB"), "refcoco+": ("train", "val", "testA", "testB"),
           "refcocog": ("train", "val", "test")}
SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
IMAGE_DIRS = ("train2014", "images/train2014", "coco/train2014", "images/mscoco/images/train2014")

LAYOUT = """DATA_ROOT/
  mdetr_annotations/finetune_refcoco_{val,testA,testB,train}.json   (also finetune_refcoco+_*, finetune_refcocog_*;
                          the folder may also be DATA_ROOT itself) from MDETR's mdetr_annotations.tar.gz
                          (https://github.com/ashkamath/mdetr/blob/main/.github/refexp.md)
  train2014/COCO_train2014_*.jpg   COCO 2014 train images (or --dataset-option images=DIR)"""

OPTIONS = (
    Option("dataset", str, "refcoco", "refcoco (default), refcoco+ or refcocog", choices=tuple(SUBSETS)),
    Option("annotations", str, None, "folder holding the finetune_*.json files, relative to DATA_ROOT (default "
                                     "mdetr_annotations/ or DATA_ROOT)"),
    Option("images", str, None, "COCO train2014 image folder relative to DATA_ROOT (default: auto-detected)"),
    C.MISSING,
)


@C.adapter("mdetr_refexp")
def load(task: str, split: str, data_root=None, *, dataset, annotations, images, missing):
    name, sub = "mdetr_refexp", dataset
    root = C.root_dir(data_root, dataset=name, layout=LAYOUT)
    if split not in SUBSETS[sub]:  # the spec lists every subset's splits
        raise MMBenchError(f"dataset {name!r}: split {split!r} is not available for dataset={sub}; "
                           f"splits: {', '.join(SUBSETS[sub])}")
    if annotations:
        folder = C.inside(root, annotations, source=root, field="option annotations")
    else:
        folder = root / "mdetr_annotations" if (root / "mdetr_annotations").is_dir() else root
    path = C.require_file(folder / f"finetune_{sub}_{split}.json", what=f"finetune_{sub}_{split}.json", layout=LAYOUT)
    img_dir = C.find_dir(root, IMAGE_DIRS, option=images, dataset=name, what="COCO train2014 image",
                         layout=LAYOUT)
    from mmbench.datasets.coco_captions import parse_images

    data = C.read_json(path, layout=LAYOUT)
    images = parse_images(data, path, unique_files=False)  # one entry per expression, same file
    raw_images = data["images"]
    anns = C.field(data, "annotations", list, source=path, where="top level", expected="a list (COCO format)")
    boxes: dict[int, list[list[float]]] = {}
    ann_where: dict[int, list[str]] = {}
    ann_ids = C.Unique(path, "id", "annotation id")
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        iid = C.field(a, "image_id", int, source=path, where=where)
        if "id" in a:
            ann_ids(C.field(a, "id", int, source=path, where=where), where)
        if iid not in images:
            raise DataError(path, f"{where}: image_id {iid} is not in 'images'", field="image_id")
        boxes.setdefault(iid, []).append(C.xywh_box(C.field(a, "bbox", list, source=path, where=where),
                                                    source=path, where=where))
        ann_where.setdefault(iid, []).append(where)
    rows = []
    for iid, im in images.items():
        where = f"images[{im['index']}]"
        caption = C.field(raw_images[im["index"]], "caption", str, source=path, where=where)
        if iid not in boxes:
            raise DataError(path, f"{where}: expression {iid} has no annotation", field="annotations",
                            expected="one box per expression (MDETR refexp format)")
        if len(boxes[iid]) > 1:
            # a refexp has exactly one target (ashkamath/mdetr:scripts/fine-tuning/refexp_coco_format.py writes one
            # annotation per expression); several would let any box count as a hit
            raise DataError(path, f"{where}: expression {iid} has {len(boxes[iid])} annotations "
                                  f"({', '.join(ann_where[iid][:3])})", field="annotations",
                            expected="exactly one box per expression (MDETR refexp format)")
        orig = raw_images[im["index"]].get("original_id")
        rows.append({"id": str(iid), "image_id": iid, "expression": caption, "boxes": boxes[iid], "source": path,
                     "where": where, "text_key": "caption", "box_where": ann_where[iid][0],
                     "image_key": str(orig) if isinstance(orig, int) and not isinstance(orig, bool)
                     else im["file_name"]})
    variant = f"{sub}-{SPLIT_BY[sub]}"
    return grounding_data(name, split, root, [path], rows, images, img_dir, missing, variant, variant, path)
