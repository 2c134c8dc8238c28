"""Train the small MDETR shipped with this plugin, on the demo dataset's grounding train split.

    python -m mmbench_mdetr.train_demo [--out DIR] [--steps N] [--seed S] [--threads T] [--no-eval]

Seeded CPU training (a few CPU minutes on one thread, see TRAINING.json). Writes, in the official layout:

- ``checkpoint.pth``: ``{"model", "model_ema": None, "optimizer": None, "epoch", "args": argparse.Namespace}``
  as ashkamath/mdetr:main.py saves it (the optimizer state is left out to keep the file small);
  ``args`` has every field of the official parser (main.py defaults where the demo does not differ), with
  ``backbone="mmbench_resnet"`` (a torchvision-layout BasicBlock ResNet of width 8, one block per stage,
  layer4 average-pooled 2x, described by ``args.mmbench_resnet``: not an official backbone name, and with
  ``mmbench_note`` the only non-official fields);
- ``text_encoder/``: a tiny RoBERTa ``config.json`` and its byte-level BPE tokenizer trained on the demo
  train expressions (``args.text_encoder_type = "text_encoder"``, found next to the checkpoint);
- ``TRAINING.json``: the command's settings, wall and CPU time and the demo val Precision@1/5/10.

Recipe. The backbone is frozen (``lr_backbone = 0``, as MDETR's ``train_backbone = lr_backbone > 0``): seeded
He-initialised convolutions whose FrozenBatchNorm statistics are calibrated on 16 training images, so its
(pooled, 13 x 13 for the 96 x 96 demo images) layer4 features are computed once, through the official eval
preprocessing. A plain DETR set-prediction recipe does not converge on CPU in minutes (the queries never
learn where to look: the loss stays at the average box), so the queries are made *anchors* by their
initialisation, and everything else is standard MDETR:

- ``num_queries = 13 * 13``, one per feature cell, and ``position_embedding = "learned"`` (official
  ``PositionEmbeddingLearned``), set to smooth one-hot-like codes (Gaussian bumps over the 13 columns / rows)
  in a quarter of each axis half of the hidden dims and kept frozen; query ``k``'s ``query_embed`` is the code
  of cell ``k``; the first attention head of every decoder cross-attention reads only those code dims (its
  q / k projection is a scaled identity there), and the encoder / decoder LayerNorm gains of the code dims start
  at 0, so at initialisation query ``k`` attends to cell ``k`` and its neighbours. Nothing else is hand-set.
- Assignment: each ground-truth object of an image (the union of the train expressions' boxes of that image)
  belongs to the query of the cell holding its box centre (an anchor-style matcher in place of the Hungarian
  one, which it agrees with once queries are local). Box losses (L1 x5 + GIoU x2, normalised cxcywh as the
  official ``pred_boxes``) on every object's query; soft token targets (uniform over the expression's
  tokens, without ``<s>`` / ``</s>``) on the referred object's query; "no object" on the other objects'
  queries (weight 1) and on the empty cells (weight ``eos_coef``). Last and auxiliary decoder layers, AdamW, warm-up then cosine decay, gradient clipping ``clip_max_norm``.

Evaluation is unchanged: the official PostProcess score ``1 - softmax(pred_logits)[..., -1]`` ranks all
169 boxes.

Reproducible: the same seed, steps and torch thread count give a bit-identical checkpoint
(``torch.use_deterministic_algorithms``; the batches come from a seeded generator).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmbench_mdetr.grounding import DATA
from mmbench_mdetr.model import build_from_args
from mmbench_mdetr.preprocess import image_tensor
from mmbench_mdetr.resnet import FrozenBatchNorm2d

OUT = DATA / "demo"
STEPS, BATCH, SEED = 1500, 16, 0
BACKBONE = {"block": "basic", "layers": [1, 1, 1, 1], "width": 8, "pool": 2, "coords": True}
GRID = 13  # pooled layer4 cells per side of a 96 x 96 demo image (800 x 800 after the eval resize)
CELL_PX = 32 * 2 * 96 / 800  # one pooled cell (stride 32, pool 2) in pixels of the 96 x 96 image
CODE_SIGMA, ATTN_SCALE = 1.0, 8.0  # width (cells) of the position codes; own-cell logit of the local head / 2


def demo_args(epochs: int = 1) -> argparse.Namespace:
    """ashkamath/mdetr:main.py get_args_parser defaults, demo-sized where noted."""
    return argparse.Namespace(
        run_name="mmbench_demo", dataset_config="(mmbench demo dataset, grounding)", do_qa=False, predict_final=False,
        no_detection=False, split_qa_heads=False, combine_datasets=["refexp"], combine_datasets_val=["refexp"],
        coco_path="", vg_img_path="", vg_ann_path="", clevr_img_path="", clevr_ann_path="", phrasecut_ann_path="",
        phrasecut_orig_ann_path="", modulated_lvis_ann_path="", lr=1e-3, lr_backbone=0.0, text_encoder_lr=1e-3,
        batch_size=BATCH, weight_decay=1e-4, epochs=epochs, lr_drop=epochs, epoch_chunks=-1, optimizer="adamw",
        clip_max_norm=1.0, eval_skip=1, schedule="step", ema=False, ema_decay=0.9998, fraction_warmup_steps=0.05,
        frozen_weights=None, freeze_text_encoder=False, text_encoder_type="text_encoder", backbone="mmbench_resnet",
        mmbench_resnet=dict(BACKBONE), dilation=False,
        position_embedding="learned", enc_layers=1, dec_layers=2, dim_feedforward=96, hidden_dim=48, dropout=0.0,
        nheads=2, num_queries=GRID * GRID, pre_norm=False, pass_pos_and_query=True, mask_model="none", remove_difficult=False,
        masks=False, aux_loss=True, set_loss="hungarian", contrastive_loss=False, contrastive_align_loss=False,
        contrastive_loss_hdim=64, temperature_NCE=0.07, set_cost_class=1, set_cost_bbox=5, set_cost_giou=2,
        ce_loss_coef=1, mask_loss_coef=1, dice_loss_coef=1, bbox_loss_coef=5, giou_loss_coef=2, qa_loss_coef=1,
        eos_coef=0.1, contrastive_loss_coef=0.1, contrastive_align_loss_coef=1, test=False, test_type="test",
        output_dir="", device="cpu", seed=SEED, resume="", load="", start_epoch=0, eval=False, num_workers=0,
        world_size=1, dist_url="env://", distributed=False, refexp_dataset_name="refcoco", refexp_ann_path="",
        mmbench_note="mmbench demo model (python -m mmbench_mdetr.train_demo); not an official MDETR checkpoint")


def make_text_encoder(texts: list[str], out: Path) -> None:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=320, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(out))
    tok = RobertaTokenizerFast.from_pretrained(str(out))  # as the parity fixture's tiny RoBERTa was made
    tok.save_pretrained(str(out))
    RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=40, type_vocab_size=1, hidden_act="gelu",
                  layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2).save_pretrained(str(out))


@torch.no_grad()
def calibrate_frozen_bn(body, images: torch.Tensor) -> None:
    """Set each FrozenBatchNorm's statistics to its input's per-channel mean / variance, in forward order."""
    def hook(mod, inp):
        x = inp[0]
        mod.running_mean.copy_(x.mean((0, 2, 3)))
        mod.running_var.copy_(x.var((0, 2, 3)) + 1e-3)

    hs = [m.register_forward_pre_hook(hook) for m in body.modules() if isinstance(m, FrozenBatchNorm2d)]
    body(images)
    for h in hs:
        h.remove()


def _giou(a, b):
    """Elementwise GIoU of xyxy boxes (N, 4)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    return inter / union - (hull - union) / hull


