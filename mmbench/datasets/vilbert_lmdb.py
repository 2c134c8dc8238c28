"""ViLBERT's region-feature LMDBs (facebookresearch/vilbert-multi-task), read without running pickles.

The official feature files (``script/convert_to_lmdb.py``; read by
``vilbert/datasets/_image_features_reader.py``) are LMDB environments (a folder with
``data.mdb``): key ``b"keys"`` holds a pickled list of image-id byte strings, and each key
``str(image_id).encode()`` a pickled dict ``{image_id, image_h, image_w, num_boxes, boxes,
features}`` whose ``boxes`` (N, 4) pixel xyxy and ``features`` (N, 2048) are numpy float32
arrays. The pickles are read with a restricted unpickler that can only rebuild numpy arrays
of numbers, dtypes, numeric scalars and plain containers; anything else is refused before it
is called (:class:`mmbench.errors.UnsafeFileError`).

Two adapters, each item in the ``proposals`` form (``ImageItem.regions`` = the features,
``region_boxes`` = the boxes, ``size`` = (image_w, image_h) of the LMDB record, which the
model's 5-d locations are normalised by):

- ``vilbert_refer``: RefCOCO / RefCOCO+ / RefCOCOg grounding, the refer annotations
  (``instances.json`` + ``refs(<split_by>).p``, as ``-d refcoco+``) with the official
  ``<name>_<split_by>/<name>_resnext152_faster_rcnn_genome.lmdb`` proposals. The expression
  is ``sent["raw"]`` as ``refer_expression_dataset.py`` reads it (``text=sent`` for refer's
  cleaned text).
- ``vilbert_flickr30k``: retrieval from ViLBERT's ``all_data_final_test_set0_2014.jsonline``
  (one line per image: ``img_path`` ``<id>.jpg`` and its ``sentences``) and
  ``flickr30k_resnext152_faster_rcnn_genome.lmdb``.

``lmdb`` is an optional dependency (``pip install lmdb``), imported only when one is read.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.datasets import common as C
from mmbench.datasets import refer as refer_layout
from mmbench.datasets.safe_pickle import _ALLOWED as _PLAIN
from mmbench.errors import DataError, MMBenchError, UnsafeFileError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

FEATURE_SUFFIX = "_resnext152_faster_rcnn_genome.lmdb"
REFER_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}  # vilbert_tasks.yml dataroots

REFER_LAYOUT = """DATA_ROOT/                                  (the official datasets/refcoco)
  {name}/instances.json, {name}/refs({by}).p        refer annotations (lichengunc/refer), as for -d {name}
  {name}_{by}/{name}""" + FEATURE_SUFFIX + """/data.mdb   ViLBERT's proposal features (LMDB of pickled dicts;
                                                    or --dataset-option features=PATH)
  refer: refcoco+ (default), refcoco, refcocog"""

FLICKR_LAYOUT = """DATA_ROOT/                                  (the official datasets/flickr30k)
  all_data_final_test_set0_2014.jsonline            one json per line: {{"img_path": "<id>.jpg", "sentences": [...]}}
  flickr30k""" + FEATURE_SUFFIX + """/data.mdb   ViLBERT's region features (LMDB of pickled dicts;
                                                    or --dataset-option features=PATH)"""

REFER_OPTIONS = (
    Option("refer", str, "refcoco+", "which refer dataset: refcoco+ (default), refcoco or refcocog",
           choices=tuple(REFER_SPLIT_BY)),
    Option("features", str, None, "the proposal-feature LMDB folder (default: <refer>_<split_by>/<refer>"
                                  + FEATURE_SUFFIX + ")"),
    Option("text", str, "raw", "expression text: raw (what ViLBERT reads, default) or sent (refer's cleaned text)",
           choices=("raw", "sent")),
)
FLICKR_OPTIONS = (
    Option("annotations", str, None, "the jsonline file (default all_data_final_test_set0_2014.jsonline)"),
    Option("features", str, None, "the region-feature LMDB folder (default flickr30k" + FEATURE_SUFFIX + ")"),
)


# --------------------------------------------------------------------------- restricted unpickling

def _np_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    return _reconstruct, scalar


def _allowed(module: str, name: str):
    _reconstruct, scalar = _np_reconstruct()
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if name == "_reconstruct":
            return _reconstruct
        if name == "scalar":
            return scalar
    if module == "numpy" and name == "ndarray":
        return np.ndarray
    if module == "numpy" and name == "dtype":
        return np.dtype
    if (module, name) in _PLAIN:
        return set if name == "set" else frozenset
    if (module, name) == ("_codecs", "encode"):  # how pickle protocol 2 writes bytes (numpy's raw data)
        return _latin1_encode
    return None


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it: a str to latin-1 bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeFileError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a feature record")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """Plain containers, scalars and numpy arrays / scalars of numbers; nothing callable beyond that."""

    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        obj = _allowed(module, name)
        if obj is None:
            raise UnsafeFileError(
                f"{self._source}: refusing to unpickle {module}.{name}: ViLBERT feature records may only hold "
                f"plain containers, scalars and numpy arrays; building {module}.{name} could execute code")
        return obj

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self._source}: refusing a pickle with persistent ids (expected plain data)")


def _check_numeric(obj: Any, source: str, depth: int = 0) -> None:
    if depth > 20:
        raise DataError(source, "record nested too deeply", expected="a dict of arrays and numbers")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise DataError(source, f"an array of dtype {obj.dtype}", expected="numeric numpy arrays (float32 boxes "
                                                                               "and features)")
    elif isinstance(obj, dict):
        for v in obj.values():
            _check_numeric(v, source, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_numeric(v, source, depth + 1)


def loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle one LMDB value (restricted: see :class:`_ArrayUnpickler`)."""
    try:
        out = _ArrayUnpickler(data, source).load()
    except UnsafeFileError:
        raise
    except Exception as exc:  # truncated / corrupt
        raise DataError(source, f"not a readable pickle ({type(exc).__name__}: {exc})",
                        expected="a pickled feature record (vilbert-multi-task script/convert_to_lmdb.py)") from None
    _check_numeric(out, source)
    return out


