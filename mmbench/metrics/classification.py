"""Classification metrics (scikit-learn): accuracy, macro/weighted F1, per-class P/R, confusion matrix."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true, y_pred, n_classes: int, class_names=None) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(n_classes))
    names = list(class_names) if class_names is not None else [str(i) for i in labels]
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    metrics = {
        "accuracy": 100.0 * float(accuracy_score(y_true, y_pred)),
        "f1_macro": 100.0 * float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": 100.0 * float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
    }
    per_class = {names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(support[i])} for i in labels}
    return {"metrics": metrics, "per_class": per_class,
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}