def _xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


@torch.no_grad()
def init_local_queries(model, grid: int = GRID, sigma: float = CODE_SIGMA, scale: float = ATTN_SCALE) -> None:
    """Make query ``k`` an anchor at feature cell ``k`` (row-major) through the official modules' own weights.

    ``PositionEmbeddingLearned`` (x half first): column / row ``i`` -> a unit vector of Gaussian bumps
    (centres spread over the ``grid`` cells) in the last quarter of its half, zeros elsewhere; ``query_embed[k]``
    = the code of cell k; head 0 of each decoder cross-attention gets q = k = ``s`` x (the code dims), so its
    logit is ``scale`` x (column similarity + row similarity); the encoder / decoder LayerNorm gains of the
    code dims start at 0, so image and text features do not blur the codes at the start.
    """
    d = model.transformer.d_model
    half, npd = d // 2, d // 4
    pe = model.backbone[1]
    n = pe.col_embed.weight.shape[0]
    centres = torch.linspace(0, grid - 1, npd)
    bumps = torch.exp(-(torch.arange(grid, dtype=torch.float32)[:, None] - centres) ** 2 / (2 * sigma ** 2))
    code = torch.zeros(n, npd)  # rows past the grid (larger images) stay 0
    code[:grid] = bumps / bumps.norm(dim=1, keepdim=True)
    for emb in (pe.col_embed, pe.row_embed):
        emb.weight.zero_()
        emb.weight[:, half - npd:] = code
    dims = torch.cat([torch.arange(half - npd, half), torch.arange(d - npd, d)])
    q = torch.zeros(grid * grid, d)
    for k in range(grid * grid):
        y, x = divmod(k, grid)
        q[k, :half], q[k, half:] = pe.col_embed.weight[x], pe.row_embed.weight[y]
    model.query_embed.weight.copy_(q)
    dh = d // model.transformer.decoder.layers[0].cross_attn_image.num_heads
    assert dh == len(dims), (dh, len(dims))
    s = math.sqrt(scale * math.sqrt(dh))
    for layer in model.transformer.decoder.layers:
        w = layer.cross_attn_image.in_proj_weight
        for blk in (0, 1):  # the q and k rows of head 0
            w[blk * d: blk * d + dh] = 0
            w[blk * d + torch.arange(dh), dims] = s
        for norm in (layer.norm1, layer.norm3, layer.norm4):
            norm.weight[dims] = 0
    for layer in model.transformer.encoder.layers:
        for norm in (layer.norm1, layer.norm2):
            norm.weight[dims] = 0


