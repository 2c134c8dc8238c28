"""Reading the official ``infos_<id>-best.pkl`` without unrestricted unpickling.

husthuaan/AoANet:misc/utils.py ``pickle_dump`` writes it with protocol 2; ``pickle_load`` reads
it with ``encoding='latin-1'``. It is a dict ``{iter, epoch, iterators, split_ix, vocab, opt,
best_val_score, ...}``; ``opt`` is an ``argparse.Namespace``. When training ran with
``--language_eval 1``, ``best_val_score`` is a numpy float64 (a CIDEr value), which protocol 2
stores through ``numpy.core.multiarray.scalar`` + ``numpy.dtype`` + ``_codecs.encode``. Those,
and nothing else, are allowed; any other global is refused before it is called.
"""

from __future__ import annotations

import argparse
import codecs
import io
import pickle
from pathlib import Path
from typing import Any

from mmbench.errors import DataError, UnsafeFileError


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    out: dict[tuple[str, str], Any] = {
        ("argparse", "Namespace"): argparse.Namespace,
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
        ("__builtin__", "set"): set, ("builtins", "set"): set,
        ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    }
    return out


class InfosUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin-1")
        self.source = source
        self.allowed = _allowed()

    def find_class(self, module: str, name: str):
        obj = self.allowed.get((module, name))
        if obj is None:
            raise UnsafeFileError(
                f"{self.source}: refusing to unpickle {module}.{name}: an AoANet infos pickle may only hold plain "
                f"data, argparse.Namespace and numpy scalars; building {module}.{name} could execute code. If you "
                f"trust the file, pass allow_unsafe_pickle=true.")
        return obj

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self.source}: refusing a pickle with persistent ids (expected an infos dict)")


def load_infos(path: str | Path, *, allow_unsafe_pickle: bool = False) -> dict:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "infos pickle not found", expected="infos_<id>-best.pkl written by the official train.py") \
            from None
    try:
        if allow_unsafe_pickle:
            infos = pickle.loads(raw, encoding="latin-1")
        else:
            infos = InfosUnpickler(io.BytesIO(raw), str(path)).load()
    except UnsafeFileError:
        raise
    except Exception as exc:
        raise DataError(path, f"not a readable pickle ({type(exc).__name__}: {exc})",
                        expected="infos_<id>-best.pkl (misc.utils.pickle_dump)") from None
    if not isinstance(infos, dict):
        raise DataError(path, f"top level is a {type(infos).__name__}", expected="a dict with 'opt' and 'vocab'")
    for key in ("opt", "vocab"):
        if key not in infos:
            raise DataError(path, f"key {key!r} missing (keys: {sorted(map(str, infos))})", field=key,
                            expected="a dict with 'opt' (argparse.Namespace) and 'vocab' ({'1': word, ...})")
    opt = infos["opt"]
    if isinstance(opt, argparse.Namespace):
        opt = dict(vars(opt))
    if not isinstance(opt, dict):
        raise DataError(path, f"is a {type(opt).__name__}", field="opt", expected="argparse.Namespace")
    vocab = infos["vocab"]
    if not isinstance(vocab, dict) or not all(isinstance(v, str) for v in vocab.values()):
        raise DataError(path, "is not a dict of id -> word", field="vocab", expected="{'1': 'a', ...}")
    vocab = {str(k): v for k, v in vocab.items()}
    out = dict(infos)
    out["opt"], out["vocab"] = opt, vocab
    return out
