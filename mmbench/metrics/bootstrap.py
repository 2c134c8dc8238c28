"""Bootstrap confidence intervals and paired bootstrap tests over per-sample outcomes.

Every corpus metric is recomputed from ``TaskResult.per_sample`` under a vector of
non-negative integer *unit weights* (how many times each resampled unit was drawn), so
the same code gives the point value (all weights 1, :func:`metric_value`), percentile
confidence intervals (:func:`task_cis`) and paired tests between two runs
(:func:`paired_bootstrap`).

Resampling units and what is recomputed:

- retrieval: the unit is an *image together with all its captions* (``t2i_image`` maps
  each caption to its image). i2t queries get their image's weight, t2i queries the weight
  of the image they belong to. R@K, medr (weighted median), meanr and rsum are recomputed;
  in fold mode (``image_fold`` present) per fold, then averaged, as the protocol does.
  Ranks are not recomputed: a resample keeps each query's rank against the full gallery.
- captioning: the unit is an image. BLEU is recomputed at corpus level from per-image
  sufficient statistics (``bleu_stats``, the same statistics the corpus score was computed
  from: :mod:`mmbench.metrics.caption_ngrams`); ROUGE_L, CIDEr, METEOR, SPICE are the mean of
  per-image scores. CIDEr's document frequencies stay those of the full evaluated
  reference set (recomputing them on a resample with repeated images would count one
  image's references several times); METEOR's corpus score comes from aggregated
  statistics in the Java program, so its interval is that of the per-image mean.
- grounding: the unit is a sample (``hit`` top-1, ``hit_rank`` = 1-based rank of the
  first hit, 0 when none in the top 10).
- classification: the unit is a sample (``label``, ``pred``); accuracy and macro /
  weighted F1 from the weighted confusion matrix (same definition as scikit-learn with
  ``zero_division=0``).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from mmbench.errors import MMBenchError

KS = (1, 5, 10)


# ---------------------------------------------------------------------------------------------
# per-task preparation: per_sample dict -> (number of units, {metric: f(weights) -> value})
# ---------------------------------------------------------------------------------------------

def _weighted_rank_stats(r: np.ndarray, order: np.ndarray, w: np.ndarray, prefix: str, out: dict,
                         ks=KS) -> None:
    tot = w.sum()
    if tot == 0:
        for k in ks:
            out[f"{prefix}.R@{k}"] = math.nan
        out[f"{prefix}.medr"] = out[f"{prefix}.meanr"] = math.nan
        return
    for k in ks:
        out[f"{prefix}.R@{k}"] = 100.0 * float(w[r < k].sum()) / float(tot)
    out[f"{prefix}.meanr"] = float((w * r).sum()) / float(tot) + 1
    # weighted median == np.median of the expanded multiset
    cw = np.cumsum(w[order])
    lo = np.searchsorted(cw, (tot - 1) // 2, side="right")
    hi = np.searchsorted(cw, tot // 2, side="right")
    med = (float(r[order[lo]]) + float(r[order[hi]])) / 2
    out[f"{prefix}.medr"] = float(np.floor(med) + 1)


def _retrieval(ps: Mapping) -> tuple[int, Callable[[np.ndarray], dict]]:
    i2t = np.asarray(ps.get("i2t_rank", []), dtype=np.int64)
    t2i = np.asarray(ps.get("t2i_rank", []), dtype=np.int64)
    n = len(i2t)
    if "t2i_image" in ps:
        ti = np.asarray(ps["t2i_image"], dtype=np.int64)
    elif n and len(t2i) % n == 0:
        ti = np.arange(len(t2i)) // (len(t2i) // n)  # the 5-captions-per-image layout
    else:
        raise MMBenchError(f"retrieval per-sample data has {n} image and {len(t2i)} caption ranks but no "
                           "'t2i_image' caption-to-image index")
    if len(ti) != len(t2i):
        raise MMBenchError(f"retrieval per-sample 't2i_image' has {len(ti)} entries for {len(t2i)} captions")
    folds = np.asarray(ps["image_fold"], dtype=np.int64) if "image_fold" in ps else np.zeros(n, np.int64)
    groups = []
    for f in np.unique(folds):
        im = np.nonzero(folds == f)[0]
        tx = np.nonzero(folds[ti] == f)[0]
        groups.append((im, tx, np.argsort(i2t[im], kind="stable"), np.argsort(t2i[tx], kind="stable")))

    def compute(w: np.ndarray) -> dict:
        per_fold = []
        for im, tx, oi, ot in groups:
            m: dict = {}
            _weighted_rank_stats(i2t[im], oi, w[im], "i2t", m)
            _weighted_rank_stats(t2i[tx], ot, w[ti[tx]], "t2i", m)
            per_fold.append(m)
        if len(per_fold) == 1:
            out = per_fold[0]
        else:
            out = {k: float(np.mean([m[k] for m in per_fold])) for k in per_fold[0]}
        # rsum of the (mean) R@K values (kuanghuei/SCAN issue 23: fold-mode rsum fix)
        out["rsum"] = sum(out[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in KS)
        return out

    return n, compute


def bleu_from_stats(stats: np.ndarray, n: int = 4) -> list[float]:
    """Corpus BLEU-1..n from per-image statistics, exactly as pycocoevalcap computes it.

    ``stats`` rows: [testlen, reflen(closest, ties to shorter), guess_1..n, correct_1..n];
    a (rows, 2+2n) array is summed first. Constants 1e-15 / 1e-9 and the brevity penalty
    follow salaniz/pycocoevalcap:bleu/bleu_scorer.py (BleuScorer.compute_score); the one
    implementation is :func:`mmbench.metrics.caption_ngrams.bleu_compute`.
    """
    from mmbench.metrics.caption_ngrams import bleu_compute

    return bleu_compute(stats, n=n)


def _captioning(ps: Mapping) -> tuple[int, Callable[[np.ndarray], dict]]:
    from mmbench.metrics.caption_ngrams import bleu_compute

    means = {k: np.asarray(v, dtype=np.float64) for k, v in ps.items()
             if k in ("METEOR", "ROUGE_L", "CIDEr", "SPICE")}
    stats = np.asarray(ps["bleu_stats"], dtype=np.int64) if "bleu_stats" in ps else None
    lens = {len(v) for v in means.values()} | ({len(stats)} if stats is not None else set())
    if len(lens) > 1:
        raise MMBenchError(f"captioning per-sample lists have different lengths {sorted(lens)}")
    n = lens.pop() if lens else 0

    def compute(w: np.ndarray) -> dict:
        out = {}
        if stats is not None:
            # the per-image statistics the corpus BLEU came from, resampled; integer weights keep the
            # sums exact, so weights of 1 reproduce the corpus BLEU bit for bit
            for i, b in enumerate(bleu_compute(stats, w)):
                out[f"Bleu_{i + 1}"] = b
        tot = w.sum()
        for k, v in means.items():
            out[k] = float((v * w).sum() / tot) if tot else math.nan
        return out

    return n, compute


def _grounding(ps: Mapping) -> tuple[int, Callable[[np.ndarray], dict]]:
    hit = np.asarray(ps.get("hit", []), dtype=np.float64)
    rank = np.asarray(ps["hit_rank"], dtype=np.int64) if "hit_rank" in ps else None

    def compute(w: np.ndarray) -> dict:
        tot = float(w.sum())
        out = {"acc": 100.0 * float((hit * w).sum()) / tot if tot else math.nan}
        if rank is not None:
            for k in KS:
                out[f"P@{k}"] = 100.0 * float(w[(rank >= 1) & (rank <= k)].sum()) / tot if tot else math.nan
        return out

    return len(hit), compute


def confusion_from_weights(y: np.ndarray, p: np.ndarray, n_classes: int, w: np.ndarray) -> np.ndarray:
    return np.bincount(y * n_classes + p, weights=w, minlength=n_classes * n_classes).reshape(n_classes,
                                                                                             n_classes)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """accuracy, macro F1 and weighted F1 (percent) as scikit-learn computes them (zero_division=0)."""
    tp = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tot = cm.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return {"accuracy": 100.0 * float(tp.sum() / tot) if tot else math.nan,
            "f1_macro": 100.0 * float(f1.mean()),
            "f1_weighted": 100.0 * float((f1 * support).sum() / support.sum()) if support.sum() else 0.0}


def _classification(ps: Mapping) -> tuple[int, Callable[[np.ndarray], dict]]:
    y = np.asarray(ps.get("label", []), dtype=np.int64)
    p = np.asarray(ps.get("pred", []), dtype=np.int64)
    if len(y) != len(p):
        raise MMBenchError(f"classification per-sample 'label' ({len(y)}) and 'pred' ({len(p)}) differ in length")
    n_classes = int(max(ps["n_classes"])) if len(ps.get("n_classes", ()))  else int(max(y.max(initial=-1), p.max(initial=-1)) + 1)

    def compute(w: np.ndarray) -> dict:
        return scores_from_confusion(confusion_from_weights(y, p, n_classes, w))

    return len(y), compute


_PREPARE = {"retrieval": _retrieval, "captioning": _captioning, "grounding": _grounding,
            "classification": _classification}


def _prepare(task: str, per_sample: Mapping):
    if task not in _PREPARE:
        raise MMBenchError(f"unknown task {task!r}; known: {', '.join(_PREPARE)}")
    return _PREPARE[task](per_sample)


def _canonical(task: str, metric: str) -> str:
    if task == "grounding" and metric.startswith("acc@"):
        return "acc"
    return metric


#: public name: the key a metric has in ``all_metric_values`` (grounding's ``acc@T`` is ``acc``)
canonical_metric = _canonical


def all_metric_values(task: str, per_sample: Mapping) -> dict[str, float]:
    """Every corpus metric recomputable from ``per_sample`` (grounding's top-1 accuracy as ``acc``)."""
    n, fn = _prepare(task, per_sample)
    return fn(np.ones(n, dtype=np.int64))


def metric_value(task: str, metric: str, per_sample: Mapping) -> float:
    """One corpus metric recomputed from per-sample data (equals the evaluate loop's value)."""
    vals = all_metric_values(task, per_sample)
    key = _canonical(task, metric)
    if key not in vals:
        raise MMBenchError(f"metric {metric!r} cannot be recomputed from {task} per-sample data "
                           f"(recomputable: {', '.join(sorted(vals))})")
    return float(vals[key])


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


def bootstrap_cis(task: str, per_sample: Mapping, *, metrics=None, n_resamples: int = 1000, seed: int = 0,
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


def task_cis(task: str, result, *, n_resamples: int = 1000, seed: int = 0,
             confidence: float = 0.95) -> dict[str, list[float]]:
    """CIs for the metrics of a ``TaskResult`` (keys as in ``result.metrics``)."""
    cis = bootstrap_cis(task, result.per_sample, n_resamples=n_resamples, seed=seed, confidence=confidence)
    out = {}
    for name in result.metrics:
        key = _canonical(task, name)
        if key in cis:
            out[name] = cis[key]
    return out


def paired_bootstrap_many(task: str, metrics, per_sample_a: Mapping, per_sample_b: Mapping, *,
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
        k = _canonical(task, m)
        if k not in va or k not in vb:
            raise MMBenchError(f"metric {m!r} cannot be recomputed from {task} per-sample data "
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


def paired_bootstrap(task: str, metric: str, per_sample_a: Mapping, per_sample_b: Mapping, *,
                     n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired bootstrap of ``metric(b) - metric(a)`` over the same resampled units.

    Both runs' per-sample dicts must be aligned (same samples, same order). Returns
    ``{"a", "b", "delta", "ci": [lo, hi], "p_value", "n"}``; ``p_value`` is two-sided:
    twice the smaller share of resampled deltas on either side of 0 (with the +1
    correction, so it is never 0 and is 1 for identical runs).
    """
    return paired_bootstrap_many(task, [metric], per_sample_a, per_sample_b, n_resamples=n_resamples,
                                 seed=seed, confidence=confidence)[metric]