def prepare(samples, seed: int, text_dir: Path, args: argparse.Namespace, log=print):
    """The seeded model (text encoder files written to ``text_dir``) and the frozen backbone's features."""
    from transformers import RobertaTokenizerFast

    t0 = time.time()
    torch.manual_seed(seed)
    img_ids = sorted({s.image.id for s in samples})
    pils = {s.image.id: s.image.load() for s in samples}
    make_text_encoder([s.expression for s in samples], text_dir)
    tok = RobertaTokenizerFast.from_pretrained(str(text_dir))
    model = build_from_args(vars(args), text_dir)
    skip = {id(q) for q in model.transformer.text_encoder.parameters()} | {
        id(q) for q in model.transformer.resizer.parameters()}
    for p in model.transformer.parameters():  # official Transformer._reset_parameters: created before RoBERTa
        if p.dim() > 1 and id(p) not in skip:  # and the resizer, which keep their own init
            torch.nn.init.xavier_uniform_(p)
    init_local_queries(model)
    body = model.backbone[0].body
    calibrate_frozen_bn(body, torch.stack([image_tensor(pils[k]) for k in img_ids[:16]]))
    with torch.no_grad():  # frozen backbone: layer4 features once per training image (all demo images: 96 x 96)
        feats = torch.cat([body(torch.stack([image_tensor(pils[k]) for k in img_ids[i:i + 16]]))
                           for i in range(0, len(img_ids), 16)])
    if tuple(feats.shape[-2:]) != (GRID, GRID):
        raise ValueError(f"backbone features are {tuple(feats.shape[-2:])}, expected {GRID} x {GRID} cells "
                         "(the demo images are 96 x 96)")
    log(f"features {tuple(feats.shape)} of {len(img_ids)} images in {time.time() - t0:.1f}s")
    index = {k: i for i, k in enumerate(img_ids)}
    return model, tok, feats, torch.tensor([index[s.image.id] for s in samples])


