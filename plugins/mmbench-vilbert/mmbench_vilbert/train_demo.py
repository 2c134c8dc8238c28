"""Train the small ViLBERTs shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_vilbert.train_demo [--model vilbert|vilbert-refcoco+] [--out DIR] [--steps N] [--seed S]

Seeded, single-threaded CPU. ``--model vilbert`` (default): the retrieval model in ``data/demo``;
``--model vilbert-refcoco+``: the referring-expression model in ``data/demo-refcoco+`` (see
:func:`train_refer`). Each writes, in the official layout:

- ``config.json``: a BERT-style config json (the keys of config/bert_base_6layer_6conect.json, demo-sized:
  v_feature_size 64 for the demo's (36, 64) region features, 4 text / 2 image layers, co-attention
  after image layers [0, 1] / text layers [1, 3], fusion_method mul);
- ``vocab.txt``: a WordPiece vocab ([PAD] [UNK] [CLS] [SEP] [MASK], then every lower-cased word of the
  train captions, BERT-tokenised);
- ``pytorch_model.bin``: ``torch.save(model.state_dict())`` with the official key names (``bert.*``,
  ``vil_logit.*``; the heads the demo does not train are absent, and official ``from_pretrained``
  would leave them at their initialisation).

The demo regions carry no boxes, so every region gets the whole-image location [0, 0, 1, 1, 1]
(``boxes=whole_image``, the plugin's default for this model). Loss: for a batch of B images with one
caption each, every (caption, image) pair is scored with vil_logit and each caption's scores over
the B images (and each image's over the B captions) go through a softmax cross-entropy.

The referring-expression model (:func:`train_refer`) reads the demo grounding data's ``proposals`` form
(the 36 region features with their pixel boxes) and trains the ``vision_logit`` head with the official
refer objective (vilbert-multi-task vilbert/task_utils.py ``V-logit``, vilbert_tasks.yml TASK10 ``loss:
BCEWithLogitLoss``): per expression, every region's target is its IoU with the referred box
(refer_expression_dataset.py ``iou``, +1 on each side), set to 0 below 0.5 as the train split does; the
loss is ``BCEWithLogitsLoss(reduction="mean")(vision_logit, target) * target.size(1)``. The global region
(box [0, 0, w, h]) is row 0, as the feature reader puts it. Not applicable to the demo: the official
train split also appends the ground-truth boxes' own features (``refcoco+_gt_...lmdb``); the demo has no
such second feature set. The vocab holds the train expressions' words; text is cut at 20 tokens
(vilbert_tasks.yml TASK10 max_seq_length).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mmbench_vilbert.core import DEMO_DIR, DEMO_FILES, image_inputs
from mmbench_vilbert.config import DEFAULTS
from mmbench_vilbert.model import ViLBERT

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_SEQ = 30
REFER_MAX_SEQ = 20  # vilbert_tasks.yml TASK10 max_seq_length


def demo_config(vocab_size: int) -> dict:
    c = {
        "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 32,
        "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 32, "num_attention_heads": 4,
        "num_hidden_layers": 4, "type_vocab_size": 2, "vocab_size": vocab_size, "v_feature_size": 64,
        "v_target_size": 1601, "v_hidden_size": 32, "v_num_hidden_layers": 2, "v_num_attention_heads": 4,
        "v_intermediate_size": 64, "bi_hidden_size": 32, "bi_num_attention_heads": 4, "bi_intermediate_size": 64,
        "bi_attention_type": 1, "v_attention_probs_dropout_prob": 0.1, "v_hidden_act": "gelu",
        "v_hidden_dropout_prob": 0.1, "v_initializer_range": 0.02, "v_biattention_id": [0, 1],
        "t_biattention_id": [1, 3], "pooling_method": "mul",
    }
    return c


def build_vocab(captions: list[str]) -> list[str]:
    import re

    # BERT's basic split of lower-cased ASCII text: runs of word characters, each punctuation mark alone
    words = sorted({w for c in captions for w in re.findall(r"\w+|[^\w\s]", c.lower())})
    return SPECIALS + [w for w in words if w not in SPECIALS]


def seeded(seed: int) -> np.random.Generator:
    """Seed torch (one thread) and return the batch sampler's generator: the first step of every demo training."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    return np.random.default_rng(seed)


def new_model(out: Path, texts: list[str], head: str):
    """Write the vocab (from ``texts``) and config json into ``out``; the seeded model with ``head`` and its
    tokenizer. Initialised as BertPreTrainedModel.init_weights (zero biases, unit LayerNorm) but N(0, 0.05)."""
    from mmbench_vilbert.core import Tokenizer

    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(texts)
    (out / DEMO_FILES["vocab"]).write_text("\n".join(vocab) + "\n", encoding="utf-8")
    cfg_json = demo_config(len(vocab))
    (out / DEMO_FILES["config"]).write_text(json.dumps(cfg_json, indent=2) + "\n", encoding="utf-8")
    cfg = dict(DEFAULTS)
    cfg.update(cfg_json)
    model = ViLBERT(cfg, (head,))
    for name, p in model.named_parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.05)
        elif ".LayerNorm" in name and name.endswith(".weight"):
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.zeros_(p)
    return model, Tokenizer(out / DEMO_FILES["vocab"], len(vocab))


