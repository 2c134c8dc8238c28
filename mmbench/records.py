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
    #: how the run was executed (executor, world size, shards, cache hits): never part of a metric or fingerprint
    execution: dict[str, Any] = field(default_factory=dict)
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
        """A record from its JSON object; every field a report reads is type-checked first
        (:func:`validate`): a hand-edited or truncated record is a DataError naming the file and field."""
        validate(d, path)
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

        if torch.cuda.is_available():
            # the name needs a CUDA context: only ask where the run made one, so the parent of isolated
            # runs never initialises CUDA (a forked child could not use it then)
            env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_initialized() else "cuda (unused)"
        else:
            env["device"] = "cpu"
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


def unserialisable(obj: Any, where: str = "details") -> str:
    """'' when ``obj`` can be written to a record, else the first offending path and type."""
    import numpy as np

    if obj is None or isinstance(obj, (str, bool, int, float, np.integer, np.floating, Path)):
        return ""
    if isinstance(obj, np.ndarray):
        return "" if obj.dtype.kind in "biuf" else f"{where} is a numpy array of dtype {obj.dtype}"
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return f"{where} has a key of type {type(k).__name__}"
            bad = unserialisable(v, f"{where}.{k}")
            if bad:
                return bad
        return ""
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = unserialisable(v, f"{where}[{i}]")
            if bad:
                return bad
        return ""
    return f"{where} is a {type(obj).__name__}"


def _finite(obj: Any, where: str, found: list[str]) -> Any:
    """``obj`` with every NaN / infinite float replaced by None (JSON has no NaN); paths go to ``found``."""
    import math

    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        found.append(where)
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", found) for i, v in enumerate(obj)]
    return obj


def to_json(record: RunRecord) -> str:
    """The record as strict JSON: NaN / infinity (which JSON cannot hold; ``json`` would write ``NaN``)
    become null, and the record says where (``details.non_finite``)."""
    found: list[str] = []
    d = json.loads(json.dumps(record.to_dict(), default=_json_default))  # numpy scalars -> plain
    d = _finite(d, "", found)
    if found:
        d.setdefault("details", {})["non_finite"] = found[:50] + ([f"... {len(found) - 50} more"] if len(found) > 50
                                                                  else [])
    return json.dumps(d, indent=1, sort_keys=False, allow_nan=False)


def check_writable(out_dir: str | Path) -> Path:
    """Refuse, before any run starts, an ``--out`` that is a file or a folder that cannot be written.

    Nothing is created: a missing folder is checked through its nearest existing parent.
    Temporary files of record writes killed half-way (older than an hour) are removed.
    """
    import time

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(out, "--out names a file, not a folder", expected="a folder for the run records")
    probe_dir = out
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise DataError(out, f"{probe_dir} is a file, so the folder cannot be created",
                        expected="a folder for the run records (--out)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mmbench-write-check.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(out, f"cannot write run records there: {exc.strerror or exc}",
                        expected="a writable folder (--out)") from None
    if out.is_dir():
        for stale in out.glob(".*.json.*.tmp"):
            try:
                if stale.stat().st_mtime < time.time() - 3600:
                    stale.unlink()
            except OSError:
                pass
    return out


def save(record: RunRecord, out_dir: str | Path) -> Path:
    """Write ``record`` atomically into ``out_dir``; returns the file path.

    When the folder cannot be written (disk full, permissions changed during the run), the finished
    record is not lost: it goes to a fallback folder in the system temp directory, and the path says so.
    """
    text = to_json(record)
    try:
        return atomic_write_text(Path(out_dir) / record.filename(), text)
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / "mmbench-unsaved-records"
        path = atomic_write_text(fallback / record.filename(), text)
        import warnings

        warnings.warn(f"could not write the run record to {out_dir} ({exc.strerror or exc}); it was saved to "
                      f"{path} instead", RuntimeWarning, stacklevel=2)
        return path


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