def cell_of(boxes: torch.Tensor) -> torch.Tensor:
    """Normalised xyxy boxes -> the query (row-major pooled cell) that holds each box centre."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 * 96 / CELL_PX
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 * 96 / CELL_PX
    return cy.long().clamp(0, GRID - 1) * GRID + cx.long().clamp(0, GRID - 1)


def _cxcywh(b):
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def fit(model, tok, feats, which, samples, *, steps: int, seed: int, batch: int, args, log=print) -> list[float]:
    """The training loop over precomputed features (see the module docstring); returns the loss per step."""
    t0 = time.time()
    mask0 = torch.zeros((1,) + feats.shape[-2:], dtype=torch.bool)
    for p in model.backbone.parameters():  # frozen: the ResNet and the (hand-set) position codes
        p.requires_grad_(False)
    with torch.no_grad():
        pos0 = model.backbone[1](feats[:1], mask0)
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    warm = max(1, int(args.fraction_warmup_steps * steps))  # linear warm-up, then cosine decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (i + 1) / warm if i < warm else
                                              0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm))))
    size = torch.tensor([[s.image.size[0], s.image.size[1]] * 2 for s in samples], dtype=torch.float32)
    gt = torch.tensor(np.stack([s.boxes[0] for s in samples]), dtype=torch.float32) / size  # xyxy in [0, 1]
    per_image: dict = {}
    for s, g in zip(samples, gt):  # every object of an image: the union of its expressions' boxes
        per_image.setdefault(s.image.id, [])
        if not any(torch.equal(g, h) for h in per_image[s.image.id]):
            per_image[s.image.id].append(g)
    objects = [torch.stack(per_image[s.image.id]) for s in samples]
    cells = [cell_of(o) for o in objects]
    own = [int(cell_of(g[None])[0]) for g in gt]
    texts = [s.expression for s in samples]
    w_in = model.input_proj.weight.flatten(1)  # the 1x1 conv as a matmul (much faster on CPU for 13 x 13 maps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(len(samples), (batch,), generator=g)
        enc = tok([texts[i] for i in idx.tolist()], padding="longest", return_tensors="pt")
        f = feats[which[idx]]
        B = len(idx)
        src = F.linear(f.permute(0, 2, 3, 1), w_in, model.input_proj.bias).permute(0, 3, 1, 2)
        hs, _ = model.transformer(src, mask0.expand(B, -1, -1), model.query_embed.weight,
                                  pos0.expand(B, -1, -1, -1), enc["input_ids"], enc["attention_mask"])
        logits, boxes = model.class_embed(hs), model.bbox_embed(hs).sigmoid()  # (L, B, Q, .)
        L, _, Q, C = logits.shape
        tt = enc["attention_mask"].clone().float()
        tt[:, 0] = 0
        tt[torch.arange(B), enc["attention_mask"].sum(1) - 1] = 0  # no <s> / </s>
        pos_map = torch.zeros(B, C)
        pos_map[:, : tt.shape[1]] = tt / tt.sum(1, keepdim=True).clamp(min=1)
        tgt = torch.zeros(B, Q, C)
        tgt[..., -1] = 1
        w = torch.full((B, Q), args.eos_coef)
        bi, qi, gb = [], [], []
        for j, i in enumerate(idx.tolist()):
            bi += [j] * len(cells[i])
            qi += cells[i].tolist()
            gb.append(objects[i])
            w[j, cells[i]] = 1.0  # the other objects of the image: "no object", at full weight
            tgt[j, own[i]] = pos_map[j]
        bi, qi, gb = torch.tensor(bi), torch.tensor(qi), torch.cat(gb)
        loss = 0.0
        for layer in range(L):
            ce = (-(tgt * logits[layer].log_softmax(-1)).sum(-1) * w).sum() / w.sum()
            pb = boxes[layer, bi, qi]
            l1 = F.l1_loss(pb, _cxcywh(gb), reduction="none").sum(1).mean()
            gi = (1 - _giou(_xyxy(pb), gb)).mean()
            loss = loss + args.ce_loss_coef * ce + args.bbox_loss_coef * l1 + args.giou_loss_coef * gi
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip_max_norm)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step:4d} loss {losses[-1]:.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    return losses


def train(out: Path = OUT, steps: int = STEPS, seed: int = SEED, batch: int = BATCH, limit: int | None = None,
          log=print) -> Path:
    """Train and write ``checkpoint.pth`` + ``text_encoder/`` into ``out``; ``limit``: first N train expressions."""
    from mmbench.datasets.demo import load

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        t0 = time.time()
        samples = load("grounding", "train").samples[:limit]
        args = demo_args(epochs=1)
        args.seed, args.batch_size = seed, batch
        model, tok, feats, which = prepare(samples, seed, out / "text_encoder", args, log=log)
        fit(model, tok, feats, which, samples, steps=steps, seed=seed, batch=batch, args=args, log=log)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    ck = {"model": model.state_dict(), "model_ema": None, "optimizer": None, "epoch": 0, "args": args}
    torch.save(ck, out / "checkpoint.pth")
    log(f"trained in {time.time() - t0:.1f}s")
    return out / "checkpoint.pth"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: tiny tensors, where more "
                    "threads mostly spin; the checkpoint is bit-reproducible for one thread count)")
    ap.add_argument("--no-eval", action="store_true", help="skip the demo val evaluation at the end")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    path = train(a.out, a.steps, a.seed, a.batch)
    info = {"command": "python -m mmbench_mdetr.train_demo" + (f" --steps {a.steps}" if a.steps != STEPS else ""),
            "steps": a.steps, "seed": a.seed, "batch": a.batch, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "train_seconds": round(time.time() - t0, 1),
            "train_cpu_seconds": round(time.process_time() - c0, 1)}
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if not a.no_eval:
        from mmbench.datasets.demo import load
        from mmbench.tasks.grounding import evaluate

        from mmbench_mdetr.grounding import MDETRGrounder

        res = evaluate(MDETRGrounder(checkpoint=str(path), device="cpu", batch_size=16, batching="by-size"),
                       load("grounding", "val"), show_progress=False, name="mdetr", convention="giou")
        info["demo_val_giou"] = {k: round(v, 2) for k, v in res.metrics.items()}
        print("demo val (giou):", json.dumps(info["demo_val_giou"]))
    (a.out / "TRAINING.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
