"""Image-text retrieval metrics under the SCAN/SGRAF/VSE++ protocol.

Reference: Paranioar/SGRAF:evaluation.py (i2t, t2i), kuanghuei/SCAN:evaluation.py,
fartashf/vsepp:evaluation.py. Caption j belongs to image ``text_image[j]`` (j // 5 in
the 5-captions layout). Ranks are 0-based; R@K in percent; medr = floor(median)+1;
meanr = mean+1; rsum = sum of the six R@K.

Ties: the references use an unstable argsort, so tied scores give numpy-dependent
ranks. mmbench ranks ties pessimistically by default: every non-ground-truth item
scoring >= the ground truth counts as ahead of it (a constant-score model gets R@1
near chance, not 100). ``ties="optimistic"`` counts only strictly greater scores.
On tie-free matrices both equal the references exactly.
"""

from __future__ import annotations

import numpy as np

from mmbench.errors import MMBenchError

KS = (1, 5, 10)


def check_text_image(text_image, n_images: int, n_texts: int) -> np.ndarray:
    ti = np.asarray(text_image, dtype=np.int64).reshape(-1)
    if ti.shape[0] != n_texts:
        raise MMBenchError(f"caption-to-image index has {ti.shape[0]} entries for {n_texts} captions")
    if n_texts and (ti.min() < 0 or ti.max() >= n_images):
        raise MMBenchError(f"caption-to-image index out of range [0, {n_images}) (min {ti.min()}, max {ti.max()})")
    missing = np.setdiff1d(np.arange(n_images), ti)
    if missing.size:
        raise MMBenchError(f"{missing.size} image(s) have no caption (first: {missing[:5].tolist()}); "
                           "every image needs at least one ground-truth caption for i2t")
    return ti


def ranks_from_sims(sims: np.ndarray, text_image, ties: str = "pessimistic"):
    """Per-query 0-based ranks and tie counts from an (images, texts) similarity matrix.

    Returns ``(i2t_ranks, t2i_ranks, i2t_tied, t2i_tied)``; ``*_tied`` are the number of
    queries whose ground truth shares its score with at least one other item.
    """
    sims = np.asarray(sims)
    n_img, n_txt = sims.shape
    ti = check_text_image(text_image, n_img, n_txt)
    if ties not in ("pessimistic", "optimistic"):
        raise MMBenchError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
    cols = np.arange(n_txt)
    # t2i: for caption j, how many images score above its own image.
    gt_t = sims[ti, cols]  # (T,)
    above_t = (sims > gt_t[None, :]).sum(0)
    equal_t = (sims == gt_t[None, :]).sum(0) - 1
    t2i = above_t + (equal_t if ties == "pessimistic" else 0)
    t2i_tied = int((equal_t > 0).sum())
    # i2t: for image i, rank of its best-placed caption = (#non-gt captions ahead of the best gt).
    own = ti[None, :] == np.arange(n_img)[:, None]  # (N, T)
    best = np.where(own, sims, -np.inf).max(1)  # (N,)
    other = np.where(own, -np.inf, sims)
    above_i = (other > best[:, None]).sum(1)
    equal_i = (other == best[:, None]).sum(1)
    # ties between several of the image's own captions do not matter: any of them is a hit.
    i2t = above_i + (equal_i if ties == "pessimistic" else 0)
    i2t_tied = int((equal_i > 0).sum())
    return i2t.astype(np.int64), t2i.astype(np.int64), i2t_tied, t2i_tied


def summarize(i2t_ranks, t2i_ranks, ks=KS) -> dict[str, float]:
    """R@K, medr, meanr for both directions and rsum, from 0-based ranks."""
    out: dict[str, float] = {}
    for d, r in (("i2t", np.asarray(i2t_ranks)), ("t2i", np.asarray(t2i_ranks))):
        for k in ks:
            out[f"{d}.R@{k}"] = 100.0 * float((r < k).sum()) / len(r)
        out[f"{d}.medr"] = float(np.floor(np.median(r)) + 1)
        out[f"{d}.meanr"] = float(r.mean() + 1)
    out["rsum"] = sum(out[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def fold_slices(n_images: int, text_image: np.ndarray, n_folds: int):
    """Image and text index ranges of the COCO 1K protocol's folds (contiguous blocks)."""
    if n_images % n_folds:
        raise MMBenchError(f"{n_images} images cannot be split into {n_folds} equal folds")
    size = n_images // n_folds
    out = []
    for f in range(n_folds):
        lo, hi = f * size, (f + 1) * size
        t_idx = np.nonzero((text_image >= lo) & (text_image < hi))[0]
        out.append((lo, hi, t_idx))
    return out


def retrieval_metrics(sims: np.ndarray, text_image, *, folds: int = 1, ties: str = "pessimistic") -> dict:
    """All retrieval metrics from a similarity matrix.

    ``folds > 1``: the COCO 1K protocol: contiguous image folds, each metric the mean
    over folds, rsum the sum of the mean R@K values (the references print a wrong rsum
    in fold mode: kuanghuei/SCAN issue 23, fartashf/vsepp PR 43).
    Returns ``{"metrics", "i2t_ranks", "t2i_ranks", "i2t_tied", "t2i_tied"}`` where
    ranks are per-query (within-fold ranks in fold mode).
    """
    sims = np.asarray(sims)
    ti = check_text_image(text_image, *sims.shape)
    if folds == 1:
        i2t, t2i, ti_tied, tt_tied = ranks_from_sims(sims, ti, ties)
        return {"metrics": summarize(i2t, t2i), "i2t_ranks": i2t, "t2i_ranks": t2i,
                "i2t_tied": ti_tied, "t2i_tied": tt_tied}
    i2t_all = np.empty(sims.shape[0], np.int64)
    t2i_all = np.empty(sims.shape[1], np.int64)
    fold_metrics = []
    tied = [0, 0]
    for lo, hi, t_idx in fold_slices(sims.shape[0], ti, folds):
        i2t, t2i, a, b = ranks_from_sims(sims[lo:hi][:, t_idx], ti[t_idx] - lo, ties)
        i2t_all[lo:hi], t2i_all[t_idx] = i2t, t2i
        tied[0] += a
        tied[1] += b
        fold_metrics.append(summarize(i2t, t2i))
    metrics = {k: float(np.mean([m[k] for m in fold_metrics])) for k in fold_metrics[0] if k != "rsum"}
    metrics["rsum"] = sum(metrics[f"{d}.R@{k}"] for d in ("i2t", "t2i") for k in KS)
    return {"metrics": metrics, "i2t_ranks": i2t_all, "t2i_ranks": t2i_all,
            "i2t_tied": tied[0], "t2i_tied": tied[1]}