#: how deep a record's JSON may nest (mmbench writes at most a handful of levels)
MAX_DEPTH = 64


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _float_ok(v) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _walk_limits(d: Any, path) -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers no float can hold, anywhere in the record
    (iteratively: a deep record must not exhaust the stack of whoever reads it)."""
    stack: list[tuple[Any, str, int]] = [(d, "", 0)]
    while stack:
        obj, where, depth = stack.pop()
        if isinstance(obj, dict):
            if depth >= MAX_DEPTH:
                raise DataError(path, f"nested deeper than {MAX_DEPTH} levels", field=where or None,
                                expected="a run record written by mmbench eval")
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in obj.items())
        elif isinstance(obj, list):
            if depth >= MAX_DEPTH:
                raise DataError(path, f"nested deeper than {MAX_DEPTH} levels", field=where or None,
                                expected="a run record written by mmbench eval")
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj) if isinstance(v, (dict, list, int)))
        elif isinstance(obj, int) and not isinstance(obj, bool) and not _float_ok(obj):
            raise DataError(path, f"an integer of {len(str(abs(obj)))} digits, beyond any float", field=where or None,
                            expected="a number a float can hold")


def validate(d: Any, path: str | Path | None = None) -> None:
    """Check the types of every field reports read; raise DataError naming the file and field.

    Values are not judged here (a metric may be null or even text: reports show it as missing and
    gates fail it), only the shapes code relies on: objects where objects are read, lists of two
    numbers for a confidence interval, strings for names, and so on.
    """
    def bad(field_name: str, expected: str, got: Any):
        raise DataError(path, f"wrong type: got {_type_name(got)}", field=field_name, expected=expected)

    if not isinstance(d, dict):
        raise DataError(path, f"a run record must be a JSON object, got {_type_name(d)}", expected=f"schema {SCHEMA}")
    schema = d.get("schema")
    if schema != SCHEMA:
        raise DataError(path, f"unsupported record schema {schema!r}"[:300], field="schema", expected=repr(SCHEMA))
    for req in ("task", "plugin", "dataset"):
        if req not in d:
            raise DataError(path, "missing field", field=req, expected="a run record written by mmbench eval")
    _walk_limits(d, path)
    for name in ("task", "status", "run_id", "created"):
        if name in d and not isinstance(d[name], str):
            bad(name, "a string", d[name])
    if d.get("status", "ok") not in ("ok", "failed"):
        raise DataError(path, f"unknown status {str(d['status'])[:80]!r}", field="status", expected="'ok' or 'failed'")
    if "error" in d and d["error"] is not None and not isinstance(d["error"], str):
        bad("error", "a string", d["error"])
    objects = ("plugin", "dataset", "metrics", "ci", "details", "per_sample", "sample_ids", "per_sample_units",
               "timings", "environment", "config")
    for name in objects:
        if name in d and not isinstance(d[name], dict):
            bad(name, "a JSON object", d[name])
    plugin, dataset = d["plugin"], d["dataset"]
    for k in ("name", "version", "package"):
        if plugin.get(k) is not None and not isinstance(plugin[k], str):
            bad(f"plugin.{k}", "a string", plugin[k])
    for k in ("name", "split", "protocol", "fingerprint", "data_fingerprint", "task"):
        if dataset.get(k) is not None and not isinstance(dataset[k], str):
            bad(f"dataset.{k}", "a string", dataset[k])
    if dataset.get("n_samples") is not None and not _is_num(dataset["n_samples"]):
        bad("dataset.n_samples", "a number", dataset["n_samples"])
    for k, v in (d.get("metrics") or {}).items():
        if isinstance(v, (dict, list)):
            bad(f"metrics.{k}", "a number (or null)", v)
    for k, v in (d.get("ci") or {}).items():
        if v is None:
            continue
        if not isinstance(v, list) or len(v) != 2 or not all(x is None or _is_num(x) for x in v):
            raise DataError(path, f"malformed confidence interval: {json.dumps(v, default=str)[:80]}",
                            field=f"ci.{k}", expected="[low, high], two numbers")
    for k, v in (d.get("per_sample") or {}).items():
        if not isinstance(v, list):
            bad(f"per_sample.{k}", "a list (one value per sample)", v)
    for k, v in (d.get("sample_ids") or {}).items():
        if not isinstance(v, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v):
            bad(f"sample_ids.{k}", "a list of sample ids (strings)", v if not isinstance(v, list) else
                next(x for x in v if not isinstance(x, (str, int)) or isinstance(x, bool)))
    for k, v in (d.get("per_sample_units") or {}).items():
        if not isinstance(v, str):
            bad(f"per_sample_units.{k}", "a unit name (string)", v)
    details = d.get("details") or {}
    extra = details.get("extra_metrics")
    if extra is not None and (not isinstance(extra, list) or not all(isinstance(x, str) for x in extra)):
        bad("details.extra_metrics", "a list of metric names", extra)
    info = details.get("extra_metric_info")
    if info is not None and (not isinstance(info, dict) or not all(isinstance(x, dict) for x in info.values())):
        bad("details.extra_metric_info", "an object of metric name -> {higher_is_better, unit}", info)
    cfg = d.get("config") or {}
    for k in ("dataset_options", "task_options"):
        if cfg.get(k) is not None and not isinstance(cfg[k], dict):
            bad(f"config.{k}", "a JSON object", cfg[k])
    if plugin.get("options") is not None and not isinstance(plugin["options"], dict):
        bad("plugin.options", "a JSON object", plugin["options"])
    pub = d.get("published")
    if pub is not None:
        if not isinstance(pub, list):
            bad("published", "a list of paper-parity comparisons", pub)
        for i, p in enumerate(pub):
            if not isinstance(p, dict):
                bad(f"published[{i}]", "a JSON object", p)
            if p.get("metric") is not None and not isinstance(p["metric"], str):
                bad(f"published[{i}].metric", "a metric name", p["metric"])
            for k in ("published", "measured", "delta", "tolerance"):
                if p.get(k) is not None and not _is_num(p[k]):
                    bad(f"published[{i}].{k}", "a number", p[k])


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def load(path: str | Path) -> RunRecord:
    """Read one record file; anything unreadable (missing, not UTF-8, not JSON, truncated, absurd
    numbers, nested too deep, wrong field types) is a DataError naming the file (and the field)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "record file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not a record file") from None
    except OSError as exc:
        raise DataError(path, f"cannot read the record file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                        expected="a JSON run record") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise DataError(path, f"not valid JSON{hint}: {exc}") from None
    except RecursionError:
        raise DataError(path, "not a usable JSON record: nested too deeply", expected="a run record") from None
    except ValueError as exc:  # e.g. an integer beyond Python's int-from-string digit limit
        raise DataError(path, f"not a usable JSON record: {str(exc)[:200]}", expected="a run record") from None
    return RunRecord.from_dict(data, path)


def load_many(paths, *, with_paths: bool = False, what: str = "") -> list:
    """Load record files; folders are searched (recursively) for ``*.json`` records.

    ``paths``: one path or several. ``with_paths=True`` returns ``(path, record)`` pairs, the path
    as a string, instead of records. ``what`` labels the errors about the paths themselves (e.g.
    ``"baseline: folder holds no record files (*.json)"``); with it a missing path is reported as
    "no such record file or folder", without it as :func:`load` reports it.
    """
    pre = f"{what}: " if what else ""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            try:
                files = sorted(f for f in p.rglob("*.json") if not f.name.startswith(".") and not f.is_dir())
            except OSError as exc:
                raise DataError(p, f"{pre}cannot list the folder: {exc.strerror or exc}") from None
            if not files:
                raise DataError(p, f"{pre}folder holds no record files (*.json)")
        elif what and not p.exists():
            raise DataError(p, f"{pre}no such record file or folder")
        else:
            files = [p]
        for f in files:
            rec = load(f)
            out.append((str(f), rec) if with_paths else rec)
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
