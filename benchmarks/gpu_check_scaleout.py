"""GPU check of the torch executor's nccl path (issue 15): run it on a machine with CUDA.

    python benchmarks/gpu_check_scaleout.py            # every visible GPU as one rank (1 GPU: 1 rank)

NCCL refuses two ranks on one device, so the job uses one rank per visible GPU. It runs the shipped demo
CLIP (`-o device=cuda`) and SGRAF on the demo data, once in one process and once under
`torchrun --executor torch --dist-backend nccl`, and checks that the records hold identical metrics and
ranks. It also runs gloo with 2 ranks on the same GPU for comparison, and prints the wall times as JSON.
Takes a few minutes.
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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, out: Path, ranks: int = 0, backend: str = "nccl") -> tuple[float, dict]:
    base = ["-m", "mmbench.cli", "eval", *args, "--out", str(out), "--bootstrap", "0", "--no-progress"]
    if ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port",
               str(_port()), *base, "--executor", "torch", "--dist-backend", backend]
    else:
        cmd = [sys.executable, *base]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return wall, {"error": (r.stdout + r.stderr)[-2000:]}
    recs = {json.loads(p.read_text())["plugin"]["name"]: json.loads(p.read_text()) for p in out.glob("*.json")}
    return wall, recs


def main() -> None:
    import torch

    n_gpu = torch.cuda.device_count()
    report: dict = {"gpus": n_gpu, "device": torch.cuda.get_device_name(0) if n_gpu else None}
    if not n_gpu:
        report["error"] = "no CUDA device"
        print(json.dumps(report, indent=2))
        return
    job = ["-p", "clip", "-p", "sgraf", "-d", "demo", "-o", "device=cuda", "--batch-size", "32"]
    with tempfile.TemporaryDirectory() as d:
        t1, single = _run(job, Path(d) / "single")
        tn, nccl = _run(job, Path(d) / "nccl", ranks=n_gpu, backend="nccl")
        tg, gloo = _run(job, Path(d) / "gloo", ranks=2, backend="gloo")
    report["wall_s"] = {"single": round(t1, 1), f"nccl_{n_gpu}_ranks": round(tn, 1), "gloo_2_ranks": round(tg, 1)}
    for name, recs in (("nccl", nccl), ("gloo", gloo)):
        if "error" in recs or "error" in single:
            report[name] = recs.get("error") or single.get("error")
            continue
        report[name] = {p: {"identical": recs[p]["metrics"] == single[p]["metrics"]
                            and recs[p]["per_sample"] == single[p]["per_sample"],
                            "rsum": recs[p]["metrics"].get("rsum"), "execution": recs[p]["execution"]}
                        for p in single}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