# --------------------------------------------------------------------------- the LMDB reader

class FeatureLMDB:
    """Read-only access to one ViLBERT feature LMDB: ``keys()`` and ``record(image_id)``."""

    def __init__(self, path: str | Path, *, layout: str = ""):
        self.path = Path(path)
        if not (self.path / "data.mdb").is_file():
            raise DataError(self.path, "ViLBERT feature LMDB not found (no data.mdb in this folder)", layout=layout)
        try:
            import lmdb
        except ImportError:
            raise MMBenchError("reading ViLBERT's feature LMDBs needs the lmdb package: pip install lmdb") from None
        self._env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False, meminit=False,
                              max_readers=1)
        raw = self._get(b"keys")
        if raw is None:
            raise DataError(self.path, "the LMDB has no b'keys' entry", field="keys",
                            expected="a pickled list of image-id byte strings (convert_to_lmdb.py)")
        keys = loads(raw, source=f"{self.path}[keys]")
        if not isinstance(keys, (list, tuple)) or not all(isinstance(k, (bytes, str)) for k in keys):
            raise DataError(self.path, f"keys entry is {type(keys).__name__}", field="keys",
                            expected="a list of image-id byte strings")
        self._keys = [k.decode("latin1") if isinstance(k, bytes) else k for k in keys]
        self._key_set = set(self._keys)

    def _get(self, key: bytes):
        with self._env.begin(write=False) as txn:
            return txn.get(key)

    def keys(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, image_id) -> bool:
        return str(image_id) in self._key_set

    def record(self, image_id) -> dict:
        """{features (N, D) float32, boxes (N, 4) float32 pixel xyxy, image_w, image_h} of ``image_id``."""
        key = str(image_id)
        src = f"{self.path}[{key}]"
        raw = self._get(key.encode()) if key in self._key_set else None
        if raw is None:
            raise DataError(self.path, f"image id {key!r} has no record ({len(self._keys)} images in the LMDB)",
                            field=key, expected="one record per image the annotations name")
        item = loads(raw, source=src)
        if not isinstance(item, dict):
            raise DataError(src, f"record is a {type(item).__name__}", expected="a dict (convert_to_lmdb.py)")
        for k in ("image_h", "image_w", "boxes", "features"):
            if k not in item:
                raise DataError(src, f"key missing (keys: {sorted(map(str, item))})", field=k,
                                expected="image_id, image_h, image_w, num_boxes, boxes, features")
        try:
            w, h = int(item["image_w"]), int(item["image_h"])
        except (TypeError, ValueError):
            raise DataError(src, f"image size {item['image_w']!r} x {item['image_h']!r}", field="image_w/image_h",
                            expected="integers") from None
        boxes = np.asarray(item["boxes"]).reshape(-1, 4)
        feats = np.asarray(item["features"])
        # _image_features_reader.py: features.reshape(-1, 2048); a (N, D) array is taken as it is
        feats = feats.reshape(-1, 2048) if feats.ndim == 1 else feats.reshape(feats.shape[0], -1)
        if feats.shape[0] != boxes.shape[0] or boxes.shape[0] == 0:
            raise DataError(src, f"{feats.shape[0]} feature rows for {boxes.shape[0]} boxes", field="features",
                            expected="one feature row per box (at least one)")
        if w <= 0 or h <= 0:
            raise DataError(src, f"image size {w}x{h}", field="image_w/image_h", expected="positive integers")
        if not np.isfinite(boxes).all() or not np.isfinite(feats).all():
            raise DataError(src, "non-finite boxes or features", field="boxes/features", expected="finite numbers")
        return {"features": feats.astype(np.float32, copy=False), "boxes": boxes.astype(np.float32, copy=False),
                "image_w": w, "image_h": h}

    def item(self, image_id, *, id: str | None = None) -> ImageItem:
        """The ``proposals``-form ImageItem of ``image_id``."""
        r = self.record(image_id)
        return ImageItem(id=id or str(image_id), regions=r["features"], region_boxes=r["boxes"],
                         size=(r["image_w"], r["image_h"]))


