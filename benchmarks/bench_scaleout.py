"""Scale-out figures (issue 15), each in one run on the same inputs:

    python benchmarks/bench_scaleout.py workers   # wall time of 1 vs 2 torchrun ranks on one SGRAF job
    python benchmarks/bench_scaleout.py cache     # a repeated run with --cache: all shards hit
    python benchmarks/bench_scaleout.py shard     # per-shard figures for the paper estimates

``workers`` runs ``mmbench eval -p sgraf -d demo`` (the shipped demo SGRAF, 200 images x 1000 captions,
one thread per process) once with the local executor and once under ``torchrun --nproc-per-node 2
--executor torch`` (gloo), and checks that both records hold the same metrics and ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = ["-p", "sgraf", "-d", "demo", "--bootstrap", "0", "--no-progress", "--batch-size", "16"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(args: list[str], out: Path, *, ranks: int = 0) -> tuple[float, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port",
               str(_port()), "-m", "mmbench.cli", "eval", *args, "--executor", "torch"]
    else:
        cmd = [sys.executable, "-m", "mmbench.cli", "eval", *args]
    t0 = time.perf_counter()
    subprocess.run(cmd + ["--out", str(out)], check=True, capture_output=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    (rec,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    return wall, rec


def bench_workers() -> dict:
    with tempfile.TemporaryDirectory() as d:
        t1, r1 = _eval(JOB, Path(d) / "one")
        t2, r2 = _eval(JOB, Path(d) / "two", ranks=2)
    same = r1["metrics"] == r2["metrics"] and r1["per_sample"] == r2["per_sample"]
    return {"benchmark": "sgraf on demo test (200 x 1000 pairs scored), 1 process vs torchrun 2 ranks (gloo), "
                         "1 thread each", "one_process_s": round(t1, 2), "two_ranks_s": round(t2, 2),
            "speedup": round(t1 / t2, 2), "records_identical": same, "rsum": r1["metrics"]["rsum"],
            "score_seconds_one_process": round(r1["timings"].get("eval.score", 0.0), 2),
            "shards": r2["execution"]["shards"], "load_average": os.getloadavg()}


def bench_cache() -> dict:
    with tempfile.TemporaryDirectory() as d:
        args = JOB + ["--cache", str(Path(d) / "cache")]
        t1, r1 = _eval(args, Path(d) / "first")
        t2, r2 = _eval(args, Path(d) / "second")
    same = r1["metrics"] == r2["metrics"] and r1["per_sample"] == r2["per_sample"]
    return {"benchmark": "sgraf on demo test with --cache: first run vs the same command again",
            "first_s": round(t1, 2), "repeat_s": round(t2, 2), "speedup": round(t1 / t2, 2),
            "records_identical": same, "first_cache": r1["execution"]["cache"], "repeat_cache": r2["execution"]["cache"],
            "load_average": os.getloadavg()}


def bench_shard() -> dict:
    """Per-shard throughput of the two stages the estimates need, on this CPU (one thread)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from mmbench.metrics.retrieval import EmbeddingBlocks, _RankCounter

    # counting: one 1024-row block (the sharded unit) against 5120 captions, 512-d (CLIP ViT-B)
    rng = np.random.default_rng(0)
    img = rng.standard_normal((1024, 512), dtype=np.float32)
    txt = rng.standard_normal((5120, 512), dtype=np.float32)
    ti = np.arange(5120) // 5
    plan = EmbeddingBlocks(1024, 5120, 512, ti)
    gt = plan.all_gt([plan.gt_scores(img, txt, 0)])
    counter = _RankCounter(plan.ti, 1024, gt)
    t0 = time.perf_counter()
    plan.count(counter, img, txt, [0])
    t_block = time.perf_counter() - t0
    # SGRAF scoring throughput of the published model size (bench_sgraf_scoring measures it in detail)
    return {"benchmark": "per-shard figures (1 CPU thread)",
            "count_block_1024x5120x512_s": round(t_block, 4),
            "matmul_and_count_pairs_per_s": round(1024 * 5120 / t_block),
            "note": "SGRAF pairs/s per CPU thread: benchmarks/bench_sgraf_scoring.py (1,973 pairs/s, 1 thread)"}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "workers"
    fn = {"workers": bench_workers, "cache": bench_cache, "shard": bench_shard}[which]
    print(json.dumps(fn(), indent=2))
