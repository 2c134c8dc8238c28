"""Validation helpers every dataset adapter shares.

- paths from annotation files are resolved strictly inside the data root,
- annotation files are read with errors that name the file, the field and the layout,
- missing images are counted up front (never a crash halfway through a run),
- a dataset fingerprint hashes the annotation files, split, protocol and image list,
- a table of standard sizes turns a local copy that differs into a named warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import DatasetMeta, ImageItem

#: how many names a "missing files" message lists
FIRST_N = 5
#: longest file name / path an annotation may make us build (ENAMETOOLONG otherwise)
MAX_NAME = 255
MAX_PATH = 4000
#: most classes an integer label may imply (a label 10**10 must not make 10**10 class names)
MAX_CLASSES = 10_000
#: a gt box may leave the image by this many pixels (rounding) and is clipped, with a note
BOX_TOLERANCE = 2.0
#: feature files up to this size are scanned for NaN/inf at load (always by `mmbench datasets check`)
SCAN_BYTES = 4 << 30


class DatasetSizeWarning(UserWarning):
    """A local copy of a standard dataset differs from the standard size."""


# --------------------------------------------------------------------------- entry points

def checked_load(dataset: str, task: str, split: str, data_root: Any = None, /, **options: Any):
    """Load built-in ``dataset`` through its spec: ``DatasetSpec.load`` checks the task, split and options
    (the one place they are validated) and calls the adapter's loader with every option typed."""
    from mmbench.datasets.builtin import spec

    return spec(dataset).load(task, split, data_root, **options)


def adapter(dataset: str):
    """Make a built-in loader's name its library entry point.

    The decorated name loads through :func:`checked_load`; the loader itself, which may assume a
    valid task and split and typed options, is ``.unchecked`` (what the spec's factory names).
    """
    def wrap(fn):
        @functools.wraps(fn)
        def load(task: str, split: str, data_root: Any = None, **options: Any):
            return checked_load(dataset, task, split, data_root, **options)

        del load.__wrapped__  # its signature is (task, split, data_root, **options), not the loader's
        load.unchecked = fn  # type: ignore[attr-defined]
        return load

    return wrap


MISSING_CHOICES = ("error", "drop", "keep")
#: the ``missing`` option most adapters share (see :func:`handle_missing`)
MISSING = Option("missing", str, "error", "missing image files: error (default), drop (recorded in the run record) "
                                          "or keep", choices=MISSING_CHOICES)


# --------------------------------------------------------------------------- paths

def root_dir(data_root: Any, *, dataset: str, layout: str) -> Path:
    if data_root is None or str(data_root) == "":
        raise MMBenchError(f"dataset {dataset!r} needs --data-root PATH. Expected layout:\n{layout}")
    root = Path(os.path.abspath(Path(data_root).expanduser()))
    if not root.is_dir():
        raise DataError(root, "data root is not a folder", expected=f"the folder holding {dataset}", layout=layout)
    return root


def inside(root: Path, rel: Any, *, source: Any, field: str) -> Path:
    """``root / rel``, refusing absolute paths and ``..`` that leave ``root``.

    Checked lexically (no symlink resolution), so an image folder that is a symlink
    inside the root keeps working while a path in an annotation file cannot escape.
    """
    if not isinstance(rel, str) or not rel.strip() or "\0" in rel:
        raise DataError(source, f"bad path {rel!r}", field=field, expected="a relative file path")
    too_long = [c for c in rel.replace("\\", "/").split("/") if len(c.encode("utf-8", "surrogatepass")) > MAX_NAME]
    if too_long or len(rel) > MAX_PATH:
        raise DataError(source, f"path {_short(rel)} is too long ({len(rel)} characters"
                                + (f"; a name of {len(too_long[0])}" if too_long else "") + ")", field=field,
                        expected=f"file names of at most {MAX_NAME} bytes and paths of at most {MAX_PATH} characters")
    root_n = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(root_n, rel))
    if full != root_n and not full.startswith(root_n + os.sep):
        raise DataError(source, f"path {rel!r} escapes the data root {root_n}", field=field,
                        expected="a path inside the data root (no absolute paths, no '..' leaving it)")
    return Path(full)


def require_file(path: Path, *, what: str, layout: str) -> Path:
    if not path.is_file():
        raise DataError(path, f"{what} not found", layout=layout)
    return path


