"""Reading the tutorial's ``BEST_checkpoint_*.pth.tar`` without running its pickle.

sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning:utils.py ``save_checkpoint`` pickles WHOLE objects:
``{'epoch', 'epochs_since_improvement', 'bleu-4', 'encoder': models.Encoder, 'decoder':
models.DecoderWithAttention, 'encoder_optimizer', 'decoder_optimizer': torch.optim.Adam}``.
``torch.load(weights_only=True)`` refuses it even with every global allow-listed (the Adam
state is a ``defaultdict``), and unrestricted unpickling would import and run whatever the file
names. This module reads the zip archive itself and unpickles it with a restricted unpickler:
every allow-listed class (torch.nn layers, torchvision's ResNet blocks, the tutorial's
Encoder / Attention / DecoderWithAttention, Adam) becomes an inert :class:`Collected` object
that only stores the state pickle hands it; tensors are rebuilt from the archive's storages.
Anything else is refused with :class:`UnsafeFileError` naming the global, unless
``allow_unsafe_pickle`` is set (then ``torch.load(weights_only=False)``; the real classes must
be importable).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.errors import DataError, UnsafeFileError

#: the module / optimizer classes a tutorial checkpoint may name (mapped to inert stand-ins)
MODULE_CLASSES = {
    ("models", "Encoder"), ("models", "Attention"), ("models", "DecoderWithAttention"),
    ("torchvision.models.resnet", "BasicBlock"), ("torchvision.models.resnet", "Bottleneck"),
    ("torchvision.models.resnet", "ResNet"),
    ("torch.nn.modules.conv", "Conv2d"), ("torch.nn.modules.batchnorm", "BatchNorm2d"),
    ("torch.nn.modules.activation", "ReLU"), ("torch.nn.modules.activation", "Sigmoid"),
    ("torch.nn.modules.activation", "Softmax"), ("torch.nn.modules.container", "Sequential"),
    ("torch.nn.modules.dropout", "Dropout"), ("torch.nn.modules.linear", "Linear"),
    ("torch.nn.modules.pooling", "AdaptiveAvgPool2d"), ("torch.nn.modules.pooling", "MaxPool2d"),
    ("torch.nn.modules.rnn", "LSTMCell"), ("torch.nn.modules.sparse", "Embedding"),
    ("torch.optim.adam", "Adam"),
}
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class Collected:
    """An inert stand-in for a pickled module or optimizer: the class name and its pickled state."""

    qualname = "?"

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"__state__": state}

    def __getitem__(self, key):
        return self.state[key]

    def get(self, key, default=None):
        return getattr(self, "state", {}).get(key, default)

    def __repr__(self) -> str:
        return f"<collected {self.qualname}>"


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    arr = storage
    size, stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
    storage_offset = int(storage_offset)
    # as_strided reads memory unchecked: the view must lie inside its storage
    if (len(size) != len(stride) or storage_offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride)
            or (all(size) and storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(arr))
            or (not size and storage_offset >= len(arr))):
        raise DataError(None, f"a tensor of size {size}, stride {stride}, offset {storage_offset} does not fit its "
                              f"storage of {len(arr)} elements", expected="a consistent torch checkpoint")
    if not size:
        view = arr[storage_offset:storage_offset + 1].reshape(())
    else:
        view = np.lib.stride_tricks.as_strided(arr[storage_offset:], shape=size,
                                               strides=tuple(s * arr.itemsize for s in stride))
    if arr.flags.writeable:
        # legacy format: the storage is filled after the pickle, so the tensor must be a view of it
        return torch.from_numpy(view)
    return torch.from_numpy(np.array(view))  # a copy: owns its memory (the zip storages are read-only bytes)


def _rebuild_tensor(storage, storage_offset, size, stride):
    # torch <= 0.3 pickles (the legacy format's older tensor record)
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _inert_backend():
    # torch 0.4 modules pickle `_backend` as THNNFunctionBackend.__reduce__ -> (_get_thnn_function_backend, ()):
    # a module-level getter of a singleton; the stand-in returns nothing
    return None


def _rebuild_parameter(data, requires_grad, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, source: str, read_record):
        super().__init__(fh, encoding="latin-1")
        self.source, self.read_record = source, read_record
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in MODULE_CLASSES:
            return type(name, (Collected,), {"qualname": f"{module}.{name}"})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch._utils":
            fn = {"_rebuild_tensor_v2": _rebuild_tensor_v2, "_rebuild_tensor": _rebuild_tensor,
                  "_rebuild_parameter": _rebuild_parameter,
                  "_rebuild_parameter_with_state": _rebuild_parameter_with_state}.get(name)
            if fn is not None:
                return fn
        if (module, name) == ("torch.nn.backends.thnn", "_get_thnn_function_backend"):
            return _inert_backend
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            import collections

            return getattr(collections, name)
        if module in ("__builtin__", "builtins") and name in ("dict", "set", "frozenset", "list", "tuple"):
            return {"dict": dict, "set": set, "frozenset": frozenset, "list": list, "tuple": tuple}[name]
        raise UnsafeFileError(
            f"{self.source}: refusing to load this Show-Attend-Tell checkpoint: its pickle references "
            f"{module}.{name}, which is not on the allow-list (the tutorial's Encoder/Attention/"
            f"DecoderWithAttention, torch.nn layers, torchvision ResNet blocks, Adam, tensors). Loading it would "
            f"need unrestricted unpickling, which can execute code. If you trust the file, pass "
            f"allow_unsafe_pickle=true.")

    def persistent_load(self, pid):
        if (self.read_record is None and isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module"
                and isinstance(pid[1], type) and issubclass(pid[1], Collected)):
            # legacy format: every nn.Module class is a persistent id ('module', class, source file, source);
            # the class already went through find_class (an allow-listed stand-in); the source is not read
            return pid[1]
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeFileError(f"{self.source}: unexpected persistent id {pid!r:.80}")
        stype, key = pid[1], str(pid[2])
        if self.read_record is None:  # legacy format: the storage bytes follow the pickle
            return self._legacy_storage(pid)
        if key not in self.storages:
            raw = self.read_record(f"data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=np.dtype(stype.dtype).newbyteorder("<"))
        return self.storages[key]


    def _legacy_storage(self, pid):
        # ('storage', storage_type, root_key, location, numel, view_metadata): an empty writable array now,
        # filled in place once the storage records after the pickle are read (tensors are views of it)
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        key = str(key)
        if not isinstance(numel, int) or numel < 0:
            raise DataError(self.source, f"storage {key}: size {numel!r}", expected="a non-negative element count")
        if key not in self.storages:
            self.storages[key] = np.zeros(numel, dtype=np.dtype(stype.dtype))
        root = self.storages[key]
        if view is not None:  # (view_key, offset, view_size): torch < 1.0 storage views
            _vkey, offset, vsize = view
            return root[int(offset):int(offset) + int(vsize)]
        return root


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles (magic number, protocol version, sys info) and the key list: no globals."""

    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin-1")
        self.source = source

    def find_class(self, module: str, name: str):
        raise UnsafeFileError(f"{self.source}: refusing {module}.{name} in a legacy torch header")

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self.source}: unexpected persistent id in a legacy torch header")


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL = 1001


