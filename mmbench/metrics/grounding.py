"""Grounding metrics: box conversion and validation, IoU conventions, Acc@IoU and Precision@K.

Conventions (recorded with every result):
- ``continuous`` (default): x2 = x + w, area = w * h.
- ``inclusive``: MAttNet's inclusive pixels (lichengunc/MAttNet:lib/utils/... computeIoU):
  x2 = x + w - 1, intersection and areas with +1 on each side.
- ``giou``: MDETR thresholds the generalised IoU (ashkamath/mdetr:datasets/refexp.py).
- ``plus1``: ViLBERT's refer IoU: +1 on each side of the xyxy boxes as given, no shift
  (facebookresearch/vilbert-multi-task:vilbert/datasets/refer_expression_dataset.py ``iou``); with the task
  option ``strict`` (IoU > threshold, vilbert/task_utils.py) it is the official hit rule.
"""

from __future__ import annotations

import math

import numpy as np

from mmbench.errors import MMBenchError

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
IOU_CONVENTIONS = ("continuous", "inclusive", "giou", "plus1")


def to_xyxy(boxes, fmt: str = "xyxy", *, normalized: bool = False, size=None) -> np.ndarray:
    """Convert (K, 4) boxes in ``fmt`` (pixels, or [0, 1] when ``normalized``) to pixel xyxy."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if fmt not in BOX_FORMATS:
        raise MMBenchError(f"unknown box format {fmt!r}; known: {', '.join(BOX_FORMATS)}")
    if fmt == "xywh":
        b = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], 1)
    elif fmt == "cxcywh":
        b = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                      b[:, 1] + b[:, 3] / 2], 1)
    if normalized:
        if size is None:
            raise MMBenchError("normalised boxes need the image size (width, height)")
        w, h = size
        b = b * np.array([w, h, w, h], dtype=np.float64)
    return b


def box_problems(b: np.ndarray, size=None, tol: float = 0.05) -> list[str]:
    """Why each xyxy box is impossible ('' when fine): NaN, negative size, outside the image."""
    out = []
    for x1, y1, x2, y2 in np.asarray(b, dtype=np.float64).reshape(-1, 4):
        if not np.isfinite([x1, y1, x2, y2]).all():
            out.append("non-finite coordinate")
        elif x2 < x1 or y2 < y1:
            out.append("negative width or height")
        elif size is not None and (x1 < -tol * size[0] or y1 < -tol * size[1] or x2 > (1 + tol) * size[0]
                                   or y2 > (1 + tol) * size[1]):
            out.append(f"outside the {size[0]}x{size[1]} image by more than {tol:.0%}")
        else:
            out.append("")
    return out


def iou(a, b, convention: str = "continuous") -> np.ndarray:
    """Pairwise IoU (or GIoU) between xyxy boxes a (M, 4) and b (N, 4) -> (M, N)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if convention not in IOU_CONVENTIONS:
        raise MMBenchError(f"unknown IoU convention {convention!r}; known: {', '.join(IOU_CONVENTIONS)}")
    one = 1.0 if convention in ("inclusive", "plus1") else 0.0
    if convention == "inclusive":  # boxes given as x, y, x+w, y+h: inclusive last pixel is x+w-1
        a = a - np.array([0, 0, 1, 1])
        b = b - np.array([0, 0, 1, 1])
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one, 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one, 0, None)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    if convention == "giou":
        cw = np.maximum(a[:, None, 2], b[None, :, 2]) - np.minimum(a[:, None, 0], b[None, :, 0])
        ch = np.maximum(a[:, None, 3], b[None, :, 3]) - np.minimum(a[:, None, 1], b[None, :, 1])
        hull = cw * ch
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out - np.where(hull > 0, (hull - union) / hull, 0.0)
    return out


def scores_outside(outside: str, convention: str) -> bool:
    """Whether the task option ``outside`` (auto | miss | score) scores boxes outside the image as they are
    (``auto``: only under ``giou``, as MDETR's RefExpEvaluator does)."""
    return outside == "score" or (outside == "auto" and convention == "giou")


