"""Types shared by every task kind: image items, dataset metadata, results, batching."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mmbench.errors import DataError, PluginError
from mmbench.options import Option, parse_options


@dataclass
class ImageItem:
    """One image as a dataset offers it, in one or more input forms.

    ``path``: an image file (the ``image_file`` form, and ``image`` through ``load()``);
    ``pil``: an in-memory image (the ``image`` form); ``regions``: precomputed region
    features, (num_regions, dim) float32 (the ``regions`` form). ``size`` is (width,
    height) in pixels when known (grounding needs it for normalised boxes).
    ``region_boxes``: the pixel xyxy box of each row of ``regions``, (num_regions, 4); with
    ``regions`` and ``size`` it makes the ``proposals`` form (region proposals a grounding
    model ranks, e.g. ViLBERT's detector boxes), an extra form of the grounding kind.
    """

    id: str
    path: Path | None = None
    pil: Any = None
    regions: np.ndarray | None = None
    size: tuple[int, int] | None = None
    region_boxes: np.ndarray | None = None

    @property
    def forms(self) -> set[str]:
        out = set()
        if self.path is not None:
            out |= {"image_file", "image"}
        if self.pil is not None:
            out.add("image")
        if self.regions is not None:
            out.add("regions")
            if getattr(self, "region_boxes", None) is not None and self.size is not None:
                out.add("proposals")
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
class TaskOption(Option):
    """A typed task option (``--task-option name=value``): an :class:`mmbench.options.Option`."""

    def parse(self, value: Any, *, task: str = "", where: str | None = None) -> Any:
        return super().parse(value, where=where or f"task option {self.name!r} ({task})")


def parse_task_options(options: dict[str, Any], known: tuple[TaskOption, ...], task: str) -> dict[str, Any]:
    """Validate ``--task-option`` values against a task's declared options (typo -> listed choices)."""
    return parse_options(options, known, f"task {task}", "--task-option / -T", noun="task option")


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
    if arr.dtype.kind not in "biuf":  # object, strings, bytes, complex, dates: never read as numbers
        kind = {"O": "Python objects", "U": "strings", "S": "bytes", "c": "complex numbers"}.get(arr.dtype.kind,
                                                                                              str(arr.dtype))
        raise PluginError(f"{plugin or 'plugin'}: {what} is not a real-valued numeric array (got {kind}, dtype "
                          f"{arr.dtype})")
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


# --------------------------------------------------------------------------- the task-kind contract

#: how a metric's numbers read: ``percent`` (0..100, R@K, accuracy), ``fraction`` (0..1, BLEU, METEOR),
#: ``x10`` (0..10, CIDEr-D as pycocoevalcap reports it), ``rank`` (1-based ranks: medr, meanr),
#: ``count`` and ``score`` (anything else)
UNITS = ("percent", "fraction", "x10", "rank", "count", "score")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: its direction and unit. ``name`` may be a glob (``acc@*``)."""

    name: str
    higher_is_better: bool = True
    unit: str = "percent"
    help: str = ""

    def __post_init__(self):
        if self.unit not in UNITS:
            raise PluginError(f"metric {self.name!r}: unit {self.unit!r} is not one of {', '.join(UNITS)}")

    def matches(self, metric: str) -> bool:
        import fnmatch

        return fnmatch.fnmatchcase(metric, self.name) if any(c in self.name for c in "*?[") else metric == self.name

    def to_dict(self) -> dict:
        return {"higher_is_better": self.higher_is_better, "unit": self.unit}

    @classmethod
    def from_dict(cls, name: str, d: Any) -> "MetricInfo":
        d = d if isinstance(d, dict) else {}
        unit = d.get("unit") if d.get("unit") in UNITS else "score"
        return cls(name, higher_is_better=bool(d.get("higher_is_better", True)), unit=unit)


class TaskKind:
    """Everything mmbench knows about one task kind, in one object (one per ``tasks/<kind>.py``).

    Every other module (runner, bootstrap, leaderboard, compare, gates, HTML, the conformance
    kit, the scaffold, ``mmbench score``) asks the kind instead of keeping a table per task.
    A third party adds a kind by returning an instance from the ``mmbench_task_kinds`` hook.

    Subclasses set the class attributes and implement :meth:`evaluate`, :meth:`n_samples`
    and :meth:`unit_stats` / :meth:`compute` (the metrics' one definition, usually delegated
    to ``mmbench.metrics.<kind>``); the rest has working defaults.
    """

    #: the kind's name, as in ``ModelSpec.task``
    name: str = ""
    description: str = ""
    #: the data object a dataset adapter returns for this kind
    data_type: type = object
    #: what a model receives per sample (a :class:`ModelInput` subclass), when it is not plain items
    input_type: type | None = None
    #: the model protocol (a ``typing.Protocol``) and its one-line summary (docs, scaffold)
    protocol: type | None = None
    protocol_summary: str = ""
    #: typed task options (``--task-option``)
    options: tuple[TaskOption, ...] = ()
    #: every metric the kind reports, with direction and unit; headline columns; the main (sort) metric
    metrics: tuple[MetricInfo, ...] = ()
    headline: tuple[str, ...] = ()
    main: str = ""
    #: input forms only this kind may accept (beyond image_file / image / regions)
    extra_forms: tuple[str, ...] = ()
    #: per-sample key -> the unit whose ids name its entries (stored once per unit in a record)
    per_sample_units: dict[str, str] = {}
    #: the resampling unit of the bootstrap and of paired tests
    unit: str = "sample"
    #: ``details`` fields that change what a metric means: runs that differ in one are not compared
    conventions: tuple[str, ...] = ()
    #: batch size of the evaluate loop when neither the user nor the model gives one
    default_batch_size: int = 32
    #: the scaffold (``mmbench new-plugin``): what the generated model does, and its template file
    scaffold_description: str = ""
    scaffold_template: str = ""

    #: the module-level evaluate loop the default :meth:`evaluate` calls (``staticmethod(evaluate)``)
    evaluate_loop: Any = None
    #: the module with the metrics' one definition (``unit_stats``, ``compute``) the defaults delegate to
    metrics_module: Any = None

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, model: Any, data: Any, *, batch_size: int | None = None, show_progress: bool = True,
                 name: str = "", **options: Any) -> TaskResult:
        if self.evaluate_loop is None:
            raise NotImplementedError(f"task kind {self.name!r} defines no evaluate loop")
        return self.evaluate_loop(model, data, batch_size=batch_size or self.default_batch_size,
                                  show_progress=show_progress, name=name, **options)

    # ---------------------------------------------------------------- sharded evaluation
    #: the model method the evaluate loop calls once per batch of :meth:`model_inputs` (None: the protocol's
    #: only method). A sharded run (``mmbench.execution``) calls it on each shard's batches in the workers,
    #: then replays the outputs through the very same evaluate loop, so the metrics are computed once.
    model_method: str | None = None

    def shard_method(self) -> str | None:
        """The method to shard by sample, or None when this kind cannot be sharded that way."""
        if self.model_method:
            return self.model_method
        names = [n for n in getattr(self.protocol, "__dict__", {}) if not n.startswith("_")
                 and callable(getattr(self.protocol, n, None))]
        return names[0] if len(names) == 1 else None

    def batch_bounds(self, items: Sequence, batch_size: int) -> list[tuple[int, int]]:
        """The evaluate loop's batches of ``items`` as [lo, hi) ranges: ``batch_size`` items each (the last may
        be shorter). A kind whose loop batches otherwise overrides it; sharded runs cut shards on these bounds."""
        size = max(1, int(batch_size))
        return [(lo, min(len(items), lo + size)) for lo in range(0, len(items), size)]

    def model_inputs(self, data: Any) -> list:
        """What the evaluate loop feeds :attr:`model_method`, in order and batched by :meth:`batch_bounds`."""
        if hasattr(data, "samples"):
            return [s.input_view() if hasattr(s, "input_view") else s for s in data.samples]
        return list(data.images)

    def evaluate_sharded(self, model: Any, data: Any, plan: Any, **kwargs: Any) -> TaskResult | None:
        """Evaluate through an executor (``plan``: :class:`mmbench.execution.sharded.Plan`); the result
        on the main process, None on the others. Kinds with their own sharding (retrieval) override it."""
        from mmbench.execution.sharded import evaluate_by_sample

        return evaluate_by_sample(self, model, data, plan, **kwargs)

    def n_samples(self, data: Any) -> int:
        for attr in ("samples", "images"):
            if hasattr(data, attr):
                return len(getattr(data, attr))
        return 0

    def parse_options(self, given: dict[str, Any]) -> dict[str, Any]:
        return parse_task_options(given, self.options, self.name)

    # ---------------------------------------------------------------- metrics: one definition
    def unit_stats(self, per_sample: dict) -> tuple[int, Any]:
        """(number of resampling units, the per-unit sufficient statistics) from a record's per_sample."""
        if self.metrics_module is None:
            raise NotImplementedError(f"task kind {self.name!r} defines no unit_stats")
        return self.metrics_module.unit_stats(per_sample)

    def compute(self, stats: Any, weights: Any = None) -> dict[str, float]:
        """Every recomputable corpus metric from the statistics, each unit counted ``weights[i]`` times
        (None: once). The evaluate loop's values are ``compute(stats)``; the bootstrap resamples weights."""
        if self.metrics_module is None:
            raise NotImplementedError(f"task kind {self.name!r} defines no compute")
        return self.metrics_module.compute(stats, weights)

    def canonical_metric(self, metric: str) -> str:
        """The key ``metric`` has in :meth:`compute`'s output (e.g. grounding's ``acc@0.5`` is ``acc``)."""
        return metric

    def metric_info(self, metric: str, declared: dict | None = None) -> MetricInfo:
        """Direction and unit of ``metric``: the kind's declaration, else one a record carries
        (``declared``: name -> {higher_is_better, unit}, e.g. a model's extra metrics)."""
        for m in self.metrics:
            if m.matches(metric):
                return m
        if declared and metric in declared:
            return MetricInfo.from_dict(metric, declared[metric])
        return MetricInfo(metric, unit="score")

    def columns(self, present: list[str], extra: list[str] = ()) -> list[str]:
        """Leaderboard columns: the headline metrics present (globs expanded), then a model's extras."""
        cols: list[str] = []
        for h in self.headline:
            info = MetricInfo(h)
            cols += [m for m in present if info.matches(m) and m not in cols]
        cols += [m for m in extra if m in present and m not in cols]
        return cols or list(dict.fromkeys(present))

    def order_metrics(self, names) -> list[str]:
        head = [m for m in self.columns(list(names)) if m in names] if self.headline else []
        return head + sorted(n for n in names if n not in head)

    # ---------------------------------------------------------------- paired comparisons
    def unit_key(self, per_sample: dict) -> str | None:
        """The per-sample key whose entries are the resampling units (first one present)."""
        for k, u in self.per_sample_units.items():
            if u == self.unit and k in per_sample:
                return k
        return next(iter(per_sample), None)

    def align(self, ps_a: dict, ids_a: dict, ps_b: dict, ids_b: dict) -> tuple[dict, dict, int, int, int]:
        """Both runs' per-sample data restricted to their shared units, in the first run's order.

        ``ids_*``: unit -> sample ids. Returns (per_sample_a, per_sample_b, n_a, n_b, n_shared).
        The default pairs every key of the resampling unit by id and keeps run-level constants;
        kinds with a second unit (retrieval's captions) override it.
        """
        from mmbench.errors import DataError, MismatchError

        ua, ub = self.unit_key(ps_a), self.unit_key(ps_b)
        if ua is None or ub is None or ua != ub:
            return {}, {}, 0, 0, 0
        na, nb = len(ps_a[ua]), len(ps_b[ub])
        unit = self.per_sample_units.get(ua, ua)
        a, b = ids_a.get(unit), ids_b.get(unit)
        if a is None or b is None or len(a) != na or len(b) != nb:
            if na != nb:
                raise MismatchError(f"cannot pair samples: baseline has {na} and new {nb} units and no sample ids")
            a = b = [str(i) for i in range(na)]
        a, b = [str(x) for x in a], [str(x) for x in b]
        if len(set(a)) != na or len(set(b)) != nb:
            raise DataError(None, "duplicate sample ids in a run record", field=f"sample_ids.{unit}")
        pos_b = {s: i for i, s in enumerate(b)}
        ia = [i for i, s in enumerate(a) if s in pos_b]
        ib = [pos_b[a[i]] for i in ia]
        out_a: dict = {}
        out_b: dict = {}
        for k in set(ps_a) & set(ps_b):
            if self.per_sample_units.get(k, unit) != unit:
                continue
            va, vb = ps_a[k], ps_b[k]
            if len(va) == na and len(vb) == nb:
                out_a[k] = [va[i] for i in ia]
                out_b[k] = [vb[i] for i in ib]
            elif va == vb:  # run-level constants (e.g. n_classes)
                out_a[k], out_b[k] = va, vb
        return out_a, out_b, na, nb, len(ia)

    # ---------------------------------------------------------------- conformance kit
    def conformance(self, kit: Any, model: Any, data: Any) -> None:
        """The kind's checks of a model (``methods``, ``outputs``, ``deterministic``, ...), run through
        ``kit`` (:class:`mmbench.tasks.checks.Kit`). The default checks only that evaluate runs."""
        kit.check_evaluate(self, model, data)

    def probe(self, a: Any, b: Any, data: Any, n: int) -> tuple[list[str], list, list]:
        """(names, outputs of model a, outputs of model b) of the kind's model calls on ``n`` items:
        the ``seeded`` check compares two models built with one seed through this."""
        return [], [], []

    def limit(self, data: Any, n: int) -> Any:
        """The first ``n`` units of ``data`` (the kit checks on a few)."""
        return data

    def __repr__(self) -> str:
        return f"<TaskKind {self.name}>"
