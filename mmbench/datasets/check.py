"""Verify a local copy of a dataset: counts, missing files, fingerprint, differences from the standard.

Works for any registered dataset (third-party ones too): it loads each split through the
dataset's own factory (with ``missing=keep`` where the adapter offers that option, so
missing images are counted instead of refused) and inspects what came back.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from mmbench.errors import MMBenchError


def _image_items(data) -> list:
    if hasattr(data, "images"):
        return list(data.images)
    seen, out = set(), []
    for s in getattr(data, "samples", []):
        im = getattr(s, "image", None)
        if im is not None and id(im) not in seen:
            seen.add(id(im))
            out.append(im)
    return out


def counts_of(data) -> dict[str, int]:
    out: dict[str, int] = {}
    if hasattr(data, "texts"):
        out["images"], out["texts"] = len(data.images), len(data.texts)
    elif hasattr(data, "references"):
        out["images"], out["texts"] = len(data.images), sum(len(r) for r in data.references)
    else:
        out["samples"] = len(getattr(data, "samples", []))
        out["images"] = len(_image_items(data))
    return out


def check_split(spec, split: str, data_root: Any, task: str, options: dict[str, str]) -> dict:
    opts = dict(options)
    missing = spec.options.option("missing")
    if missing is not None and "missing" not in opts and (not missing.choices or "keep" in missing.choices):
        opts["missing"] = "keep"
    rep: dict[str, Any] = {"split": split, "task": task}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = spec.load(task, split, data_root, **opts)
    except MMBenchError as exc:
        rep.update(ok=False, error=str(exc))
        return rep
    except TypeError as exc:
        rep.update(ok=False, error=f"bad dataset option(s) {sorted(opts)}: {exc}")
        return rep
    items = _image_items(data)
    missing = [im for im in items if im.path is not None and not os.path.isfile(im.path)]
    meta = data.meta
    problems = inspect_items(items)
    size_notes = [n for n in meta.notes if "standard copy has" in n]
    notes = [n for n in meta.notes if n not in size_notes and "image files are missing" not in n]
    notes += [f"{p['count']} {kind} (first: {'; '.join(p['first'])})" for kind, p in problems.items()]
    rep.update(ok=not missing and not problems, counts=counts_of(data), protocol=meta.protocol,
               fingerprint=meta.fingerprint,
               missing_images=len(missing), missing_first=[str(im.path) for im in missing[:5]],
               forms=sorted({f for im in items for f in im.forms}) or list(meta.forms),
               size_differences=size_notes, files=meta.files,
               problems={k: p["count"] for k, p in problems.items()},
               problems_first={k: p["first"] for k, p in problems.items()},
               notes=notes)
    return rep


def inspect_items(items: list) -> dict[str, dict]:
    """Problems of the files behind ``items``, by kind, with counts and the first few: every image
    header is decoded (size, format, Pillow's decompression-bomb limit; a declared size must match
    the file) and every feature array's shape and finiteness is read (memory-mapped / lazily)."""
    import numpy as np

    from mmbench.datasets.common import FIRST_N, image_header
    from mmbench.errors import DataError

    out: dict[str, dict] = {}

    def add(kind: str, what: str) -> None:
        p = out.setdefault(kind, {"count": 0, "first": []})
        p["count"] += 1
        if len(p["first"]) < FIRST_N:
            p["first"].append(what)

    dims: dict[tuple, int] = {}
    headers: dict[str, tuple] = {}
    for im in items:
        if im.path is not None and os.path.isfile(im.path):
            key = str(im.path)
            if key not in headers:
                headers[key] = image_header(im.path)
            real, fmt = headers[key]
            if real is None:
                add("image file(s) that cannot be used" if "bomb" not in fmt else
                    "image file(s) over Pillow's decompression-bomb limit", f"{im.path}: {fmt}")
            elif im.size is not None and tuple(im.size) != real:
                add("declared image size(s) that contradict the file",
                    f"{im.path.name}: declared {im.size[0]}x{im.size[1]}, file {real[0]}x{real[1]}")
        if "regions" in im.forms:
            try:
                arr = im.regions
            except DataError as exc:
                add("unreadable or non-finite feature file(s)", str(exc))
                continue
            if arr is None:
                continue
            where = getattr(im, "_att_path", None) or f"image {im.id}"
            if arr.ndim != 2 or 0 in arr.shape:
                add("feature array(s) of the wrong shape", f"{where}: shape {tuple(arr.shape)}")
                continue
            dims[(arr.shape[1], str(arr.dtype))] = dims.get((arr.shape[1], str(arr.dtype)), 0) + 1
            if not np.isfinite(np.asarray(arr)).all():
                add("feature array(s) holding NaN/inf", f"{where}")
        fc_path = getattr(im, "_fc_path", None)
        if fc_path is not None and os.path.isfile(fc_path):
            try:
                im.fc
            except DataError as exc:
                add("unreadable or non-finite feature file(s)", str(exc))
    if len(dims) > 1:
        common = max(dims, key=dims.get)
        for (d, dt), n in dims.items():
            if (d, dt) != common:
                for _ in range(n):
                    add("feature array(s) whose dimension differs from the split's",
                        f"{n} with dim {d} {dt} where {dims[common]} have {common[0]} {common[1]}")
    return out


def check_dataset(name: str, data_root: Any = None, *, split: str | None = None, task: str | None = None,
                  options: dict[str, str] | None = None, registry=None) -> dict:
    """A report over one split (or every split) of dataset ``name``."""
    from mmbench.plugins import get_registry

    reg = registry or get_registry()
    spec = reg.dataset(name)
    if task is not None and task not in spec.tasks:
        raise MMBenchError(f"dataset {name!r} offers {', '.join(spec.tasks)}, not {task}")
    task = task or spec.tasks[0]
    if spec.needs_data_root and not data_root:
        raise MMBenchError(f"dataset {name!r} needs --data-root PATH. Run `mmbench datasets layout {name}` "
                           f"to see the expected layout.")
    if split is not None and split not in spec.splits:
        from mmbench.errors import UnknownNameError

        raise UnknownNameError(f"split of dataset {name!r}", split, list(spec.splits))
    splits = [split] if split else list(spec.splits)
    reports = [check_split(spec, s, data_root, task, options or {}) for s in splits]
    return {"dataset": name, "data_root": None if data_root is None else str(data_root), "task": task,
            "splits": reports, "ok": all(r["ok"] for r in reports)}
