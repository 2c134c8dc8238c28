"""MDETR grounding throughput (one run, this machine). Prints JSON.

    python benchmarks/bench_mdetr.py [--device cpu|cuda] [--precision fp32|fp16|bf16] [--n 8] [--batch-size 1]

Without --checkpoint it uses the official-format ResNet-18 parity checkpoint of
../shared/parity/mdetr_refexp (real COCO images, 800-px official preprocessing) when present,
else the shipped demo model on demo images. Reports images/s of ``predict`` (preprocessing,
tokenisation, forward, PostProcess and ranking included) after one warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, ".")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "parity" / "mdetr_refexp"


def samples_and_options(args):
    from mmbench.tasks.base import ImageItem
    from mmbench.tasks.grounding import GroundingSample
    import numpy as np

    if args.checkpoint:
        opts = {"checkpoint": args.checkpoint, **({"text_encoder": args.text_encoder} if args.text_encoder else {})}
    elif SHARED.is_dir():
        opts = {"checkpoint": str(SHARED / "checkpoint.pth"), "text_encoder": str(SHARED / "tiny_roberta")}
    else:
        opts = {}
    if SHARED.is_dir():
        ann = json.loads((SHARED / "mdetr_annotations" / "finetune_refcoco_val.json").read_text())
        base = [GroundingSample(id=str(im["id"]), expression=im["caption"], boxes=np.zeros((1, 4)),
                                image=ImageItem(id=str(im["id"]), path=SHARED / "coco" / "train2014" / im["file_name"]))
                for im in ann["images"]]
        what = "mdetr_refexp parity images (COCO, 800 px)"
    else:
        from mmbench.datasets.demo import load

        base, what = load("grounding", "test").samples, "demo images (96 px -> 800 px)"
    out = [base[i % len(base)] for i in range(args.n)]
    return out, opts, what


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--batching", default="official")
    ap.add_argument("--checkpoint")
    ap.add_argument("--text-encoder")
    args = ap.parse_args(argv)
    import torch

    from mmbench_mdetr.grounding import build

    samples, opts, what = samples_and_options(args)
    model = build(device=args.device, precision=args.precision, batch_size=str(args.batch_size),
                  batching=args.batching, **opts)
    model.predict(samples[: args.batch_size])  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    boxes = model.predict(samples)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    result = {"benchmark": f"MDETR predict on {len(samples)} {what}", "backbone": model.args["backbone"],
              "device": args.device, "precision": args.precision, "batch_size": args.batch_size,
              "batching": args.batching, "torch_threads": torch.get_num_threads(), "seconds": round(dt, 3),
              "images_per_s": round(len(samples) / dt, 3), "boxes_per_sample": int(boxes[0].shape[0])}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
