"""Bottom-up-attention features in the layout the AoANet / self-critical.pytorch dataloader reads.

``cocotalk.json`` (``scripts/prepro_labels.py``: ``{"ix_to_word", "images": [{split, file_path, id}]}``)
defines the images and their split; ``cocobu_att/<id>.npz`` holds the region features under the
key ``feat`` (``scripts/make_bu_data.py``), ``cocobu_fc/<id>.npy`` the fc feature (``feat.mean(0)``
there). References come from a Karpathy split json (``dataset_coco.json``) or an official COCO
captions json, matched by image id.

Reproduced (husthuaan/AoANet:dataloader.py ``DataLoader.__init__``): a split is the images of
``cocotalk.json`` whose ``split`` equals it, in json order; an image without a ``split`` key belongs
to every split; ``restval`` images go to ``train`` unless ``train_only=true``. The features are read
lazily: an ``ImageItem``'s ``regions`` (reshaped to ``(-1, D)`` as ``DataLoader.__getitem__`` does)
are loaded from its ``.npz`` on first access, ``fc`` from its ``.npy`` (memory-mapped), so listing
a 123k-image split reads no feature file; only their existence is checked up front.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmbench.datasets import common as C
from mmbench.errors import DataError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

NAME = "cocobu"
SPLITS = ("train", "val", "test")

LAYOUT = """DATA_ROOT/                 (prepared as in husthuaan/AoANet README / data/README.md)
  cocotalk.json            scripts/prepro_labels.py output: {"ix_to_word": {...}, "images": [{"split", "file_path", "id"}]}
  cocobu_att/<id>.npz      region features, key 'feat', float32 (n_regions, 2048)  (scripts/make_bu_data.py)
  cocobu_fc/<id>.npy       fc feature, float32 (2048,) = feat.mean(0)  (optional; used by mean_feats=0 models)
  dataset_coco.json        references: Karpathy splits (https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip)
                           or a COCO captions json (annotations/captions_val2014.json), chosen with
                           --dataset-option references=FILE
  Bottom-up features: https://github.com/peteanderson80/bottom-up-attention (trainval_36 / adaptive)."""

OPTIONS = (
    Option("info", str, None, "the prepro json relative to DATA_ROOT (default cocotalk.json)"),
    Option("att_dir", str, None, "region feature folder relative to DATA_ROOT (default cocobu_att)"),
    Option("fc_dir", str, None, "fc feature folder relative to DATA_ROOT (default cocobu_fc; optional)"),
    Option("references", str, None, "Karpathy split json or COCO captions json relative to DATA_ROOT (default: "
                                    "dataset_coco.json, else annotations/captions_val2014.json)"),
    Option("train_only", bool, False, "as the official train_only option: restval images are NOT added to train "
                                      "(default false)"),
    Option("missing", str, "error", "images without a feature file: error (default) or drop (recorded in the run "
                                    "record)", choices=("error", "drop")),
)

_REF_DEFAULTS = ("dataset_coco.json", "annotations/captions_val2014.json", "annotations/captions_train2014.json")


class LazyRegionItem(ImageItem):
    """An ``ImageItem`` whose ``regions`` are read from the ``.npz`` on first access (then cached).

    ``fc`` is the image's fc feature (``cocobu_fc/<id>.npy``, memory-mapped) or None when the
    file is absent. ``forms`` answers without reading anything.
    """

    def __init__(self, id: str, att_path: Path, fc_path: Path | None = None, size=None):
        self._att_path = Path(att_path)
        self._fc_path = fc_path
        self._regions = None
        super().__init__(id=id, size=size)

    @property  # type: ignore[override]
    def regions(self):
        if self._regions is None and getattr(self, "_att_path", None) is not None:
            self._regions = read_att(self._att_path)
        return self._regions

    @regions.setter
    def regions(self, value):
        # the dataclass __init__ assigns regions=None; anything else replaces the lazy file
        if value is not None:
            self._regions = value
            self._att_path = None

    @property
    def forms(self) -> set[str]:
        return {"regions"}

    @property
    def fc(self):
        if self._fc_path is None or not os.path.isfile(self._fc_path):
            return None
        return read_fc(self._fc_path)

    def __repr__(self) -> str:
        return f"LazyRegionItem(id={self.id!r}, att={str(self._att_path)!r})"


