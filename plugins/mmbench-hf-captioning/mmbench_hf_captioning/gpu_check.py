"""GPU validation of the BLIP / GIT captioners: ``device=cuda`` in fp32, fp16 and bf16, with images/s.

One command, a few minutes at most on any CUDA GPU (the shipped demo checkpoints, or your own)::

    python -m mmbench_hf_captioning.gpu_check [--blip PATH] [--git PATH] [--images 200]

For each model and precision it captions the demo test images, prints images/s (CPU fp32 too, for
comparison) and how many captions equal the CPU fp32 ones (fp32 on CUDA should agree on nearly
all; fp16/bf16 may change a few beams). Exit code 1 when CUDA is missing or a run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _rate(cap, images, batch):
    cap.generate(images[:batch])  # warm-up (CUDA context, kernels)
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(images), batch):
        out.extend(cap.generate(images[i:i + batch]))
    return out, len(images) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    import torch

    from mmbench.plugins import Registry
    from mmbench_hf_captioning import models

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blip", default=None, help="BLIP folder (default: the demo BLIP)")
    ap.add_argument("--git", default=None, help="GIT folder (default: the demo GIT)")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to validate", file=sys.stderr)
        return 1
    images = Registry(entry_points=False).dataset("demo").load("captioning", "test").images[:args.images]
    report, ok = {}, True
    for kind, path in (("blip", args.blip), ("git", args.git)):
        build = getattr(models, f"build_{kind}")
        ref, cpu_rate = _rate(build(model=path, device="cpu"), images, args.batch_size)
        report[f"{kind}/cpu/fp32"] = {"images_per_s": round(cpu_rate, 1)}
        for precision in ("fp32", "fp16", "bf16"):
            try:
                caps, rate = _rate(build(model=path, device="cuda", precision=precision), images, args.batch_size)
            except Exception as exc:  # report and go on with the next setting
                ok = False
                report[f"{kind}/cuda/{precision}"] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            same = sum(a == b for a, b in zip(caps, ref))
            report[f"{kind}/cuda/{precision}"] = {"images_per_s": round(rate, 1), "same_as_cpu_fp32": same,
                                                  "images": len(images), "empty": sum(not c for c in caps)}
            ok &= all(caps) and (precision != "fp32" or same >= 0.95 * len(images))
    report["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
