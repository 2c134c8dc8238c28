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
    size_notes = [n for n in meta.notes if "standard copy has" in n]
    rep.update(ok=not missing, counts=counts_of(data), protocol=meta.protocol, fingerprint=meta.fingerprint,
               missing_images=len(missing), missing_first=[str(im.path) for im in missing[:5]],
               forms=sorted({f for im in items for f in im.forms}) or list(meta.forms),
               size_differences=size_notes, files=meta.files,
               notes=[n for n in meta.notes if n not in size_notes and "image files are missing" not in n])
    return rep


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
