"""Executors: who computes which shard of a stage, behind one interface.

A *stage* (:class:`Stage`) is a list of units (shards) and one module-level function
``fn(model, context, unit) -> value``. :meth:`Executor.run` returns every unit's value in unit
order, whoever computed it, consulting the cache first and storing each finished unit at once
(so a killed run resumes from the last finished shard).

- :class:`LocalExecutor` (``--executor local``): this process computes every unit.
- :class:`TorchExecutor` (``--executor torch``, under ``torchrun``): rank r takes a contiguous run
  of the units (sizes differ by at most one, no padding duplicates), and the values are gathered
  to every rank with ``all_gather_object``; gloo on CPU, nccl on GPUs. Every rank runs the same
  program (SPMD); only rank 0 writes the record.
- :class:`RayExecutor` (``--executor ray``): ``workers`` Ray actors, each holding the model (built
  from its recipe in the actor, or the fitted model shipped once); units are handed to free actors
  in order (``ActorPool``), and values come back to the driver. A local Ray instance is started
  when no ``address`` is given.

A unit that raises fails the stage on every rank with the same error (no rank is left waiting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from mmbench.errors import MMBenchError, PluginError, UsageError

EXECUTORS = ("local", "torch", "ray")


@dataclass
class Stage:
    name: str
    fn: Callable[[Any, Any, Any], Any]
    units: list[dict]
    context: Any = None
    cache_key: Callable[[dict], str] | None = None  # unit -> cache key (None: not cached)
    describe: dict = field(default_factory=dict)


@dataclass
class ModelRecipe:
    """How a worker gets the model: built from the plugin spec (``model`` None) or the fitted object itself."""

    plugin: str
    options: dict
    seed: int
    model: Any = None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, MMBenchError) else str(exc)


class Executor:
    name = "local"
    world_size = 1
    rank = 0

    def __init__(self):
        self.cache = None
        self.progress = True
        self.shards: dict[str, int] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self, model: Any, recipe: ModelRecipe) -> None:
        self.model = model

    def stop(self) -> None:
        """The run is over: release its workers (the executor may serve the next run)."""

    def close(self) -> None:
        self.stop()

    def broadcast(self, obj: Any) -> Any:
        return obj

    def describe(self) -> dict:
        return {"executor": self.name, "world_size": self.world_size}

    # ------------------------------------------------------------------ cache around one unit

    def _lookup(self, stage: Stage, unit: dict) -> tuple[bool, Any]:
        if self.cache is None or stage.cache_key is None:
            return False, None
        return self.cache.get(stage.cache_key(unit))

    def _store(self, stage: Stage, unit: dict, value: Any) -> None:
        if self.cache is not None and stage.cache_key is not None:
            self.cache.put(stage.cache_key(unit), value, {**stage.describe, "stage": stage.name, "unit": unit})

    def _compute(self, stage: Stage, unit: dict) -> Any:
        hit, value = self._lookup(stage, unit)
        if hit:
            return value
        value = stage.fn(self.model, stage.context, unit)
        self._store(stage, unit, value)
        return value

    def _bar(self, stage: Stage):
        from mmbench.tasks.base import progress_bar

        return progress_bar(f"{stage.name} shards", len(stage.units), self.progress and self.is_main)

    def run(self, stage: Stage) -> list:
        self.shards[stage.name] = len(stage.units)
        out = []
        with self._bar(stage) as advance:
            for unit in stage.units:
                out.append(self._compute(stage, unit))
                advance()
        return out


class LocalExecutor(Executor):
    name = "local"


def contiguous_share(n: int, world: int, rank: int) -> tuple[int, int]:
    """Units [lo, hi) of ``rank``: contiguous, sizes differ by at most one, every unit exactly once."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class TorchExecutor(Executor):
    """One rank of a ``torchrun`` job (env:// rendezvous)."""

    name = "torch"

    def __init__(self, backend: str = "auto"):
        super().__init__()
        import os

        import torch
        import torch.distributed as dist

        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise UsageError("--executor torch runs under torchrun (or another launcher that sets RANK, WORLD_SIZE, "
                             "MASTER_ADDR and MASTER_PORT), e.g. `torchrun --nproc-per-node 2 -m mmbench.cli eval "
                             "--executor torch ...`")
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend not in ("gloo", "nccl"):
            raise UsageError(f"--dist-backend {backend!r}: expected auto, gloo or nccl")
        self.backend = backend
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group(backend=backend)
        self.dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def describe(self) -> dict:
        return {**super().describe(), "backend": self.backend}

    def broadcast(self, obj: Any) -> Any:
        box = [obj if self.rank == 0 else None]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list:
        out = [None] * self.world_size
        self.dist.all_gather_object(out, value)
        return out

    def run(self, stage: Stage) -> list:
        self.shards[stage.name] = len(stage.units)
        lo, hi = contiguous_share(len(stage.units), self.world_size, self.rank)
        mine, error = [], None
        with self._bar(stage) as advance:
            for unit in stage.units[lo:hi]:
                try:
                    mine.append(self._compute(stage, unit))
                except BaseException as exc:  # noqa: BLE001 - every rank must reach the gather
                    error = f"rank {self.rank}, {stage.name} shard {unit}: {_error_text(exc)}"
                    break
                advance(min(self.world_size, len(stage.units)))  # the ranks move in step: done/total of all
        parts = self.gather((error, mine if error is None else None))
        errors = [e for e, _ in parts if e]
        if errors:
            raise PluginError(f"sharded {stage.name} failed: {errors[0]}")
        return [v for _, vals in parts for v in vals]

    def close(self) -> None:
        if self._owns_group and self.dist.is_initialized():
            self.dist.barrier()
            self.dist.destroy_process_group()


