"""Generic JSON-lines datasets for custom data, one schema per task kind.

File: ``DATA_ROOT/<split>.jsonl`` (or ``--dataset-option file=NAME``), one JSON object per
line; image paths are relative to DATA_ROOT (or ``images=DIR``) and must stay inside it.

- retrieval / captioning: ``{"id"?, "image": "a.jpg", "captions": ["...", ...]}``
- grounding: ``{"id"?, "image": "a.jpg", "expression": "...", "boxes": [[x1, y1, x2, y2], ...],
  "width"?, "height"?}`` — pixel boxes; ``box_format=xywh`` reads ``[x, y, w, h]``
- classification: ``{"id"?, "text"?, "image"?, "label": "pos" | 2}``; class names from
  ``classes=a,b,c`` or else the sorted labels found over every split file present.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

LAYOUT = """DATA_ROOT/
  train.jsonl, val.jsonl, test.jsonl   one JSON object per line (schema per task: see docs/datasets.md)
    retrieval/captioning: {"id", "image", "captions": [...]}
    grounding:            {"id", "image", "expression", "boxes": [[x1,y1,x2,y2],...], "width", "height"}
    classification:       {"id", "text", "image", "label"}
  images referenced by relative path (inside DATA_ROOT)"""

OPTIONS = (
    Option("file", str, None, "jsonl file relative to DATA_ROOT (default <split>.jsonl)"),
    Option("images", str, None, "folder the image paths are relative to, inside DATA_ROOT (default DATA_ROOT)"),
    Option("captions", str, "all", "retrieval/captioning: all (default) or first5", choices=C.CAPTION_MODES),
    Option("box_format", str, "xyxy", "grounding: xyxy (default) or xywh, pixels", choices=("xyxy", "xywh")),
    Option("classes", str, None, "classification: comma-separated class names in index order"),
    Option("text_only", bool, False, "classification: true to ignore images"),
    C.MISSING,
)
SPLITS = ("train", "val", "test")
from mmbench.tasks import BUILTIN_KINDS as TASKS  # noqa: E402 - the adapter offers every built-in kind


def read_jsonl(path: Path) -> list[dict]:
    out = []
    for n, line in enumerate(C.read_lines(path, layout=LAYOUT), 1):
        if not line.strip():
            continue
        obj = C.loads_json(line, source=path, where=f"line {n}", layout=LAYOUT)
        if not isinstance(obj, dict):
            raise DataError(path, f"line {n} is a {type(obj).__name__}", field=f"line {n}", expected="a JSON object")
        out.append(obj)
    if not out:
        raise DataError(path, "no records", expected="at least one JSON line")
    return out


def _id(r: dict, n: int, path: Path) -> str:
    v = r.get("id", n)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise DataError(path, f"line {n}: id {v!r}", field="id", expected="a string or integer")
    return str(v)


def _image(r, n, path, img_dir, required=True):
    if "image" not in r or r["image"] is None:
        if required:
            raise DataError(path, f"line {n} has no image", field="image", expected="a relative image path")
        return None
    return C.inside(img_dir, r["image"], source=path, field=f"line {n}: image")


@C.adapter("jsonl")
def load(task: str, split: str, data_root=None, *, file, images, captions, box_format, classes, text_only, missing):
    name = "jsonl"
    root = C.root_dir(data_root, dataset=name, layout=LAYOUT)
    path = C.inside(root, file or f"{split}.jsonl", source=root, field="option file")
    C.require_file(path, what="jsonl file", layout=LAYOUT)
    img_dir = C.inside(root, images, source=root, field="option images") if images else root
    recs = read_jsonl(path)
    if task in ("retrieval", "captioning"):
        entries, seen = [], set()
        for n, r in enumerate(recs, 1):
            caps = C.field(r, "captions", list, source=path, where=f"line {n}")
            if not caps or not all(isinstance(c, str) for c in caps):
                raise DataError(path, f"line {n}: captions {C._short(caps)}", field="captions",
                                expected="a non-empty list of strings")
            rid = _id(r, n, path)
            if rid in seen:
                raise DataError(path, f"line {n}: duplicate id {rid!r}", field="id", expected="unique ids")
            seen.add(rid)
            entries.append((ImageItem(id=rid, path=_image(r, n, path, img_dir)), [c.strip() for c in caps]))
        return C.build_image_text(task, name, split, entries, captions=captions,
                                  protocol="all-captions" if captions == "all" else "5-per-image", files=[path],
                                  root=root, missing=missing, image_dir=img_dir, notes=[], source=path)
    if task == "grounding":
        return _grounding(recs, split, root, path, img_dir, missing, box_format)
    return _classification(recs, split, root, path, img_dir, missing, classes, text_only)


def _grounding(recs, split, root, path, img_dir, missing, fmt):
    import numpy as np

    from mmbench.tasks.grounding import GroundingData, GroundingSample

    rows = []
    ids = C.Unique(path, "id", "id")
    for n, r in enumerate(recs, 1):
        where = f"line {n}"
        expr = C.field(r, "expression", str, source=path, where=where)
        boxes = C.field(r, "boxes", list, source=path, where=where, expected="a list of [4 numbers]")
        if not boxes:
            raise DataError(path, f"{where}: no boxes", field="boxes", expected="at least one box")
        xyxy = []
        for b in boxes:
            if fmt == "xywh":
                xyxy.append(C.xywh_box(b, source=path, where=where, key="boxes"))
                continue
            if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 for v in b)):
                raise DataError(path, f"{where}: box {C._short(b)}", field="boxes", expected="[x1, y1, x2, y2] numbers")
            if not all(map(C._finite, b)) or b[2] < b[0] or b[3] < b[1]:
                raise DataError(path, f"{where}: impossible box {b}", field="boxes",
                                expected="finite pixel [x1, y1, x2, y2] with x2 >= x1, y2 >= y1 (box_format=xywh "
                                         "for [x, y, w, h])")
            xyxy.append([float(v) for v in b])
        size = C.declared_size(r, source=path, where=where)
        rid = _id(r, n, path)
        ids(rid, where)
        rows.append((where, rid, expr, xyxy, ImageItem(id=rid, path=_image(r, n, path, img_dir), size=size)))
    notes: list[str] = []
    drop = C.handle_missing([row[4] for row in rows], missing, dataset="jsonl", image_dir=img_dir, notes=notes)
    rows = [row for k, row in enumerate(rows) if k not in drop]
    C.verify_sizes([row[4] for row in rows], source=path, notes=notes)
    clipped: list[str] = []
    samples = []
    for where, rid, expr, xyxy, item in rows:
        expr = C.text_value(expr, source=path, where=where, key="expression", what="expression")
        fitted = [C.fit_box(b, item.size, source=path, where=where, key="boxes", clipped=clipped) for b in xyxy]
        samples.append(GroundingSample(id=rid, image=item, expression=expr, boxes=np.asarray(fitted, dtype=np.float64)))
    notes += C.clip_note(clipped, path)
    if not samples:
        raise DataError(path, "no samples left after dropping missing images")
    meta = C.make_meta("jsonl", split, "grounding", protocol=f"boxes-{fmt}", files=[path], data_root=root,
                       image_ids=[s.id for s in samples], forms=("image_file", "image"), notes=notes)
    return GroundingData(samples=samples, meta=meta)


def _classification(recs, split, root, path, img_dir, missing, classes, text_only):
    from mmbench.tasks.classification import ClassificationData, ClassificationSample

    if classes:
        classes = C.class_list([c.strip() for c in classes.split(",")], source=path, key="option classes")
    else:
        labels = set()
        for sp in SPLITS:
            f = root / f"{sp}.jsonl"
            for r in (recs if f == path else read_jsonl(f) if f.is_file() else []):
                if isinstance(r.get("label"), (str, int)) and not isinstance(r.get("label"), bool):
                    labels.add(r["label"])
        if all(isinstance(x, int) for x in labels):
            classes = C.int_classes(sorted(labels), source=path, key="label")
        else:
            if len(labels) > C.MAX_CLASSES:
                raise DataError(path, f"{len(labels)} distinct labels", field="label",
                                expected=f"at most {C.MAX_CLASSES} classes")
            classes = sorted({str(x) for x in labels})
            for c in classes:
                C.text_value(c, source=path, where=f"label {c!r}", key="label", what="class name")
    if not classes:
        raise MMBenchError(f"{path}: no class names (pass --dataset-option classes=a,b,c)")
    samples = []
    ids = C.Unique(path, "id", "id")
    for n, r in enumerate(recs, 1):
        where = f"line {n}"
        lab = C.field(r, "label", (str, int), source=path, where=where)
        idx = lab if isinstance(lab, int) else (classes.index(lab) if lab in classes else -1)
        if not 0 <= idx < len(classes):
            raise DataError(path, f"{where}: label {lab!r}", field="label", expected=f"one of {classes} or its index")
        text = r.get("text")
        if text is not None and not isinstance(text, str):
            raise DataError(path, f"{where}: text is {type(text).__name__}", field="text", expected="a string")
        rid = _id(r, n, path)
        ids(rid, where, detail=f" (label {lab!r} here)")
        p = None if text_only else _image(r, n, path, img_dir, required=False)
        if (text is None or not text.strip()) and p is None:
            raise DataError(path, f"{where} has neither text nor image", field="text/image", expected="at least one")
        samples.append(ClassificationSample(id=rid, text=text, image=ImageItem(id=rid, path=p) if p else None,
                                            label=idx))
    notes: list[str] = []
    with_img = [s for s in samples if s.image is not None]
    drop = C.handle_missing([s.image for s in with_img], missing, dataset="jsonl", image_dir=img_dir, notes=notes)
    drop_ids = {id(with_img[k]) for k in drop}
    samples = [s for s in samples if id(s) not in drop_ids]
    forms = ("text_only",) if not with_img else ("image_file", "image")
    meta = C.make_meta("jsonl", split, "classification", protocol="text-only" if text_only else "jsonl",
                       files=[path], data_root=root, image_ids=[s.id for s in samples], forms=forms, notes=notes,
                       extra=[classes])
    return ClassificationData(samples=samples, classes=classes, meta=meta)
