"""Train the small CLIP and FLAVA shipped in ``mmbench_clip/demo_clip`` and ``demo_flava`` on mmbench's demo train split.

Seeded and reproducible on CPU (a few minutes at most)::

    python -m mmbench_clip.train_demo [--model clip|flava] [--out DIR] [--epochs N] [--seed S]

Images and captions come from the embedded ``demo`` dataset (train split, 400 images x 5
captions). CLIP: a byte-level BPE tokenizer whose merges are learned from those captions, a
2-layer, 64-wide CLIP (48 px images, 8 px patches) trained with its own symmetric InfoNCE loss
(``CLIPModel(return_loss=True)``). FLAVA: a BERT WordPiece tokenizer over the captions' words
(plus every ASCII character), a 2-layer, 64-wide FlavaModel (48 px, 8 px patches, init std 0.06;
a 1-layer multimodal tower that the dual encoder never runs) trained with FLAVA's global contrastive loss
on the projected CLS tokens. Both see one random caption of each image per step; weights are
stored as float16 safetensors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "demo_clip"
DEFAULT_FLAVA_OUT = HERE / "demo_flava"
#: FlavaForPreTraining clamps the contrastive logit scale to [0, ln 100] before using it
#: (huggingface/transformers:src/transformers/models/flava/modeling_flava.py, LOGIT_SCALE_CLAMP_MIN/MAX).
FLAVA_LOGIT_SCALE_MAX = 4.6052


def _setup(seed: int):
    import numpy as np
    import torch

    from mmbench.plugins import Registry

    torch.set_num_threads(1)  # reproducible and polite on a shared CPU; ~2 s per epoch
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    return rng, Registry(entry_points=False).dataset("demo").load("retrieval", "train")


def _fit(model, loss_fn, data, rng, *, epochs: int, batch: int, lr: float, log):
    """AdamW + one-cycle schedule; each step: ``batch`` images, one random caption of each."""
    import numpy as np
    import torch

    caps_of = [np.flatnonzero(data.text_image == i) for i in range(len(data.images))]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    n = len(data.images)
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, step, loss = time.perf_counter(), 0, None
    for epoch in range(epochs):
        order = rng.permutation(n)
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            cap = np.array([rng.choice(caps_of[i]) for i in idx])
            loss = loss_fn(idx, cap)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    return {"steps": step, "final_loss": float(loss.item()), "train_images": n, "train_captions": len(data.texts),
            "seconds": round(time.perf_counter() - t0, 1), "parameters": sum(p.numel() for p in model.parameters())}


def _save(model, tok, proc, out: Path, info: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    tok.save_pretrained(out)
    proc.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    for f in out.iterdir():  # transformers writes the weights 0600; package data must be world-readable
        f.chmod(0o644)
    return info


def train(out: Path = DEFAULT_OUT, *, epochs: int = 60, batch: int = 50, lr: float = 2e-3, seed: int = 0,
          log=print) -> dict:
    """The demo CLIP."""
    from transformers import CLIPModel

    from mmbench_clip.tiny import image_processor, tiny_clip_config, train_tokenizer

    rng, data = _setup(seed)
    tok = train_tokenizer(data.texts, vocab_size=600)
    proc = image_processor(48)
    cfg = tiny_clip_config(len(tok.get_vocab()))
    model = CLIPModel(cfg)
    pixels = proc(images=[im.load() for im in data.images], return_tensors="pt")["pixel_values"]
    enc = tok(data.texts, padding=True, truncation=True, max_length=cfg.text_config.max_position_embeddings,
              return_tensors="pt")

    def loss_fn(idx, cap):
        return model(input_ids=enc["input_ids"][cap], attention_mask=enc["attention_mask"][cap],
                     pixel_values=pixels[idx], return_loss=True).loss

    stats = _fit(model, loss_fn, data, rng, epochs=epochs, batch=batch, lr=lr, log=log)
    info = {"seed": seed, "epochs": epochs, "batch": batch, "lr": lr, **stats}
    return _save(model, tok, proc, Path(out), info)


def train_flava(out: Path = DEFAULT_FLAVA_OUT, *, epochs: int = 60, batch: int = 50, lr: float = 2e-3,
                seed: int = 0, init_range: float = 0.06, log=print) -> dict:
    """The demo FLAVA: FlavaModel trained with FLAVA's global contrastive (ITC) loss only."""
    import tempfile

    import torch
    from torch.nn.functional import cross_entropy, normalize
    from transformers import FlavaModel

    from mmbench_clip.tiny import flava_image_processor, tiny_flava_config, wordpiece_tokenizer

    rng, data = _setup(seed)
    with tempfile.TemporaryDirectory() as tmp:  # vocab.txt is rewritten by save_pretrained below
        tok = wordpiece_tokenizer(data.texts, tmp, max_length=40)
    proc = flava_image_processor(48)
    # transformers' default init (std 0.02) is tuned for width 768; at width 64 it learns far slower
    # (demo test rsum ~60 after 60 epochs), std 0.06 reaches CLIP's level in the same budget
    cfg = tiny_flava_config(len(tok.get_vocab()), init_range=init_range)
    model = FlavaModel(cfg)
    pixels = proc(images=[im.load() for im in data.images], return_tensors="pt")["pixel_values"]
    enc = tok(data.texts, padding=True, truncation=True, max_length=cfg.text_config.max_position_embeddings,
              return_tensors="pt")
    labels = torch.arange(batch)

    def cls(out):  # the projected CLS token, as FlavaForPreTraining's contrastive loss and the plugin use
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return normalize(feats[:, 0, :], dim=-1)

    def loss_fn(idx, cap):
        # FlavaGlobalContrastiveLoss on one device: symmetric cross-entropy of exp(logit_scale) * cos
        # (huggingface/transformers:src/transformers/models/flava/modeling_flava.py)
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, FLAVA_LOGIT_SCALE_MAX)
        img = cls(model.get_image_features(pixel_values=pixels[idx]))
        txt = cls(model.get_text_features(input_ids=enc["input_ids"][cap], attention_mask=enc["attention_mask"][cap],
                                          token_type_ids=enc["token_type_ids"][cap]))
        logits = model.logit_scale.exp() * img @ txt.T
        return (cross_entropy(logits, labels[:len(idx)]) + cross_entropy(logits.T, labels[:len(idx)])) / 2

    stats = _fit(model, loss_fn, data, rng, epochs=epochs, batch=batch, lr=lr, log=log)
    with torch.no_grad():
        model.logit_scale.clamp_(0.0, FLAVA_LOGIT_SCALE_MAX)
    info = {"model": "flava", "seed": seed, "epochs": epochs, "batch": batch, "lr": lr, "init_range": init_range,
            **stats}
    return _save(model, tok, proc, Path(out), info)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("clip", "flava"), default="clip")
    ap.add_argument("--out", type=Path, default=None, help="default: mmbench_clip/demo_<model>")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fn, default = (train, DEFAULT_OUT) if args.model == "clip" else (train_flava, DEFAULT_FLAVA_OUT)
    print(json.dumps(fn(args.out or default, epochs=args.epochs, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
