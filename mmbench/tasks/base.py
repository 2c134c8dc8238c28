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
