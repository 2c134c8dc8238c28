"""MVSA-Single / MVSA-Multiple image+text sentiment (positive / neutral / negative).

Raw layout (``mvsa_single``, ``mvsa_multiple``): ``labelResultAll.txt`` (tab separated,
header ``ID\\ttext,image``; MVSA-Multiple has three ``text,image`` annotator columns) and
``data/<id>.txt`` + ``data/<id>.jpg``. The literature's label rule: MVSA-Multiple first
takes a per-modality majority of the 3 annotators (no majority: drop); then equal
labels give that label, one neutral gives the other label, positive vs negative is
dropped. Split: deterministic stratified 8:1:1 — per class, ids sorted numerically,
permuted with ``numpy.random.RandomState(seed)`` (option ``seed``, default 0); the first
round(0.8 n) are train, the next round(0.1 n) val, the rest test.

Fixed split files (``mvsa_single_clmlf``, ``mvsa_multiple_clmlf``; Link-Li/CLMLF
dataset/data/MVSA-*/10-flod-1/{train,dev,test}.json with ``id, text, emotion_label``;
0 positive, 1 neutral, 2 negative); images ``dataset_image/<id>.jpg`` (CLMLF's
data_process.py reads ``<photo_path>/<id>.jpg``). Text-only use (no images) only with
``text_only=true``.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

CLASSES = ["positive", "neutral", "negative"]
SPLITS = ("train", "val", "test")
FOLDER = {"mvsa_single": "MVSA_Single", "mvsa_multiple": "MVSA", "mvsa_single_clmlf": "MVSA-single",
          "mvsa_multiple_clmlf": "MVSA-multiple"}

RAW_LAYOUT = """DATA_ROOT/                     (or DATA_ROOT/{folder}/)
  labelResultAll.txt           'ID<TAB>text,image' (+2 more annotator columns for MVSA-Multiple)
  data/<id>.txt, data/<id>.jpg
  From the MCRLab MVSA page (http://mcrlab.net/research/mvsa-sentiment-analysis-on-multi-view-social-data/),
  research use only."""

CLMLF_LAYOUT = """DATA_ROOT/                     (or DATA_ROOT/{folder}/)
  10-flod-1/train.json, dev.json, test.json   [{{"id", "text", "emotion_label"}}] 0 positive, 1 neutral, 2 negative
  dataset_image/<id>.jpg                      MVSA images (also found: data/, images/; or --dataset-option images=DIR)
  From https://github.com/Link-Li/CLMLF (dataset/data/{folder}); images from the MVSA release.
  Without images: --dataset-option text_only=true"""

_TEXT_ONLY = Option("text_only", bool, False, "true: no images (explicit text-only evaluation, recorded as the "
                                              "protocol)")
RAW_OPTIONS = (Option("seed", int, 0, "seed of the stratified 8:1:1 split (default 0)", low=-1), _TEXT_ONLY, C.MISSING)
CLMLF_OPTIONS = (_TEXT_ONLY, C.MISSING, Option("images", str, None, "image folder relative to DATA_ROOT (default: "
                                                                    "auto-detected)"))


def layout(name: str) -> str:
    return (CLMLF_LAYOUT if name.endswith("_clmlf") else RAW_LAYOUT).format(folder=FOLDER[name])


def _root(name: str, data_root) -> Path:
    root = C.root_dir(data_root, dataset=name, layout=layout(name))
    sub = root / FOLDER[name]
    return sub if sub.is_dir() else root


def _vote(labels: list[str]) -> str | None:
    for lab in set(labels):
        if labels.count(lab) * 2 > len(labels):
            return lab
    return None


def combine(text: str, image: str) -> str | None:
    """The literature's rule: equal -> it; one neutral -> the other; positive vs negative -> None."""
    if text == image:
        return text
    if text == "neutral":
        return image
    if image == "neutral":
        return text
    return None


def parse_labels(path: Path, *, multiple: bool) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """[(id, class index)] after the label rule, and counts of what was dropped."""
    lines = C.read_lines(path, layout=RAW_LAYOUT)
    if not lines or not lines[0].lower().startswith("id"):
        raise DataError(path, "missing header", field="line 1", expected="'ID<TAB>text,image'")
    out, dropped = [], {"conflict": 0, "no_majority": 0}
    n_cols = 3 if multiple else 1
    first: dict[str, tuple[int, str]] = {}
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.strip().split("\t")
        if len(cols) != 1 + n_cols or not (cols[0].strip().isascii() and cols[0].strip().isdigit()) \
                or len(cols[0].strip()) > 30:
            raise DataError(path, f"line {n} is {C._short(line)}", field=f"line {n}",
                            expected=f"an id (at most 30 digits) and {n_cols} tab-separated 'text,image' label "
                                     f"pair(s)")
        rid = cols[0].strip()
        if rid in first:
            prev_n, prev = first[rid]
            same = "the same labels" if prev == "\t".join(cols[1:]) else f"conflicting labels ({prev!r} vs " \
                f"{chr(9).join(cols[1:])!r})"
            raise DataError(path, f"line {n}: duplicate ID {rid} (first at line {prev_n}, {same})", field="ID",
                            expected="each ID once")
        first[rid] = (n, "\t".join(cols[1:]))
        pairs = []
        for c in cols[1:]:
            t, comma, i = c.strip().partition(",")
            if not comma or t not in CLASSES or i not in CLASSES:
                raise DataError(path, f"line {n}: label pair {c!r}", field=f"line {n}",
                                expected="'<text>,<image>' each positive, neutral or negative")
            pairs.append((t, i))
        t = _vote([p[0] for p in pairs])
        i = _vote([p[1] for p in pairs])
        if t is None or i is None:
            dropped["no_majority"] += 1
            continue
        lab = combine(t, i)
        if lab is None:
            dropped["conflict"] += 1
            continue
        out.append((cols[0].strip(), CLASSES.index(lab)))
    return out, dropped


def stratified_split(items: list[tuple[str, int]], seed: int) -> dict[str, list[tuple[str, int]]]:
    import numpy as np

    rng = np.random.RandomState(seed)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for c in range(len(CLASSES)):
        ids = sorted((x for x in items if x[1] == c), key=lambda x: int(x[0]))
        perm = [ids[k] for k in rng.permutation(len(ids))]
        n_tr, n_va = int(round(0.8 * len(ids))), int(round(0.1 * len(ids)))
        out["train"] += perm[:n_tr]
        out["val"] += perm[n_tr:n_tr + n_va]
        out["test"] += perm[n_tr + n_va:]
    for s in out:
        out[s].sort(key=lambda x: int(x[0]))
    return out


def _read_text(path: Path, source: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError:
        raise DataError(path, f"text file of an id listed in {source.name} not found", layout=RAW_LAYOUT) from None
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:  # a few MVSA tweets are not UTF-8: read as latin-1, counted in the notes
        _LATIN1.append(path.name)
        return raw.decode("latin-1").strip()


_LATIN1: list[str] = []


def _finish(name, task, split, root, rows, img_dir, text_only, missing, files, protocol, notes, variant=""):
    from mmbench.tasks.classification import ClassificationData, ClassificationSample

    samples = [ClassificationSample(id=i, text=t, image=None if text_only else
                                    ImageItem(id=i, path=C.inside(img_dir, f"{i}.jpg", source=files[0], field="id")),
                                    label=lab) for i, t, lab in rows]
    if not text_only:
        drop = C.handle_missing([s.image for s in samples], missing, dataset=name, image_dir=img_dir, notes=notes)
        samples = [s for k, s in enumerate(samples) if k not in drop]
    if not samples:
        raise DataError(files[0], f"split {split!r} has no samples", expected="labelled samples")
    C.size_notes(name, split, variant, {"samples": len(samples)}, notes)
    meta = C.make_meta(name, split, task, protocol=protocol, files=files, data_root=root,
                       image_ids=[s.id for s in samples], forms=("text_only",) if text_only else ("image_file", "image"),
                       notes=notes)
    return ClassificationData(samples=samples, classes=list(CLASSES), meta=meta)


def load_raw(name: str, task: str, split: str, data_root=None, **options):
    """Split ``split`` of the raw MVSA release ``name`` (mvsa_single, mvsa_multiple), checked by its spec."""
    return C.checked_load(name, task, split, data_root, **options)


def read_raw(name: str, task: str, split: str, data_root=None, *, seed, text_only, missing):
    """One split of the raw release; task, split and options are checked and typed by the spec."""
    root = _root(name, data_root)
    lab_path = root / "labelResultAll.txt"
    if not lab_path.is_file() and (root / "labelResult.txt").is_file():
        lab_path = root / "labelResult.txt"
    C.require_file(lab_path, what="labelResultAll.txt", layout=layout(name))
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise DataError(data_dir, "data/ folder not found", expected="data/<id>.txt and data/<id>.jpg",
                        layout=layout(name))
    items, dropped = parse_labels(lab_path, multiple=name == "mvsa_multiple")
    notes = [f"label rule kept {len(items)} pairs; dropped {dropped['conflict']} positive/negative conflicts"
             + (f" and {dropped['no_majority']} without annotator majority" if name == "mvsa_multiple" else "")]
    C.size_notes(name, "all", "", {"samples": len(items)}, notes)
    part = stratified_split(items, seed)[split]
    _LATIN1.clear()
    rows = [(i, _read_text(C.inside(data_dir, f"{i}.txt", source=lab_path, field="ID"), lab_path), lab) for i, lab in part]
    if _LATIN1:
        notes.append(f"{len(_LATIN1)} text file(s) are not UTF-8 and were read as latin-1 "
                     f"(first: {', '.join(_LATIN1[:C.FIRST_N])})")
    protocol = f"stratified-8:1:1-seed{seed}" + ("+text-only" if text_only else "")
    return _finish(name, task, split, root, rows, data_dir, text_only, missing, [lab_path], protocol, notes)


def load_clmlf(name: str, task: str, split: str, data_root=None, **options):
    """Split ``split`` of CLMLF split files ``name`` (mvsa_*_clmlf), options checked by its spec."""
    return C.checked_load(name, task, split, data_root, **options)


def read_clmlf(name: str, task: str, split: str, data_root=None, *, text_only, missing, images):
    """One CLMLF split file; task, split and options are checked and typed by the spec."""
    root = _root(name, data_root)
    fold = root / "10-flod-1" if (root / "10-flod-1").is_dir() else root
    path = C.require_file(fold / f"{'dev' if split == 'val' else split}.json", what="CLMLF split file",
                          layout=layout(name))
    data = C.read_json(path, layout=layout(name))
    if not isinstance(data, list):
        raise DataError(path, f"top level is {type(data).__name__}", expected="a list of {id, text, emotion_label}")
    rows, seen = [], {}
    for k, r in enumerate(data):
        where = f"[{k}]"
        rid = C.field(r, "id", (str, int), source=path, where=where)
        text = C.field(r, "text", str, source=path, where=where)
        lab = C.field(r, "emotion_label", int, source=path, where=where, expected="0, 1 or 2")
        if not 0 <= lab < len(CLASSES):
            raise DataError(path, f"{where}: emotion_label {lab}", field="emotion_label",
                            expected="0 (positive), 1 (neutral) or 2 (negative)")
        rid = str(rid).strip() if isinstance(rid, str) or len(str(abs(rid))) <= 30 else "(huge)"
        if not (rid.isascii() and rid.isdigit()) or len(rid) > 30:
            raise DataError(path, f"{where}: id {C._short(rid)}", field="id", expected="a numeric id (at most 30 digits)")
        if rid in seen:
            raise DataError(path, f"{where}: duplicate id {rid} (first at [{seen[rid][0]}], label "
                                  f"{seen[rid][1]} there, {lab} here)", field="id", expected="each id once")
        seen[rid] = (k, lab)
        rows.append((rid, text, lab))
    img_dir = None
    if not text_only:
        img_dir = C.find_dir(root, ("dataset_image", "data", "images"), option=images, dataset=name,
                             what="image", layout=layout(name), required=False)
        if img_dir is None:
            raise MMBenchError(
                f"dataset {name!r}: no image folder under {root} (looked for dataset_image/, data/, images/). "
                f"These split files name images <id>.jpg from the MVSA release. To evaluate on the text alone, "
                f"opt in explicitly with --dataset-option text_only=true (recorded in the run record); "
                f"otherwise pass --dataset-option images=DIR.")
    protocol = "clmlf-fixed-split" + ("+text-only" if text_only else "")
    return _finish(name, task, split, root, rows, img_dir, text_only, missing, [path], protocol, [])


@C.adapter("mvsa_single")
def load_single(task: str, split: str, data_root=None, **options):
    return read_raw("mvsa_single", task, split, data_root, **options)


@C.adapter("mvsa_multiple")
def load_multiple(task: str, split: str, data_root=None, **options):
    return read_raw("mvsa_multiple", task, split, data_root, **options)


@C.adapter("mvsa_single_clmlf")
def load_single_clmlf(task: str, split: str, data_root=None, **options):
    return read_clmlf("mvsa_single_clmlf", task, split, data_root, **options)


@C.adapter("mvsa_multiple_clmlf")
def load_multiple_clmlf(task: str, split: str, data_root=None, **options):
    return read_clmlf("mvsa_multiple_clmlf", task, split, data_root, **options)
