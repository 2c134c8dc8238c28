"""Official VSE-family checkpoints: the ``model_best.pth.tar`` layout, read through mmbench's restricted loader.

SCAN / SGRAF / VSE++ ``model_best.pth.tar`` files are dicts ``{'epoch', 'model', 'best_rsum',
'opt', 'Eiters'}`` whose ``opt`` is an ``argparse.Namespace`` and whose ``model`` is a list of
state_dicts. They are unpickled by :func:`mmbench.checkpoints.load_checkpoint` (torch's
``weights_only`` unpickler plus a narrow allow-list); this module checks the layout.
:func:`write_unsafe_checkpoint` crafts a code-running checkpoint of this layout for loader tests.

Cheap to import: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mmbench.checkpoints import load_checkpoint
from mmbench.errors import DataError


def namespace_dict(opt: Any, *, path: str | Path = "", field: str = "opt") -> dict:
    """``opt`` (argparse.Namespace or dict) as a plain dict, or DataError."""
    if isinstance(opt, argparse.Namespace):
        return dict(vars(opt))
    if isinstance(opt, dict):
        return dict(opt)
    raise DataError(path or None, f"is a {type(opt).__name__}", field=field,
                    expected="the training options (argparse.Namespace or dict)")


def official_checkpoint(path: str | Path, *, n_modules: int, allow_unsafe_pickle: bool = False,
                        what: str = "checkpoint") -> tuple[dict, list[dict], dict]:
    """Load a SCAN/SGRAF/VSE++-style ``model_best.pth.tar``: returns (opt dict, state_dicts, whole dict).

    Checks the layout: a dict with ``opt`` and ``model``, ``model`` a list of
    ``n_modules`` state_dicts of tensors.
    """
    import torch

    ck = load_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle, what=what)
    if not isinstance(ck, dict):
        raise DataError(path, f"top level is a {type(ck).__name__}",
                        expected="a dict with keys epoch, model, best_rsum, opt, Eiters")
    for key in ("model", "opt"):
        if key not in ck:
            raise DataError(path, f"key missing (keys: {sorted(map(str, ck))})", field=key,
                            expected="a dict with keys epoch, model, best_rsum, opt, Eiters")
    states = ck["model"]
    if not isinstance(states, (list, tuple)) or len(states) != n_modules:
        got = f"a list of {len(states)}" if isinstance(states, (list, tuple)) else f"a {type(states).__name__}"
        raise DataError(path, f"is {got}", field="model", expected=f"a list of {n_modules} state_dicts")
    for k, sd in enumerate(states):
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise DataError(path, "is not a state_dict of tensors", field=f"model[{k}]",
                            expected="a mapping parameter name -> tensor")
    return namespace_dict(ck["opt"], path=path), [dict(sd) for sd in states], ck


# --- test aid for plugin authors ---------------------------------------------------------

class _RunsCommand:
    """Unpickling this runs a shell command: what a restricted loader must refuse."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def write_unsafe_checkpoint(path, marker, *, n_modules: int = 2, field: str = "opt", legacy: bool = False) -> Path:
    """Write an official-layout ``model_best.pth.tar`` that would create ``marker`` if fully unpickled.

    ``{'epoch', 'model': n_modules empty state_dicts, 'best_rsum', 'opt', 'Eiters'}`` with
    ``field`` replaced by an object whose unpickling calls ``os.system('touch <marker>')``;
    ``legacy=True`` writes torch's pre-1.6 format. A loader test asserts that loading is
    refused (``UnsafeFileError`` naming ``system``) and that ``marker`` does not exist.
    """
    import shlex

    import torch

    ckpt: dict[str, Any] = {"epoch": 0, "model": [{} for _ in range(n_modules)], "best_rsum": 0.0, "opt": {},
                            "Eiters": 0}
    if field not in ckpt:
        raise ValueError(f"field {field!r}: expected one of {sorted(ckpt)}")
    ckpt[field] = _RunsCommand(f"touch {shlex.quote(str(marker))}")
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return Path(path)