def _load_legacy(path: Path, raw: bytes) -> Any:
    """torch's legacy (pre-1.6, ``_use_new_zipfile_serialization=False``) format, read as
    ``torch.serialization._legacy_load`` does: pickles of the magic number, the protocol version and
    the sys info; the object pickle (storages as persistent ids); the pickled list of storage keys; then,
    for each key in that order, an int64 element count and the raw little-endian bytes."""
    fh = io.BytesIO(raw)
    src = str(path)
    try:
        magic = _PlainUnpickler(fh, src).load()
    except UnsafeFileError:
        raise
    except Exception:
        raise DataError(path, "is neither a torch zip archive nor a legacy torch file",
                        expected="BEST_checkpoint_*.pth.tar written by torch.save") from None
    if magic != LEGACY_MAGIC:
        raise DataError(path, "is neither a torch zip archive nor a legacy torch file (bad magic number)",
                        expected="BEST_checkpoint_*.pth.tar written by torch.save")
    try:
        version = _PlainUnpickler(fh, src).load()
        info = _PlainUnpickler(fh, src).load()
    except UnsafeFileError:
        raise
    except Exception as exc:
        raise DataError(path, f"legacy torch header unreadable ({type(exc).__name__}: {exc})") from None
    if version != LEGACY_PROTOCOL:
        raise DataError(path, f"legacy torch protocol {version!r}", expected=str(LEGACY_PROTOCOL))
    if not isinstance(info, dict) or not info.get("little_endian", True):
        raise DataError(path, "legacy file written on a big-endian machine", expected="little-endian storages")
    up = _Unpickler(fh, src, None)
    try:
        obj = up.load()
        keys = _PlainUnpickler(fh, src).load()
    except (UnsafeFileError, DataError):
        raise
    except Exception as exc:
        raise DataError(path, f"cannot unpickle: {type(exc).__name__}: {exc}",
                        expected="a Show-Attend-Tell checkpoint (utils.save_checkpoint)") from None
    if not isinstance(keys, list) or set(map(str, keys)) != set(up.storages):
        raise DataError(path, "the storage key list does not match the storages the pickle names",
                        expected="a complete legacy torch file")
    for key in keys:
        arr = up.storages[str(key)]
        head = fh.read(8)
        if len(head) != 8:
            raise DataError(path, f"storage {key} truncated", expected="a complete legacy torch file")
        numel = int.from_bytes(head, "little", signed=True)
        data = fh.read(numel * arr.itemsize)
        if numel != arr.size or len(data) != numel * arr.itemsize:
            raise DataError(path, f"storage {key}: {numel} elements recorded, {arr.size} named by the pickle",
                            expected="a complete legacy torch file")
        arr[:] = np.frombuffer(data, dtype=arr.dtype.newbyteorder("<"))
    return obj


