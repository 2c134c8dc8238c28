"""Train the small CLIP shipped in ``mmbench_clip/demo_clip`` on mmbench's demo train split.

Seeded and reproducible on CPU (a few minutes at most)::

    python -m mmbench_clip.train_demo [--out DIR] [--epochs N]

Images and captions come from the embedded ``demo`` dataset (train split, 400 images x 5
captions); the tokenizer's BPE merges are learned from those captions; the model is a
2-layer, 64-wide CLIP (48 px images, 8 px patches) trained with the symmetric InfoNCE loss,
one random caption of each image per step. Weights are stored as float16 safetensors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "demo_clip"


def train(out: Path = DEFAULT_OUT, *, epochs: int = 60, batch: int = 50, lr: float = 2e-3, seed: int = 0,
          log=print) -> dict:
    import numpy as np
    import torch
    from transformers import CLIPModel

    from mmbench.plugins import Registry
    from mmbench_clip.tiny import image_processor, tiny_clip_config, train_tokenizer

    torch.set_num_threads(1)  # reproducible and polite on a shared CPU; ~2 s per epoch
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    data = Registry(entry_points=False).dataset("demo").load("retrieval", "train")
    tok = train_tokenizer(data.texts, vocab_size=600)
    proc = image_processor(48)
    cfg = tiny_clip_config(len(tok.get_vocab()))
    model = CLIPModel(cfg)
    pixels = proc(images=[im.load() for im in data.images], return_tensors="pt")["pixel_values"]
    enc = tok(data.texts, padding=True, truncation=True, max_length=cfg.text_config.max_position_embeddings,
              return_tensors="pt")
    caps_of = [np.flatnonzero(data.text_image == i) for i in range(len(data.images))]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    n = len(data.images)
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, step = time.perf_counter(), 0
    for epoch in range(epochs):
        order = rng.permutation(n)
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            cap = np.array([rng.choice(caps_of[i]) for i in idx])
            outp = model(input_ids=enc["input_ids"][cap], attention_mask=enc["attention_mask"][cap],
                         pixel_values=pixels[idx], return_loss=True)
            opt.zero_grad()
            outp.loss.backward()
            opt.step()
            sched.step()
            step += 1
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs} loss {outp.loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    tok.save_pretrained(out)
    proc.save_pretrained(out)
    info = {"seed": seed, "epochs": epochs, "batch": batch, "lr": lr, "steps": step,
            "final_loss": float(outp.loss.item()), "train_images": n, "train_captions": len(data.texts),
            "seconds": round(time.perf_counter() - t0, 1), "parameters": sum(p.numel() for p in model.parameters())}
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(train(args.out, epochs=args.epochs, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