def find_dir(root: Path, candidates: Sequence[str], *, option: str | None, dataset: str, what: str,
             layout: str, required: bool = True) -> Path | None:
    """The first existing folder among ``candidates`` (or the user's ``option`` value)."""
    if option:
        d = inside(root, option, source=root, field=f"option images={option}")
        if not d.is_dir():
            raise DataError(d, f"{what} folder not found (from the dataset option)", layout=layout)
        return d
    for c in candidates:
        d = inside(root, c, source=root, field="layout")
        if d.is_dir():
            return d
    if required:
        raise DataError(root, f"no {what} folder found; looked for {', '.join(candidates)} "
                              f"(or pass --dataset-option images=DIR)", layout=layout)
    return None


# --------------------------------------------------------------------------- reading

class _BadNumber(ValueError):
    pass


def _parse_float(text: str) -> float:
    v = float(text)
    if not _finite(v):
        raise _BadNumber(f"number {text[:40]!r} overflows a float (inf)")
    return v


def _parse_constant(text: str):
    raise _BadNumber(f"{text} is not a JSON number")


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise _BadNumber(f"an integer of {len(text)} digits (more than {MAX_INT_DIGITS})")
    return int(text)


#: integers longer than this are refused while parsing (Python's own limit is 4300 digits)
MAX_INT_DIGITS = 100


def loads_json(text: str, *, source: Any, where: str | None = None, layout: str = "") -> Any:
    """``json.loads`` that refuses NaN / Infinity / overflowing floats and absurd integers, and
    turns every parse failure (deep nesting included) into a DataError naming ``source``."""
    at = f"{where}: " if where else ""
    try:
        return json.loads(text, parse_float=_parse_float, parse_constant=_parse_constant, parse_int=_parse_int)
    except _BadNumber as exc:
        raise DataError(source, f"{at}{exc}", field=where,
                        expected="finite JSON numbers (no NaN, Infinity, 1e400 or integers of hundreds of digits)"
                        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(source, f"{at}not valid JSON: {exc}", field=where, expected="a JSON file" if not where
                        else "one JSON object per line", layout=layout or None) from None
    except RecursionError:
        raise DataError(source, f"{at}JSON nested too deeply", field=where, expected="a JSON file") from None
    except ValueError as exc:  # e.g. Python's integer string conversion limit
        raise DataError(source, f"{at}unreadable JSON value: {exc}", field=where, expected="a JSON file") from None


def read_json(path: Path, *, layout: str = "") -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(path, "file not found", layout=layout or None) from None
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}", expected="a UTF-8 JSON file") from None
    return loads_json(text, source=path, layout=layout)


def read_lines(path: Path, *, layout: str = "", encoding: str = "utf-8") -> list[str]:
    """The file's lines without line endings (a trailing empty line dropped)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(path, "file not found", layout=layout or None) from None
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not {encoding} text: {exc}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def field(obj: Any, key: str, types: type | tuple, *, source: Any, where: str, expected: str | None = None):
    """``obj[key]`` checked against ``types``; a DataError names the file, record and field."""
    if not isinstance(obj, dict):
        raise DataError(source, f"{where} is {type(obj).__name__}", field=key,
                        expected="a JSON object holding it")
    if key not in obj:
        raise DataError(source, f"{where} has no {key!r}", field=key, expected=expected)
    val = obj[key]
    if isinstance(val, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        ok = False
    else:
        ok = isinstance(val, types)
    if not ok:
        names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise DataError(source, f"{where}: {key!r} is {type(val).__name__} {_short(val)}", field=key,
                        expected=expected or names)
    return val


def as_list(obj: Any, *, source: Any, where: str, key: str) -> list:
    if not isinstance(obj, list):
        raise DataError(source, f"{where} is {type(obj).__name__}", field=key, expected="a list")
    return obj


def xywh_box(b: Any, *, source: Any, where: str, key: str = "bbox") -> list[float]:
    """A COCO [x, y, w, h] box, validated, as pixel xyxy."""
    if not (isinstance(b, (list, tuple)) and len(b) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
        raise DataError(source, f"{where}: bad box {_short(b)}", field=key, expected="[x, y, w, h] numbers")
    x, y, w, h = (float(v) for v in b)
    if not all(map(_finite, (x, y, w, h))) or w < 0 or h < 0:
        raise DataError(source, f"{where}: impossible box {_short(b)}", field=key,
                        expected="finite [x, y, w, h] with w, h >= 0")
    return [x, y, x + w, y + h]


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def _short(v: Any, n: int = 60) -> str:
    try:
        s = repr(v)
    except RecursionError:
        return f"<{type(v).__name__} nested too deeply to show>"
    except Exception:  # e.g. an int beyond Python's 4300-digit str() limit
        return f"<{type(v).__name__} too large to show>"
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------- hostile-data checks

def first_duplicate(values) -> Any:
    """The first value seen twice, or None."""
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def data_where(meta: Any) -> str | None:
    """What a task-data error names when no single file is at fault: the dataset's files, or its name."""
    files = list(getattr(meta, "files", None) or [])
    if files:
        return files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    name = getattr(meta, "name", None)
    return f"dataset {name!r} split {getattr(meta, 'split', '?')!r}" if name else None


