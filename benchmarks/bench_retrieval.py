"""Retrieval metric benchmarks (one run each, this machine). Prints JSON.

    python benchmarks/bench_retrieval.py ranking      # 5000 x 25000 sims: SGRAF-style loops vs mmbench
    python benchmarks/bench_retrieval.py embeddings   # COCO 5K from 1024-d embeddings vs the bare matmul
    python benchmarks/bench_retrieval.py large        # 100k images x 500k captions, 256-d: time + peak RSS

The reference loops follow Paranioar/SGRAF:evaluation.py i2t/t2i (argsort per query, find the
ground truth's position), re-written here for timing; the ratio is against them on the same matrix.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

sys.path.insert(0, ".")

from mmbench.metrics.retrieval import retrieval_metrics, retrieval_metrics_from_embeddings  # noqa: E402


def embeddings(n_img: int, dim: int, seed: int = 0, noise: float = 1.0):
    """A model-like pair: captions are noisy copies of their image, all L2-normalised."""
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((n_img, dim), dtype=np.float32)
    txt = np.repeat(img, 5, 0)
    txt += noise * rng.standard_normal(txt.shape, dtype=np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    return img, txt


def sgraf_loops(sims: np.ndarray):
    npts = sims.shape[0]
    i2t = np.zeros(npts)
    for index in range(npts):
        inds = np.argsort(sims[index])[::-1]
        rank = 1e20
        for i in range(5 * index, 5 * index + 5):
            tmp = np.where(inds == i)[0][0]
            rank = min(rank, tmp)
        i2t[index] = rank
    st = sims.T
    t2i = np.zeros(5 * npts)
    for index in range(npts):
        for i in range(5):
            inds = np.argsort(st[5 * index + i])[::-1]
            t2i[5 * index + i] = np.where(inds == index)[0][0]
    return i2t, t2i


def bench_ranking():
    img, txt = embeddings(5000, 256)
    sims = img @ txt.T
    ti = np.arange(25000) // 5
    t0 = time.perf_counter()
    ref_i2t, ref_t2i = sgraf_loops(sims)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = retrieval_metrics(sims, ti)
    t_ours = time.perf_counter() - t0
    same = bool((res["i2t_ranks"] == ref_i2t).all() and (res["t2i_ranks"] == ref_t2i).all())
    return {"benchmark": "rank 5000 x 25000 similarity matrix", "reference_loops_s": t_ref, "mmbench_s": t_ours,
            "speedup": t_ref / t_ours, "ranks_identical": same, "tied_queries": [res["i2t_tied"], res["t2i_tied"]]}


def bench_embeddings(dim: int = 1024):
    img, txt = embeddings(5000, dim, seed=1, noise=8.0)  # noisy enough for non-trivial ranks
    ti = np.arange(25000) // 5
    img @ txt[:100].T  # warm BLAS threads
    t0 = time.perf_counter()
    sims = img @ txt.T
    t_mm = time.perf_counter() - t0
    del sims
    t0 = time.perf_counter()
    res = retrieval_metrics_from_embeddings(img, txt, ti)
    t_all = time.perf_counter() - t0
    return {"benchmark": f"COCO 5K from {dim}-d embeddings to all metrics", "bare_matmul_s": t_mm,
            "mmbench_s": t_all, "ratio": t_all / t_mm, "rsum": res["metrics"]["rsum"]}


def bench_large(n_img: int = 100_000, dim: int = 256, budget_mb: float = 512):
    img, txt = embeddings(n_img, dim, seed=2, noise=1.5)
    ti = np.arange(5 * n_img) // 5
    t0 = time.perf_counter()
    res = retrieval_metrics_from_embeddings(img, txt, ti, memory_budget_mb=budget_mb)
    t = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    return {"benchmark": f"{n_img} images x {5 * n_img} captions from {dim}-d embeddings",
            "seconds": t, "peak_rss_gb": peak_gb, "memory_budget_mb": budget_mb,
            "metrics": {k: res["metrics"][k] for k in ("i2t.R@1", "t2i.R@1", "rsum")}}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "ranking"
    fn = {"ranking": bench_ranking, "embeddings": bench_embeddings, "large": bench_large}[which]
    print(json.dumps(fn(), indent=2))