# --------------------------------------------------------------------------- adapters

def _features_path(root: Path, option: str | None, default: str) -> Path:
    return C.inside(root, option, source=root, field="features") if option else root / default


@C.adapter("vilbert_refer")
def load_refer(task: str, split: str, data_root=None, *, refer: str, features: str | None, text: str):
    """RefCOCO(+/g) grounding with ViLBERT's proposal features (the ``proposals`` form)."""
    from mmbench.tasks.grounding import GroundingData, GroundingSample

    name, by = refer, REFER_SPLIT_BY[refer]
    lay = REFER_LAYOUT.format(name=name, by=by)
    root = C.root_dir(data_root, dataset="vilbert_refer", layout=lay)
    if split not in refer_splits(name):
        raise MMBenchError(f"dataset 'vilbert_refer' ({name}, split_by={by}) has no split {split!r}; splits: "
                           f"{', '.join(refer_splits(name))}")
    folder = root / name
    inst = C.require_file(folder / "instances.json", what=f"{name} instances.json", layout=lay)
    refs_path = C.require_file(folder / f"refs({by}).p", what=f"refs({by}).p", layout=lay)
    lmdb_dir = _features_path(root, features, f"{name}_{by}/{name}{FEATURE_SUFFIX}")
    db = FeatureLMDB(lmdb_dir, layout=lay)
    images, boxes = _refer_index(inst)
    refs = refer_layout.parse_refs(refs_path)
    items: dict[int, ImageItem] = {}
    samples, clipped, notes = [], [], []
    for i, r in enumerate(refs):
        if r["split"] != split:
            continue
        if r["ann_id"] not in boxes or boxes[r["ann_id"]][0] != r["image_id"]:
            raise DataError(refs_path, f"refs[{i}]: ann_id {r['ann_id']} is not an annotation of image "
                                       f"{r['image_id']} in {inst.name}", field="ann_id")
        iid = r["image_id"]
        if iid not in items:
            items[iid] = db.item(iid)
            declared = images.get(iid, {}).get("size")
            if declared is not None and tuple(declared) != items[iid].size:
                notes.append(f"image {iid}: {inst.name} says {declared[0]}x{declared[1]}, the feature LMDB "
                             f"{items[iid].size[0]}x{items[iid].size[1]} (the LMDB size is used, as ViLBERT does)")
        for s in r["sentences"]:
            where = s["where"]
            expr = C.text_value(s[text], source=refs_path, where=where, key=text, what="expression")
            box = C.fit_box(boxes[r["ann_id"]][1], items[iid].size, source=inst, where=f"annotation {r['ann_id']}",
                            key="bbox", clipped=clipped)
            samples.append(GroundingSample(id=f"{r['ref_id']}:{s['sent_id']}", image=items[iid], expression=expr,
                                           boxes=np.asarray([box], dtype=np.float64)))
    if not samples:
        raise MMBenchError(f"{refs_path}: no ref has split {split!r}")
    notes += C.clip_note(clipped, inst)
    C.size_notes(name, split, by, {"samples": len(samples)}, notes)
    meta = C.make_meta("vilbert_refer", split, "grounding", protocol=f"{name}-{by}",
                       files=[inst, refs_path, lmdb_dir / "data.mdb"], data_root=root,
                       image_ids=[s.id for s in samples], forms=("proposals", "regions"), notes=notes,
                       extra=(name, text))
    return GroundingData(samples=samples, meta=meta)


