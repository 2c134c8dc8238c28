"""SCAN / SGRAF / VSE++ precomputed region features (``f30k_precomp``, ``coco_precomp``).

``{split}_ims.npy`` (N, 36, 2048) float32 bottom-up-attention features, memory-mapped
(``np.load(mmap_mode="r")``: COCO train is tens of GB, nothing is read until a model
touches ``ImageItem.regions``); ``{split}_caps.txt`` one caption per line, five per image.
Reproduced quirks (kuanghuei/SCAN:data.py PrecompDataset, same in Paranioar/SGRAF:data.py):
- when the feature file has fewer rows than captions, caption j belongs to row j // 5
  (``im_div = 5``); when it has one row per caption, the evaluation keeps every fifth row
  (kuanghuei/SCAN:evaluation.py ``img_embs[0::5]``), so image i is row 5 i;
- the ``dev`` split is cut to its first 5000 captions (drops 14 Flickr30k dev images).
Optional: ``{split}_ids.txt`` (image ids, one per feature row) and the vocabulary json.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

SPLITS = {"f30k_precomp": ("train", "dev", "test"), "coco_precomp": ("train", "dev", "test", "testall")}

LAYOUT = """DATA_ROOT/                       (or DATA_ROOT = the {name} folder itself)
  {name}/{{split}}_ims.npy          float32 (N, 36, 2048) region features (SCAN's data.zip:
                                  https://github.com/kuanghuei/SCAN#download-data)
  {name}/{{split}}_caps.txt         one caption per line, 5 consecutive lines per image
  {name}/{{split}}_ids.txt          optional image ids, one per feature row
  vocab/{name}_vocab.json         optional SCAN vocabulary {{word2idx, idx2word, idx}}
  splits: {splits}"""

OPTIONS = (
    Option("dev_cut", bool, True, "cut the dev split to its first 5000 captions as SCAN/SGRAF do (default true)"),
    Option("features", str, None, "feature file name inside the folder (default <split>_ims.npy)"),
)

COCO_OPTIONS = OPTIONS + (Option("protocol", str, None, "testall split: coco-5k (default) or coco-1k-5fold "
                                                        "(5 folds of 1000)", choices=("coco-5k", "coco-1k-5fold")),)

DEV_CUT = 5000  # kuanghuei/SCAN:data.py PrecompDataset: `if data_split == 'dev': self.length = 5000`


def layout(name: str) -> str:
    return LAYOUT.format(name=name, splits=", ".join(SPLITS[name]))


def _folder(root: Path, name: str) -> Path:
    sub = root / name
    if sub.is_dir():
        return sub
    if any(root.glob("*_caps.txt")):
        return root
    raise DataError(root, f"no {name}/ folder (and no *_caps.txt here)", layout=layout(name))


def load_features(path: Path, *, name: str):
    import numpy as np

    try:
        feats = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(path, "feature file not found", layout=layout(name)) from None
    except ValueError as exc:  # object arrays (pickles) are refused by allow_pickle=False
        raise DataError(path, f"not a plain .npy array: {exc}", expected="a float (N, regions, dim) .npy") from None
    except Exception as exc:
        raise DataError(path, f"cannot read .npy: {type(exc).__name__}: {exc}",
                        expected="a float (N, regions, dim) .npy") from None
    if not isinstance(feats, np.ndarray) or feats.ndim not in (2, 3) or not np.issubdtype(feats.dtype, np.floating):
        raise DataError(path, f"array of shape {getattr(feats, 'shape', '?')} dtype {getattr(feats, 'dtype', '?')}",
                        field="shape/dtype", expected="float (N, regions, dim) or (N, dim)")
    if feats.shape[0] == 0 or any(d == 0 for d in feats.shape[1:]):
        raise DataError(path, f"empty feature array of shape {feats.shape}", field="shape",
                        expected="float (N, regions, dim) with N, regions, dim > 0")
    return feats


def check_finite(feats, path: Path, notes: list[str], *, limit: int | None = None) -> None:
    """NaN / inf rows are the file's fault, not the model's: refuse them naming the file. Files larger
    than ``limit`` bytes (COCO train: tens of GB) are left to ``mmbench datasets check``, with a note."""
    limit = C.SCAN_BYTES if limit is None else limit
    if feats.nbytes > limit:
        notes.append(f"{path.name} ({feats.nbytes / 2**30:.1f} GiB) was not scanned for NaN/inf at load; "
                     f"run `mmbench datasets check` once")
        return
    C.scan_finite(feats, source=path, what="feature rows")


def check_vocab(path: Path) -> None:
    v = C.read_json(path)
    for key in ("word2idx", "idx2word"):
        C.field(v, key, dict, source=path, where="vocabulary", expected="a SCAN vocab json {word2idx, idx2word, idx}")


def load(name: str, task: str, split: str, data_root=None, **options):
    """Split ``split`` of ``name`` (f30k_precomp or coco_precomp), options checked by its spec."""
    return C.checked_load(name, task, split, data_root, **options)


def read(name: str, task: str, split: str, data_root=None, *, dev_cut, features, protocol=None):
    """One split of ``name``; task, split and options are checked and typed by the spec."""
    root = C.root_dir(data_root, dataset=name, layout=layout(name))
    folder = _folder(root, name)
    caps_path = C.require_file(folder / f"{split}_caps.txt", what="caption file", layout=layout(name))
    feat_name = features or f"{split}_ims.npy"
    feat_path = C.inside(folder, feat_name, source=folder, field="option features")
    captions = [c.strip() for c in C.read_lines(caps_path, layout=layout(name))]
    notes: list[str] = []
    feats = load_features(feat_path, name=name)
    check_finite(feats, feat_path, notes)
    for k, c in enumerate(captions):
        if not c:
            raise DataError(caps_path, f"line {k + 1} is an empty caption", field=f"line {k + 1}",
                            expected="one non-empty caption per line")
    n_rows, n_caps = feats.shape[0], len(captions)
    # kuanghuei/SCAN:data.py: im_div = 5 when the image rows are fewer than the captions
    if n_rows == n_caps:
        row_step = 5
    elif n_rows * 5 == n_caps:
        row_step = 1
    else:
        raise DataError(feat_path, f"{n_rows} feature rows for {n_caps} captions in {caps_path.name}",
                        field="shape[0]", expected="one row per caption or one row per 5 captions")
    if split == "dev" and dev_cut and n_caps > DEV_CUT:
        notes.append(f"dev cut to the first {DEV_CUT} of {n_caps} captions (kuanghuei/SCAN:data.py)")
        captions = captions[:DEV_CUT]
    if len(captions) % 5:
        raise DataError(caps_path, f"{len(captions)} captions", expected="a multiple of 5 (5 per image)")
    n_images = len(captions) // 5
    files = [caps_path]
    ids = None
    ids_path = folder / f"{split}_ids.txt"
    if ids_path.is_file():
        ids = [ln.strip() for ln in C.read_lines(ids_path) if ln.strip()]
        if len(ids) != n_rows:
            raise DataError(ids_path, f"{len(ids)} ids for {n_rows} feature rows", expected="one id per feature row")
        seen = C.Unique(ids_path, "id", "image id")
        for k in range(0, n_rows, row_step):  # one id per image (rows 5 i when rows are per caption)
            seen(ids[k], f"line {k + 1}", detail="; the image would be evaluated twice")
        files.append(ids_path)
    for vp in (root / "vocab" / f"{name}_vocab.json", root / f"{name}_vocab.json", folder / f"{name}_vocab.json"):
        if vp.is_file():
            check_vocab(vp)
            files.append(vp)
            break
    images = []
    for i in range(n_images):
        row = i * row_step
        images.append(ImageItem(id=ids[row] if ids else str(i), regions=feats[row]))
    import numpy as np

    from mmbench.tasks.retrieval import RetrievalData

    C.size_notes(name, split, "", {"images": n_images, "texts": len(captions)}, notes)
    given, protocol = protocol, ("flickr30k-1k" if (name, split) == ("f30k_precomp", "test") else "5-per-image")
    folds = 1
    if (name, split) == ("coco_precomp", "testall"):
        protocol = given or "coco-5k"
        folds = 5 if protocol == "coco-1k-5fold" else 1
    if (name, split) == ("coco_precomp", "test"):
        notes.append("the 1000-image test split is not the COCO 1K protocol (Paranioar/SGRAF issue 7); "
                     "use split testall with protocol=coco-1k-5fold")
    if (name, split) != ("coco_precomp", "testall") and given is not None:
        raise MMBenchError(f"dataset {name!r}: option protocol= applies to the coco_precomp testall split "
                           f"(5000 images); split {split!r} is {protocol}")
    meta = C.make_meta(name, split, task, protocol=protocol, files=files, data_root=root,
                       image_ids=[im.id for im in images], forms=("regions",), notes=notes, partial=[feat_path],
                       extra=[list(feats.shape), str(feats.dtype)])
    return RetrievalData(images=images, texts=captions, text_image=np.arange(len(captions)) // 5, meta=meta,
                         folds=folds)


@C.adapter("f30k_precomp")
def load_f30k(task: str, split: str, data_root=None, **options):
    return read("f30k_precomp", task, split, data_root, **options)


@C.adapter("coco_precomp")
def load_coco(task: str, split: str, data_root=None, **options):
    return read("coco_precomp", task, split, data_root, **options)
