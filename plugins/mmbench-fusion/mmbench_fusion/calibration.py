"""Expected calibration error (Guo et al. 2017): equal-width confidence bins over (0, 1].

ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|, confidence = max class
probability; bin b holds confidences in (b/M, (b+1)/M] (the first bin also takes 0).
"""

from __future__ import annotations

import numpy as np


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.sum() / len(labels) * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
