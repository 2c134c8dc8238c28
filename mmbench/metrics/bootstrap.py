"""Bootstrap confidence intervals over per-sample outcomes (percentile method, seeded)."""

from __future__ import annotations

import numpy as np

from mmbench.tasks.base import TaskResult


def percentile_ci(values: np.ndarray, statistic, n_resamples: int, seed: int, confidence: float):
    rng = np.random.default_rng(seed)
    n = len(values)
    if n == 0:
        return [float("nan"), float("nan")]
    stats = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = rng.integers(0, n, n)
        stats[b] = statistic(values[idx])
    a = (1 - confidence) / 2
    return [float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))]


def task_cis(task: str, result: TaskResult, *, n_resamples: int = 1000, seed: int = 0,
             confidence: float = 0.95) -> dict[str, list[float]]:
    ps = result.per_sample
    out: dict[str, list[float]] = {}
    if task == "retrieval":
        for d in ("i2t", "t2i"):
            r = np.asarray(ps.get(f"{d}_rank", []))
            for k in (1, 5, 10):
                out[f"{d}.R@{k}"] = percentile_ci((r < k).astype(float) * 100, np.mean, n_resamples, seed, confidence)
    elif task == "captioning":
        for name, vals in ps.items():
            if name.startswith("Bleu"):
                continue  # corpus BLEU is not a mean of per-image scores
            out[name] = percentile_ci(np.asarray(vals, float), np.mean, n_resamples, seed, confidence)
    elif task == "grounding":
        key = next((k for k in result.metrics if k.startswith("acc@")), None)
        if key:
            out[key] = percentile_ci(np.asarray(ps["hit"], float) * 100, np.mean, n_resamples, seed, confidence)
    elif task == "classification":
        out["accuracy"] = percentile_ci(np.asarray(ps["correct"], float) * 100, np.mean, n_resamples, seed,
                                        confidence)
    return out
