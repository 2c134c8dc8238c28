"""GPU validation of the captioning plugins: blip, git, blip2, aoanet and sat on ``device=cuda`` in fp32, fp16 and bf16.

One command, well under 5 minutes on any CUDA GPU (the shipped demo checkpoints; demo test images)::

    python plugins/mmbench-hf-captioning/scripts/gpu_check.py              # cuda: fp32 / fp16 / bf16
    python plugins/mmbench-hf-captioning/scripts/gpu_check.py --device cpu # smoke test of the same path (fp32)

For every plugin it first captions the images on the CPU in fp32 (the reference), then on the requested
device in each precision, and prints one line per (plugin, device, precision): images/s (after one
warm-up batch) and how many captions equal the CPU fp32 ones. fp32 on CUDA must agree on >= 95 % of the
images (beam ties can flip on other kernels); fp16/bf16 only have to give non-empty captions. A JSON
summary is printed last. Exit code 1 when CUDA was asked for and is missing, or a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _rate(cap, images, batch):
    cap.generate(images[:batch])  # warm-up (CUDA context, kernels, cudnn autotune)
    sync = _sync()
    sync()
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(images), batch):
        out.extend(cap.generate(images[i:i + batch]))
    sync()
    return out, len(images) / (time.perf_counter() - t0)


def _sync():
    import torch

    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)


def _builders():
    from mmbench_aoanet.captioner import build as aoanet
    from mmbench_hf_captioning.models import build_blip, build_blip2, build_git
    from mmbench_sat.captioner import build as sat

    return {"blip": build_blip, "git": build_git, "blip2": build_blip2, "aoanet": aoanet, "sat": sat}


def main(argv=None) -> int:
    import torch

    from mmbench.datasets.demo import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (smoke test: fp32 only)")
    ap.add_argument("--plugins", default="blip,git,blip2,aoanet,sat")
    ap.add_argument("--images", type=int, default=None, help="test images (default 200 on cuda, 16 on cpu)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 50 on cuda, 8 on cpu")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("CUDA is not available: nothing to validate (use --device cpu for the smoke test)", file=sys.stderr)
        return 1
    if not cuda:
        torch.set_num_threads(1)
    n = args.images or (200 if cuda else 16)
    batch = args.batch_size or (50 if cuda else 8)
    images = load("captioning", "test").images[:n]
    precisions = ("fp32", "fp16", "bf16") if cuda else ("fp32",)
    builders = _builders()
    report, ok = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "images": len(images)}, True
    for name in [p.strip() for p in args.plugins.split(",") if p.strip()]:
        build = builders[name]
        t0 = time.perf_counter()
        ref, cpu_rate = _rate(build(device="cpu"), images, batch)
        report[f"{name}/cpu/fp32"] = {"images_per_s": round(cpu_rate, 1), "empty": sum(not c for c in ref)}
        print(f"{name:7s} cpu    fp32  {cpu_rate:8.1f} images/s  (reference, built+run in "
              f"{time.perf_counter() - t0:.1f}s)", flush=True)
        ok &= all(ref)
        if not cuda:
            continue
        for precision in precisions:
            try:
                caps, rate = _rate(build(device=args.device, precision=precision), images, batch)
            except Exception as exc:  # report and go on with the next setting
                ok = False
                report[f"{name}/{args.device}/{precision}"] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"{name:7s} {args.device:6s} {precision}  FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            same = sum(a == b for a, b in zip(caps, ref))
            report[f"{name}/{args.device}/{precision}"] = {"images_per_s": round(rate, 1), "same_as_cpu_fp32": same,
                                                           "empty": sum(not c for c in caps)}
            print(f"{name:7s} {args.device:6s} {precision}  {rate:8.1f} images/s  same as cpu fp32: "
                  f"{same}/{len(images)}", flush=True)
            ok &= all(caps) and (precision != "fp32" or same >= 0.95 * len(images))
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
