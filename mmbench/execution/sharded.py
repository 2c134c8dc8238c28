"""Sharded evaluation: the same record on 1 process, N processes and N machines.

Shards are cut from the data alone (never from the number of workers), always on the evaluate
loop's batch boundaries, so every model call a sharded run makes is one the single-process run
makes too, with the same batch. Then:

- **By sample** (captioning, grounding, classification, and any kind whose protocol has one method):
  each shard's batches go through the model's method in the workers; the outputs are gathered and
  *replayed* through the kind's own evaluate loop on the main process (:class:`Replay`), so output
  checks, metrics (CIDEr's corpus-level document frequencies included) and the result are computed
  once, exactly as a single process computes them.
- **Retrieval** (``mmbench.execution.retrieval``): encodings are sharded; ranks are counted per
  block of the similarity matrix in the workers and only the integer counts are summed.

Every shard's value goes through the cache (``--cache DIR``) when it is cacheable, so a run killed
at any moment and started again with the same command redoes only unfinished shards.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from mmbench.errors import PluginError
from mmbench.execution.cache import Cache, work_key
from mmbench.execution.executors import Executor, Stage

#: shards aimed at per stage when --shard-size is not given (independent of the number of workers)
TARGET_SHARDS = 16


@dataclass
class Plan:
    """How one run is executed: the executor, the cache and the facts every cache key holds."""

    executor: Executor
    cache: Cache | None = None
    key_base: dict = field(default_factory=dict)
    shard_size: int | None = None  # items per shard (rounded up to whole batches); None: TARGET_SHARDS shards
    name: str = ""
    timings: dict = field(default_factory=dict)
    _verified: bool = False

    def stage(self, name: str, fn, units: list[dict], context: Any, cacheable: bool = True) -> Stage:
        base = dict(self.key_base, stage=name)
        key = (lambda unit: work_key(**base, unit=unit)) if cacheable and self.cache is not None else None
        describe = {k: self.key_base.get(k) for k in ("plugin", "plugin_version", "dataset", "split")}
        return Stage(name, fn, units, context, key, describe)

    def run(self, stage: Stage) -> list:
        t0 = time.perf_counter()
        if self.cache is not None and not self._verified and stage.units and stage.cache_key is not None:
            self._verified = True
            self._verify(stage)
        out = self.executor.run(stage)
        self.timings[f"shards.{stage.name}"] = time.perf_counter() - t0
        return out

    def _verify(self, stage: Stage) -> None:
        """Before any cached shard is used, compute the run's first shard afresh and compare it with its entry:
        a model that changed without its key changing (a refit that came out differently, plugin code edited
        without a version bump) then never mixes old shards with new ones. On a mismatch the cache is not read
        for this run (its entries are overwritten) and the record says so."""
        found, cached = self.cache.peek(stage.cache_key(stage.units[0]))
        if not found:
            return
        fresh = stage.fn(self.executor.model, stage.context, stage.units[0])
        if not trees_equal(fresh, cached):
            self.cache.reading = False
            self.cache.warnings.append(f"the cached {stage.name} shard {stage.units[0]} differs from the model's "
                                       f"output now: no cached shard was used in this run (entries rewritten)")

    def record(self) -> dict:
        """The record's ``execution`` block: how the run was executed (never part of a metric or fingerprint)."""
        out = {**self.executor.describe(), "shards": dict(self.executor.shards)}
        if self.shard_size:
            out["shard_size"] = self.shard_size
        if self.cache is not None:
            out["cache"] = {"dir": str(self.cache.root), **self.cache.stats.to_dict()}
            if self.cache.warnings:
                out["cache"]["warnings"] = list(self.cache.warnings)
        return out


