"""A restricted unpickler for annotation pickles (refer's ``refs(unc).p`` and the like).

Only plain containers and scalars can be built: dict, list, tuple, set, frozenset, str,
bytes, int, float, bool, None. Any pickle that asks for another class or function (the
only way a pickle executes code) is refused with :class:`mmbench.errors.UnsafeFileError`
before anything is called. Python-2 pickles (refer's are) decode their byte strings as
latin-1, the convention the refer code relies on under Python 3.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from mmbench.errors import DataError, UnsafeFileError

_ALLOWED = {
    ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
}


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        if (module, name) in _ALLOWED:
            return set if name == "set" else frozenset
        raise UnsafeFileError(
            f"{self._source}: refusing to unpickle {module}.{name}: annotation pickles may only hold plain "
            f"containers and scalars (dict, list, tuple, str, int, float, bool, None); building "
            f"{module}.{name} could execute code")

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self._source}: refusing a pickle with persistent ids (expected plain data)")


def loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing plain containers and scalars only."""
    try:
        return _PlainUnpickler(io.BytesIO(data), source).load()
    except UnsafeFileError:
        raise
    except RecursionError:
        raise DataError(source, "pickle nested too deeply", expected="a pickle of plain lists/dicts") from None
    except Exception as exc:  # truncated or corrupt: EOFError, UnpicklingError, ValueError, ...
        raise DataError(source, f"not a readable pickle ({type(exc).__name__}: {exc})",
                        expected="a pickle of plain lists/dicts (refer's refs(*).p)") from None


def load(path: str | Path) -> Any:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc}") from None
    return loads(data, source=str(path))