def text_value(v: Any, *, source: Any, where: str, key: str, what: str = "text") -> str:
    """``v`` stripped; a DataError when it is not a string or is empty / whitespace only."""
    if not isinstance(v, str):
        raise DataError(source, f"{where}: {what} is {type(v).__name__} {_short(v)}", field=key, expected="a string")
    t = v.strip()
    if not t:
        raise DataError(source, f"{where}: empty {what} {v!r}", field=key,
                        expected=f"a non-empty {what} (not only whitespace)")
    return t


class Unique:
    """Refuse a value seen before: ``seen(value, where)`` raises a DataError naming both places."""

    def __init__(self, source: Any, key: str, what: str):
        self.source, self.key, self.what = source, key, what
        self.first: dict[Any, str] = {}

    def __call__(self, value: Any, where: str, *, detail: str = "") -> None:
        if value in self.first:
            raise DataError(self.source, f"{where}: duplicate {self.what} {_short(value)} (first at "
                                         f"{self.first[value]}){detail}", field=self.key,
                            expected=f"each {self.what} once")
        self.first[value] = where

    def __contains__(self, value: Any) -> bool:
        return value in self.first


def check_split_values(values: Sequence[tuple[int, Any]], known: Sequence[str], *, source: Any, key: str = "split",
                       where: str = "images") -> None:
    """Every ``(index, split value)`` must be one of ``known``: a typo ("tset") would silently drop the entry."""
    bad: dict[Any, list[int]] = {}
    for i, v in values:
        if v not in known:
            bad.setdefault(v, []).append(i)
    if bad:
        desc = "; ".join(f"{_short(v)} at {where}[{', '.join(map(str, ix[:3]))}{', ...' if len(ix) > 3 else ''}]"
                         f" ({len(ix)}x)" for v, ix in list(bad.items())[:FIRST_N])
        import difflib

        hint = difflib.get_close_matches(str(next(iter(bad))), list(known), n=1)
        raise DataError(source, f"unknown split value(s): {desc}" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                        field=key, expected=f"one of {', '.join(known)}")


def declared_size(im: dict, *, source: Any, where: str) -> tuple[int, int] | None:
    """``(width, height)`` from a record's ``width``/``height``, or None when absent; refuses 0, negative,
    fractional and absurd sizes."""
    if "width" not in im and "height" not in im:
        return None
    w = field(im, "width", (int, float), source=source, where=where)
    h = field(im, "height", (int, float), source=source, where=where)
    if not (_finite(w) and _finite(h)) or w < 1 or h < 1 or w != int(w) or h != int(h) or max(w, h) > 1 << 20:
        raise DataError(source, f"{where}: image size {_short(w)}x{_short(h)}", field="width/height",
                        expected="positive whole numbers of pixels (at most 2**20)")
    return int(w), int(h)


