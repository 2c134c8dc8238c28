"""Run one (plugin, dataset, split) evaluation, or many, into run records.

Before any run starts, :func:`preflight` checks every requested (plugin, dataset) pair:
task kind and input form, split, data root, model / dataset / task option keys and values.
Such usage mistakes raise :class:`~mmbench.errors.UsageError` (the CLI exits 2 and writes
no record). Then each run builds the model (with the run's seed), fits it on the train
split when it has ``fit`` — refusing train data that overlaps the evaluated split — calls
the task's evaluate loop with the model seeing inputs only, adds confidence intervals and
paper-parity deltas, and returns a ``RunRecord``. A multi-run records a failure (with its
traceback) and carries on with the other runs.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmbench import records
from mmbench.errors import MismatchError, MMBenchError, PluginError, UsageError
from mmbench.plugins import Registry, get_registry
from mmbench.specs import DatasetSpec, ModelSpec
from mmbench.tasks import get_kind


@dataclass
class EvalConfig:
    split: str | None = None
    data_root: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # model factory options
    dataset_options: dict[str, str] = field(default_factory=dict)  # "key" (every split) or "key.split"
    batch_size: int | None = None
    seed: int = 0
    bootstrap: int = 1000  # resamples for CIs; 0 disables
    confidence: float = 0.95
    show_progress: bool = True
    task_options: dict[str, Any] = field(default_factory=dict)  # e.g. ties, iou convention, tokenizer
    allow_overlap: bool = False  # fit on train data that overlaps the evaluated split (recorded)
    limit: int | None = None  # first N units of every split (the conformance kit; recorded)
    isolate: bool = False  # each run in a child process (run_many): os._exit / crashes become failed runs
    timeout: float | None = None  # seconds a run may take (implies isolate); None: no limit (recorded)
    # scale-out (mmbench.execution): none of these changes a metric or the fingerprint
    executor: str = "local"  # local | torch (under torchrun) | ray
    workers: int = 2  # Ray workers
    ray_address: str | None = None  # an existing Ray cluster (default: a local instance)
    gpus_per_worker: float = 0.0  # Ray: GPUs each actor reserves (a GPU actor per worker)
    dist_backend: str = "auto"  # torch executor: gloo (CPU) / nccl (GPU) / auto
    cache: str | None = None  # content-addressed cache of finished shards (resume after a crash)
    shard_size: int | None = None  # items per shard (whole batches); None: about 16 shards per stage

    @property
    def sharded(self) -> bool:
        """Whether runs go through ``mmbench.execution`` (any executor but local, a cache or a shard size)."""
        return self.executor != "local" or bool(self.cache) or bool(self.shard_size)


def accepted_forms(accepts) -> set[str]:
    return set(accepts)


def offered_forms(forms) -> set[str]:
    out = set(forms)
    if "image_file" in out:
        out.add("image")
    return out


def check_fit(mspec: ModelSpec, dspec: DatasetSpec, registry: Registry) -> None:
    """Raise MismatchError naming both sides and what would fit instead."""
    if mspec.task not in dspec.tasks:
        fits = sorted(n for n, d in registry.datasets.items() if mspec.task in d.tasks)
        models = sorted(n for n, m in registry.models.items() if m.task in dspec.tasks)
        raise MismatchError(
            f"Plugin {mspec.name!r} does {mspec.task}, but dataset {dspec.name!r} offers "
            f"{', '.join(dspec.tasks)}. Datasets for {mspec.task}: {', '.join(fits) or '(none)'}. "
            f"Plugins for {', '.join(dspec.tasks)}: {', '.join(models) or '(none)'}.")
    if not accepted_forms(mspec.accepts) & offered_forms(dspec.forms):
        variants = sorted({v for f, v in dspec.variants.items() if f in mspec.accepts} |
                          {n for n, d in registry.datasets.items() if mspec.task in d.tasks and
                           accepted_forms(mspec.accepts) & offered_forms(d.forms) and n != dspec.name})
        raise MismatchError(
            f"Plugin {mspec.name!r} takes {' or '.join(mspec.accepts)} inputs, but dataset "
            f"{dspec.name!r} offers {', '.join(sorted(offered_forms(dspec.forms)))}. "
            f"Datasets that fit this plugin: {', '.join(variants) or '(none installed)'}.")


# --------------------------------------------------------------------------- options

def _signature_keys(fn, skip: tuple[str, ...] = ()) -> tuple[set[str], bool]:
    """(named keyword parameters, takes **kwargs) of a callable; ({}, True) when unknown."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    named = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return named, var_kw