def batch_ranges(n: int, batch_size: int, shard_size: int | None = None, target: int = TARGET_SHARDS,
                 bounds: list[tuple[int, int]] | None = None) -> list[dict]:
    """Shards [lo, hi) of ``n`` items in whole batches: ``shard_size`` items (rounded up to whole batches) or
    about ``target`` shards. The batches are ``bounds`` ([lo, hi) ranges, the kind's ``batch_bounds``) or, when
    None, ``batch_size`` items each."""
    batch_size = max(1, int(batch_size))
    if bounds is None:
        bounds = [(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]
    if shard_size:
        per = max(1, math.ceil(int(shard_size) / batch_size))
    else:
        per = max(1, math.ceil(len(bounds) / target))
    return [{"lo": bounds[i][0], "hi": bounds[min(len(bounds), i + per) - 1][1]} for i in range(0, len(bounds), per)]


def trees_equal(a: Any, b: Any) -> bool:
    """Exact equality of two cacheable trees (arrays and tensors bit for bit, NaN equal to NaN)."""
    import numpy as np

    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.dtype == torch.bfloat16:
            a, b = a.view(torch.int16), b.view(torch.int16)
        return bool(np.array_equal(a.numpy(), b.numpy(), equal_nan=a.dtype.is_floating_point))
    if isinstance(a, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(trees_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(trees_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- by sample

def _outputs_unit(model: Any, ctx: dict, unit: dict) -> list:
    """One shard's outputs: the model's method on each of its batches (the kind's batch bounds inside the
    shard), as the evaluate loop calls it."""
    fn, items = getattr(model, ctx["method"]), ctx["items"]
    return [fn(list(items[lo:hi])) for lo, hi in ctx["bounds"] if unit["lo"] <= lo and hi <= unit["hi"]]


class Replay:
    """The model as the evaluate loop sees it in a sharded run: ``method`` returns the outputs the
    workers computed, batch by batch, in order; every other attribute is the real model's."""

    def __init__(self, model: Any, method: str, batches: list, items: list):
        self._model, self._method, self._batches, self._items = model, method, batches, items
        self._next = 0
        self._pos = 0

    def __getattr__(self, name: str):
        if name == self.__dict__.get("_method"):
            return self._replay
        return getattr(self._model, name)

    def _replay(self, inputs):
        if self._next >= len(self._batches):
            raise PluginError(f"sharded run: the evaluate loop asked for more batches than the workers computed "
                              f"({len(self._batches)})")
        out = self._batches[self._next]
        expected = self._items[self._pos:self._pos + len(inputs)]
        if len(inputs) != len(expected) or any(a is not b and getattr(a, "id", a) != getattr(b, "id", b)
                                               for a, b in zip(inputs, expected)):
            raise PluginError("sharded run: the evaluate loop's batches differ from the shards' batches")
        self._next += 1
        self._pos += len(inputs)
        return out


def evaluate_by_sample(kind, model: Any, data: Any, plan: Plan, *, batch_size: int, show_progress: bool = True,
                       name: str = "", **options: Any):
    method = kind.shard_method()
    if method is None:
        raise PluginError(f"task kind {kind.name!r} cannot be sharded by sample (its protocol has no single model "
                          f"method; set TaskKind.model_method or override evaluate_sharded)")
    items = kind.model_inputs(data)
    bounds = kind.batch_bounds(items, batch_size)
    units = batch_ranges(len(items), batch_size, plan.shard_size, bounds=bounds)
    ctx = {"items": items, "method": method, "batch_size": batch_size, "bounds": bounds}
    parts = plan.run(plan.stage("outputs", _outputs_unit, units, ctx))
    if not plan.executor.is_main:
        return None
    batches = [b for part in parts for b in part]
    replay = Replay(model, method, batches, items)
    result = kind.evaluate(replay, data, batch_size=batch_size, show_progress=False, name=name, **options)
    if replay._next != len(batches):
        raise PluginError(f"sharded run: {len(batches) - replay._next} computed batches were not used")
    result.timings.update({k.replace("shards.", ""): v for k, v in plan.timings.items()})
    return result