def fit_box(box: Sequence[float], size: tuple[int, int] | None, *, source: Any, where: str, key: str,
            clipped: list[str]) -> list[float]:
    """An xyxy ground-truth box made safe to score: finite, positive area, inside the image.

    A box that leaves the image (or goes negative) by at most :data:`BOX_TOLERANCE` pixels, as
    float rounding of COCO boxes does, is clipped and counted in ``clipped`` (a note); a box
    farther out, with zero or negative area, or absurdly large, is a DataError (it could never be
    hit, so every model would silently lose it).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    tol = BOX_TOLERANCE
    if not all(map(_finite, (x1, y1, x2, y2))):
        raise DataError(source, f"{where}: box {list(box)} is not finite", field=key, expected="finite numbers")
    if x2 <= x1 or y2 <= y1:
        raise DataError(source, f"{where}: box {_fmt_box(box)} has {'zero' if x2 == x1 or y2 == y1 else 'negative'} "
                                f"area", field=key, expected="x2 > x1 and y2 > y1 (a box with positive area)")
    lo_x, lo_y = -tol, -tol
    hi_x, hi_y = (size[0] + tol, size[1] + tol) if size else (float("inf"), float("inf"))
    if x1 < lo_x or y1 < lo_y or x2 > hi_x or y2 > hi_y:
        inside_txt = f"the {size[0]}x{size[1]} image" if size else "the image (no negative coordinates)"
        raise DataError(source, f"{where}: box {_fmt_box(box)} lies outside {inside_txt} by more than {tol:g} px",
                        field=key, expected=f"a box inside {inside_txt}; check the box format (xyxy vs xywh, "
                                            "pixels vs normalised) and the declared image size")
    nx1, ny1 = max(x1, 0.0), max(y1, 0.0)
    nx2, ny2 = (min(x2, float(size[0])), min(y2, float(size[1]))) if size else (x2, y2)
    if (nx1, ny1, nx2, ny2) != (x1, y1, x2, y2):
        clipped.append(where)
        if nx2 <= nx1 or ny2 <= ny1:
            raise DataError(source, f"{where}: box {_fmt_box(box)} has no area inside the image", field=key,
                            expected="a box overlapping the image")
    return [nx1, ny1, nx2, ny2]


def _fmt_box(b) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in b) + "]"


def clip_note(clipped: list[str], source: Any) -> list[str]:
    if not clipped:
        return []
    msg = (f"{len(clipped)} ground-truth box(es) in {Path(str(source)).name} left the image by at most "
           f"{BOX_TOLERANCE:g} px (rounding) and were clipped to it (first: {', '.join(clipped[:3])})")
    warnings.warn(msg, DataQualityWarning, stacklevel=3)
    return [msg]


class DataQualityWarning(UserWarning):
    """Data that is odd but usable (recorded in the dataset notes too)."""


def image_header(path: Path) -> tuple[tuple[int, int] | None, str]:
    """``((width, height), format)`` from the file's header, or ``(None, why)``; never decodes pixels.
    Pillow's decompression-bomb limit is applied (``Image.MAX_IMAGE_PIXELS``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return (int(im.width), int(im.height)), str(im.format)
    except FileNotFoundError:
        return None, "missing"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, f"decompression bomb ({exc})"
    except Exception as exc:
        return None, f"unreadable image ({type(exc).__name__}: {_short(str(exc), 80)})"


def verify_sizes(items: Sequence[ImageItem], *, source: Any, notes: list[str]) -> None:
    """Compare each item's declared size with its image file's header (files that exist). A size that
    contradicts the file (0x0, 1x1, swapped, wrong) is a DataError: it would turn every correct
    prediction into an invalid one. Items without a declared size get the header's; unreadable or
    bomb-sized files are a DataError too."""
    wrong = []
    for it in items:
        if it.path is None or not os.path.isfile(it.path):
            continue
        real, fmt = image_header(it.path)
        if real is None:
            raise DataError(it.path, f"image of {it.id!r}: {fmt}", expected="a decodable image within Pillow's "
                                                                           "decompression-bomb limit")
        if it.size is None:
            it.size = real
        elif tuple(it.size) != real:
            wrong.append((it, real))
    if wrong:
        first = ", ".join(f"{it.path.name} declared {it.size[0]}x{it.size[1]}, file {r[0]}x{r[1]}"
                          for it, r in wrong[:3])
        raise DataError(source, f"{len(wrong)} declared image size(s) contradict the image files ({first})",
                        field="width/height", expected="the size of the image file (boxes and normalised "
                                                       "predictions are measured against it)")


def scan_finite(arr, *, source: Any, what: str = "features", chunk_bytes: int = 64 << 20) -> None:
    """A DataError naming ``source`` when ``arr`` (memory-mapped is fine: read in chunks) holds NaN or inf."""
    import numpy as np

    if arr.size == 0:
        return
    rows = max(1, chunk_bytes // max(1, arr[0].nbytes if arr.ndim > 1 else arr.itemsize))
    for start in range(0, arr.shape[0], rows):
        block = np.asarray(arr[start:start + rows])
        if not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block.reshape(block.shape[0], -1)).all(1)).ravel()
            first = [int(start + k) for k in bad[:FIRST_N]]
            raise DataError(source, f"{what} hold NaN or inf (rows {first}{', ...' if len(bad) > FIRST_N else ''})",
                            expected="finite float features (the file, not the model, is at fault)")


