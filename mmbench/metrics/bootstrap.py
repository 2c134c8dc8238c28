"""Bootstrap confidence intervals and paired bootstrap tests over per-sample outcomes.

Nothing here knows a task: every corpus metric is recomputed by the run's task kind
(:class:`mmbench.tasks.base.TaskKind`: ``unit_stats`` gives the per-unit sufficient
statistics, ``compute(stats, weights)`` the metrics) under a vector of non-negative integer
*unit weights* (how many times each resampled unit was drawn). The same definition therefore
gives the point value (weights None), percentile confidence intervals (:func:`task_cis`) and
paired tests between two runs (:func:`paired_bootstrap`). What a unit is, and what is
recomputed, is documented with each kind (``mmbench/tasks/<kind>.py``) and its metrics
(``mmbench/metrics/<kind>.py``).

``kind`` arguments take a :class:`TaskKind` or a task name (looked up among the installed kinds).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from mmbench.errors import MMBenchError


def _kind(kind: Any):
    if isinstance(kind, str):
        from mmbench.tasks import get_kind

        return get_kind(kind)
    return kind


def _prepare(kind: Any, per_sample: Mapping) -> tuple[int, Callable[[np.ndarray | None], dict]]:
    k = _kind(kind)
    n, stats = k.unit_stats(per_sample)
    return n, lambda w: k.compute(stats, w)


def canonical_metric(kind: Any, metric: str) -> str:
    """The key a metric has in ``all_metric_values`` (grounding's ``acc@T`` is ``acc``)."""
    return _kind(kind).canonical_metric(metric)


def all_metric_values(kind: Any, per_sample: Mapping) -> dict[str, float]:
    """Every corpus metric recomputable from ``per_sample``, every unit counted once."""
    n, fn = _prepare(kind, per_sample)
    return fn(np.ones(n, dtype=np.int64))


def metric_value(kind: Any, metric: str, per_sample: Mapping) -> float:
    """One corpus metric recomputed from per-sample data (equals the evaluate loop's value)."""
    vals = all_metric_values(kind, per_sample)
    key = canonical_metric(kind, metric)
    if key not in vals:
        raise MMBenchError(f"metric {metric!r} cannot be recomputed from {_kind(kind).name} per-sample data "
                           f"(recomputable: {', '.join(sorted(vals))})")
    return float(vals[key])


def bleu_from_stats(stats: np.ndarray, n: int = 4) -> list[float]:
    """Corpus BLEU-1..n from per-image statistics (:func:`mmbench.metrics.caption_ngrams.bleu_compute`)."""
    from mmbench.metrics.caption_ngrams import bleu_compute

    return bleu_compute(stats, n=n)

def _weights(n: int, n_resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield np.bincount(rng.integers(0, n, n), minlength=n)


def _ci(values: np.ndarray, confidence: float) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [math.nan, math.nan]
    a = (1 - confidence) / 2
    return [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))]


def _check(n_resamples: int, confidence: float):
    if n_resamples < 1:
        raise MMBenchError(f"bootstrap resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise MMBenchError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_cis(task: Any, per_sample: Mapping, *, metrics=None, n_resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, list[float]]:
    """Percentile CIs ``{metric: [lo, hi]}`` of every recomputable corpus metric."""
    _check(n_resamples, confidence)
    n, fn = _prepare(task, per_sample)
    if n == 0:
        return {}
    base = fn(np.ones(n, dtype=np.int64))
    names = list(base) if metrics is None else [m for m in metrics if m in base]
    draws = {m: np.empty(n_resamples) for m in names}
    for b, w in enumerate(_weights(n, n_resamples, seed)):
        vals = fn(w)
        for m in names:
            draws[m][b] = vals[m]
    return {m: _ci(draws[m], confidence) for m in names}


def task_cis(task: Any, result, *, n_resamples: int = 1000, seed: int = 0,
             confidence: float = 0.95) -> dict[str, list[float]]:
    """CIs for the metrics of a ``TaskResult`` (keys as in ``result.metrics``)."""
    cis = bootstrap_cis(task, result.per_sample, n_resamples=n_resamples, seed=seed, confidence=confidence)
    out = {}
    for name in result.metrics:
        key = canonical_metric(task, name)
        if key in cis:
            out[name] = cis[key]
    return out


def paired_bootstrap_many(task: Any, metrics, per_sample_a: Mapping, per_sample_b: Mapping, *,
                          n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired bootstrap of several metrics from one pass over the same resampled units.

    Returns ``{metric: {"a", "b", "delta", "ci", "p_value", "n"}}``; each entry equals what
    ``paired_bootstrap`` returns for that metric alone (same weights for the same seed).
    Raises MMBenchError when the runs differ in size or a metric is not recomputable.
    """
    _check(n_resamples, confidence)
    na, fa = _prepare(task, per_sample_a)
    nb, fb = _prepare(task, per_sample_b)
    if na != nb:
        raise MMBenchError(f"paired bootstrap needs runs over the same samples: run A has {na} units, run B {nb}")
    ones = np.ones(na, dtype=np.int64)
    va, vb = fa(ones), fb(ones)
    keys = {}
    for m in metrics:
        k = canonical_metric(task, m)
        if k not in va or k not in vb:
            raise MMBenchError(f"metric {m!r} cannot be recomputed from {_kind(task).name} per-sample data "
                               f"(recomputable: {', '.join(sorted(va))})")
        keys[m] = k
    deltas = {m: np.empty(n_resamples) for m in keys}
    for i, w in enumerate(_weights(na, n_resamples, seed)):
        wa, wb = fa(w), fb(w)
        for m, k in keys.items():
            deltas[m][i] = wb[k] - wa[k]
    out = {}
    for m, k in keys.items():
        d = deltas[m]
        le, ge = int((d <= 0).sum()), int((d >= 0).sum())
        p = min(1.0, 2 * min((le + 1) / (n_resamples + 1), (ge + 1) / (n_resamples + 1)))
        out[m] = {"a": float(va[k]), "b": float(vb[k]), "delta": float(vb[k] - va[k]),
                  "ci": _ci(d, confidence), "p_value": float(p), "n": int(na)}
    return out


def paired_bootstrap(task: Any, metric: str, per_sample_a: Mapping, per_sample_b: Mapping, *,
                     n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired bootstrap of ``metric(b) - metric(a)`` over the same resampled units.

    Both runs' per-sample dicts must be aligned (same samples, same order). Returns
    ``{"a", "b", "delta", "ci": [lo, hi], "p_value", "n"}``; ``p_value`` is two-sided:
    twice the smaller share of resampled deltas on either side of 0 (with the +1
    correction, so it is never 0 and is 1 for identical runs).
    """
    return paired_bootstrap_many(task, [metric], per_sample_a, per_sample_b, n_resamples=n_resamples,
                                 seed=seed, confidence=confidence)[metric]
