"""Types shared by every task kind: image items, dataset metadata, results, batching."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mmbench.errors import DataError, PluginError


@dataclass
class ImageItem:
    """One image as a dataset offers it, in one or more input forms.

    ``path``: an image file (the ``image_file`` form, and ``image`` through ``load()``);
    ``pil``: an in-memory image (the ``image`` form); ``regions``: precomputed region
    features, (num_regions, dim) float32 (the ``regions`` form). ``size`` is (width,
    height) in pixels when known (grounding needs it for normalised boxes).
    """

    id: str
    path: Path | None = None
    pil: Any = None
    regions: np.ndarray | None = None
    size: tuple[int, int] | None = None

    @property
    def forms(self) -> set[str]:
        out = set()
        if self.path is not None:
            out |= {"image_file", "image"}
        if self.pil is not None:
            out.add("image")
        if self.regions is not None:
            out.add("regions")
        return out

    def load(self):
        """The image as an RGB PIL image (decoded from ``path`` when needed)."""
        if self.pil is not None:
            return self.pil
        if self.path is None:
            raise DataError(None, f"image {self.id!r} has no pixels (only {sorted(self.forms)})",
                            expected="an image file or an in-memory image")
        from PIL import Image

        try:
            with Image.open(self.path) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise DataError(self.path, "image file not found") from None
        except Exception as exc:
            raise DataError(self.path, f"cannot decode image: {exc}") from None


class TargetAccessError(PluginError, AttributeError):
    """A model tried to read a target (ground truth) from an input it was given."""


class ModelInput:
    """Base of what a model receives for one sample: inputs only, never targets.

    A task's data keeps the targets (boxes, labels) on its samples for the scorer; the
    evaluate loop hands the model ``input_view()`` objects built from these classes, which
    have no target fields at all. Reading one (``sample.boxes``, ``sample.label``) raises
    :class:`TargetAccessError` naming the field, so a plugin that peeks fails loudly instead
    of scoring 100.
    """

    __slots__ = ()
    TARGET_FIELDS: tuple[str, ...] = ()

    def __getattr__(self, name: str):
        if name in type(self).TARGET_FIELDS:
            raise TargetAccessError(
                f"a model read the target field {name!r} of a {type(self).__name__}: models see inputs only "
                f"({', '.join(type(self).__slots__)}), never the ground truth of the split they are scored on")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={getattr(self, k)!r}" for k in type(self).__slots__)
        return f"{type(self).__name__}({vals})"


@dataclass
class DatasetMeta:
    """What a run record needs to know about the data it was computed on."""

    name: str
    split: str
    task: str
    protocol: str = ""
    fingerprint: str = ""
    data_root: str | None = None
    files: list[str] = field(default_factory=list)
    forms: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)  # warnings: size differences, dropped items

    def to_dict(self) -> dict:
        return {
            "name": self.name, "split": self.split, "task": self.task, "protocol": self.protocol,
            "fingerprint": self.fingerprint, "data_root": self.data_root, "files": list(self.files),
            "forms": list(self.forms), "notes": list(self.notes),
        }


@dataclass
class TaskResult:
    """What an evaluate loop returns.

    ``metrics``: flat name -> value (e.g. ``"i2t.R@1"``, ``"CIDEr"``, ``"accuracy"``).
    ``per_sample``: name -> one value per evaluation unit (e.g. per-query ranks, per-image
    CIDEr, per-sample hit), kept for bootstrap CIs and paired comparisons.
    ``details``: anything else worth keeping (confusion matrix, tie counts, protocol facts).
    """

    metrics: dict[str, float]
    per_sample: dict[str, list] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sample_ids: dict[str, list[str]] = field(default_factory=dict)  # per_sample key -> ids
    extra: dict[str, Any] = field(default_factory=dict)  # not serialised (e.g. raw sims)


@dataclass(frozen=True)
class TaskOption:
    """A typed task option (``--task-option name=value``) with its default, help and valid range."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple = ()
    low: float | None = None  # exclusive lower bound
    high: float | None = None  # inclusive upper bound

    def parse(self, value: Any, *, task: str) -> Any:
        from mmbench.errors import UsageError

        where = f"task option {self.name!r} ({task})"
        if self.type is str:
            v = str(value)
        else:
            try:
                v = self.type(value)
            except (TypeError, ValueError):
                raise UsageError(f"{where}: {value!r} is not a {self.type.__name__}; {self.help}") from None
            if isinstance(v, float) and v != v:
                raise UsageError(f"{where}: NaN is not a valid value; {self.help}")
        if self.choices and v not in self.choices:
            raise UsageError(f"{where}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.low is not None and not v > self.low:
            raise UsageError(f"{where}: {value!r} must be > {self.low:g}; {self.help}")
        if self.high is not None and not v <= self.high:
            raise UsageError(f"{where}: {value!r} must be <= {self.high:g}; {self.help}")
        return v


def parse_task_options(options: dict[str, Any], known: tuple[TaskOption, ...], task: str) -> dict[str, Any]:
    """Validate ``--task-option`` values against a task's declared options (typo -> listed choices)."""
    from mmbench.errors import UsageError

    by_name = {o.name: o for o in known}
    out = {}
    for k, v in options.items():
        if k not in by_name:
            import difflib

            close = difflib.get_close_matches(k, list(by_name), n=1)
            listing = "; ".join(f"{o.name} (default {o.default!r}): {o.help}" for o in known) or "(none)"
            raise UsageError(f"unknown task option {k!r} for task {task}."
                             + (f" Did you mean {close[0]!r}?" if close else "") + f" Task options: {listing}")
        out[k] = by_name[k].parse(v, task=task)
    return out


def batched(seq: Sequence, size: int) -> Iterator[Sequence]:
    size = max(1, int(size))
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


@contextmanager
def timed(timings: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """A rich progress bar on stderr; yields ``advance(n=1)``. Hidden when disabled."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                  disable=not enabled or not console.is_terminal) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def as_numpy(x: Any, *, what: str, plugin: str = "") -> np.ndarray:
    """Convert a plugin output (numpy, torch, list) to a numpy array or raise PluginError."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise PluginError(f"{plugin or 'plugin'}: {what} is not array-like ({type(x).__name__}): {exc}") from None
    if arr.dtype == object:
        raise PluginError(f"{plugin or 'plugin'}: {what} is not a numeric array (got dtype object)")
    return arr


def check_shape(arr: np.ndarray, shape: tuple, *, what: str, plugin: str = "") -> np.ndarray:
    """Check ``arr`` against ``shape`` (None = any) and finiteness, or raise PluginError."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise PluginError(f"{plugin or 'plugin'}: {what} has shape {tuple(arr.shape)}, expected {want}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise PluginError(f"{plugin or 'plugin'}: {what} contains {n} NaN/inf value(s)")
    return arr
