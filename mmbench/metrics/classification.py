"""Classification metrics: accuracy, macro / weighted F1, per-class precision / recall / F1, confusion matrix.

One definition, from the (weighted) confusion matrix: the evaluate loop (weights None), bootstrap
resamples and paired tests all call :func:`compute`. It equals scikit-learn's ``accuracy_score``
and ``f1_score(average="macro" | "weighted", zero_division=0)`` over ``labels=range(n_classes)``
(classes absent from both labels and predictions count with F1 0 in the macro mean, as there);
the tests pin it against scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np

from mmbench.errors import MMBenchError


def confusion(y_true, y_pred, n_classes: int, weights=None) -> np.ndarray:
    """(n_classes, n_classes) confusion matrix, rows = true class; sample i counted ``weights[i]`` times."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    cm = np.bincount(y * n_classes + p, weights=w, minlength=n_classes * n_classes)
    return cm.reshape(n_classes, n_classes)


def _f1(cm: np.ndarray):
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), 0.0)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return tp, support, precision, recall, f1


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """accuracy, macro F1 and weighted F1 in percent (scikit-learn's definitions, zero_division=0)."""
    tp, support, _, _, f1 = _f1(cm)
    tot = cm.sum()
    return {"accuracy": 100.0 * float(tp.sum() / tot) if tot else math.nan,
            "f1_macro": 100.0 * float(f1.mean()),
            "f1_weighted": 100.0 * float((f1 * support).sum() / support.sum()) if support.sum() else 0.0}


def unit_stats(per_sample) -> tuple[int, dict]:
    """(samples, statistics) from per-sample ``label`` and ``pred`` (and ``n_classes``)."""
    y = np.asarray(per_sample.get("label", []), dtype=np.int64)
    p = np.asarray(per_sample.get("pred", []), dtype=np.int64)
    if len(y) != len(p):
        raise MMBenchError(f"classification per-sample 'label' ({len(y)}) and 'pred' ({len(p)}) differ in length")
    nc = per_sample.get("n_classes") or ()
    n_classes = int(max(nc)) if len(nc) else int(max(y.max(initial=-1), p.max(initial=-1)) + 1)
    return len(y), {"label": y, "pred": p, "n_classes": n_classes}


def compute(stats: dict, weights=None) -> dict[str, float]:
    """accuracy, f1_macro, f1_weighted (percent), sample i counted ``weights[i]`` times (None: once)."""
    return scores_from_confusion(confusion(stats["label"], stats["pred"], stats["n_classes"], weights))


def classification_metrics(y_true, y_pred, n_classes: int, class_names=None) -> dict:
    """Metrics, per-class precision / recall / F1 / support and the confusion matrix."""
    cm = confusion(y_true, y_pred, n_classes)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    _, support, precision, recall, f1 = _f1(cm)
    per_class = {names[i]: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])} for i in range(n_classes)}
    _, stats = unit_stats({"label": y_true, "pred": y_pred, "n_classes": [n_classes]})
    return {"metrics": compute(stats), "per_class": per_class, "confusion_matrix": cm.astype(np.int64).tolist()}