def refer_splits(name: str) -> tuple[str, ...]:
    return refer_layout.SPLITS_BY[name][REFER_SPLIT_BY[name]]


def _refer_index(inst: Path):
    images, boxes = refer_layout.parse_instances(inst)
    return images, boxes


@C.adapter("vilbert_flickr30k")
def load_flickr30k(task: str, split: str, data_root=None, *, annotations: str | None, features: str | None):
    """Flickr30k retrieval in ViLBERT's files: images in jsonline order, every caption of each."""
    from mmbench.tasks.retrieval import RetrievalData

    root = C.root_dir(data_root, dataset="vilbert_flickr30k", layout=FLICKR_LAYOUT)
    ann = (C.inside(root, annotations, source=root, field="annotations") if annotations
           else root / "all_data_final_test_set0_2014.jsonline")
    C.require_file(ann, what="ViLBERT Flickr30k jsonline", layout=FLICKR_LAYOUT)
    lmdb_dir = _features_path(root, features, "flickr30k" + FEATURE_SUFFIX)
    db = FeatureLMDB(lmdb_dir, layout=FLICKR_LAYOUT)
    images: list[ImageItem] = []
    texts: list[str] = []
    owner: list[int] = []
    seen: dict[int, int] = {}
    with open(ann, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"line {n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(ann, f"{where}: not json ({exc})", expected="one json object per line") from None
            path = C.field(rec, "img_path", str, source=ann, where=where)
            try:
                iid = int(path.split(".")[0])  # retreival_dataset.py: int(img_path.split(".")[0])
            except ValueError:
                raise DataError(ann, f"{where}: img_path {path!r}", field="img_path",
                                expected="<integer id>.jpg") from None
            sents = C.field(rec, "sentences", list, source=ann, where=where)
            if iid not in seen:  # _load_annotationsVal keeps the first position of a repeated image
                seen[iid] = len(images)
                images.append(db.item(iid))
            for k, s in enumerate(sents):
                texts.append(C.text_value(s, source=ann, where=f"{where}.sentences[{k}]", key="sentences",
                                          what="caption"))
                owner.append(seen[iid])
    if not images:
        raise DataError(ann, "no image", expected="at least one jsonline record")
    notes: list[str] = []
    C.size_notes("flickr30k", split, "", {"images": len(images), "texts": len(texts)}, notes)
    meta = C.make_meta("vilbert_flickr30k", split, "retrieval", protocol="flickr30k-1k", files=[ann, lmdb_dir / "data.mdb"],
                       data_root=root, image_ids=[im.id for im in images], forms=("regions",),
                       notes=notes)
    return RetrievalData(images=images, texts=texts, text_image=np.asarray(owner, dtype=np.int64), meta=meta)