def load_whole_checkpoint(path: str | Path, *, allow_unsafe_pickle: bool = False) -> dict:
    """The checkpoint dict, with modules and optimizers as :class:`Collected` objects (or real ones
    when ``allow_unsafe_pickle``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found", expected="BEST_checkpoint_*.pth.tar (utils.save_checkpoint)")
    if allow_unsafe_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    if not zipfile.is_zipfile(path):
        ck = _load_legacy(path, path.read_bytes())
        return _check_top(path, ck)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise DataError(path, "no data.pkl record in the archive", expected="a torch.save zip archive")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            order = zf.read(prefix + "byteorder").decode().strip()
        except KeyError:
            order = "little"
        if order != "little":
            raise DataError(path, f"byte order {order}", expected="little-endian storages")

        def read_record(name: str) -> bytes:
            try:
                return zf.read(prefix + name)
            except KeyError:
                raise DataError(path, f"storage record {name} missing", expected="a complete torch archive") from None

        up = _Unpickler(io.BytesIO(zf.read(pkl[0])), str(path), read_record)
        try:
            ck = up.load()
        except (UnsafeFileError, DataError):
            raise
        except Exception as exc:
            raise DataError(path, f"cannot unpickle: {type(exc).__name__}: {exc}",
                            expected="a Show-Attend-Tell checkpoint (utils.save_checkpoint)") from None
    return _check_top(path, ck)


def _check_top(path: Path, ck: Any) -> dict:
    if not isinstance(ck, dict) or "encoder" not in ck or "decoder" not in ck:
        raise DataError(path, f"top level is {type(ck).__name__} with keys "
                              f"{sorted(map(str, ck)) if isinstance(ck, dict) else '-'}",
                        expected="a dict with 'encoder' and 'decoder' (the tutorial's save_checkpoint)")
    return ck


def flatten(mod: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, {module path: Collected or nn.Module}) of a collected (or real) module tree."""
    if isinstance(mod, torch.nn.Module):  # allow_unsafe_pickle path: real modules
        sd = mod.state_dict()
        return {prefix + k: v for k, v in sd.items()}, {prefix + n.rstrip("."): m for n, m in mod.named_modules()}
    state: dict[str, torch.Tensor] = {}
    mods: dict[str, Any] = {prefix.rstrip("."): mod}
    st = getattr(mod, "state", {})
    for group in ("_parameters", "_buffers"):
        for k, v in (st.get(group) or {}).items():
            if v is not None and k not in (st.get("_non_persistent_buffers_set") or set()):
                state[prefix + k] = v
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        s, m = flatten(child, f"{prefix}{name}.")
        state.update(s)
        mods.update(m)
    return state, mods


def attr(mod: Any, name: str, default: Any = None) -> Any:
    if isinstance(mod, torch.nn.Module):
        return getattr(mod, name, default)
    return mod.get(name, default)


def class_name(mod: Any) -> str:
    if isinstance(mod, torch.nn.Module):
        return type(mod).__name__
    return mod.qualname.rsplit(".", 1)[-1]
