"""Flickr30k Entities phrase grounding (BryanPlummer/flickr30k_entities).

``{train,val,test}.txt`` image-id lists, ``Sentences/<id>.txt`` (bracketed phrases
``[/EN#<phrase_id>/<type>... words]``), ``Annotations/<id>.xml`` (PASCAL-style boxes
whose ``<name>`` elements are phrase ids). One grounding sample per phrase occurrence
that has at least one box, as MDETR's evaluator counts them
(ashkamath/mdetr:datasets/flickr_eval.py): the expression is the phrase text, its
``context`` the whole sentence and ``spans`` the phrase's character span in it (MDETR's
tokens_positive_eval), its ``category`` the phrase types (results are also given per type, as
MDETR's evaluator prints them); the ground truth is
- ``protocol=any`` (ANY-box, default): every box of the phrase; a hit on any counts;
- ``protocol=merged`` (MERGED-box): the smallest box enclosing all of them.
Box coordinates are taken from the XML as they are (integers, xyxy), as MDETR does.
This test split is not the Karpathy test split.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from mmbench.datasets import common as C
from mmbench.datasets.refer import grounding_data
from mmbench.errors import DataError
from mmbench.options import Option

LAYOUT = """DATA_ROOT/
  train.txt, val.txt, test.txt    image ids, one per line
  Sentences/<id>.txt              from annotations.zip in https://github.com/BryanPlummer/flickr30k_entities
  Annotations/<id>.xml
  flickr30k-images/<id>.jpg       Flickr30k images (request form: https://shannon.cs.illinois.edu/DenotationGraph/;
                                  also found: images/; or --dataset-option images=DIR)"""

OPTIONS = (
    Option("protocol", str, "any", "any (ANY-box, default) or merged (MERGED-box)", choices=("any", "merged")),
    Option("images", str, None, "image folder relative to DATA_ROOT (default: auto-detected)"),
    Option("missing", str, "error", "missing image or annotation files: error (default), drop (recorded in the run "
                                    "record) or keep", choices=C.MISSING_CHOICES),
)
SPLITS = ("train", "val", "test")


def parse_split_list(path: Path) -> list[str]:
    ids = [ln.strip() for ln in C.read_lines(path, layout=LAYOUT) if ln.strip()]
    for n, i in enumerate(ids, 1):
        if not (i.isascii() and i.isdigit()) or len(i) > 30:
            raise DataError(path, f"line {n} is {C._short(i)}", field=f"line {n}",
                            expected="a numeric Flickr image id (at most 30 digits)")
    seen = C.Unique(path, f"image id", "image id")
    for n, i in enumerate(ids, 1):
        seen(i, f"line {n}", detail="; its phrases would be evaluated twice")
    return ids


def parse_sentences(path: Path) -> list[dict]:
    """[{sentence, phrases: [{phrase, phrase_id, phrase_type, first_word_index}]}] per line."""
    out = []
    for n, line in enumerate(C.read_lines(path, layout=LAYOUT), 1):
        if not line.strip():
            continue
        words: list[str] = []
        phrases = []
        current = None
        for tok in line.split():
            if current is not None:
                end = tok.endswith("]")
                word = tok[:-1] if end else tok
                current["words"].append(word)
                words.append(word)
                if end:
                    phrases.append({"phrase": " ".join(current["words"]), "phrase_id": current["id"],
                                    "phrase_type": current["types"], "first_word_index": current["first"]})
                    current = None
            elif tok.startswith("["):
                parts = tok.split("/")
                if len(parts) < 2 or not parts[1].startswith("EN#"):
                    raise DataError(path, f"line {n}: bad phrase header {C._short(tok)}", field=f"line {n}",
                                    expected="'[/EN#<id>/<type> words]'")
                current = {"id": parts[1][3:], "types": parts[2:], "first": len(words), "words": []}
            else:
                words.append(tok)
        if current is not None:
            raise DataError(path, f"line {n}: phrase /EN#{current['id']} is not closed", field=f"line {n}",
                            expected="a ']' ending every phrase")
        out.append({"sentence": " ".join(words), "phrases": phrases})
    return out


def phrase_span(sentence: str, phrase: dict) -> tuple[int, int]:
    """The phrase's (begin, end) character span in the sentence, as MDETR's converter computes its
    tokens_positive (ashkamath/mdetr:scripts/pre-training/flickr_combined.py): begin = the lengths of the words
    before it plus one space each."""
    first = phrase["first_word_index"]
    beg = sum(len(w) for w in sentence.split()[:first]) + first
    return beg, beg + len(phrase["phrase"])


def parse_annotation(path: Path) -> dict:
    """{width, height, boxes: {phrase_id: [[x1, y1, x2, y2], ...]}}."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(path, "annotation file not found", layout=LAYOUT) from None
    except (ET.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(path, f"not valid XML: {exc}", expected="a Flickr30k Entities annotation") from None

    def num(el, tag, where):
        node = el.find(tag)
        try:
            return int(node.text.strip())
        except Exception:
            raise DataError(path, f"{where}: <{tag}> is {None if node is None else node.text!r}", field=tag,
                            expected="an integer") from None

    size = root.find("size")
    if size is None:
        raise DataError(path, "no <size> element", field="size", expected="<size><width/><height/></size>")
    width, height = num(size, "width", "size"), num(size, "height", "size")
    if not (0 < width <= 1 << 20 and 0 < height <= 1 << 20):
        raise DataError(path, f"size {width}x{height}", field="size", expected="positive whole numbers of pixels")
    boxes: dict[str, list[list[int]]] = {}
    clipped: list[str] = []
    for k, obj in enumerate(root.findall("object")):
        bnd = obj.find("bndbox")
        if bnd is None:
            continue
        where = f"object {k}"
        box = [num(bnd, t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
        if box[2] < box[0] or box[3] < box[1]:
            raise DataError(path, f"{where}: impossible box {box}", field="bndbox", expected="xmin <= xmax, ymin <= ymax")
        box = C.fit_box(box, (width, height), source=path, where=where, key="bndbox", clipped=clipped)
        for name in obj.findall("name"):
            if name.text and name.text.strip():
                boxes.setdefault(name.text.strip(), []).append(box)
    return {"width": width, "height": height, "boxes": boxes, "clipped": clipped}


def merge(boxes: list[list[int]]) -> list[list[int]]:
    """MERGED-box: the smallest box enclosing all (ashkamath/mdetr:datasets/flickr_eval.py _merge_boxes)."""
    if len(boxes) == 1:
        return boxes
    return [[min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]]


@C.adapter("flickr30k_entities")
def load(task: str, split: str, data_root=None, *, protocol, images, missing):
    name = "flickr30k_entities"
    root = C.root_dir(data_root, dataset=name, layout=LAYOUT)
    lst = C.require_file(root / f"{split}.txt", what=f"split list {split}.txt", layout=LAYOUT)
    ids = parse_split_list(lst)
    img_dir = C.find_dir(root, ("flickr30k-images", "flickr30k_images", "images", "Images"),
                         option=images, dataset=name, what="image", layout=LAYOUT)
    absent = [i for i in ids if not (root / "Sentences" / f"{i}.txt").is_file()
              or not (root / "Annotations" / f"{i}.xml").is_file()]
    notes: list[str] = []
    if absent:
        msg = (f"{len(absent)} of {len(ids)} listed images lack Sentences/<id>.txt or Annotations/<id>.xml "
               f"(first: {', '.join(absent[:C.FIRST_N])})")
        if missing == "error":
            raise DataError(root, msg, expected="annotations.zip unpacked into DATA_ROOT; or --dataset-option "
                                                "missing=drop", layout=LAYOUT)
        notes.append(msg + ("; dropped" if missing == "drop" else ""))
        absent_set = set(absent)
        ids = [i for i in ids if i not in absent_set]
    images: dict[int, dict] = {}
    rows = []
    files = [lst]
    n_phrases = 0
    clipped_files: list[str] = []
    for img in ids:
        sp, ap = root / "Sentences" / f"{img}.txt", root / "Annotations" / f"{img}.xml"
        files += [sp, ap]
        ann = parse_annotation(ap)
        if ann["clipped"]:
            clipped_files.append(f"{ap.name} ({len(ann['clipped'])})")
        iid = int(img)
        images[iid] = {"file_name": f"{img}.jpg", "size": (ann["width"], ann["height"])}
        for s_idx, sent in enumerate(parse_sentences(sp)):
            for p_idx, ph in enumerate(sent["phrases"]):
                n_phrases += 1
                boxes = ann["boxes"].get(ph["phrase_id"])
                if not boxes:  # phrases without boxes are not evaluated (MDETR flickr_eval)
                    continue
                rows.append({"id": f"{img}:{s_idx}:{p_idx}", "image_id": iid, "expression": ph["phrase"],
                             "context": sent["sentence"], "spans": [phrase_span(sent["sentence"], ph)],
                             "category": tuple(ph["phrase_type"]),
                             "boxes": merge(boxes) if protocol == "merged" else boxes, "source": sp,
                             "where": f"sentence {s_idx + 1}, phrase {p_idx + 1}", "text_key": "phrase",
                             "box_source": ap, "box_where": f"boxes of phrase /EN#{ph['phrase_id']}"})
    if not rows:
        raise DataError(lst, f"split {split!r} has no phrase with a box", expected="annotated phrases")
    if clipped_files:
        notes.append(f"ground-truth boxes in {len(clipped_files)} annotation file(s) left the image by at most "
                     f"{C.BOX_TOLERANCE:g} px and were clipped to it (first: {', '.join(clipped_files[:3])})")
    C.size_notes(name, split, "", {"images": len(ids)}, notes)
    data = grounding_data(name, split, root, files, rows, images, img_dir, missing, "",
                          f"{protocol}-box", lst)
    data.meta.notes = notes + data.meta.notes
    # the fingerprint covers every Sentences/Annotations file; the record lists the folders only
    data.meta.files = [str(lst), str(root / "Sentences"), str(root / "Annotations")]
    return data
