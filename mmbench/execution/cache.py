"""A content-addressed cache of finished work: embeddings, region encodings, ground-truth scores,
rank counts and generated outputs, one entry per (stage, shard).

The key is the sha256 of everything the entry depends on (:func:`work_key`): the plugin's name,
version, options and checkpoint sha256, the seed and the data it was fitted on, the dataset's
fingerprint and split, the stage, the shard's range, the batch size and mmbench's preprocessing
version. A changed checkpoint, option or dataset file therefore never finds a stale entry.

An entry is two files under ``DIR/<2 hex>/``: ``<key>.npz`` (the arrays, written by numpy without
pickle, read with ``allow_pickle=False``) and ``<key>.json`` (what it is, and the sha256 of the npz).
Both are written atomically, the json last, so a run killed mid-write leaves no entry, only an
orphan ``.npz`` that ``mmbench cache prune`` removes. On read the checksum is verified: a corrupted
or truncated entry is reported, deleted and recomputed, never used.

Values are trees of numpy arrays, torch tensors (restored on the device they came from), lists,
tuples, dicts with string keys and JSON scalars (:func:`encode_tree`). Anything else (a model's own
object) is not cacheable: that stage runs uncached and the record says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmbench import records
from mmbench.errors import MMBenchError

#: bump when mmbench changes how it feeds models or cuts shards: every older entry stops matching
PREPROCESSING_VERSION = 1
ENTRY_SCHEMA = "mmbench.cache/1"


class Uncacheable(TypeError):
    """A value outside the cacheable tree types."""


# --------------------------------------------------------------------------- the tree codec

def encode_tree(obj: Any) -> tuple[Any, list[np.ndarray]]:
    """``obj`` -> (a JSON skeleton, its arrays). Raises :class:`Uncacheable` for other types."""
    arrays: list[np.ndarray] = []

    def enc(x):
        if x is None or isinstance(x, (bool, str)):
            return {"v": x}
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            if isinstance(x, float) and not np.isfinite(x):
                arrays.append(np.asarray(x))
                return {"s": len(arrays) - 1}
            return {"v": x}
        if isinstance(x, np.generic):
            arrays.append(np.asarray(x))
            return {"s": len(arrays) - 1}
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biufc":
                raise Uncacheable(f"numpy array of dtype {x.dtype}")
            arrays.append(np.ascontiguousarray(x).reshape(x.shape))  # keeps 0-d arrays 0-d
            return {"a": len(arrays) - 1}
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            torch = None
        if torch is not None and isinstance(x, torch.Tensor):
            t = x.detach()
            dtype = str(t.dtype).replace("torch.", "")
            cpu = t.cpu().contiguous()
            if t.dtype == torch.bfloat16:
                arr = cpu.view(torch.int16).numpy()
            else:
                arr = cpu.numpy()
            arrays.append(arr)
            return {"t": len(arrays) - 1, "dtype": dtype, "device": str(t.device)}
        if isinstance(x, list):
            return {"l": [enc(v) for v in x]}
        if isinstance(x, tuple):
            return {"tu": [enc(v) for v in x]}
        if isinstance(x, dict):
            if not all(isinstance(k, str) for k in x):
                raise Uncacheable("dict with non-string keys")
            return {"d": {k: enc(v) for k, v in x.items()}}
        raise Uncacheable(type(x).__name__)

    return enc(obj), arrays


def decode_tree(skeleton: Any, arrays: list[np.ndarray]) -> Any:
    def dec(node):
        if "v" in node:
            return node["v"]
        if "s" in node:
            return arrays[node["s"]][()]
        if "a" in node:
            return arrays[node["a"]]
        if "t" in node:
            import torch

            arr = arrays[node["t"]]
            dtype = getattr(torch, node["dtype"])
            t = torch.from_numpy(np.array(arr))
            if dtype == torch.bfloat16:
                t = t.view(torch.bfloat16)
            device = node.get("device", "cpu")
            if device != "cpu":
                try:
                    t = t.to(device)
                except (RuntimeError, AssertionError):  # the device is not here: a miss, not an error
                    raise Uncacheable(f"tensor on unavailable device {device}") from None
            return t
        if "l" in node:
            return [dec(v) for v in node["l"]]
        if "tu" in node:
            return tuple(dec(v) for v in node["tu"])
        if "d" in node:
            return {k: dec(v) for k, v in node["d"].items()}
        raise ValueError(f"unknown node {sorted(node)}")

    return dec(skeleton)


def to_bytes(obj: Any) -> bytes:
    skeleton, arrays = encode_tree(obj)
    buf = io.BytesIO()
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload["__skeleton__"] = np.frombuffer(json.dumps(skeleton).encode(), dtype=np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def from_bytes(data: bytes) -> Any:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        skeleton = json.loads(bytes(z["__skeleton__"]).decode())
        n = sum(1 for k in z.files if k != "__skeleton__")
        arrays = [z[f"a{i}"] for i in range(n)]
    return decode_tree(skeleton, arrays)


# --------------------------------------------------------------------------- keys

def work_key(**parts: Any) -> str:
    """The sha256 of everything an entry depends on (JSON, sorted keys)."""
    parts = {**parts, "mmbench_preprocessing": PREPROCESSING_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- the cache

@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    uncacheable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt}
        if self.uncacheable:
            out["uncacheable"] = sorted(set(self.uncacheable))
        return out


class Cache:
    """Entries under ``root``; see the module docstring."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise MMBenchError(f"--cache {str(self.root)!r} is a file, not a folder")
        self.stats = CacheStats()
        self.warnings: list[str] = []
        self.reading = True  # False: entries are written but never read (a run that must recompute)

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / key[:2]
        return d / f"{key}.npz", d / f"{key}.json"

    def peek(self, key: str) -> tuple[bool, Any]:
        """Like :meth:`get`, without counting a hit or miss (a corrupted entry is still removed)."""
        saved = CacheStats(**{**self.stats.__dict__, "uncacheable": list(self.stats.uncacheable)})
        found = self.get(key)
        corrupt = self.stats.corrupt
        self.stats = saved
        self.stats.corrupt = corrupt
        return found

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, value) on a verified hit; (False, None) on a miss or a corrupted entry (then removed)."""
        npz, meta_path = self._paths(key)
        if not self.reading or not meta_path.is_file():
            self.stats.misses += 1
            return False, None
        try:
            meta = json.loads(meta_path.read_text())
            data = npz.read_bytes()
            if meta.get("schema") != ENTRY_SCHEMA or meta.get("key") != key:
                raise ValueError("entry describes another key or schema")
            if hashlib.sha256(data).hexdigest() != meta.get("sha256") or len(data) != meta.get("bytes"):
                raise ValueError("checksum mismatch")
            value = from_bytes(data)
        except Uncacheable:
            self.stats.misses += 1
            return False, None
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            self.stats.corrupt += 1
            self.stats.misses += 1
            self.warnings.append(f"cache entry {key[:16]} ({meta_path}) is corrupted ({exc}); recomputed")
            for p in (meta_path, npz):
                try:
                    p.unlink()
                except OSError:
                    pass
            return False, None
        self.stats.hits += 1
        return True, value

    def put(self, key: str, value: Any, describe: dict) -> bool:
        """Store ``value``; False (and nothing written) when it is not cacheable."""
        try:
            data = to_bytes(value)
        except Uncacheable as exc:
            self.stats.uncacheable.append(f"{describe.get('stage', '?')}: {exc}")
            return False
        npz, meta_path = self._paths(key)
        records.atomic_write_bytes(npz, data)
        meta = {"schema": ENTRY_SCHEMA, "key": key, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "created": time.time(), **describe}
        records.atomic_write_text(meta_path, json.dumps(meta, sort_keys=True, default=str))
        return True

    # ----------------------------------------------------------------------- ls / prune

    def entries(self) -> list[dict]:
        out = []
        if not self.root.is_dir():
            return out
        for meta_path in sorted(self.root.glob("??/*.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                meta = {"key": meta_path.stem, "broken": True}
            meta["path"] = str(meta_path.with_suffix(".npz"))
            out.append(meta)
        return out

    def orphans(self) -> list[Path]:
        """Data files without their description (a run killed between the two writes) and temp files."""
        if not self.root.is_dir():
            return []
        out = [p for p in self.root.glob("??/*.npz") if not p.with_suffix(".json").exists()]
        out += list(self.root.glob("??/.*.tmp"))
        return out

    def prune(self, *, older_than_s: float | None = None, plugin: str | None = None,
              everything: bool = False) -> tuple[int, int]:
        """Remove matching entries (and always the orphans); returns (entries removed, bytes freed)."""
        now = time.time()
        n = freed = 0
        for meta in self.entries():
            npz = Path(meta["path"])
            if not everything and not meta.get("broken"):
                if older_than_s is None and plugin is None:
                    continue
                if older_than_s is not None and now - float(meta.get("created", now)) < older_than_s:
                    continue
                if plugin is not None and meta.get("plugin") != plugin:
                    continue
            for p in (npz, npz.with_suffix(".json")):
                try:
                    freed += p.stat().st_size
                    p.unlink()
                except OSError:
                    pass
            n += 1
        for p in self.orphans():
            try:
                freed += p.stat().st_size
                p.unlink()
            except OSError:
                pass
        return n, freed

