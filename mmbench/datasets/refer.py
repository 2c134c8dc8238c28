"""RefCOCO / RefCOCO+ / RefCOCOg in the refer layout (lichengunc/refer).

``{refcoco,refcoco+,refcocog}/instances.json`` (COCO-style images/annotations) and
``refs(unc|umd|google).p`` (Python-2 pickles: a list of refs ``{ref_id, ann_id, image_id,
category_id, split, sentences: [{sent, raw, tokens, sent_id}]}``). One grounding sample
per expression; its ground truth is the COCO box ``[x, y, w, h]`` of ``ann_id`` as pixel
xyxy (x2 = x + w). The pickles are read with :mod:`mmbench.datasets.safe_pickle`, which
only builds plain containers and scalars.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.datasets import safe_pickle
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

SPLITS_BY = {
    "refcoco": {"unc": ("train", "val", "testA", "testB"), "google": ("train", "val")},
    "refcoco+": {"unc": ("train", "val", "testA", "testB")},
    "refcocog": {"umd": ("train", "val", "test"), "google": ("train", "val")},
}
DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
ALL_SPLITS = ("train", "val", "testA", "testB", "test")

IMAGE_DIRS = ("images/mscoco/images/train2014", "images/mscoco/train2014", "images/train2014", "train2014",
              "coco/train2014")

LAYOUT = """DATA_ROOT/
  {name}/instances.json          from lichengunc/refer (https://github.com/lichengunc/refer#download:
  {name}/refs({by}).p              refcoco.zip, refcoco+.zip, refcocog.zip)
  images/mscoco/images/train2014/COCO_train2014_*.jpg   COCO 2014 train images
                                 (also found: images/train2014, train2014/; or --dataset-option images=DIR)
  split_by: {bys}; splits: {splits}"""

def options_of(name: str) -> tuple[Option, ...]:
    """The dataset options of ``name`` (its ``split_by`` choices and default differ)."""
    return (
        Option("split_by", str, DEFAULT_SPLIT_BY[name], "refcoco: unc (default) or google; refcoco+: unc; "
                                                        "refcocog: umd (default) or google",
               choices=tuple(SPLITS_BY[name])),
        Option("text", str, "sent", "expression text: sent (refer's cleaned lower-case text, default) or raw",
               choices=("sent", "raw")),
        Option("images", str, None, "COCO train2014 image folder relative to DATA_ROOT (default: auto-detected)"),
        C.MISSING,
    )


def layout(name: str) -> str:
    return LAYOUT.format(name=name, by=DEFAULT_SPLIT_BY[name], bys=", ".join(SPLITS_BY[name]),
                         splits=", ".join(sorted({s for v in SPLITS_BY[name].values() for s in v})))


def parse_instances(path: Path):
    from mmbench.datasets.coco_captions import parse_images

    data = C.read_json(path)
    images = parse_images(data, path)
    anns = C.field(data, "annotations", list, source=path, where="top level", expected="a list (COCO format)")
    boxes: dict[int, tuple[int, list[float]]] = {}
    ann_ids = C.Unique(path, "id", "annotation id")
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        aid = C.field(a, "id", int, source=path, where=where)
        ann_ids(aid, where)
        iid = C.field(a, "image_id", int, source=path, where=where)
        boxes[aid] = (iid, C.xywh_box(C.field(a, "bbox", list, source=path, where=where), source=path, where=where))
    return images, boxes


def parse_refs(path: Path) -> list[dict]:
    refs = safe_pickle.load(path)
    if not isinstance(refs, list):
        raise DataError(path, f"pickle holds {type(refs).__name__}", expected="a list of refs (refer format)")
    out = []
    ref_ids = C.Unique(path, "ref_id", "ref_id")
    sent_ids = C.Unique(path, "sent_id", "sent_id")
    for i, r in enumerate(refs):
        where = f"refs[{i}]"
        ref = {k: C.field(r, k, int, source=path, where=where) for k in ("ref_id", "ann_id", "image_id")}
        for k in ("ref_id", "ann_id", "image_id"):
            if not -2**63 <= ref[k] < 2**63:
                raise DataError(path, f"{where}: {k} is an integer of {ref[k].bit_length()} bits", field=k,
                                expected="a 64-bit integer id")
        ref_ids(ref["ref_id"], where)
        ref["split"] = C.field(r, "split", str, source=path, where=where)
        sents = C.field(r, "sentences", list, source=path, where=where)
        ref["sentences"] = []
        for k, s in enumerate(sents):
            w = f"{where}.sentences[{k}]"
            sid = C.field(s, "sent_id", int, source=path, where=w)
            sent_ids(sid, w)
            sent = s.get("sent") if isinstance(s, dict) else None
            raw = s.get("raw") if isinstance(s, dict) else None
            if not isinstance(sent, str) and not isinstance(raw, str):
                raise DataError(path, f"{w} has no expression text", field="sent", expected="a 'sent' or 'raw' string")
            ref["sentences"].append({"sent_id": sid, "sent": sent if isinstance(sent, str) else raw,
                                     "raw": raw if isinstance(raw, str) else sent, "where": w})
        out.append(ref)
    C.check_split_values([(i, r["split"]) for i, r in enumerate(out)], ALL_SPLITS, source=path, where="refs")
    return out


def grounding_data(dataset: str, split: str, root: Path, files: list[Path], rows: list[dict],
                   images: dict[int, dict], img_dir: Path, missing: str, variant: str, protocol: str, source: Path):
    """GroundingData from rows {id, image_id, expression, boxes} (+ optional context, spans, category)."""
    import numpy as np

    from mmbench.tasks.grounding import GroundingData, GroundingSample

    notes: list[str] = []
    items: dict[str, ImageItem] = {}  # by file name: MDETR has one image entry per expression
    for r in rows:
        im = images[r["image_id"]]
        key = im["file_name"]
        if key not in items:
            items[key] = ImageItem(id=r.get("image_key", str(r["image_id"])), size=im["size"],
                                   path=C.inside(img_dir, key, source=r.get("source", source), field="file_name"))
        elif items[key].size != im["size"]:
            raise DataError(r.get("source", source), f"{r.get('where', r['id'])}: image {key} is declared "
                                                     f"{_wh(im['size'])} here and {_wh(items[key].size)} before",
                            field="width/height", expected="one size per image file")
    order = list(items)
    drop = C.handle_missing([items[k] for k in order], missing, dataset=dataset, image_dir=img_dir, notes=notes)
    dropped = {order[k] for k in drop}
    C.verify_sizes([items[k] for k in order if k not in dropped], source=source, notes=notes)
    ids = C.Unique(source, "id", "sample id")
    clipped: list[str] = []
    samples = []
    for r in rows:
        key = images[r["image_id"]]["file_name"]
        if key in dropped:
            continue
        src, where = r.get("source", source), r.get("where", f"sample {r['id']}")
        ids(r["id"], where)
        expr = C.text_value(r["expression"], source=src, where=where, key=r.get("text_key", "expression"),
                            what="expression")
        boxes = [C.fit_box(b, items[key].size, source=r.get("box_source", src), where=r.get("box_where", where),
                           key="bbox", clipped=clipped) for b in r["boxes"]]
        samples.append(GroundingSample(id=r["id"], image=items[key], expression=expr,
                                       boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                                       context=r.get("context"), spans=r.get("spans"),
                                       category=tuple(r.get("category", ()))))
    notes += C.clip_note(clipped, source)
    if not samples:
        raise DataError(source, f"split {split!r} has no expressions" + (" left" if dropped else ""),
                        expected="at least one expression")
    C.size_notes(dataset, split, variant, {"samples": len(samples)}, notes)
    meta = C.make_meta(dataset, split, "grounding", protocol=protocol, files=files, data_root=root,
                       image_ids=[s.id for s in samples], forms=("image_file", "image"), notes=notes)
    return GroundingData(samples=samples, meta=meta)


def _wh(size) -> str:
    return "no size" if size is None else f"{size[0]}x{size[1]}"


def load(name: str, task: str, split: str, data_root=None, **options):
    """Split ``split`` of ``name`` (refcoco, refcoco+, refcocog), options checked by its spec."""
    return C.checked_load(name, task, split, data_root, **options)


def read(name: str, task: str, split: str, data_root=None, *, split_by, text, images, missing):
    """One split of ``name``; task and options are checked and typed by the spec (``options_of(name)``)."""
    lay = layout(name)
    root = C.root_dir(data_root, dataset=name, layout=lay)
    by = split_by
    if split not in SPLITS_BY[name][by]:  # the spec lists every split_by's splits
        raise MMBenchError(f"dataset {name!r}: split {split!r} is not available with split_by={by}; "
                           f"splits: {', '.join(SPLITS_BY[name][by])}")
    folder = root / name if (root / name).is_dir() else root
    inst = C.require_file(folder / "instances.json", what=f"{name} instances.json", layout=lay)
    refs_path = C.require_file(folder / f"refs({by}).p", what=f"refs({by}).p", layout=lay)
    img_dir = C.find_dir(root, IMAGE_DIRS, option=images, dataset=name, what="COCO train2014 image", layout=lay)
    images, boxes = parse_instances(inst)
    refs = parse_refs(refs_path)
    rows = []
    for i, r in enumerate(refs):
        if r["split"] != split:
            continue
        if r["ann_id"] not in boxes:
            raise DataError(refs_path, f"refs[{i}]: ann_id {r['ann_id']} is not in {inst.name}", field="ann_id",
                            expected="an annotation id of instances.json")
        if r["image_id"] not in images:
            raise DataError(refs_path, f"refs[{i}]: image_id {r['image_id']} is not in {inst.name}", field="image_id")
        ann_image, box = boxes[r["ann_id"]]
        if ann_image != r["image_id"]:  # the box would be scored on the wrong image
            raise DataError(refs_path, f"refs[{i}]: ann_id {r['ann_id']} belongs to image {ann_image} in "
                                       f"{inst.name}, but the ref names image {r['image_id']}", field="ann_id",
                            expected="an annotation of the ref's own image_id")
        for s in r["sentences"]:
            rows.append({"id": f"{r['ref_id']}:{s['sent_id']}", "image_id": r["image_id"],
                         "expression": s[text], "boxes": [box], "source": refs_path, "where": s["where"],
                         "text_key": text, "box_source": inst,
                         "box_where": f"annotation id {r['ann_id']} (of {s['where']} in {refs_path.name})"})
    if not rows:
        raise MMBenchError(f"{refs_path}: no ref has split {split!r} "
                           f"(splits present: {', '.join(sorted({r['split'] for r in refs})) or 'none'})")
    return grounding_data(name, split, root, [inst, refs_path], rows, images, img_dir, missing, by,
                          f"{name}-{by}", refs_path)


@C.adapter("refcoco")
def load_refcoco(task: str, split: str, data_root=None, **options):
    return read("refcoco", task, split, data_root, **options)


@C.adapter("refcoco+")
def load_refcoco_plus(task: str, split: str, data_root=None, **options):
    return read("refcoco+", task, split, data_root, **options)


@C.adapter("refcocog")
def load_refcocog(task: str, split: str, data_root=None, **options):
    return read("refcocog", task, split, data_root, **options)
