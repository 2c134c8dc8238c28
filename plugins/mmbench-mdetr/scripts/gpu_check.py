"""GPU validation for the MDETR plugin (and the hf-grounding detectors): one command, a few minutes on any GPU.

    python plugins/mmbench-mdetr/scripts/gpu_check.py [--device cuda] [--shared ../shared] [--no-hf]
    python plugins/mmbench-mdetr/scripts/gpu_check.py --device cpu      # the CPU fallback path (~1 minute)

Checks, on the shared parity fixture when present (else on the demo model and data):
1. ``--device`` fp32 matches the CPU fp32 outputs on the first ``--n-cpu`` expressions (pred_logits /
   pred_boxes, tolerance loosened for cuDNN: 1e-3 / 1e-4) and, on the fixture, the official outputs and
   top-1 queries;
2. fp16 and bf16 (GPU only) run, give finite outputs, and report how many top-1 choices and P@1/5/10 (GIoU)
   differ from fp32;
3. throughput (images/s) of ``predict`` for mdetr at every precision, batch size 1 and 4 (batching=by-size),
   and, unless ``--no-hf`` or the plugin is missing, for owlvit / owlv2 / grounding-dino (their shipped
   demo folders, tiny random weights: speed and dtype plumbing only).
Prints one JSON object; exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HF_MODELS = ("owlvit", "owlv2", "grounding-dino")


def _sync(dev: str) -> None:
    import torch

    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def _throughput(model, inputs, dev: str, bs: int) -> float:
    model.predict(inputs[:bs])  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    model.predict(inputs)
    _sync(dev)
    return round(len(inputs) / (time.perf_counter() - t0), 2)


def main(argv=None) -> int:
    import torch

    from mmbench.tasks.grounding import evaluate
    from mmbench_mdetr.grounding import build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (the CPU fallback: fp32 only)")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[4] / "shared")
    ap.add_argument("--n-cpu", type=int, default=2, help="expressions also run on the CPU as the reference")
    ap.add_argument("--n", type=int, default=0, help="expressions to use (default: all 21 fixture ones / 32 demo)")
    ap.add_argument("--no-hf", action="store_true", help="skip the hf-grounding detectors")
    a = ap.parse_args(argv)
    dev = a.device
    gpu = dev.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "CUDA is not available (use --device cpu for the CPU path)"}))
        return 1
    fx = a.shared / "parity" / "mdetr_refexp"
    on_fixture = fx.is_dir() and (fx / "checkpoint.pth").is_file()
    if on_fixture:
        from mmbench.datasets.mdetr import load

        data = load("grounding", "val", data_root=str(fx), dataset="refcoco")
        opts = {"checkpoint": str(fx / "checkpoint.pth"), "text_encoder": str(fx / "tiny_roberta")}
        expected = {k: np.load(fx / "expected" / f"{k}.npy") for k in ("pred_logits", "pred_boxes", "scores")}
    else:
        from mmbench.datasets.demo import load

        data = load("grounding", "test")
        data.samples = data.samples[:32]
        opts, expected = {}, None
    n = a.n or (0 if gpu else 4)  # the CPU fallback path: 4 expressions (800-px ResNet-18 passes are ~1 s each)
    if n:
        data.samples = data.samples[:n]
    inputs = [s.input_view() for s in data.samples]
    report: dict = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "torch": torch.__version__,
                    "fixture": on_fixture, "n": len(inputs), "checks": {}, "throughput_images_per_s": {}}
    ok = True
    t_start = time.perf_counter()
    cpu = build(device="cpu", **opts).raw_outputs(inputs[: a.n_cpu])
    runs: dict = {}
    for prec in (("fp32", "fp16", "bf16") if gpu else ("fp32",)):
        m = build(device=dev, precision=prec, **opts)
        raw = m.raw_outputs(inputs)
        res = evaluate(m, data, batch_size=8, show_progress=False, name="mdetr", convention="giou")
        runs[prec] = raw
        finite = bool(np.isfinite(raw["pred_logits"]).all() and np.isfinite(raw["pred_boxes"]).all())
        c = {"finite": finite, "metrics": {k: round(v, 2) for k, v in res.metrics.items()}}
        if prec == "fp32":
            dl = float(np.abs(raw["pred_logits"][: a.n_cpu] - cpu["pred_logits"]).max())
            db = float(np.abs(raw["pred_boxes"][: a.n_cpu] - cpu["pred_boxes"]).max())
            c.update(max_abs_dlogits_vs_cpu=dl, max_abs_dboxes_vs_cpu=db, vs_cpu_ok=dl < 1e-3 and db < 1e-4)
            ok &= c["vs_cpu_ok"]
            if expected is not None:
                n = len(inputs)
                el = float(np.abs(raw["pred_logits"] - expected["pred_logits"][:n]).max())
                eb = float(np.abs(raw["pred_boxes"] - expected["pred_boxes"][:n]).max())
                same = bool((raw["scores"].argmax(1) == expected["scores"][:n].argmax(1)).all())
                c.update(max_abs_dlogits_vs_official=el, max_abs_dboxes_vs_official=eb, same_top1_as_official=same)
                ok &= el < 1e-3 and eb < 1e-4 and same
        else:
            ref = runs["fp32"]
            c["top1_differs_from_fp32"] = int((raw["scores"].argmax(1) != ref["scores"].argmax(1)).sum())
            c["max_abs_dscores_vs_fp32"] = float(np.abs(raw["scores"] - ref["scores"]).max())
        ok &= finite
        report["checks"][f"mdetr-{prec}"] = c
    tp = report["throughput_images_per_s"]
    for prec in (("fp32", "fp16", "bf16") if gpu else ("fp32",)):
        for bs in (1, 4):
            m = build(device=dev, precision=prec, batch_size=str(bs), batching="by-size", **opts)
            tp[f"mdetr-{dev}-{prec}-bs{bs}"] = _throughput(m, inputs if gpu else inputs[:4], dev, bs)
    if not a.no_hf:
        from mmbench import runner
        from mmbench.errors import MMBenchError
        from mmbench.plugins import get_registry

        reg = get_registry()
        for name in HF_MODELS:
            try:
                spec = reg.model(name)
            except MMBenchError as exc:
                report["checks"][name] = {"skipped": str(exc)}
                continue
            for prec in (("fp32", "fp16", "bf16") if gpu else ("fp32",)):
                try:
                    m = runner.build_model(spec, {"device": dev, "precision": prec, "batch_size": "4"}, 0)
                    boxes = m.predict(inputs[:4])
                    fin = all(np.isfinite(np.asarray(b, dtype=np.float64)).all() for b in boxes)
                    tp[f"{name}-{dev}-{prec}-bs4"] = _throughput(m, inputs if gpu else inputs[:4], dev, 4)
                    report["checks"][f"{name}-{prec}"] = {"finite": bool(fin)}
                    ok &= bool(fin)
                except Exception as exc:  # report every model, fail at the end
                    report["checks"][f"{name}-{prec}"] = {"error": f"{type(exc).__name__}: {exc}"}
                    ok = False
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    report["ok"] = bool(ok)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
