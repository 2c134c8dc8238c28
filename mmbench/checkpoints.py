"""Restricted loading of official PyTorch checkpoints (no code execution from user files).

Research checkpoints such as SCAN/SGRAF/VSE++ ``model_best.pth.tar`` are pickles: a dict
``{'epoch', 'model', 'best_rsum', 'opt', 'Eiters'}`` whose ``opt`` is an
``argparse.Namespace`` and whose ``best_rsum`` may be a numpy scalar. Unrestricted
unpickling would run whatever the file names, so mmbench loads them with torch's
``weights_only`` unpickler plus a narrow allow-list (:data:`SAFE_GLOBALS`), which reads
both the zip format (torch >= 1.6) and the legacy format, mapping CUDA-tagged storages
to the CPU. A file naming anything else is refused with :class:`UnsafeFileError` naming
the offending global; ``allow_unsafe_pickle=True`` is the explicit opt-in to load it
anyway (only for files you trust). The official VSE-family layout checks
(``official_checkpoint``) live in the mmbench-vse library (:mod:`mmbench_vse.checkpoints`).

Import torch lazily: this module is imported by plugin factories, never by the CLI at
startup.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mmbench.errors import DataError, UnsafeFileError

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _numpy_globals() -> list:
    """numpy scalar/dtype reconstruction (a scalar is rebuilt from a dtype and raw bytes)."""
    import numpy as np

    out: list = []
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    # pickles written under numpy 1.x name numpy.core.*, under numpy 2.x numpy._core.*
    out += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    out += [(np.dtype, "numpy.dtype")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType",
                     "Int16DType", "Int8DType", "UInt8DType", "BoolDType"):
            cls = getattr(dtypes, name, None)
            if cls is not None:
                out.append((cls, f"numpy.dtypes.{name}"))
    return out


def safe_globals() -> list:
    """The allow-list: argparse.Namespace plus numpy scalars and dtypes, nothing callable beyond that."""
    return [argparse.Namespace, *_numpy_globals()]


def _reason(msg: str) -> str:
    """The one-line reason inside torch's long weights_only error message."""
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[0] if lines else ""


def load_checkpoint(path: str | Path, *, allow_unsafe_pickle: bool = False, what: str = "checkpoint") -> Any:
    """Load a torch checkpoint onto the CPU without unrestricted unpickling.

    Raises ``DataError`` when the file is missing or not a torch checkpoint, and
    ``UnsafeFileError`` (naming the global) when it needs more than the allow-list,
    unless ``allow_unsafe_pickle`` is true.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} file not found", expected="a torch checkpoint (.pth / .pth.tar)")
    if allow_unsafe_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        names = _GLOBAL_RE.findall(msg)
        reason = _reason(msg)
        if not names and ("operand" in reason or "opcode" in reason or not reason):
            raise DataError(path, f"cannot unpickle this {what} ({reason or type(exc).__name__})",
                            expected="a torch checkpoint written by torch.save (zip or legacy format)") from None
        bad = names[0] if names else f"something outside it ({reason})"
        raise UnsafeFileError(
            f"{path}: refusing to load this {what}: its pickle references {bad}, which is not on "
            f"mmbench's allow-list (argparse.Namespace, numpy scalars and dtypes, tensors). Loading it "
            f"would need unrestricted unpickling, which can execute code. If you trust the file, pass "
            f"allow_unsafe_pickle=true (e.g. --option allow_unsafe_pickle=true).") from None
    except (RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError) as exc:
        last_exc: Exception = exc
    raise DataError(path, f"cannot read this {what}: {type(last_exc).__name__}: {last_exc}",
                    expected="a torch checkpoint written by torch.save (zip or legacy format)")


# --- option parsing shared by checkpoint-loading plugins -------------------------------------

def parse_bool(value: Any, *, option: str) -> bool:
    """A ``--option key=value`` string (or bool) as a bool (:func:`mmbench.options.parse_bool`);
    PluginError naming the option otherwise."""
    from mmbench.errors import PluginError
    from mmbench.options import parse_bool as _parse_bool

    return _parse_bool(value, option=option, error=PluginError)


def parse_int(value: Any, *, option: str, minimum: int = 1) -> int:
    from mmbench.errors import PluginError

    try:
        out = int(str(value).strip())
    except ValueError:
        raise PluginError(f"option {option}={value!r}: expected an integer") from None
    if out < minimum:
        raise PluginError(f"option {option}={value!r}: expected an integer >= {minimum}")
    return out


def resolve_device(value: Any = None) -> str:
    """``device`` option: default cuda when available, else cpu; a requested cuda without one is an error."""
    import torch

    from mmbench.errors import PluginError

    if value is None or str(value).strip() in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    dev = str(value).strip()
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise PluginError(f"option device={dev!r}: CUDA is not available on this machine (use device=cpu)")
    try:
        torch.device(dev)
    except RuntimeError:
        raise PluginError(f"option device={dev!r}: expected cpu, cuda or cuda:N") from None
    return dev