def _build_in_worker(recipe: ModelRecipe):  # pragma: no cover - runs in a Ray actor
    if recipe.model is not None:
        return recipe.model
    from mmbench.plugins import get_registry
    from mmbench.runner import build_model

    return build_model(get_registry().model(recipe.plugin), recipe.options, recipe.seed)


class RayExecutor(Executor):
    """Ray actors, each holding the model; see the module docstring."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, gpus_per_worker: float = 0.0,
                 cpus_per_worker: float = 1.0):
        super().__init__()
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'mmbench[ray]'") from None
        if workers < 1:
            raise UsageError(f"--workers {workers}: need at least 1")
        self.ray = ray
        self.world_size = int(workers)
        self.address = address
        self.gpus, self.cpus = float(gpus_per_worker), float(cpus_per_worker)
        self._started = False
        if not ray.is_initialized():
            import logging
            import os

            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = max(int(os.cpu_count() or 1), int(workers * cpus_per_worker + 0.999))
            ray.init(**kwargs)
            self._started = True
        self.actors: list = []

    def describe(self) -> dict:
        return {**super().describe(), "address": self.address or "local",
                **({"gpus_per_worker": self.gpus} if self.gpus else {})}

    def start(self, model: Any, recipe: ModelRecipe) -> None:
        super().start(model, recipe)
        ray = self.ray

        @ray.remote
        class _Worker:  # pragma: no cover - runs in the actor
            def __init__(self, recipe):
                self.model = _build_in_worker(recipe)

            def run(self, fn, context, unit):
                return fn(self.model, context, unit)

        opts = {"num_cpus": self.cpus, **({"num_gpus": self.gpus} if self.gpus else {})}
        recipe_ref = ray.put(recipe)
        self.actors = [_Worker.options(**opts).remote(recipe_ref) for _ in range(self.world_size)]

    def run(self, stage: Stage) -> list:
        ray = self.ray
        from ray.util import ActorPool

        self.shards[stage.name] = len(stage.units)
        out: list = [None] * len(stage.units)
        todo = []
        for i, unit in enumerate(stage.units):
            hit, value = self._lookup(stage, unit)
            if hit:
                out[i] = value
            else:
                todo.append(i)
        ctx = ray.put(stage.context)
        pool = ActorPool(self.actors)
        with self._bar(stage) as advance:
            advance(len(stage.units) - len(todo))
            for i in todo:
                pool.submit(lambda a, u: a.run.remote(stage.fn, ctx, u), stage.units[i])
            for i in todo:
                try:
                    value = pool.get_next()
                except Exception as exc:  # noqa: BLE001 - a worker's error fails the stage
                    cause = getattr(exc, "cause", None) or exc
                    raise PluginError(f"sharded {stage.name} failed on a Ray worker: "
                                      f"{_error_text(cause)}") from None
                out[i] = value
                self._store(stage, stage.units[i], value)
                advance()
        return out

    def stop(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []

    def close(self) -> None:
        self.stop()
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_executor(name: str, *, workers: int = 2, address: str | None = None, backend: str = "auto",
                  gpus_per_worker: float = 0.0) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "torch":
        return TorchExecutor(backend)
    if name == "ray":
        return RayExecutor(workers, address, gpus_per_worker)
    raise UsageError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")


_SHARED: dict = {}


def executor_for(cfg) -> tuple[Executor, bool]:
    """(executor, whether the caller closes it after the run) for an ``EvalConfig``. The torch and Ray
    executors are one per process and settings: the process group or the Ray runtime serves every run of the
    command (each run starts and stops its own actors) and ends at exit."""
    if cfg.executor == "local":
        return LocalExecutor(), True
    key = (cfg.executor, cfg.dist_backend) if cfg.executor == "torch" else \
        (cfg.executor, cfg.workers, cfg.ray_address, cfg.gpus_per_worker)
    if key not in _SHARED:
        import atexit

        ex = make_executor(cfg.executor, workers=cfg.workers, address=cfg.ray_address, backend=cfg.dist_backend,
                           gpus_per_worker=cfg.gpus_per_worker)
        _SHARED[key] = ex
        atexit.register(ex.close)
    return _SHARED[key], False


def close_all() -> None:
    """Close the shared executors (an isolated run's child calls it before it exits: no Ray runtime is orphaned)."""
    while _SHARED:
        _, ex = _SHARED.popitem()
        try:
            ex.close()
        except Exception:  # noqa: BLE001 - closing must not turn a finished run into a failed one
            pass