def class_list(names: Any, *, source: Any, key: str) -> list[str]:
    """Validated class names: a list of distinct, non-empty strings (a string "abc" is not 3 classes)."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise DataError(source, f"class names are {type(names).__name__} {_short(names)}", field=key,
                        expected="a list of class-name strings")
    if not names:
        raise DataError(source, "no class names", field=key, expected="at least one class name")
    if len(names) > MAX_CLASSES:
        raise DataError(source, f"{len(names)} class names", field=key, expected=f"at most {MAX_CLASSES} classes")
    out = [text_value(n, source=source, where=f"class {i}", key=key, what="class name") for i, n in enumerate(names)]
    seen = Unique(source, key, "class name")
    for i, n in enumerate(out):
        seen(n, f"class {i}")
    return out


def int_classes(labels: Sequence[int], *, source: Any, key: str) -> list[str]:
    """Class names "0".."max" for integer labels, refusing negative labels and absurd maxima (DoS)."""
    if not labels:
        return []
    lo, hi = min(labels), max(labels)
    if lo < 0:
        raise DataError(source, f"label {lo}", field=key, expected="labels >= 0 (or pass --dataset-option classes=...)")
    if hi >= MAX_CLASSES:
        raise DataError(source, f"label {_short(hi)} would make {_short(hi + 1)} classes", field=key,
                        expected=f"integer labels below {MAX_CLASSES}; pass --dataset-option classes=a,b,c for "
                                 "named classes")
    return [str(i) for i in range(hi + 1)]


# --------------------------------------------------------------------------- images


def missing_images(items: Sequence[ImageItem]) -> list[int]:
    """Indices of items whose image file does not exist."""
    return [i for i, it in enumerate(items) if it.path is not None and not os.path.isfile(it.path)]


def handle_missing(items: Sequence[ImageItem], policy: str, *, dataset: str, image_dir: Path | None,
                   notes: list[str]) -> set[int]:
    """Apply the missing-image policy; returns the indices to drop.

    ``error``: one DataError naming the count and the first few files (before any model runs);
    ``drop``: leave them out and say so in the run record's notes; ``keep``: keep them (for
    ``mmbench datasets check``, which only counts).
    """
    idx = missing_images(items)
    if not idx:
        return set()
    names = [str(items[i].path.name) for i in idx[:FIRST_N]]
    msg = (f"{len(idx)} of {len(items)} image files are missing (first: {', '.join(names)})")
    if policy == "error":
        raise DataError(image_dir, msg, expected="every image the annotations name; pass --dataset-option "
                                                 "missing=drop to evaluate on the images present")
    if policy == "drop":
        notes.append(msg + "; dropped (missing=drop)")
        return set(idx)
    notes.append(msg)
    return set()


# --------------------------------------------------------------------------- fingerprints

_HASH_CACHE: dict[tuple, str] = {}


def file_digest(path: Path, *, head_tail: int | None = None) -> str:
    """sha256 of a file (cached per path/size/mtime). ``head_tail``: hash only the first and
    last that many bytes plus the size (for tens-of-GB feature files)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns, head_tail)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if head_tail is not None and st.st_size > 2 * head_tail:
            h.update(fh.read(head_tail))
            fh.seek(st.st_size - head_tail)
            h.update(fh.read(head_tail))
            h.update(str(st.st_size).encode())
        else:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def dataset_fingerprint(files: Sequence[Path], split: str, protocol: str, image_ids: Sequence[str],
                        *extra: Any, partial: Sequence[Path] = ()) -> str:
    """Hash of the annotation files' contents, split, protocol and the image list."""
    from mmbench.records import fingerprint

    digests = [file_digest(Path(f)) for f in files] + [file_digest(Path(f), head_tail=1 << 20) for f in partial]
    return fingerprint(digests, split, protocol, list(image_ids), *extra)


# --------------------------------------------------------------------------- standard sizes