def read_att(path: Path) -> np.ndarray:
    """``np.load(path)['feat']`` reshaped to (-1, D) float32 (pickled objects refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "feat" not in z.files:
                raise DataError(path, f"no 'feat' array (arrays: {z.files})", field="feat",
                                expected="an .npz with key 'feat' (scripts/make_bu_data.py)")
            feat = z["feat"]
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(path, "region feature file not found", layout=LAYOUT) from None
    except Exception as exc:
        raise DataError(path, f"cannot read .npz: {type(exc).__name__}: {exc}",
                        expected="an .npz with key 'feat'") from None
    if not np.issubdtype(feat.dtype, np.floating) or feat.ndim < 2:
        raise DataError(path, f"'feat' has shape {feat.shape} dtype {feat.dtype}", field="feat",
                        expected="float (n_regions, D)")
    if feat.size == 0:
        raise DataError(path, f"'feat' has shape {feat.shape}", field="feat", expected="a non-empty (n_regions, D)")
    if not np.isfinite(feat).all():
        raise DataError(path, f"'feat' holds {int((~np.isfinite(feat)).sum())} NaN/inf value(s)", field="feat",
                        expected="finite float features (the file, not the model, is at fault)")
    # husthuaan/AoANet:dataloader.py __getitem__: att_feat.reshape(-1, att_feat.shape[-1])
    return np.ascontiguousarray(feat.reshape(-1, feat.shape[-1]), dtype=np.float32)


def read_fc(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise DataError(path, f"cannot read .npy: {type(exc).__name__}: {exc}", expected="a float (D,) .npy") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(path, f"dtype {arr.dtype}", expected="a float (D,) .npy")
    out = np.asarray(arr, dtype=np.float32).reshape(-1)
    if not np.isfinite(out).all():
        raise DataError(path, "fc feature holds NaN/inf", expected="finite float features")
    return out


def _references(path: Path) -> dict[str, list[str]]:
    """image id (str) -> reference captions, from a Karpathy json or a COCO captions json."""
    data = C.read_json(path, layout=LAYOUT)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        from mmbench.datasets.coco_captions import parse_captions

        _, caps = parse_captions(path)
        return {str(k): v for k, v in caps.items()}
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        from mmbench.datasets.karpathy import parse_karpathy

        return {r["id"]: r["captions"] for r in parse_karpathy(path, dataset=NAME, layout=LAYOUT)}
    raise DataError(path, "neither a Karpathy split json ('images' with 'sentences') nor a COCO captions json "
                          "('annotations')", layout=LAYOUT)


@C.adapter(NAME)
def load(task: str, split: str, data_root=None, *, info, att_dir, fc_dir, references, train_only, missing):
    root = C.root_dir(data_root, dataset=NAME, layout=LAYOUT)
    info_path = C.require_file(C.inside(root, info or "cocotalk.json", source=root, field="option info"),
                               what="prepro json (cocotalk.json)", layout=LAYOUT)
    att_dir = C.inside(root, att_dir or "cocobu_att", source=root, field="option att_dir")
    if not att_dir.is_dir():
        raise DataError(att_dir, "region feature folder not found", layout=LAYOUT)
    fc_dir = C.inside(root, fc_dir or "cocobu_fc", source=root, field="option fc_dir")
    if references:
        ref_path = C.require_file(C.inside(root, references, source=root, field="option references"),
                                  what="reference captions file", layout=LAYOUT)
    else:
        found = [root / r for r in _REF_DEFAULTS if (root / r).is_file()]
        if not found:
            raise DataError(root, f"no reference captions file; looked for {', '.join(_REF_DEFAULTS)} "
                                  "(or pass --dataset-option references=FILE)", layout=LAYOUT)
        ref_path = found[0]
    info = C.read_json(info_path, layout=LAYOUT)
    images = C.field(info, "images", list, source=info_path, where="top level",
                     expected="the image list written by prepro_labels.py")
    refs = _references(ref_path)
    entries: list[tuple[LazyRegionItem, list[str]]] = []
    absent: list[str] = []
    no_refs: list[str] = []
    seen = C.Unique(info_path, "id", "image id")
    split_values = []
    for i, im in enumerate(images):
        where = f"images[{i}]"
        iid = C.field(im, "id", (int, str), source=info_path, where=where)
        seen(str(iid), where, detail="; it would be evaluated twice")
        sp = im.get("split") if isinstance(im, dict) else None
        if sp is not None:
            split_values.append((i, sp))
        # husthuaan/AoANet:dataloader.py: no 'split' -> every split; restval -> train unless train_only
        if sp is not None and sp != split and not (split == "train" and sp == "restval" and not train_only):
            continue
        key = str(iid)
        att = C.inside(att_dir, key + ".npz", source=info_path, field=f"{where}.id")
        if not att.is_file():
            absent.append(key)
            continue
        if key not in refs:
            no_refs.append(key)
            continue
        entries.append((LazyRegionItem(key, att, C.inside(fc_dir, key + ".npy", source=info_path, field=f"{where}.id")),
                        list(refs[key])))
    C.check_split_values(split_values, ("train", "val", "test", "restval"), source=info_path)
    notes: list[str] = []
    if absent:
        msg = f"{len(absent)} {split} image(s) have no {att_dir.name}/<id>.npz (first: {', '.join(absent[:C.FIRST_N])})"
        if missing == "error":
            raise DataError(att_dir, msg, expected="a feature file for every image of the split; pass "
                                                   "--dataset-option missing=drop to evaluate on those present")
        notes.append(msg + "; dropped (missing=drop)")
    if no_refs:
        raise DataError(ref_path, f"{len(no_refs)} {split} image(s) have no reference caption "
                                  f"(first ids: {', '.join(no_refs[:C.FIRST_N])})",
                        expected="references for every image of the split (matched by COCO id)")
    if not entries:
        raise DataError(info_path, f"split {split!r} has no images" + (" with feature files" if absent else ""),
                        expected="images whose 'split' is " + split)
    from mmbench.tasks.captioning import CaptioningData

    img = [e[0] for e in entries]
    counts = {"images": len(img)}
    if ref_path.name == "dataset_coco.json":
        C.size_notes("coco", split, "", counts, notes, what=" (cocobu)")
    meta = C.make_meta(NAME, split, task, protocol="all-captions", files=[info_path, ref_path], data_root=root,
                       image_ids=[im.id for im in img], forms=("regions",), notes=notes)
    return CaptioningData(images=img, references=[e[1] for e in entries], meta=meta)
