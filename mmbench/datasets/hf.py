"""Hugging Face ``datasets`` as a source: a ``save_to_disk`` folder or parquet files.

Read with ``pyarrow`` alone (no ``datasets`` install needed, nothing downloaded):
- ``DATA_ROOT/dataset_dict.json`` + ``DATA_ROOT/<split>/data-*.arrow`` (a saved DatasetDict),
  or ``DATA_ROOT/data-*.arrow`` + ``state.json`` (one saved Dataset, any split name);
- ``DATA_ROOT/<split>.parquet``, ``DATA_ROOT/<split>-*.parquet`` or ``DATA_ROOT/data/<split>-*.parquet``.
Split ``val`` also finds ``validation``. Columns are chosen with options; image cells may be
``{"bytes", "path"}`` structs (the ``Image`` feature), raw bytes, or paths inside DATA_ROOT.
ClassLabel names come from the schema's ``huggingface`` metadata (or ``classes=a,b,c``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError, MMBenchError
from mmbench.options import Option
from mmbench.tasks.base import ImageItem

LAYOUT = """DATA_ROOT/ one of
  dataset_dict.json + <split>/data-00000-of-0000N.arrow   (datasets.DatasetDict.save_to_disk)
  state.json + data-00000-of-0000N.arrow                   (datasets.Dataset.save_to_disk)
  <split>.parquet | <split>-*.parquet | data/<split>-*.parquet   (Hub parquet export)
  columns: image (Image feature / bytes / path), captions or caption (retrieval, captioning),
           text + label (classification); choose others with --dataset-option *_column=NAME"""

OPTIONS = (
    Option("image_column", str, "image", "image column (default image)"),
    Option("captions_column", str, None, "caption column, a string or list of strings (default: captions, caption, "
                                         "sentences or text)"),
    Option("text_column", str, "text", "classification text column (default text)"),
    Option("label_column", str, "label", "classification label column (default label)"),
    Option("id_column", str, None, "id column (default: row number)"),
    Option("classes", str, None, "classification class names, comma separated (default: the ClassLabel names)"),
    Option("captions", str, "all", "all (default) or first5", choices=C.CAPTION_MODES),
    Option("text_only", bool, False, "classification: true to ignore images"),
)
SPLITS = ("train", "val", "test")


def _pa():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MMBenchError("dataset 'hf' needs the pyarrow package, which the 'hf' extra installs: "
                           "pip install 'mmbench[hf]' (or pip install pyarrow)") from None
    import pyarrow as pa

    return pa


def _read_arrow(path: Path):
    pa = _pa()
    try:
        with pa.memory_map(str(path)) as src:
            try:
                return pa.ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                return pa.ipc.open_file(src).read_all()
    except Exception as exc:  # pyarrow raises several types on corrupt input
        raise DataError(path, f"not a readable Arrow file: {exc}", layout=LAYOUT) from None


def _read_parquet(path: Path):
    _pa()
    import pyarrow.parquet as pq

    try:
        return pq.read_table(str(path))
    except Exception as exc:  # pyarrow raises several types on corrupt input
        raise DataError(path, f"not a readable parquet file: {exc}", layout=LAYOUT) from None


def find_files(root: Path, split: str) -> list[Path]:
    names = [split] + (["validation", "valid", "dev"] if split == "val" else [])
    if (root / "dataset_dict.json").is_file():
        for n in names:
            files = sorted((root / n).glob("data-*.arrow"))
            if files:
                return files
    if (root / "state.json").is_file():
        return sorted(root.glob("data-*.arrow"))
    for n in names:
        for pattern in (f"{n}.parquet", f"{n}-*.parquet", f"data/{n}.parquet", f"data/{n}-*.parquet"):
            files = sorted(root.glob(pattern))
            if files:
                return files
    raise DataError(root, f"no data for split {split!r}", layout=LAYOUT)


def read_table(files: list[Path]):
    pa = _pa()
    tables = [(_read_arrow if f.suffix == ".arrow" else _read_parquet)(f) for f in files]
    try:
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowException as exc:
        raise DataError(files[0].parent, f"data files have different columns: {exc}") from None


def class_names(table, source: Path) -> dict[str, list[str]]:
    """ClassLabel names per column from the schema's ``huggingface`` metadata, validated: a string
    ("abc" is not the classes a, b, c), duplicate or empty names are DataErrors."""
    meta = (table.schema.metadata or {}).get(b"huggingface")
    if not meta:
        return {}
    try:
        feats = json.loads(meta)["info"]["features"]
    except Exception:
        try:
            feats = json.loads(meta)["features"]  # newer datasets versions
        except Exception:
            return {}
    if not isinstance(feats, dict):
        return {}
    out = {}
    for k, v in feats.items():
        if isinstance(v, dict) and "names" in v:
            out[k] = C.class_list(v["names"], source=source, key=f"huggingface metadata: features.{k}.names")
    return out


def _column(table, name: str, files, what: str) -> list:
    if name not in table.column_names:
        raise DataError(files[0], f"no column {name!r} (columns: {', '.join(table.column_names)})", field=name,
                        expected=f"the {what} column (or --dataset-option {what}_column=NAME)")
    try:
        return table.column(name).to_pylist()
    except Exception as exc:  # a corrupt file can read as a table whose cells do not decode (invalid UTF-8)
        raise DataError(files[0], f"column {name!r} cannot be decoded: {type(exc).__name__}: {exc}", field=name,
                        expected=f"a readable {what} column (a valid parquet / arrow file)") from None


def _image(cell, k, root: Path, source: Path, rid: str) -> ImageItem:
    from PIL import Image

    if isinstance(cell, dict):
        if cell.get("bytes"):
            cell = cell["bytes"]
        elif cell.get("path"):
            cell = cell["path"]
    if isinstance(cell, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(cell)) as im:
                return ImageItem(id=rid, pil=im.convert("RGB"))
        except Exception as exc:
            raise DataError(source, f"row {k}: cannot decode image bytes: {exc}", field="image") from None
    if isinstance(cell, str):
        return ImageItem(id=rid, path=C.inside(root, cell, source=source, field=f"row {k}: image"))
    raise DataError(source, f"row {k}: image cell is {type(cell).__name__}", field="image",
                    expected="an Image struct {bytes, path}, bytes or a relative path")


@C.adapter("hf")
def load(task: str, split: str, data_root=None, *, image_column, captions_column, text_column, label_column,
         id_column, classes, captions, text_only):
    name = "hf"
    root = C.root_dir(data_root, dataset=name, layout=LAYOUT)
    files = find_files(root, split)
    table = read_table(files)
    n = table.num_rows
    if not n:
        raise DataError(files[0], "no rows", expected="at least one row")
    ids = [str(v) for v in _column(table, id_column, files, "id")] if id_column else [str(i) for i in range(n)]
    notes: list[str] = []
    if task in ("retrieval", "captioning"):
        cap_col = captions_column or next(
            (c for c in ("captions", "caption", "sentences", "text") if c in table.column_names), "captions")
        caps_col = _column(table, cap_col, files, "captions")
        imgs = _column(table, image_column, files, "image")
        entries = []
        for k, (rid, cell, caps) in enumerate(zip(ids, imgs, caps_col)):
            caps = [caps] if isinstance(caps, str) else caps
            if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
                raise DataError(files[0], f"row {k}: captions {C._short(caps)}", field=cap_col,
                                expected="a string or a non-empty list of strings")
            entries.append((_image(cell, k, root, files[0], rid), [c.strip() for c in caps]))
        return C.build_image_text(task, name, split, entries, captions=captions,
                                  protocol="all-captions" if captions == "all" else "5-per-image", files=files,
                                  root=root, missing="error", image_dir=root, notes=notes, source=files[0],
                                  forms=("image_file", "image"))
    from mmbench.tasks.classification import ClassificationData, ClassificationSample

    labels = _column(table, label_column, files, "label")
    if classes:
        classes = C.class_list([c.strip() for c in classes.split(",")], source=files[0], key="option classes")
    else:
        classes = class_names(table, files[0]).get(label_column) or []
        if not classes:
            ints = [v for v in labels if isinstance(v, int) and not isinstance(v, bool)]
            if len(ints) != len(labels):
                raise MMBenchError(f"{files[0]}: labels are not a ClassLabel; pass --dataset-option classes=a,b,c")
            classes = C.int_classes(ints, source=files[0], key=label_column)
    texts = _column(table, text_column, files, "text") if text_column in table.column_names else [None] * n
    imgs = None if text_only or image_column not in table.column_names else _column(table, image_column, files,
                                                                                     "image")
    samples = []
    seen = C.Unique(files[0], id_column or "id", "id")
    for k in range(n):
        lab = labels[k]
        idx = lab if isinstance(lab, int) and not isinstance(lab, bool) else (
            classes.index(lab) if isinstance(lab, str) and lab in classes else -1)
        if not 0 <= idx < len(classes):
            raise DataError(files[0], f"row {k}: label {C._short(lab)}", field=label_column,
                            expected=f"one of {C._short(classes, 200)}")
        seen(ids[k], f"row {k}", detail=f" (label {lab!r} here)")
        text = texts[k]
        if text is not None and not isinstance(text, str):
            raise DataError(files[0], f"row {k}: text is {type(text).__name__}", field=text_column, expected="a string")
        img = _image(imgs[k], k, root, files[0], ids[k]) if imgs is not None and imgs[k] is not None else None
        if (text is None or not text.strip()) and img is None:
            raise DataError(files[0], f"row {k} has neither text nor image", field=f"{text_column}/{image_column}",
                            expected="a non-empty text or an image")
        samples.append(ClassificationSample(id=ids[k], text=text, image=img, label=idx))
    forms = ("image", "image_file") if imgs is not None else ("text_only",)
    meta = C.make_meta(name, split, task, protocol="text-only" if text_only else "hf", files=files, data_root=root,
                       image_ids=ids, forms=forms, notes=notes, extra=[classes])
    return ClassificationData(samples=samples, classes=classes, meta=meta)