#: (dataset, split, variant) -> counts a complete official copy has. ``variant`` is the
#: protocol or sub-dataset the counts depend on ("" when none).
STANDARD_SIZES: dict[tuple[str, str, str], dict[str, int]] = {
    # Karpathy splits (PROTOCOLS.md section 5); 5 captions per image
    ("flickr30k", "train", ""): {"images": 29000, "texts": 145000},
    ("flickr30k", "val", ""): {"images": 1014, "texts": 5070},
    ("flickr30k", "test", ""): {"images": 1000, "texts": 5000},
    ("flickr8k", "train", ""): {"images": 6000, "texts": 30000},
    ("flickr8k", "val", ""): {"images": 1000, "texts": 5000},
    ("flickr8k", "test", ""): {"images": 1000, "texts": 5000},
    ("coco", "train", ""): {"images": 113287},
    ("coco", "val", ""): {"images": 5000},
    ("coco", "test", ""): {"images": 5000},
    # official COCO caption files (all captions)
    ("coco_captions", "val", "2017"): {"images": 5000, "texts": 25014},
    ("coco_captions", "train", "2017"): {"images": 118287, "texts": 591753},
    ("coco_captions", "val", "2014"): {"images": 40504, "texts": 202654},
    ("coco_captions", "train", "2014"): {"images": 82783, "texts": 414113},
    # SCAN precomputed features; dev cut to 5000 captions (kuanghuei/SCAN:data.py)
    ("f30k_precomp", "train", ""): {"images": 29000, "texts": 145000},
    ("f30k_precomp", "dev", ""): {"images": 1000, "texts": 5000},
    ("f30k_precomp", "test", ""): {"images": 1000, "texts": 5000},
    ("coco_precomp", "train", ""): {"images": 113287, "texts": 566435},
    ("coco_precomp", "dev", ""): {"images": 1000, "texts": 5000},
    ("coco_precomp", "test", ""): {"images": 1000, "texts": 5000},
    ("coco_precomp", "testall", ""): {"images": 5000, "texts": 25000},
    # refer expressions (lichengunc/refer; PROTOCOLS.md section 3)
    ("refcoco", "train", "unc"): {"samples": 120624},
    ("refcoco", "val", "unc"): {"samples": 10834},
    ("refcoco", "testA", "unc"): {"samples": 5657},
    ("refcoco", "testB", "unc"): {"samples": 5095},
    ("refcoco+", "train", "unc"): {"samples": 120191},
    ("refcoco+", "val", "unc"): {"samples": 10758},
    ("refcoco+", "testA", "unc"): {"samples": 5726},
    ("refcoco+", "testB", "unc"): {"samples": 4889},
    ("refcocog", "train", "umd"): {"samples": 80512},
    ("refcocog", "val", "umd"): {"samples": 4896},
    ("refcocog", "test", "umd"): {"samples": 9602},
    # Flickr30k Entities split lists (BryanPlummer/flickr30k_entities)
    ("flickr30k_entities", "train", ""): {"images": 29783},
    ("flickr30k_entities", "val", ""): {"images": 1000},
    ("flickr30k_entities", "test", ""): {"images": 1000},
    # MVSA: CLMLF fixed split files (Link-Li/CLMLF dataset/data)
    ("mvsa_single_clmlf", "train", ""): {"samples": 3611},
    ("mvsa_single_clmlf", "val", ""): {"samples": 450},
    ("mvsa_single_clmlf", "test", ""): {"samples": 450},
    ("mvsa_multiple_clmlf", "train", ""): {"samples": 13624},
    ("mvsa_multiple_clmlf", "val", ""): {"samples": 1700},
    ("mvsa_multiple_clmlf", "test", ""): {"samples": 1700},
    # MVSA raw after the literature's label rule: 4511 / 17024 pairs in all (8:1:1 split)
    ("mvsa_single", "all", ""): {"samples": 4511},
    ("mvsa_multiple", "all", ""): {"samples": 17024},
}
for _name in ("refcoco", "refcoco+", "refcocog"):
    for (_d, _s, _v), _c in list(STANDARD_SIZES.items()):
        if _d == _name:
            STANDARD_SIZES[("mdetr_refexp", _s, f"{_name}-{_v}")] = dict(_c)


