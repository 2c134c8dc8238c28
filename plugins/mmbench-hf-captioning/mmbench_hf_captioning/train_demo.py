"""Train the tiny BLIP, GIT and BLIP-2 shipped in ``mmbench_hf_captioning/demo_blip``, ``demo_git`` and
``demo_blip2`` on the demo train split.

Seeded and reproducible on CPU (single thread, deterministic algorithms)::

    python -m mmbench_hf_captioning.train_demo --model blip|git|blip2 [--out DIR] [--epochs N] [--seed S]

Images and captions come from the embedded ``demo`` dataset (captioning, train split, 400 images x
5 captions). Both models get a lower-casing BERT WordPiece tokenizer over the demo captions' words
(plus every ASCII character; BLIP adds ``[DEC]``), 48 px images, 8 px patches, width 64, 2 layers,
and see one random caption of each image per step (teacher forcing, transformers' own loss):

- BLIP as salesforce/BLIP:models/blip.py ``BLIP_Decoder.forward``: text = prompt + ``pre_caption(caption)``
  (data/utils.py: lower-case, ``.!"()*#:;~`` replaced by spaces, runs of spaces collapsed), ``[CLS]``
  replaced by ``[DEC]``, the prompt's tokens (``[DEC]`` included) masked from the loss;
- GIT as microsoft/GenerativeImage2Text (``[CLS]`` caption ``[SEP]``, loss on every caption token);
- BLIP-2 (OPT) as salesforce/LAVIS:lavis/models/blip2_models/blip2_opt.py ``Blip2OPT.forward`` with
  lavis/projects/blip2/train/caption_coco_ft.yaml's text processor (``prompt: "a photo of "``): text =
  ``"a photo of " + pre_caption(caption) + "\n"`` tokenised with ``</s>`` first, the query positions, the
  prompt's tokens (``tokenizer("a photo of")``, ``</s>`` included) and the padding masked from the loss.
  It gets its own tokenizer (byte-level BPE laid out like OPT's, ``tiny.opt_tokenizer``), 8 query tokens, and
  its ViT / Q-Former / OPT are width 64, 2 layers. Unlike LAVIS, where the ViT and OPT are frozen pre-trained
  models, everything is trained from scratch here (there is nothing pre-trained to freeze).

Weights are stored as float16 safetensors.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from mmbench_hf_captioning.models import DEMO_CHECKPOINTS, PRESETS

PROMPT = PRESETS["blip-coco"]["prompt"]
BLIP2_PROMPT = PRESETS["blip2-coco"]["prompt"]  # generation prompt; training prepends it with a space (LAVIS)
BLIP2_QUERIES = 8


def pre_caption(caption: str, max_words: int = 50) -> str:
    """salesforce/BLIP:data/utils.py ``pre_caption`` (re-implemented)."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


def train(kind: str, out: Path | None = None, *, epochs: int = 40, batch: int = 50, lr: float = 2e-3, seed: int = 0,
          init_range: float = 0.05, n_images: int | None = None, log=print) -> dict:
    """Train one demo model; ``n_images`` trains on the first N train images only (quick checks; the
    tokenizer always covers every train caption)."""
    import numpy as np
    import torch
    from transformers import Blip2ForConditionalGeneration, BlipForConditionalGeneration, GitForCausalLM

    from mmbench.plugins import Registry
    from mmbench_hf_captioning.tiny import (blip2_processor, bert_tokenizer, opt_tokenizer, processor,
                                            tiny_blip2_config, tiny_blip_config, tiny_git_config)

    out = Path(out or DEMO_CHECKPOINTS[kind])
    torch.set_num_threads(1)  # reproducible and polite on a shared CPU
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    data = Registry(entry_points=False).dataset("demo").load("captioning", "train")
    texts = [c for refs in data.references for c in refs]
    if kind == "blip2":
        train_texts = [BLIP2_PROMPT + " " + pre_caption(t) + "\n" for t in texts]
        tok = opt_tokenizer(train_texts, vocab_size=500, max_length=64)
        proc = blip2_processor(tok, 48, num_query_tokens=BLIP2_QUERIES)  # adds <image>
    else:
        with tempfile.TemporaryDirectory() as tmp:  # vocab.txt is rewritten by save_pretrained below
            tok = bert_tokenizer(texts + [PROMPT], tmp, blip=kind == "blip", max_length=48)
        proc = processor(kind, tok, 48)
    if kind == "blip2":
        model = Blip2ForConditionalGeneration(tiny_blip2_config(tok, num_query_tokens=BLIP2_QUERIES,
                                                                init_range=init_range))
        enc = tok(train_texts, padding="longest", truncation=True, max_length=64 - BLIP2_QUERIES,
                  return_tensors="pt")
        n_q = BLIP2_QUERIES
        image_ids = torch.full((len(texts), n_q), model.config.image_token_index, dtype=torch.long)
        text_labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        text_labels[:, :len(tok(BLIP2_PROMPT)["input_ids"])] = -100  # blip2_opt.py: targets[:, :prompt_length]
        ids = torch.cat([image_ids, enc["input_ids"]], 1)
        labels = torch.cat([torch.full_like(image_ids, -100), text_labels], 1)  # empty_targets for the queries
        enc = {"attention_mask": torch.cat([torch.ones_like(image_ids), enc["attention_mask"]], 1)}
    elif kind == "blip":
        model = BlipForConditionalGeneration(tiny_blip_config(tok, init_range=init_range))
        enc = tok([PROMPT + pre_caption(t) for t in texts], padding="longest", truncation=True, max_length=48,
                  return_tensors="pt")
        ids = enc["input_ids"].clone()
        ids[:, 0] = tok.bos_token_id
        labels = ids.masked_fill(enc["attention_mask"] == 0, -100)
        labels[:, :len(tok(PROMPT).input_ids) - 1] = -100  # blip.py: decoder_targets[:, :prompt_length] = -100
    else:
        model = GitForCausalLM(tiny_git_config(tok, init_range=init_range))
        enc = tok(texts, padding="longest", truncation=True, max_length=48, return_tensors="pt")
        ids = enc["input_ids"]
        labels = ids.masked_fill(enc["attention_mask"] == 0, -100)
    mask = enc["attention_mask"]
    pixels = proc.image_processor(images=[im.load() for im in data.images], return_tensors="pt")["pixel_values"]
    n, per = n_images or len(data.images), len(data.references[0])
    assert all(len(r) == per for r in data.references)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, step, loss = time.perf_counter(), 0, None
    for epoch in range(epochs):
        order = rng.permutation(n)
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            cap = idx * per + rng.integers(0, per, len(idx))
            width = int(mask[cap].sum(1).max())  # drop all-pad columns of this batch
            loss = model(pixel_values=pixels[idx], input_ids=ids[cap, :width], attention_mask=mask[cap, :width],
                         labels=labels[cap, :width]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"{kind} epoch {epoch + 1}/{epochs} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    info = {"model": kind, "seed": seed, "epochs": epochs, "batch": batch, "lr": lr, "init_range": init_range,
            "steps": step, "final_loss": float(loss.item()), "train_images": n, "train_captions": len(texts),
            "seconds": round(time.perf_counter() - t0, 1), "parameters": sum(p.numel() for p in model.parameters())}
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    proc.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    for f in out.iterdir():  # transformers writes the weights 0600; package data must be world-readable
        f.chmod(0o644)
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("blip", "git", "blip2"), required=True)
    ap.add_argument("--out", type=Path, default=None, help="default: mmbench_hf_captioning/demo_<model>")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(train(args.model, args.out, epochs=args.epochs, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