def grounding_metrics(preds: list, gts: list, *, threshold: float = 0.5, convention: str = "continuous",
                      strict: bool = False, ks=(1, 5, 10), sizes=None, score_outside: bool | None = None) -> dict:
    """Acc@IoU (top-1) and Precision@K over samples.

    ``preds[i]``: (K_i, 4) ranked xyxy pixel boxes; ``gts[i]``: (G_i, 4) xyxy ground truth
    (a hit on any of them counts). Impossible predicted boxes (non-finite, negative size, and unless
    ``score_outside`` more than 5% outside the image) are failures, counted in ``invalid`` with reasons;
    a sample with no valid box at rank <= K misses at K. ``score_outside`` (default: only under
    ``giou``) scores boxes outside the image as they are, as MDETR's RefExpEvaluator and
    Flickr30k Entities evaluator do (ashkamath/mdetr:datasets/refexp.py, datasets/flickr_eval.py: the
    post-processed boxes are never clamped).
    """
    if score_outside is None:
        score_outside = scores_outside("auto", convention)
    n = len(preds)
    hits = np.zeros((n, max(ks)), dtype=bool)
    invalid = 0
    reasons: dict[str, int] = {}
    for i, (p, g) in enumerate(zip(preds, gts)):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 4)
        if p.shape[0] == 0:
            invalid += 1
            reasons["no box returned"] = reasons.get("no box returned", 0) + 1
            continue
        # score_outside: a box outside the image is scored as it is (MDETR's evaluators rank and score the
        # unclamped boxes; ashkamath/mdetr:datasets/refexp.py generalized_box_iou only asserts x1 >= x0)
        size = None if sizes is None or score_outside else sizes[i]
        probs = box_problems(p[:max(ks)], size)
        if probs[0]:
            invalid += 1
            reasons[probs[0]] = reasons.get(probs[0], 0) + 1
        ok = np.array([not r for r in probs])
        ious = iou(p[:max(ks)], g, convention).max(1) if len(g) else np.zeros(len(probs))
        # strict: IoU > threshold, as ViLBERT's refer evaluation (facebookresearch/vilbert-multi-task:
        # vilbert/task_utils.py, `iou > 0.5` on +1-pixel boxes: convention inclusive)
        h = ((ious > threshold) if strict else (ious >= threshold)) & ok
        hits[i, :len(h)] = h
    any_hit = hits.any(1)
    hit_rank = np.where(any_hit, hits.argmax(1) + 1, 0)  # 1-based rank of the first hit, 0 = none
    _, stats = unit_stats({"hit": hits[:, 0].astype(int), "hit_rank": hit_rank})
    vals = compute(stats, ks=ks)
    metrics = {f"acc@{threshold:g}": vals["acc"] if n else 0.0}
    metrics.update({f"P@{k}": vals[f"P@{k}"] if n else 0.0 for k in ks})
    return {"metrics": metrics, "hit": hits[:, 0].astype(int).tolist(), "hit_rank": hit_rank.tolist(),
            "invalid": invalid, "invalid_reasons": reasons, "threshold": threshold, "convention": convention}


def by_category(hit, hit_rank, categories, ks=(1, 5, 10)) -> dict[str, dict[str, float]]:
    """Top-1 accuracy and P@K per category: a sample counts in each of its categories (Flickr30k Entities phrase
    types, as ashkamath/mdetr:datasets/flickr_eval.py RecallTracker counts them: once per listed type, so a type
    listed twice counts the phrase twice), plus the count ``n``."""
    groups: dict[str, list[int]] = {}
    for i, cats in enumerate(categories):
        for c in cats:
            groups.setdefault(c, []).append(i)
    hit, rank = np.asarray(hit, dtype=np.float64), np.asarray(hit_rank, dtype=np.int64)
    out = {}
    for c in sorted(groups):
        idx = np.asarray(groups[c])
        vals = compute({"hit": hit[idx], "hit_rank": rank[idx]}, ks=ks)
        out[c] = {"n": len(idx), **vals}
    return out


def unit_stats(per_sample) -> tuple[int, dict]:
    """(samples, statistics) from per-sample ``hit`` (top-1 hit, 0/1) and ``hit_rank`` (1-based rank
    of the first hit in the top 10, 0 when none)."""
    hit = np.asarray(per_sample.get("hit", []), dtype=np.float64)
    rank = np.asarray(per_sample["hit_rank"], dtype=np.int64) if "hit_rank" in per_sample else None
    if rank is not None and len(rank) != len(hit):
        raise MMBenchError(f"grounding per-sample 'hit' ({len(hit)}) and 'hit_rank' ({len(rank)}) differ in length")
    return len(hit), {"hit": hit, "hit_rank": rank}


def compute(stats: dict, weights=None, ks=(1, 5, 10)) -> dict[str, float]:
    """Top-1 accuracy (``acc``, reported as ``acc@<threshold>``) and Precision@K, in percent, sample i
    counted ``weights[i]`` times (None: once). The one definition of these metrics."""
    hit, rank = stats["hit"], stats["hit_rank"]
    w = np.ones(len(hit), dtype=np.int64) if weights is None else np.asarray(weights)
    tot = float(w.sum())
    out = {"acc": 100.0 * float((hit * w).sum()) / tot if tot else math.nan}
    if rank is not None:
        for k in ks:
            out[f"P@{k}"] = 100.0 * float(w[(rank >= 1) & (rank <= k)].sum()) / tot if tot else math.nan
    return out