def size_notes(dataset: str, split: str, variant: str, counts: dict[str, int], notes: list[str],
               *, what: str = "") -> list[str]:
    """Compare ``counts`` with the standard sizes; append and warn a note for each difference."""
    std = STANDARD_SIZES.get((dataset, split, variant))
    if not std:
        return notes
    diffs = [f"{counts[k]} {k} where the standard copy has {want} ({'+' if counts[k] > want else ''}{counts[k] - want})"
             for k, want in std.items() if counts.get(k) is not None and counts[k] != want]
    if diffs:
        label = f"{dataset} {split}" + (f" ({variant})" if variant else "")
        msg = f"{label}{what}: {'; '.join(diffs)}; numbers are not comparable with published ones"
        notes.append(msg)
        warnings.warn(msg, DatasetSizeWarning, stacklevel=3)
    return notes


def make_meta(dataset: str, split: str, task: str, *, protocol: str, files: Sequence[Path], data_root: Path | None,
              image_ids: Sequence[str], forms: Sequence[str], notes: list[str], partial: Sequence[Path] = (),
              extra: Sequence[Any] = ()) -> DatasetMeta:
    return DatasetMeta(
        name=dataset, split=split, task=task, protocol=protocol,
        fingerprint=dataset_fingerprint(files, split, protocol, image_ids, *extra, partial=partial),
        data_root=None if data_root is None else str(data_root),
        files=[str(f) for f in list(files) + list(partial)], forms=tuple(forms), notes=list(notes))


# --------------------------------------------------------------------------- image + captions

CAPTION_MODES = ("first5", "all")
#: where the Karpathy split files (dataset_{flickr8k,flickr30k,coco}.json) come from
KARPATHY_SOURCE = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"


def build_image_text(task: str, dataset: str, split: str, entries: Sequence[tuple[ImageItem, list[str]]], *,
                     captions: str, protocol: str, files: Sequence[Path], root: Path | None, missing: str,
                     image_dir: Path | None, notes: list[str], variant: str = "", forms: Sequence[str] = (
                         "image_file", "image"), folds: int = 1, source: Any = None, partial: Sequence[Path] = ()):
    """RetrievalData or CaptioningData from (image, captions) entries, after the missing-image
    policy and the caption protocol ("first5": the first five captions of each image, the
    Karpathy/SCAN protocol; "all": every caption, CLIP_benchmark's)."""
    from mmbench.tasks.captioning import CaptioningData
    from mmbench.tasks.retrieval import RetrievalData

    ids = Unique(source, "id", "image id")
    paths = Unique(source, "image", "image file")
    for k, (item, caps) in enumerate(entries):
        where = f"image {item.id!r}"
        ids(item.id, where, detail="; it would be evaluated twice")
        if item.path is not None:
            paths(os.path.normpath(str(item.path)), where, detail="; it would be evaluated twice")
        for j, c in enumerate(caps):
            if not isinstance(c, str) or not c.strip():
                raise DataError(source, f"{where}: caption {j} is {_short(c)}", field="captions",
                                expected="non-empty caption text (not only whitespace)")
    drop = handle_missing([e[0] for e in entries], missing, dataset=dataset, image_dir=image_dir, notes=notes)
    kept = [e for i, e in enumerate(entries) if i not in drop]
    if not kept:
        raise DataError(source, f"split {split!r} has no images" + (" left after dropping missing ones" if drop else ""),
                        expected="at least one image with captions")
    images, refs = [], []
    short = 0
    for item, caps in kept:
        caps = [c for c in caps]
        if captions == "first5":
            short += len(caps) < 5
            caps = caps[:5]
        if not caps:
            raise DataError(source, f"image {item.id!r} has no caption", field="captions",
                            expected="at least one caption per image")
        images.append(item)
        refs.append(caps)
    if short:
        notes.append(f"{short} image(s) have fewer than 5 captions")
    n_texts = sum(len(r) for r in refs)
    counts = {"images": len(images), "texts": n_texts}
    size_notes(dataset, split, variant, counts, notes)
    meta = make_meta(dataset, split, task, protocol=protocol, files=files, data_root=root,
                     image_ids=[im.id for im in images], forms=forms, notes=notes, partial=partial,
                     extra=[captions])
    if task == "captioning":
        return CaptioningData(images=images, references=refs, meta=meta)
    import numpy as np

    texts = [c for r in refs for c in r]
    text_image = np.repeat(np.arange(len(images)), [len(r) for r in refs])
    if folds > 1 and len(images) % folds:
        raise DataError(source, f"{len(images)} images cannot be split into {folds} equal folds",
                        expected=f"a multiple of {folds} images for protocol {protocol}")
    return RetrievalData(images=images, texts=texts, text_image=text_image, meta=meta, folds=folds)
