"""Retrieval metric benchmarks (this machine). Prints JSON.

    python benchmarks/bench_retrieval.py ranking [--repeats 7] [--threads N]
        5000 x 25000 sims: SGRAF-style loops vs mmbench, in one process
    python benchmarks/bench_retrieval.py embeddings   # COCO 5K from 1024-d embeddings vs the bare matmul
    python benchmarks/bench_retrieval.py large        # 100k images x 500k captions, 256-d: time + peak RSS

The reference loops follow Paranioar/SGRAF:evaluation.py i2t/t2i (argsort per query, find the
ground truth's position), re-written here for timing; the ratio is against them on the same matrix.

``ranking`` times the reference once (5000 + 25000 sorts: it averages over the machine's load by
itself) and mmbench ``--repeats`` times after it (about 0.05 s a call: one unlucky scheduling slice
on a shared machine doubles a single timing). ``speedup`` is the reference over mmbench's median;
the first call and every call are listed too, beside the one-minute load average, the CPU time and
"the floor": one plain pass over the same matrix (``np.add.reduce`` / ``torch.sum``), which no
counting can beat. ``--threads N`` caps mmbench's counting threads (default: the usable cores).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, ".")

from mmbench.metrics import retrieval as _retrieval  # noqa: E402
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


def _timed(fn, repeats: int):
    """(first result, wall seconds of every call, CPU seconds of every call)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        out = res if out is None else out
    return out, walls, cpus


def bench_ranking(repeats: int = 7, threads: int | None = None):
    if threads is not None:
        _retrieval._MAX_THREADS = max(1, threads)
    img, txt = embeddings(5000, 256)
    sims = img @ txt.T
    ti = np.arange(25000) // 5
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    ref_i2t, ref_t2i = sgraf_loops(sims)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    res, walls, cpus = _timed(lambda: retrieval_metrics(sims, ti), repeats)
    _, floor_np, floor_np_cpu = _timed(lambda: np.add.reduce(sims, axis=None), repeats)
    import torch

    t = torch.from_numpy(sims)
    _, floor_torch, _ = _timed(lambda: t.sum(), repeats)
    same = bool((res["i2t_ranks"] == ref_i2t).all() and (res["t2i_ranks"] == ref_t2i).all())
    med = statistics.median(walls)
    return {"benchmark": "rank 5000 x 25000 similarity matrix", "load_avg_1min": [load_before, os.getloadavg()[0]],
            "counting_threads": _retrieval._default_threads(),
            "reference_loops_s": t_ref, "reference_cpu_s": c_ref,
            "mmbench_s": med, "mmbench_first_s": walls[0], "mmbench_runs_s": walls,
            "mmbench_cpu_s": statistics.median(cpus),
            "speedup": t_ref / med, "speedup_first_call": t_ref / walls[0],
            "floor_np_add_reduce_s": statistics.median(floor_np), "floor_torch_sum_s": statistics.median(floor_torch),
            "floor_np_add_reduce_cpu_s": statistics.median(floor_np_cpu),
            "mmbench_over_floor": med / statistics.median(floor_np),
            "mmbench_over_floor_cpu": statistics.median(cpus) / statistics.median(floor_np_cpu),
            "ranks_identical": same, "tied_queries": [res["i2t_tied"], res["t2i_tied"]]}


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
    kwargs = {}
    args = sys.argv[2:]
    for flag, key in (("--repeats", "repeats"), ("--threads", "threads")):
        if flag in args:
            kwargs[key] = int(args[args.index(flag) + 1])
    print(json.dumps(fn(**kwargs), indent=2))