def _check_option_keys(keys, declared: dict[str, str], fn, *, what: str, flag: str,
                       skip: tuple[str, ...] = ()) -> None:
    """Unknown ``keys`` (not declared on the spec, not a parameter of the factory) -> UsageError."""
    named, var_kw = _signature_keys(fn, skip)
    known = set(declared) | named
    if var_kw and not declared:
        return  # the factory takes anything and declares nothing: it validates its own options
    unknown = sorted(k for k in keys if k not in known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        listing = "; ".join(f"{k}: {declared.get(k, '')}".rstrip(": ") for k in sorted(known)) or "(none)"
        raise UsageError(f"{what} has no option {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f". Its {flag} options: {listing}")


def split_options(dspec: DatasetSpec, options: dict[str, str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Dataset options -> (options for every split, {split: options for that split only}).

    ``annotations.val=FILE`` applies to the val split only; ``annotations=FILE`` to every split.
    """
    common: dict[str, str] = {}
    per: dict[str, dict[str, str]] = {}
    for k, v in options.items():
        base, dot, sp = k.rpartition(".")
        if dot and base and sp in dspec.splits:
            per.setdefault(sp, {})[base] = v
        elif dot and base and base in dspec.options:
            from mmbench.errors import UnknownNameError

            raise UnknownNameError(f"split of dataset {dspec.name!r} (in --dataset-option {k!r})", sp,
                                   list(dspec.splits))
        else:
            common[k] = v
    return common, per


def options_for_split(dspec: DatasetSpec, options: dict[str, str], split: str) -> dict[str, str]:
    common, per = split_options(dspec, options)
    return {**common, **per.get(split, {})}


def preflight(mspec: ModelSpec, dspec: DatasetSpec, cfg: EvalConfig, registry: Registry) -> dict[str, Any]:
    """Check one (plugin, dataset) pair before anything runs; returns the parsed task options.

    Raises UsageError (exit 2, no record) for a task/form mismatch, an unknown split, a missing
    data root, unknown model/dataset/task option keys or invalid dataset/task option values.
    """
    check_fit(mspec, dspec, registry)
    split = cfg.split or dspec.default_split
    if split not in dspec.splits:
        from mmbench.errors import UnknownNameError

        raise UnknownNameError(f"split of dataset {dspec.name!r}", split, list(dspec.splits))
    if dspec.needs_data_root:
        if not cfg.data_root:
            raise UsageError(f"dataset {dspec.name!r} needs --data-root PATH (the folder holding its files). "
                             f"Run `mmbench datasets layout {dspec.name}` to see the expected layout.")
        if not Path(cfg.data_root).is_dir():
            raise UsageError(f"--data-root {cfg.data_root!r} is not a folder (dataset {dspec.name!r}). "
                             f"Run `mmbench datasets layout {dspec.name}` to see the expected layout.")
    common, per = split_options(dspec, cfg.dataset_options)
    if dspec.options.typed:  # keys and values, parsed as DatasetSpec.load will parse them
        for given in (common, *per.values()):
            dspec.parse_options(given)
    else:
        keys = set(common) | {k for d in per.values() for k in d}
        _check_option_keys(keys, dspec.options, _factory(dspec.factory, f"dataset {dspec.name!r}"),
                           what=f"dataset {dspec.name!r}", flag="--dataset-option (-D)",
                           skip=("task", "split", "data_root"))
    _check_option_keys(set(cfg.options) - {"seed"}, mspec.options, _factory(mspec.factory, f"plugin {mspec.name!r}"),
                       what=f"plugin {mspec.name!r}", flag="--option (-o)")
    mspec.parse_options(cfg.options)  # typed model options: a bad value is a usage error before any run
    return get_kind(mspec.task, registry).parse_options(cfg.task_options)


def _factory(ref, what: str):
    from mmbench.specs import resolve

    return resolve(ref, what=what)


# --------------------------------------------------------------------------- plugin calls

def _call_plugin(plugin_name: str, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except MMBenchError:
        raise
    except SystemExit as exc:  # sys.exit(0) in a plugin must not end mmbench with exit 0 and no record
        raise PluginError(f"plugin {plugin_name!r} called sys.exit({exc.code!r}) in {what}; a plugin must raise an "
                          f"exception, not exit the process") from None
    except Exception as exc:
        raise PluginError(f"plugin {plugin_name!r} raised {type(exc).__name__} in {what}: {exc}") from exc


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(mspec: ModelSpec, options: dict[str, str], seed: int) -> Any:
    """Build the model with the run's seed: the factory gets ``seed`` when it takes one (an explicit
    ``-o seed=`` wins), and the global RNGs are seeded right before it runs."""
    opts = mspec.parse_options(dict(options))
    named, _ = _signature_keys(_factory(mspec.factory, f"plugin {mspec.name!r}"))
    if "seed" not in opts and ("seed" in named or "seed" in mspec.options):
        opts = mspec.parse_options({**opts, "seed": str(seed)})
    seed_everything(seed)
    return _call_plugin(mspec.name, "its factory", mspec.build, **opts)


def fit_model(name: str, model: Any, train, val, seed: int) -> None:
    """``model.fit(train, val)``, with ``seed=`` passed when fit takes it. The global RNGs were seeded
    right before the model was built and nothing between the two draws from them."""
    named, _ = _signature_keys(model.fit)
    kwargs = {"seed": seed} if "seed" in named else {}
    _call_plugin(name, "fit()", model.fit, train, val, **kwargs)


# --------------------------------------------------------------------------- data

def _load_data(dspec: DatasetSpec, task: str, split: str, cfg: EvalConfig, registry: Registry | None = None):
    options = options_for_split(dspec, cfg.dataset_options, split)
    try:
        data = dspec.load(task, split, cfg.data_root, **options)
    except MMBenchError:
        raise
    except TypeError as exc:
        if dspec.options.typed:  # typed options were checked by the spec: a TypeError is the adapter's bug
            raise
        raise MMBenchError(f"dataset {dspec.name!r}: bad dataset option(s) {sorted(options)}: {exc}. "
                           f"Known options: {', '.join(dspec.options) or '(none)'}") from exc
    kind = get_kind(task, registry)
    expected = kind.data_type
    if not isinstance(data, expected):
        raise PluginError(f"dataset {dspec.name!r} returned {type(data).__name__} for task {task}, "
                          f"expected {expected.__name__}")
    if cfg.limit:
        data = kind.limit(data, cfg.limit)
    return data


def _image_key(im) -> tuple[str, str] | None:
    """What identifies one image's content across splits: its file, its features or its pixels."""
    import numpy as np

    if getattr(im, "path", None) is not None:
        try:
            return ("file", str(Path(im.path).resolve()))
        except OSError:
            return ("file", str(im.path))
    regions = getattr(im, "regions", None)
    if regions is not None:
        arr = np.asarray(regions)
        first = arr.reshape(arr.shape[0], -1)[:1] if arr.ndim >= 2 and arr.shape[0] else arr
        return ("features", hashlib.sha1(np.ascontiguousarray(first).tobytes() + str(arr.shape).encode()).hexdigest())
    pil = getattr(im, "pil", None)
    if pil is not None:
        from PIL import Image

        thumb = np.asarray(pil.convert("RGB").resize((16, 16), Image.NEAREST))
        return ("pixels", hashlib.sha1(thumb.tobytes() + str(pil.size).encode()).hexdigest())
    return ("id", str(im.id))


def content_keys(data) -> dict[tuple[str, str], str]:
    """{content key: sample id} of every evaluated unit of ``data``.

    Images are identified by content (file, features, pixels), never by id alone: ids such as
    row numbers repeat across splits. A sample without an image is identified by id and text.
    """
    out: dict[tuple[str, str], str] = {}
    for im in getattr(data, "images", ()):
        out.setdefault(_image_key(im), im.id)
    for s in list(getattr(data, "samples", ())) + list(getattr(data, "unlabelled", ())):
        if getattr(s, "image", None) is not None:
            key = _image_key(s.image)
        else:
            key = ("text", f"{s.id}\0{getattr(s, 'text', '')}")
        out.setdefault(key, s.id)
    return out


def overlap(evaluated, fitted) -> list[str]:
    """Ids of evaluated units whose image file, features or id also occur in ``fitted``."""
    mine = content_keys(evaluated)
    theirs = set(content_keys(fitted))
    return [sid for key, sid in mine.items() if key in theirs]


def _checkpoint(model) -> dict:
    out = {}
    path = getattr(model, "checkpoint_path", None)
    if path:
        out["checkpoint"] = str(path)
        try:
            out["checkpoint_sha256"] = records.sha256_file(path)
        except OSError:
            pass
    return out


def published_deltas(mspec: ModelSpec, meta: dict, metrics: dict, variant: str | None = None) -> list[dict]:
    out = []
    for p in mspec.published:
        if p.dataset != meta.get("name"):
            continue
        if p.variant is not None and p.variant != variant:
            continue
        if p.split and p.split != meta.get("split"):
            continue
        if p.protocol and p.protocol != meta.get("protocol"):
            continue
        if p.metric not in metrics:
            continue
        delta = metrics[p.metric] - p.value
        out.append({"metric": p.metric, "published": p.value, "measured": metrics[p.metric], "delta": delta,
                    "tolerance": p.tolerance, "within": abs(delta) <= p.tolerance, "source": p.source,
                    "protocol": p.protocol, **({"variant": p.variant} if p.variant is not None else {})})
    return out


def _published_variant(model: Any) -> str | None:
    v = getattr(model, "published_variant", None)
    return None if v is None else str(v)


def _refuse_shared_files(mspec: ModelSpec, dspec: DatasetSpec, cfg: EvalConfig, split: str) -> None:
    """A per-split file option given for every split makes train and eval read the same file."""
    common, _ = split_options(dspec, cfg.dataset_options)
    shared = sorted(k for k in common if k in dspec.split_files)
    if shared and not cfg.allow_overlap:
        k = shared[0]
        raise UsageError(
            f"plugin {mspec.name!r} trains on the train split (it has fit()), but --dataset-option {k}=... applies "
            f"to every split of {dspec.name!r}, so the train data would be read from the same file as the "
            f"evaluated {split!r} split. Give it per split ({k}.train=..., {k}.{split}=...), or pass "
            f"--allow-overlap to fit on it anyway (recorded).")


def run_eval(plugin: str, dataset: str, cfg: EvalConfig | None = None, *,
             registry: Registry | None = None, task_options: dict | None = None) -> records.RunRecord | None:
    """Evaluate one plugin on one dataset split. Raises MMBenchError on any failure.

    With ``cfg.sharded`` the evaluation goes through an executor (``mmbench.execution``); under
    ``--executor torch`` every rank calls this and only rank 0 gets the record (the others None)."""
    cfg = cfg or EvalConfig()
    if not cfg.sharded:
        return _run_eval(plugin, dataset, cfg, registry=registry, task_options=task_options, executor=None)
    from mmbench.execution.executors import executor_for

    executor, owned = executor_for(cfg)
    try:
        return _run_eval(plugin, dataset, cfg, registry=registry, task_options=task_options, executor=executor)
    finally:
        if owned:
            executor.close()


def _run_eval(plugin: str, dataset: str, cfg: EvalConfig, *, registry: Registry | None, task_options: dict | None,
              executor) -> records.RunRecord | None:
    reg = registry or get_registry()
    mspec = reg.model(plugin)
    dspec = reg.dataset(dataset)
    if task_options is None:
        task_options = preflight(mspec, dspec, cfg, reg)
    task = mspec.task
    split = cfg.split or dspec.default_split
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data = _load_data(dspec, task, split, cfg, reg)
    timings["load_data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = build_model(mspec, cfg.options, cfg.seed)
    timings["build_model"] = time.perf_counter() - t0

    notes: list[str] = []
    fit_data: dict[str, Any] = {}
    if hasattr(model, "fit"):
        if "train" not in dspec.splits:
            raise MismatchError(f"plugin {plugin!r} trains on the train split (it has fit()), but dataset "
                                f"{dataset!r} has no train split (splits: {', '.join(dspec.splits)})")
        if split == "train":
            raise UsageError(f"plugin {plugin!r} trains on the train split (it has fit()); evaluating it on "
                             f"the train split of {dataset!r} scores it on its own training data. Evaluate "
                             f"another split (splits: {', '.join(dspec.splits)}).")
        _refuse_shared_files(mspec, dspec, cfg, split)
        t0 = time.perf_counter()
        train = _load_data(dspec, task, "train", cfg, reg)
        val = None
        if "val" in dspec.splits and split != "val":
            val = _load_data(dspec, task, "val", cfg, reg)
        timings["load_train"] = time.perf_counter() - t0
        for name, part in (("train", train), ("val", val)):
            if part is None:
                continue
            shared = overlap(data, part)
            fit_data[name] = {"fingerprint": part.meta.fingerprint, "n_samples": get_kind(task, reg).n_samples(part),
                              "overlap_with_evaluated": len(shared)}
            if shared:
                msg = (f"{len(shared)} of {len(content_keys(data))} evaluated {split!r} items of {dataset!r} also "
                       f"occur in the {name} split the model is fitted on (same image file, features or id; "
                       f"first: {', '.join(map(str, shared[:3]))})")
                if not cfg.allow_overlap:
                    raise UsageError(f"plugin {plugin!r} would be fitted on data it is scored on: {msg}. "
                                     f"Check the dataset options (per split: key.train=..., key.{split}=...), "
                                     f"or pass --allow-overlap to run anyway (recorded).")
                notes.append(f"train/eval overlap allowed by --allow-overlap: {msg}")
        t0 = time.perf_counter()
        model = _fit(plugin, model, train, val, cfg.seed, executor)
        timings["fit"] = time.perf_counter() - t0

    return score_model(mspec, dspec, model, data, cfg, task_options, registry=reg, fit_data=fit_data, notes=notes,
                       timings=timings, t_start=t_start, executor=executor, plugin_ref=plugin)


def _fit(plugin: str, model: Any, train, val, seed: int, executor) -> Any:
    """Fit the model; under torch.distributed rank 0 fits and every rank receives that fitted model, so the
    ranks never hold models fitted apart (the error, if any, reaches every rank)."""
    if executor is None or executor.world_size == 1 or executor.name != "torch":
        fit_model(plugin, model, train, val, seed)
        return model
    box: tuple = ("ok", None)
    if executor.is_main:
        try:
            fit_model(plugin, model, train, val, seed)
            box = ("ok", model)
        except Exception as exc:  # noqa: BLE001 - the other ranks must hear of it
            box = ("error", str(exc))
    box = executor.broadcast(box)
    if box[0] == "error":
        raise PluginError(box[1])
    return box[1]


def _extra_metrics(plugin: str, model: Any, data, result, kind) -> None:
    """A model's own metrics (e.g. TMC's expected calibration error), computed from the evaluated data and
    the task result, recorded beside the task's metrics with the direction and unit the model declares
    (``extra_metric_info``: name -> MetricInfo, or {"higher_is_better", "unit"}). The task's own metrics
    are restored afterwards: extra_metrics may add, never change, a score."""
    import copy

    from mmbench.tasks.base import UNITS, MetricInfo

    kept = copy.deepcopy((result.metrics, result.per_sample))
    extra = _call_plugin(plugin, "extra_metrics()", model.extra_metrics, data, result) or {}
    result.metrics, result.per_sample = kept
    if not isinstance(extra, dict):
        raise PluginError(f"plugin {plugin!r}: extra_metrics() returned {type(extra).__name__}, expected a dict")
    import math
    import numbers

    bad = [k for k, v in extra.items() if not isinstance(k, str) or isinstance(v, bool)
           or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or k in result.metrics]
    if bad:
        raise PluginError(f"plugin {plugin!r}: extra_metrics() returned non-numeric, non-finite or clashing keys "
                          f"{bad}; it must return {{name: finite number}} with names the task does not use")
    declared = getattr(model, "extra_metric_info", None) or {}
    info = {}
    for k in extra:
        d = declared.get(k) if isinstance(declared, dict) else None
        if isinstance(d, MetricInfo):
            d = d.to_dict()
        if not isinstance(d, dict) or not isinstance(d.get("higher_is_better"), bool) or d.get("unit") not in UNITS:
            raise PluginError(
                f"plugin {plugin!r}: extra metric {k!r} has no declared direction and unit; give the model an "
                f"attribute extra_metric_info = {{{k!r}: MetricInfo({k!r}, higher_is_better=..., unit=...)}} "
                f"(units: {', '.join(UNITS)}) so reports, gates and sorting read it the right way round")
        info[k] = {"higher_is_better": d["higher_is_better"], "unit": d["unit"]}
    result.metrics.update({k: float(v) for k, v in extra.items()})
    result.details["extra_metrics"] = sorted(extra)
    result.details["extra_metric_info"] = info


def _plan(mspec: ModelSpec, dspec: DatasetSpec, model: Any, data, cfg: EvalConfig, task_options: dict,
          fit_data: dict, batch_size: int, checkpoint: dict, executor, plugin_ref: str):
    """The execution plan of one sharded run: its executor started with the model, its cache, and the facts
    every cache key holds (what the shards' values depend on)."""
    from mmbench.execution.cache import Cache
    from mmbench.execution.executors import ModelRecipe
    from mmbench.execution.sharded import Plan

    split = cfg.split or dspec.default_split
    cache = Cache(cfg.cache) if cfg.cache else None
    # a fitted model is keyed by what it was fitted on and the seed (fits are deterministic under a seed: the
    # kit's `seeded` check); the plan still recomputes the first shard and compares before using any entry
    fit = {k: v["fingerprint"] for k, v in fit_data.items()}
    fitted = hasattr(model, "fit")
    key_base = {"plugin": mspec.name, "package": mspec.plugin, "plugin_version": mspec.version,
                "options": dict(cfg.options), "checkpoint_sha256": checkpoint.get("checkpoint_sha256"),
                "seed": cfg.seed, "fit": fit, "task": mspec.task, "task_options": dict(task_options),
                "dataset": dspec.name, "data_fingerprint": data.meta.fingerprint, "split": split,
                "dataset_options": options_for_split(dspec, cfg.dataset_options, split), "limit": cfg.limit,
                "batch_size": batch_size}
    executor.cache = cache
    executor.progress = cfg.show_progress
    executor.shards = {}
    executor.start(model, ModelRecipe(plugin_ref, dict(cfg.options), cfg.seed, model if fitted else None))
    return Plan(executor, cache, key_base, cfg.shard_size, mspec.name)


def score_model(mspec: ModelSpec, dspec: DatasetSpec, model: Any, data, cfg: EvalConfig, task_options: dict, *,
                registry: Registry | None = None, fit_data: dict | None = None, notes: list[str] | None = None,
                timings: dict | None = None, t_start: float | None = None, executor=None,
                plugin_ref: str | None = None) -> records.RunRecord | None:
    """Evaluate a built (and fitted) model on loaded data and make its run record: the task kind's
    evaluate loop, the model's extra metrics, confidence intervals, paper-parity deltas. ``run_eval``
    ends here, and the conformance kit drives the same path on its few samples."""
    reg = registry or get_registry()
    kind = get_kind(mspec.task, reg)
    plugin, task = mspec.name, mspec.task
    split = cfg.split or dspec.default_split
    fit_data, notes, timings = fit_data or {}, list(notes or []), dict(timings or {})
    t_start = time.perf_counter() if t_start is None else t_start
    kwargs = dict(task_options)
    if cfg.batch_size:
        kwargs["batch_size"] = cfg.batch_size
    elif getattr(model, "batch_size", None):
        kwargs["batch_size"] = int(model.batch_size)
    else:
        kwargs["batch_size"] = kind.default_batch_size
    checkpoint = _checkpoint(model)
    plan = None
    if executor is not None:
        plan = _plan(mspec, dspec, model, data, cfg, task_options, fit_data, kwargs["batch_size"], checkpoint,
                     executor, plugin_ref or plugin)
        try:
            result = _call_plugin(plugin, "evaluation", kind.evaluate_sharded, model, data, plan,
                                  show_progress=cfg.show_progress, name=plugin, **kwargs)
        finally:
            executor.stop()
        if result is None:  # not the main rank: the record is rank 0's
            return None
    else:
        result = _call_plugin(plugin, "evaluation", kind.evaluate, model, data, show_progress=cfg.show_progress,
                              name=plugin, **kwargs)
    timings.update({f"eval.{k}": v for k, v in result.timings.items()})
    if hasattr(model, "extra_metrics"):
        _extra_metrics(plugin, model, data, result, kind)

    model_details = getattr(model, "details", None)
    if isinstance(model_details, dict) and model_details:
        # training facts a model wants on record (best epoch, unlabelled samples used, ...)
        result.details["model"] = dict(model_details)
    bad = records.unserialisable(result.details)
    if bad:
        raise PluginError(f"plugin {plugin!r}: the run's details cannot be written to a JSON record: {bad}; "
                          f"a model's details must hold plain numbers, strings, lists and dicts")

    ci: dict[str, list[float]] = {}
    if cfg.bootstrap:
        from mmbench.metrics.bootstrap import task_cis

        t0 = time.perf_counter()
        ci = task_cis(kind, result, n_resamples=cfg.bootstrap, seed=cfg.seed, confidence=cfg.confidence)
        timings["bootstrap"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    meta = data.meta.to_dict()
    meta["split"] = split
    meta["n_samples"] = kind.n_samples(data)
    eval_options = options_for_split(dspec, cfg.dataset_options, split)
    # The record's fingerprint covers everything the run read: the evaluated split's files (the
    # adapter's fingerprint), the dataset options in force, and the data the model was fitted on.
    meta["data_fingerprint"] = meta.get("fingerprint", "")
    meta["options"] = eval_options
    meta["fingerprint"] = records.fingerprint("mmbench.run-data/1", meta["data_fingerprint"], eval_options,
                                              {k: v["fingerprint"] for k, v in fit_data.items()},
                                              *([{"limit": cfg.limit}] if cfg.limit else []))
    if fit_data:
        meta["fit_data"] = fit_data
    if cfg.limit:
        notes.append(f"only the first {cfg.limit} units of each split were used (limit)")
    meta["notes"] = list(meta.get("notes") or []) + notes
    if any(n.startswith("train/eval overlap allowed") for n in notes):
        meta["overlap_allowed"] = True
    plugin_info = {"name": mspec.name, "package": mspec.plugin, "version": mspec.version,
                   "options": dict(cfg.options), **checkpoint}
    return records.RunRecord(
        task=task, plugin=plugin_info, dataset=meta, metrics=result.metrics, ci=ci,
        details=result.details, per_sample=result.per_sample, sample_ids=result.sample_ids,
        per_sample_units={k: kind.per_sample_units.get(k, kind.unit) for k in result.per_sample},
        published=published_deltas(mspec, meta, result.metrics, _published_variant(model)), timings=timings,
        environment=records.environment(),
        config={"batch_size": kwargs.get("batch_size"), "seed": cfg.seed, "bootstrap": cfg.bootstrap,
                "confidence": cfg.confidence, "dataset_options": dict(cfg.dataset_options),
                "task_options": dict(task_options), "allow_overlap": cfg.allow_overlap,
                **({"limit": cfg.limit} if cfg.limit else {}),
                **({"isolate": True, "timeout": cfg.timeout} if cfg.isolate or cfg.timeout else {})},
        execution=plan.record() if plan is not None else {},
    )


def failed_record(plugin: str, dataset: str, cfg: EvalConfig, exc: BaseException, debug: bool = False,
                  registry: Registry | None = None) -> records.RunRecord:
    """The record of a run that failed: the error in one paragraph, and the traceback text kept too."""
    reg = registry or get_registry()
    task = split = ""
    try:
        task = reg.model(plugin).task
    except MMBenchError:
        pass
    try:
        split = cfg.split or reg.dataset(dataset).default_split
    except MMBenchError:
        split = cfg.split or ""
    err = str(exc) if isinstance(exc, MMBenchError) else f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    rec = records.RunRecord(task=task, plugin={"name": plugin, "options": dict(cfg.options)},
                            dataset={"name": dataset, "split": split, "protocol": ""},
                            status="failed", error=err, environment=records.environment(),
                            config={"seed": cfg.seed, "dataset_options": dict(cfg.dataset_options),
                                    "task_options": dict(cfg.task_options)})
    rec.details["traceback"] = tb
    return rec


def preflight_many(plugins: list[str], datasets: list[str], cfg: EvalConfig, *,
                   registry: Registry | None = None) -> dict[tuple[str, str], dict]:
    """Preflight every (plugin, dataset) pair; the first usage mistake raises before anything runs."""
    reg = registry or get_registry()
    out = {}
    for d in datasets:
        dspec = reg.dataset(d)
        for p in plugins:
            out[(p, d)] = preflight(reg.model(p), dspec, cfg, reg)
    return out


def _run_one(p: str, d: str, cfg: EvalConfig, reg: Registry, task_options: dict) -> records.RunRecord:
    try:
        return run_eval(p, d, cfg, registry=reg, task_options=task_options)
    except Exception as exc:  # noqa: BLE001 - one failing run must not take the others down
        return failed_record(p, d, cfg, exc, registry=reg)


def _isolated_child(conn, p, d, cfg, reg, task_options) -> None:  # pragma: no cover - runs in the child
    try:
        rec = _run_one(p, d, cfg, reg, task_options)
        conn.send(rec.to_dict())
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent gets a record
        try:
            conn.send(failed_record(p, d, cfg, exc, registry=reg).to_dict())
        except BaseException:  # noqa: BLE001
            pass
    finally:
        conn.close()
        if "mmbench.execution.executors" in sys.modules:  # os._exit skips atexit: close Ray / process groups
            sys.modules["mmbench.execution.executors"].close_all()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(0)


def run_isolated(p: str, d: str, cfg: EvalConfig, reg: Registry, task_options: dict) -> records.RunRecord:
    """One run in a forked child process: a plugin that calls ``os._exit``, crashes the interpreter or hangs
    past ``cfg.timeout`` seconds ends as a failed run of its own, and the other runs go on.

    The child is forked, so the calling process must not have initialised CUDA itself (mmbench's own
    parent side never does: models are built and run in the child)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_child, args=(send, p, d, cfg, reg, task_options), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    send.close()
    reason = ""
    try:
        if recv.poll(cfg.timeout):
            try:
                data = recv.recv()
                proc.join(30)
                return records.RunRecord.from_dict(data)
            except EOFError:
                proc.join(30)
                reason = (f"the run's process ended with exit code {proc.exitcode} before it produced a record "
                          f"(a plugin called os._exit() or crashed the interpreter)")
        else:
            reason = (f"the run was stopped after --timeout {cfg.timeout:g} s "
                      f"(it ran {time.perf_counter() - t0:.1f} s without finishing)")
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(10)
        recv.close()
    rec = failed_record(p, d, cfg, PluginError(f"plugin {p!r} on dataset {d!r}: {reason}"), registry=reg)
    rec.config["isolate"] = True
    rec.config["timeout"] = cfg.timeout
    return rec


def run_many(plugins: list[str], datasets: list[str], cfg: EvalConfig, *, registry: Registry | None = None,
             on_record=None) -> list[records.RunRecord]:
    """Every plugin on every dataset; a failing run is recorded and the others go on.

    Usage mistakes in any pair raise UsageError before the first run starts. With ``cfg.isolate`` (or a
    ``cfg.timeout``) each run happens in a child process of its own (:func:`run_isolated`).
    """
    reg = registry or get_registry()
    checked = preflight_many(plugins, datasets, cfg, registry=reg)
    main = cfg.executor != "torch" or os.environ.get("RANK", "0") == "0"
    out = []
    for d in datasets:
        for p in plugins:
            if cfg.isolate or cfg.timeout:
                rec = run_isolated(p, d, cfg, reg, checked[(p, d)])
            else:
                rec = _run_one(p, d, cfg, reg, checked[(p, d)])
            if rec is None or not main:  # a torch.distributed rank other than 0: rank 0 holds the record
                continue
            if on_record is not None:
                on_record(rec)
            out.append(rec)
    return out