def optimiser(model, steps: int):
    """The demo trainings' update: AdamW (lr 3e-3, weight decay 0.01) under a one-cycle schedule, gradients
    clipped to norm 1. Returns ``update(loss)``, one optimisation step."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)

    def update(loss):
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()

    return update


def train(steps: int = 1500, seed: int = 0, out: Path | None = None, batch: int = 8, log=print):
    from mmbench.datasets.demo import load

    rng = seeded(seed)
    out = Path(out or DEMO_DIR)
    data = load("retrieval", "train")
    model, tok = new_model(out, list(data.texts), "vil_logit")
    F, L, M, _ = image_inputs(data.images, feature_size=64, max_regions=101, boxes="whole_image", plugin="demo")
    F, L, M = torch.from_numpy(F), torch.from_numpy(L), torch.from_numpy(M)
    ids, tmask = (torch.from_numpy(a) for a in tok.encode(list(data.texts), MAX_SEQ))
    owner = np.asarray(data.text_image)
    by_image = [np.flatnonzero(owner == i) for i in range(len(data.images))]
    update = optimiser(model, steps)
    model.train()
    for step in range(steps):
        imgs = rng.choice(len(data.images), size=batch, replace=False)
        caps = np.array([rng.choice(by_image[i]) for i in imgs])
        t = np.repeat(caps, batch)  # caption-major pairs: caption k with every image of the batch
        i = np.tile(imgs, batch)
        n = int(tmask[caps].sum(1).max())  # padding is masked: cut it to the batch's longest caption
        pooled, _ = model.streams(ids[t, :n], torch.zeros_like(ids[t, :n]), tmask[t, :n], F[i], L[i], M[i])
        s = model.score_vil_logit(pooled).view(batch, batch)  # [caption, image]
        target = torch.arange(batch)
        loss = torch.nn.functional.cross_entropy(s, target) + torch.nn.functional.cross_entropy(s.T, target)
        update(loss)
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step} loss {loss.item():.4f}")
    model.eval()
    torch.save(model.state_dict(), out / DEMO_FILES["checkpoint"])
    return out


def train_refer(steps: int = 1200, seed: int = 0, out: Path | None = None, batch: int = 32, log=print):
    """The demo referring-expression model (``vision_logit`` head) on the demo grounding train split."""
    from mmbench.datasets.demo import load
    from mmbench.metrics.grounding import iou
    from mmbench_vilbert.core import REFER_DEMO_DIR

    rng = seeded(seed)
    out = Path(out or REFER_DEMO_DIR)
    samples = load("grounding", "train").samples
    model, tok = new_model(out, [x.expression for x in samples], "vision_logit")
    images = [x.image for x in samples]
    F, L, M, pix = image_inputs(images, feature_size=64, max_regions=101, boxes="required", plugin="demo")
    # train split targets: the IoU of each region (global first) with the referred box, 0 below 0.5
    T = np.zeros(M.shape, np.float32)
    for k, (x, px) in enumerate(zip(samples, pix)):
        t = iou(px, x.boxes[:1], "plus1")[:, 0]  # +1 on each side: refer_expression_dataset.py ``iou``
        t[t < 0.5] = 0
        T[k, :len(t)] = t
    F, L, M, T = (torch.from_numpy(a) for a in (F, L, M, T))
    ids, tmask = (torch.from_numpy(a) for a in tok.encode([x.expression for x in samples], REFER_MAX_SEQ))
    bce = torch.nn.BCEWithLogitsLoss(reduction="mean")
    update = optimiser(model, steps)
    model.train()
    for step in range(steps):
        b = rng.choice(len(samples), size=batch, replace=False)
        n = int(tmask[b].sum(1).max())
        _, img = model.streams(ids[b, :n], torch.zeros_like(ids[b, :n]), tmask[b, :n], F[b], L[b], M[b])
        logit = model.vision_logits(img, M[b]).unsqueeze(2)  # (B, R, 1), masked rows at -10000
        target = T[b].unsqueeze(2)
        loss = bce(logit, target) * target.size(1)  # task_utils.py V-logit: loss.mean() * target.size(1)
        update(loss)
        if step % 100 == 0 or step == steps - 1:
            with torch.no_grad():
                hit = (T[b].gather(1, logit.squeeze(2).argmax(1, keepdim=True)) > 0).float().mean().item()
            log(f"step {step} loss {loss.item():.4f} batch hit {hit:.3f}")
    model.eval()
    torch.save(model.state_dict(), out / DEMO_FILES["checkpoint"])
    return out


MODELS = {"vilbert": train, "vilbert-refcoco+": train_refer}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="vilbert")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=None, help="default: 1500 (vilbert), 1200 (vilbert-refcoco+)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    kw = {} if a.steps is None else {"steps": a.steps}
    print(MODELS[a.model](seed=a.seed, out=a.out, **kw))


if __name__ == "__main__":
    main()
