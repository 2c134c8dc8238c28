"""Run records: the versioned JSON file holding everything needed to trust and reproduce a number.

Records are the only input of reports. They are written atomically (temp file in the
same folder, fsync, rename), so a crash never leaves a half-written record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmbench.errors import DataError

SCHEMA = "mmbench.run/1"


@dataclass
class RunRecord:
    task: str
    plugin: dict[str, Any]  # name, package, version, options, checkpoint_sha256
    dataset: dict[str, Any]  # DatasetMeta.to_dict() (+ n_samples)
    status: str = "ok"  # "ok" or "failed"
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)  # metric -> [low, high]
    details: dict[str, Any] = field(default_factory=dict)
    per_sample: dict[str, list] = field(default_factory=dict)
    #: unit -> the ids of that unit's entries (e.g. {"image": [...], "caption": [...]}): stored once per unit
    sample_ids: dict[str, list[str]] = field(default_factory=dict)
    #: per_sample key -> its unit (the task kind's schema, kept so a report needs no plugin to align)
    per_sample_units: dict[str, str] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)  # paper-parity comparisons
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # batch size, seed, device, ties, ...
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema: str = SCHEMA

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What aligns two runs for comparison: (plugin, dataset, split, protocol)."""
        return (self.plugin.get("name", ""), self.dataset.get("name", ""), self.dataset.get("split", ""),
                self.dataset.get("protocol", ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str | Path | None = None) -> "RunRecord":
        if not isinstance(d, dict):
            raise DataError(path, "a run record must be a JSON object", expected=f"schema {SCHEMA}")
        schema = d.get("schema")
        if schema != SCHEMA:
            raise DataError(path, f"unsupported record schema {schema!r}", field="schema", expected=repr(SCHEMA))
        for req in ("task", "plugin", "dataset"):
            if req not in d:
                raise DataError(path, "missing field", field=req, expected="a run record written by mmbench eval")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def __post_init__(self):
        self._upgrade_sample_ids()

    def _upgrade_sample_ids(self) -> None:
        """Records written before ids were stored per unit keep one id list per per_sample key: group
        them by the task kind's schema (or by equal lists when the kind is not installed)."""
        if self.per_sample_units or not isinstance(self.sample_ids, dict) or not self.sample_ids:
            return
        if not set(self.sample_ids) <= set(self.per_sample or {}):
            return
        schema: dict = {}
        try:
            from mmbench.tasks import get_kind

            schema = dict(get_kind(self.task).per_sample_units)
        except Exception:  # noqa: BLE001 - an uninstalled kind: group identical id lists
            pass
        units: dict[str, list] = {}
        mapping: dict[str, str] = {}
        for key, ids in self.sample_ids.items():
            unit = schema.get(key)
            if unit is None:
                unit = next((u for u, v in units.items() if v == ids), key)
            units.setdefault(unit, ids)
            mapping[key] = unit
        for key in self.per_sample or {}:
            if key not in mapping and key in schema and schema[key] in units:
                mapping[key] = schema[key]
        self.sample_ids, self.per_sample_units = units, mapping

    def ids_for(self, key: str) -> list[str] | None:
        """The sample ids of per_sample ``key``'s entries (None when the record has none of that length)."""
        n = len((self.per_sample or {}).get(key, ()))
        unit = (self.per_sample_units or {}).get(key, key)
        ids = (self.sample_ids or {}).get(unit)
        if ids is not None and len(ids) == n:
            return [str(i) for i in ids]
        return None

    def filename(self) -> str:
        safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s))  # noqa: E731
        return f"{safe(self.plugin.get('name'))}__{safe(self.dataset.get('name'))}__" \
               f"{safe(self.dataset.get('split'))}__{self.run_id}.json"


def environment() -> dict[str, Any]:
    from mmbench import __version__

    env: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                           "mmbench": __version__}
    for mod in ("numpy", "torch", "sklearn", "pycocoevalcap", "transformers"):
        m = sys.modules.get(mod)
        if m is not None:
            env[mod] = getattr(m, "__version__", "?")
    try:
        import torch

        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover
        env["device"] = "cpu"
    return env


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    The file gets the permissions any new file of the user gets (0o666 minus the umask), not
    the private 0o600 of the temporary file ``mkstemp`` makes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            umask = None
            try:  # read from /proc where there is one, so the umask is never changed, even briefly
                with open("/proc/self/status", encoding="ascii") as st:
                    umask = next((int(line.split()[1], 8) for line in st if line.startswith("Umask:")), None)
            except (OSError, ValueError, IndexError):
                pass
            if umask is None:  # elsewhere the classic read-by-setting, restored at once
                umask = os.umask(0o022)
                os.umask(umask)
            mode = 0o666 & ~umask
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            else:  # pragma: no cover - Windows has no fchmod
                os.chmod(tmp, mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save(record: RunRecord, out_dir: str | Path) -> Path:
    """Write ``record`` atomically into ``out_dir``; returns the file path."""
    return atomic_write_text(Path(out_dir) / record.filename(),
                             json.dumps(record.to_dict(), indent=1, sort_keys=False, default=_json_default))


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load(path: str | Path) -> RunRecord:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "record file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc}") from None
    return RunRecord.from_dict(data, path)


def load_many(paths) -> list[RunRecord]:
    """Load record files; folders are searched (recursively) for ``*.json`` records."""
    out: list[RunRecord] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.json") if not f.name.startswith("."))
            if not files:
                raise DataError(p, "folder holds no record files (*.json)")
            out.extend(load(f) for f in files)
        else:
            out.append(load(p))
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A stable short hash of JSON-able parts (file hashes, split, protocol, image list)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
