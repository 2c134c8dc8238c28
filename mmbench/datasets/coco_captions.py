"""Official COCO annotation files: captions (retrieval, captioning) and instances (grounding).

``coco_captions``: ``captions_{train,val}{2014,2017}.json`` + the image folder. Captions
of an image keep the file's order; ``captions=first5`` keeps the first five (the
Karpathy/SCAN protocol, ``5-per-image``), ``captions=all`` keeps every one
(CLIP_benchmark's, ``all-captions``); val2017 has 12 images with 6 captions and 1 with 7.

``coco_instances``: ``instances_*.json`` as a grounding set whose expression is the
category name: one sample per (image, category), every non-crowd box of that category
is a ground truth (a hit on any counts). It lets grounding baselines run on real
COCO images; it is not a published benchmark.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

LAYOUT = """DATA_ROOT/
  annotations/captions_val2017.json (or captions_train2017 / captions_val2014 / captions_train2014.json)
  annotations/instances_val2017.json  (coco_instances only)
  val2017/*.jpg  (or train2017/, val2014/, train2014/)
  From https://cocodataset.org/#download (annotations_trainval2017.zip, val2017.zip).
  Other places: --dataset-option annotations=FILE images=DIR (relative to DATA_ROOT)."""


def _options(kind: str) -> tuple[Option, ...]:
    captions = (Option("captions", str, None, "first5 (retrieval default) or all (captioning default); recorded as "
                                              "the protocol", choices=C.CAPTION_MODES),) if kind == "captions" else ()
    return (Option("year", str, None, f"2017 or 2014 (default: whichever annotations/{kind}_<split><year>.json "
                                      f"exists, 2017 first)", choices=("2014", "2017")),
            Option("annotations", str, None, f"annotation json relative to DATA_ROOT (default "
                                             f"annotations/{kind}_<split><year>.json)"),
            Option("images", str, None, "image folder relative to DATA_ROOT (default <split><year>/)"),
            *captions, C.MISSING)


OPTIONS = _options("captions")
INSTANCE_OPTIONS = _options("instances")

SPLITS = ("train", "val")


def _locate(root: Path, split: str, kind: str, dataset: str, *, year: str | None, annotations: str | None,
            images: str | None) -> tuple[Path, Path, str]:
    if annotations:
        ann = C.inside(root, annotations, source=root, field="option annotations")
        if year is None:
            year = "2014" if "2014" in ann.name else "2017"
    else:
        years = [year] if year else ["2017", "2014"]
        cands = [root / "annotations" / f"{kind}_{split}{y}.json" for y in years]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise DataError(root, f"no {kind} annotation file; looked for "
                                  f"{', '.join(str(c.relative_to(root)) for c in cands)}", layout=LAYOUT)
        ann = found[0]
        year = ann.stem[-4:]
    C.require_file(ann, what=f"COCO {kind} file", layout=LAYOUT)
    img_dir = C.find_dir(root, (f"{split}{year}", f"images/{split}{year}", "images"), option=images,
                         dataset=dataset, what="image", layout=LAYOUT)
    return ann, img_dir, year


def parse_images(data, path: Path, *, unique_files: bool = True) -> dict[int, dict]:
    """id -> {file_name, size, index}; duplicate ids (and, unless ``unique_files=False`` as MDETR's one
    entry per expression needs, duplicate file names) and impossible sizes are DataErrors."""
    images = C.field(data, "images", list, source=path, where="top level", expected="a list (COCO format)")
    out: dict[int, dict] = {}
    files = C.Unique(path, "file_name", "file_name")
    for i, im in enumerate(images):
        where = f"images[{i}]"
        iid = C.field(im, "id", int, source=path, where=where)
        fn = C.field(im, "file_name", str, source=path, where=where)
        size = C.declared_size(im, source=path, where=where)
        if iid in out:
            raise DataError(path, f"{where}: duplicate image id {iid} (first at images[{out[iid]['index']}])",
                            field="id", expected="unique ids")
        if unique_files:
            files(fn, where, detail="; the image would be evaluated twice")
        out[iid] = {"file_name": fn, "size": size, "index": i}
    return out


def parse_captions(path: Path) -> tuple[dict[int, dict], dict[int, list[str]]]:
    data = C.read_json(path, layout=LAYOUT)
    images = parse_images(data, path)
    anns = C.field(data, "annotations", list, source=path, where="top level", expected="a list (COCO format)")
    caps: dict[int, list[str]] = {}
    ann_ids = C.Unique(path, "id", "annotation id")
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        iid = C.field(a, "image_id", int, source=path, where=where)
        text = C.field(a, "caption", str, source=path, where=where)
        if "id" in a:
            ann_ids(C.field(a, "id", int, source=path, where=where), where)
        if iid not in images:
            raise DataError(path, f"{where}: image_id {iid} is not in 'images'", field="image_id",
                            expected="the id of an entry of 'images'")
        caps.setdefault(iid, []).append(C.text_value(text, source=path, where=where, key="caption", what="caption"))
    return images, caps


@C.adapter("coco_captions")
def load(task: str, split: str, data_root=None, *, year, annotations, images, captions, missing):
    dataset = "coco_captions"
    root = C.root_dir(data_root, dataset=dataset, layout=LAYOUT)
    captions = captions or ("first5" if task == "retrieval" else "all")
    ann, img_dir, year = _locate(root, split, "captions", dataset, year=year, annotations=annotations, images=images)
    images, caps = parse_captions(ann)
    notes: list[str] = []
    uncaptioned = [iid for iid in images if iid not in caps]
    if uncaptioned:
        notes.append(f"{len(uncaptioned)} image(s) without captions left out (first ids: {uncaptioned[:C.FIRST_N]})")
    entries = []
    for iid, im in images.items():
        if iid not in caps:
            continue
        path = C.inside(img_dir, im["file_name"], source=ann, field=f"images[{im['index']}].file_name")
        entries.append((ImageItem(id=str(iid), path=path, size=im["size"]), caps[iid]))
    protocol = "5-per-image" if captions == "first5" else "all-captions"
    variant = year if captions == "all" and not annotations else ""
    if captions == "all" and annotations and ann.name == f"captions_{split}{year}.json":
        variant = year
    return C.build_image_text(task, dataset, split, entries, captions=captions, protocol=protocol, files=[ann],
                              root=root, missing=missing, image_dir=img_dir, notes=notes, variant=variant, source=ann)


@C.adapter("coco_instances")
def load_instances(task: str, split: str, data_root=None, *, year, annotations, images, missing):
    """Grounding on COCO instances: expression = category name (documented above)."""
    import numpy as np

    from mmbench.tasks.grounding import GroundingData, GroundingSample

    dataset = "coco_instances"
    root = C.root_dir(data_root, dataset=dataset, layout=LAYOUT)
    ann, img_dir, _ = _locate(root, split, "instances", dataset, year=year, annotations=annotations, images=images)
    data = C.read_json(ann, layout=LAYOUT)
    images = parse_images(data, ann)
    cats_raw = C.field(data, "categories", list, source=ann, where="top level", expected="a list (COCO format)")
    cats: dict[int, str] = {}
    notes: list[str] = []
    for i, c in enumerate(cats_raw):
        where = f"categories[{i}]"
        cid = C.field(c, "id", int, source=ann, where=where)
        cname = C.text_value(C.field(c, "name", str, source=ann, where=where), source=ann, where=where, key="name",
                             what="category name")
        if cid in cats:
            if cats[cid] != cname:  # the later name would silently win
                raise DataError(ann, f"{where}: category id {cid} is {cname!r} here and {cats[cid]!r} before",
                                field="categories.id", expected="each category id once")
            notes.append(f"category id {cid} ({cname!r}) is listed twice in {ann.name}")
        cats[cid] = cname
    anns = C.field(data, "annotations", list, source=ann, where="top level", expected="a list (COCO format)")
    groups: dict[tuple[int, int], list[list[float]]] = {}
    skipped = {"crowd": 0, "empty": 0}
    ann_ids = C.Unique(ann, "id", "annotation id")
    clipped: list[str] = []
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        iid = C.field(a, "image_id", int, source=ann, where=where)
        cid = C.field(a, "category_id", int, source=ann, where=where)
        if "id" in a:
            ann_ids(C.field(a, "id", int, source=ann, where=where), where)
        box = C.xywh_box(C.field(a, "bbox", list, source=ann, where=where), source=ann, where=where)
        if iid not in images:
            raise DataError(ann, f"{where}: image_id {iid} is not in 'images'", field="image_id")
        if cid not in cats:
            raise DataError(ann, f"{where}: category_id {cid} is not in 'categories'", field="category_id")
        if a.get("iscrowd", 0):
            skipped["crowd"] += 1
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            skipped["empty"] += 1
            continue
        box = C.fit_box(box, images[iid]["size"], source=ann, where=where, key="bbox", clipped=clipped)
        groups.setdefault((iid, cid), []).append(box)
    notes += [f"{n} {k} box(es) left out" for k, n in skipped.items() if n] + C.clip_note(clipped, ann)
    items: dict[int, ImageItem] = {}
    for iid, im in images.items():
        items[iid] = ImageItem(id=str(iid), size=im["size"],
                               path=C.inside(img_dir, im["file_name"], source=ann,
                                             field=f"images[{im['index']}].file_name"))
    used = sorted({iid for iid, _ in groups}, key=lambda i: images[i]["index"])
    drop = C.handle_missing([items[i] for i in used], missing, dataset=dataset, image_dir=img_dir, notes=notes)
    dropped = {used[k] for k in drop}
    C.verify_sizes([items[i] for i in used if i not in dropped], source=ann, notes=notes)
    samples = []
    for (iid, cid), boxes in sorted(groups.items(), key=lambda kv: (images[kv[0][0]]["index"], kv[0][1])):
        if iid in dropped:
            continue
        samples.append(GroundingSample(id=f"{iid}:{cid}", image=items[iid], expression=cats[cid],
                                       boxes=np.asarray(boxes, dtype=np.float64)))
    if not samples:
        raise DataError(ann, "no grounding sample (no usable boxes)", field="annotations")
    meta = C.make_meta(dataset, split, task, protocol="category-name", files=[ann], data_root=root,
                       image_ids=[s.id for s in samples], forms=("image_file", "image"), notes=notes)
    return GroundingData(samples=samples, meta=meta)
