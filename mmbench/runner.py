"""Run one (plugin, dataset, split) evaluation, or many, into run records.

The runner checks that the plugin and dataset fit (task kind, input form), builds the
model, fits it on the train split when it has ``fit``, calls the task's evaluate loop,
adds confidence intervals and paper-parity deltas, and returns a ``RunRecord``.
A multi-run records a failure and carries on with the other runs.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from mmbench import records
from mmbench.errors import MismatchError, MMBenchError, PluginError
from mmbench.plugins import Registry, get_registry
from mmbench.specs import DatasetSpec, ModelSpec
from mmbench.tasks import DATA_TYPES
from mmbench.tasks import captioning, classification, grounding, retrieval

EVALUATORS = {
    "retrieval": retrieval.evaluate,
    "captioning": captioning.evaluate,
    "grounding": grounding.evaluate,
    "classification": classification.evaluate,
}


@dataclass
class EvalConfig:
    split: str | None = None
    data_root: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # model factory options
    dataset_options: dict[str, str] = field(default_factory=dict)
    batch_size: int | None = None
    seed: int = 0
    bootstrap: int = 1000  # resamples for CIs; 0 disables
    confidence: float = 0.95
    show_progress: bool = True
    task_options: dict[str, Any] = field(default_factory=dict)  # e.g. ties, iou convention, tokenizer


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


def _call_plugin(plugin_name: str, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except MMBenchError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin_name!r} raised {type(exc).__name__} in {what}: {exc}") from exc


def _load_data(dspec: DatasetSpec, task: str, split: str, cfg: EvalConfig):
    if split not in dspec.splits:
        from mmbench.errors import UnknownNameError

        raise UnknownNameError(f"split of dataset {dspec.name!r}", split, list(dspec.splits))
    if dspec.needs_data_root and not cfg.data_root:
        raise MMBenchError(f"dataset {dspec.name!r} needs --data-root PATH (the folder holding its files). "
                           f"Run `mmbench datasets layout {dspec.name}` to see the expected layout.")
    try:
        data = dspec.load(task, split, cfg.data_root, **cfg.dataset_options)
    except MMBenchError:
        raise
    except TypeError as exc:
        raise MMBenchError(f"dataset {dspec.name!r}: bad dataset option(s) {sorted(cfg.dataset_options)}: {exc}. "
                           f"Known options: {', '.join(dspec.options) or '(none)'}") from exc
    expected = DATA_TYPES[task]
    if not isinstance(data, expected):
        raise PluginError(f"dataset {dspec.name!r} returned {type(data).__name__} for task {task}, "
                          f"expected {expected.__name__}")
    return data


def _n_samples(data) -> int:
    for attr in ("samples", "images"):
        if hasattr(data, attr):
            return len(getattr(data, attr))
    return 0


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


def published_deltas(mspec: ModelSpec, meta: dict, metrics: dict) -> list[dict]:
    out = []
    for p in mspec.published:
        if p.dataset != meta.get("name"):
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
                    "protocol": p.protocol})
    return out


def run_eval(plugin: str, dataset: str, cfg: EvalConfig | None = None, *,
             registry: Registry | None = None) -> records.RunRecord:
    """Evaluate one plugin on one dataset split. Raises MMBenchError on any failure."""
    cfg = cfg or EvalConfig()
    reg = registry or get_registry()
    mspec = reg.model(plugin)
    dspec = reg.dataset(dataset)
    check_fit(mspec, dspec, reg)
    task = mspec.task
    split = cfg.split or dspec.default_split
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    import numpy as np
    import torch

    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    t0 = time.perf_counter()
    data = _load_data(dspec, task, split, cfg)
    timings["load_data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = _call_plugin(plugin, "its factory", mspec.build, **cfg.options)
    timings["build_model"] = time.perf_counter() - t0

    if hasattr(model, "fit"):
        if "train" not in dspec.splits:
            raise MismatchError(f"plugin {plugin!r} trains on the train split (it has fit()), but dataset "
                                f"{dataset!r} has no train split (splits: {', '.join(dspec.splits)})")
        t0 = time.perf_counter()
        train = _load_data(dspec, task, "train", cfg)
        val = None
        if "val" in dspec.splits and split != "val":
            val = _load_data(dspec, task, "val", cfg)
        timings["load_train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _call_plugin(plugin, "fit()", model.fit, train, val)
        timings["fit"] = time.perf_counter() - t0

    evaluate = EVALUATORS[task]
    kwargs = dict(cfg.task_options)
    if cfg.batch_size:
        kwargs["batch_size"] = cfg.batch_size
    elif getattr(model, "batch_size", None):
        kwargs["batch_size"] = int(model.batch_size)
    result = _call_plugin(plugin, "evaluation", evaluate, model, data, show_progress=cfg.show_progress,
                          name=plugin, **kwargs)
    timings.update({f"eval.{k}": v for k, v in result.timings.items()})
    if hasattr(model, "extra_metrics"):
        # A model may add its own metrics (e.g. TMC's expected calibration error) computed from the
        # evaluated data and the task result; they are recorded beside the task's metrics.
        extra = _call_plugin(plugin, "extra_metrics()", model.extra_metrics, data, result) or {}
        bad = [k for k, v in extra.items() if not isinstance(v, (int, float)) or k in result.metrics]
        if bad:
            raise PluginError(f"plugin {plugin!r}: extra_metrics() returned non-numeric or clashing keys {bad}")
        result.metrics.update({k: float(v) for k, v in extra.items()})
        result.details["extra_metrics"] = sorted(extra)

    model_details = getattr(model, "details", None)
    if isinstance(model_details, dict) and model_details:
        # training facts a model wants on record (best epoch, unlabelled samples used, ...)
        result.details["model"] = dict(model_details)

    ci: dict[str, list[float]] = {}
    if cfg.bootstrap:
        from mmbench.metrics.bootstrap import task_cis

        t0 = time.perf_counter()
        ci = task_cis(task, result, n_resamples=cfg.bootstrap, seed=cfg.seed, confidence=cfg.confidence)
        timings["bootstrap"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    meta = data.meta.to_dict()
    meta["split"] = split
    meta["n_samples"] = _n_samples(data)
    plugin_info = {"name": mspec.name, "package": mspec.plugin, "version": mspec.version,
                   "options": dict(cfg.options), **_checkpoint(model)}
    return records.RunRecord(
        task=task, plugin=plugin_info, dataset=meta, metrics=result.metrics, ci=ci,
        details=result.details, per_sample=result.per_sample, sample_ids=result.sample_ids,
        published=published_deltas(mspec, meta, result.metrics), timings=timings,
        environment=records.environment(),
        config={"batch_size": kwargs.get("batch_size"), "seed": cfg.seed, "bootstrap": cfg.bootstrap,
                "confidence": cfg.confidence, "dataset_options": dict(cfg.dataset_options),
                "task_options": dict(cfg.task_options)},
    )


def failed_record(plugin: str, dataset: str, cfg: EvalConfig, exc: BaseException, debug: bool = False,
                  registry: Registry | None = None) -> records.RunRecord:
    reg = registry or get_registry()
    task = reg.models[plugin].task if plugin in reg.models else ""
    split = cfg.split or (reg.datasets[dataset].default_split if dataset in reg.datasets else "")
    err = str(exc) if isinstance(exc, MMBenchError) else f"{type(exc).__name__}: {exc}"
    if debug:
        err += "\n" + "".join(traceback.format_exception(exc))
    return records.RunRecord(task=task, plugin={"name": plugin, "options": dict(cfg.options)},
                             dataset={"name": dataset, "split": split, "protocol": ""},
                             status="failed", error=err, environment=records.environment())


def run_many(plugins: list[str], datasets: list[str], cfg: EvalConfig, *, registry: Registry | None = None,
             on_record=None) -> list[records.RunRecord]:
    """Every plugin on every dataset; a failing run is recorded and the others go on."""
    out = []
    for d in datasets:
        for p in plugins:
            try:
                rec = run_eval(p, d, cfg, registry=registry)
            except MMBenchError as exc:
                rec = failed_record(p, d, cfg, exc, registry=registry)
            if on_record is not None:
                on_record(rec)
            out.append(rec)
    return out
