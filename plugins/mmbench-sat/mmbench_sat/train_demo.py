"""Train the small Show-Attend-Tell model shipped with this plugin on the demo dataset's images.

    OMP_NUM_THREADS=1 python -m mmbench_sat.train_demo [--out DIR] [--epochs N] [--seed S] [...]

Seeded, single-threaded CPU, bit-identical on rerun. The defaults below are what made the shipped
``data/demo`` files; ``TRAINING_demo.json`` beside them records every setting, the per-epoch validation
scores and the time taken.

- Encoder: a narrow torchvision-layout ResNet (BasicBlock, one block per stage, widths ``WIDTHS``: the
  shipped file must stay under 1 MB), randomly initialised and
  **fine-tuned** (train.py ``fine_tune_encoder = True``) with its own Adam (``encoder_lr``), as train.py
  does. models.py ``Encoder.fine_tune`` enables ``resnet.children()[5:]`` (layer2..layer4) of an
  ImageNet-pretrained ResNet-101; ``FINE_TUNE_FROM`` says which children get gradients here (a random
  conv1/layer1 is nothing worth freezing).
- Decoder: the tutorial's DecoderWithAttention (attention 32, embed 32, hidden 64, ``DROPOUT``).
- Loss: train.py's, cross-entropy over the packed (unpadded) predictions plus the doubly stochastic
  attention regularisation ``alpha_c * ((1 - alphas.sum(1)) ** 2).mean()``, ``alpha_c = 1``; gradients of
  both optimizers clamped to +-5 (utils.clip_gradient).
- Learning rates decay with a cosine over all steps (train.py instead multiplies them by 0.8 after 8
  epochs without improvement: too few epochs here for that).
- ``BN_CALIBRATION``: before a validation the encoder's BatchNorm running statistics are re-estimated on
  the train images (:func:`calibrate_batchnorm`), so that eval mode matches the current weights.
- Selection: each validated epoch captions the 100 val images with the plugin's own beam search (beam 3,
  captioner.beam_search, as caption.py) and scores them with mmbench's caption metrics; the best val
  CIDEr is kept (train.py keeps the best val BLEU-4 of teacher-forced predictions; on the demo the early,
  repetitive captions reach a high BLEU-4 with a low CIDEr). ``bleu-4`` holds that epoch's val BLEU-4.
- Word map: words seen at least ``min_word_freq`` times in the train captions (first-appearance order,
  then ``<unk>``, ``<start>``, ``<end>``, ``<pad>`` = 0), as create_input_files does.

The file is written in the tutorial's format: ``torch.save`` of ``{'epoch', 'epochs_since_improvement',
'bleu-4', 'encoder': models.Encoder, 'decoder': models.DecoderWithAttention, 'encoder_optimizer',
'decoder_optimizer': torch.optim.Adam}`` with whole pickled modules.

``encoder_optimizer`` is saved as ``None``, the value train.py saves when the encoder is not fine-tuned.
Here the encoder IS fine-tuned with its own Adam; that Adam's state (step, exp_avg, exp_avg_sq per
parameter) is left out of the file only so that the shipped checkpoint fits in 1 MB (with it the file is
1,066,341 bytes). Training is the same either way, so are the weights; ``--save-encoder-optimizer``
pickles the encoder's Adam too, as train.py does. The class names are the tutorial's (``models.*``,
``torchvision.models.resnet.BasicBlock``): stand-in modules of those names are put in ``sys.modules``
only while saving.

torch 2.13's oneDNN (mkldnn) convolution backward corrupts the heap on this machine's CPU (AMD EPYC,
AVX-512: "double free or corruption" / "free(): invalid next size" in the first backward pass through
the encoder; forward passes are fine), so training runs with ``torch.backends.mkldnn`` disabled, on
torch's native convolution kernels. Inference (the captioner) is not affected.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import types
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmbench_sat.captioner import DEMO_DIR, preprocess
from mmbench_sat.model import Attention as _Attention
from mmbench_sat.model import DecoderWithAttention as _Decoder

WIDTHS = (8, 16, 24, 32)
MAX_LEN = 20
EPOCHS = 32
BATCH = 8  # images per step (5 captions each); train.py: batch_size = 32 captions
DROPOUT = 0.1  # train.py: dropout = 0.5 (for a 512-wide LSTM; this one is 64 wide)
BN_CALIBRATION = True
VAL_FROM = 16  # validate (and select) in the second half only
FINE_TUNE_FROM = 0  # models.py Encoder.fine_tune: resnet.children()[5:] of a pretrained ResNet; all of a random one
ENCODER_LR = 2e-3  # train.py: 1e-4 for an ImageNet-pretrained ResNet-101; this one starts from random weights
DECODER_LR = 4e-3  # train.py: 4e-4
GRAD_CLIP = 5.0
ALPHA_C = 1.0


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock's attributes and forward (pickled under that name)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        self.stride = stride

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Encoder(nn.Module):
    def __init__(self, encoded_image_size=14):
        super().__init__()
        self.enc_image_size = encoded_image_size
        layers = [nn.Conv2d(3, WIDTHS[0], 7, 2, 3, bias=False), nn.BatchNorm2d(WIDTHS[0]), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        inp = WIDTHS[0]
        for i, w in enumerate(WIDTHS):
            layers.append(nn.Sequential(BasicBlock(inp, w, 1 if i == 0 else 2)))
            inp = w
        self.resnet = nn.Sequential(*layers)
        self.adaptive_pool = nn.AdaptiveAvgPool2d((encoded_image_size, encoded_image_size))

    def forward(self, images):
        return self.adaptive_pool(self.resnet(images)).permute(0, 2, 3, 1)

    def fine_tune(self, fine_tune=True, start=5):
        """models.py Encoder.fine_tune: gradients for resnet.children()[5:] only (layer2 .. layer4); ``start``
        other than 5 is not the tutorial's."""
        for p in self.resnet.parameters():
            p.requires_grad = False
        for c in list(self.resnet.children())[start:]:
            for p in c.parameters():
                p.requires_grad = fine_tune


class Attention(_Attention):
    def __init__(self, encoder_dim, decoder_dim, attention_dim):
        super().__init__(encoder_dim, decoder_dim, attention_dim)
        self.relu, self.softmax = nn.ReLU(), nn.Softmax(dim=1)


class DecoderWithAttention(_Decoder):
    def __init__(self, attention_dim, embed_dim, decoder_dim, vocab_size, encoder_dim, dropout=0.5):
        super().__init__(attention_dim, embed_dim, decoder_dim, vocab_size, encoder_dim)
        self.attention = Attention(encoder_dim, decoder_dim, attention_dim)
        self.dropout = nn.Dropout(p=dropout)
        self.sigmoid = nn.Sigmoid()
        self.embedding.weight.data.uniform_(-0.1, 0.1)  # models.py init_weights
        self.fc.bias.data.fill_(0)
        self.fc.weight.data.uniform_(-0.1, 0.1)

    def forward(self, encoder_out, caps, lengths):
        """models.py forward (teacher forcing) for captions sorted by decreasing length."""
        b = encoder_out.size(0)
        encoder_out = encoder_out.view(b, -1, encoder_out.size(-1))
        emb = self.embedding(caps)
        h, c = self.init_hidden_state(encoder_out)
        dec_len = [int(n) - 1 for n in lengths]
        preds = encoder_out.new_zeros(b, max(dec_len), self.vocab_size)
        alphas = encoder_out.new_zeros(b, max(dec_len), encoder_out.size(1))
        for t in range(max(dec_len)):
            bt = sum(n > t for n in dec_len)
            awe, alpha = self.attention(encoder_out[:bt], h[:bt])
            awe = self.sigmoid(self.f_beta(h[:bt])) * awe
            h, c = self.decode_step(torch.cat([emb[:bt, t], awe], 1), (h[:bt], c[:bt]))
            preds[:bt, t] = self.fc(self.dropout(h))
            alphas[:bt, t] = alpha
        return preds, dec_len, alphas


@contextmanager
def tutorial_names():
    """Make the classes pickle as models.* and torchvision.models.resnet.BasicBlock (restored afterwards)."""
    names = ("models", "torchvision", "torchvision.models", "torchvision.models.resnet")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    for cls, mod in ((Encoder, "models"), (Attention, "models"), (DecoderWithAttention, "models"),
                     (BasicBlock, "torchvision.models.resnet")):
        cls.__module__ = mod
        cls.__qualname__ = cls.__name__
        setattr(mods[mod], cls.__name__, cls)
    try:
        sys.modules.update(mods)
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
        for cls in (Encoder, Attention, DecoderWithAttention, BasicBlock):
            cls.__module__ = __name__


def tokens(caption: str) -> list[str]:
    return re.findall("[a-z0-9]+", caption.lower())


def word_map_from(captions: list[str], min_word_freq: int) -> dict[str, int]:
    freq = Counter(w for c in captions for w in tokens(c))
    words = [w for w in freq if freq[w] >= min_word_freq]
    wm = {w: i + 1 for i, w in enumerate(words)}
    for tok in ("<unk>", "<start>", "<end>"):
        wm[tok] = len(wm) + 1
    wm["<pad>"] = 0
    return wm


def encode_caps(refs, wm):
    rows, lens, owner = [], [], []
    for i, caps in enumerate(refs):
        for c in caps:
            ids = [wm.get(w, wm["<unk>"]) for w in tokens(c)][:MAX_LEN]
            seq = [wm["<start>"], *ids, wm["<end>"]]
            rows.append(seq + [0] * (MAX_LEN + 2 - len(seq)))
            lens.append(len(seq))
            owner.append(i)
    return torch.tensor(rows), torch.tensor(lens), np.array(owner)


def _clip(opt, grad_clip: float = 5.0) -> None:
    """utils.clip_gradient: clamp every gradient of the optimizer's params to [-grad_clip, grad_clip]."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.data.clamp_(-grad_clip, grad_clip)


def calibrate_batchnorm(encoder, images: torch.Tensor, batch: int) -> None:
    """Re-estimate every BatchNorm's running mean / var as the plain average over ``images`` (train-mode forward
    passes, momentum None), so that eval mode sees the statistics of the current weights, not a lagging
    exponential average of earlier ones; the modules' momentum is restored afterwards."""
    bns = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    encoder.train()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            encoder(images[i:i + batch])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    encoder.eval()


def _val_scores(encoder, decoder, x_va, refs, wm, beam_size: int) -> dict:
    """Beam-search captions of the val images (captioner.beam_search, as caption.py) and their caption metrics."""
    from mmbench.metrics.captioning import caption_scores

    from mmbench_sat.captioner import beam_search

    rev = {v: k for k, v in wm.items()}
    drop = {wm["<start>"], wm["<end>"], wm["<pad>"]}
    preds = {}
    with torch.no_grad():
        enc = torch.cat([encoder(x_va[i:i + 50]) for i in range(0, len(x_va), 50)])
        for i, e in enumerate(enc):
            r = beam_search(decoder, e.unsqueeze(0), wm, beam_size)
            seq = r["seq"] or []
            preds[str(i)] = " ".join(rev[w] for w in seq if w not in drop)
    m = caption_scores({str(i): r for i, r in enumerate(refs)}, preds, metrics=("bleu", "cider"))["metrics"]
    return {"Bleu_4": m["Bleu_4"], "CIDEr": m["CIDEr"]}


def train(epochs: int = EPOCHS, seed: int = 0, out: Path | None = None, min_word_freq: int = 3, *,
          fine_tune_encoder: bool = True, fine_tune_from: int = FINE_TUNE_FROM, encoder_lr: float = ENCODER_LR,
          decoder_lr: float = DECODER_LR, dropout: float = DROPOUT, bn_calibration: bool = BN_CALIBRATION,
          batch: int = BATCH, val_from: int = VAL_FROM, n_images: int | None = None,
          n_val_images: int | None = None, val_beam: int = 3, save_encoder_optimizer: bool = False,
          log=print) -> dict:
    """Train, write ``BEST_checkpoint_demo.pth.tar``, ``WORDMAP_demo.json`` and ``TRAINING_demo.json`` into
    ``out`` (default: the shipped demo folder), and return what TRAINING_demo.json holds. ``n_images`` /
    ``n_val_images``: the first N train / val images only (quick checks)."""
    import time

    t0 = time.perf_counter()
    with torch.backends.mkldnn.flags(enabled=False):  # see the module docstring: oneDNN's conv backward crashes
        return _train(epochs, seed, out, min_word_freq, fine_tune_encoder, fine_tune_from, encoder_lr, decoder_lr,
                      dropout, bn_calibration, batch, val_from, n_images, n_val_images, val_beam,
                      save_encoder_optimizer, log, t0)


def _train(epochs, seed, out, min_word_freq, fine_tune_encoder, fine_tune_from, encoder_lr, decoder_lr, dropout,
           bn_calibration, batch, val_from, n_images, n_val_images,
           val_beam, save_encoder_optimizer, log, t0) -> dict:
    import time

    from mmbench.datasets.demo import load

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    tr, va = load("captioning", "train"), load("captioning", "val")
    tr_images, tr_refs = tr.images[:n_images], tr.references[:n_images]
    wm = word_map_from([c for r in tr_refs for c in r], min_word_freq)
    x_tr = torch.from_numpy(np.stack([preprocess(im.load()) for im in tr_images]))
    va_images, va_refs = va.images[:n_val_images], va.references[:n_val_images]
    x_va = torch.from_numpy(np.stack([preprocess(im.load()) for im in va_images]))
    caps, lens, owner = encode_caps(tr_refs, wm)
    encoder = Encoder()
    encoder.fine_tune(fine_tune_encoder, fine_tune_from)  # train.py: encoder.fine_tune(fine_tune_encoder)
    decoder = DecoderWithAttention(attention_dim=32, embed_dim=32, decoder_dim=64, vocab_size=len(wm),
                                   encoder_dim=WIDTHS[-1], dropout=dropout)
    dec_opt = torch.optim.Adam(params=[p for p in decoder.parameters() if p.requires_grad], lr=decoder_lr)
    enc_opt = (torch.optim.Adam(params=[p for p in encoder.parameters() if p.requires_grad], lr=encoder_lr)
               if fine_tune_encoder else None)
    rng = np.random.default_rng(seed)
    total_steps = epochs * -(-len(tr_images) // batch)
    base_lr = [(opt, opt.param_groups[0]["lr"]) for opt in (dec_opt, enc_opt) if opt is not None]
    best, best_epoch, since, best_scores, history, steps = -1.0, -1, 0, {}, [], 0
    out = Path(out or DEMO_DIR)
    out.mkdir(parents=True, exist_ok=True)
    name = "BEST_checkpoint_demo.pth.tar"
    for epoch in range(epochs):
        encoder.train()
        decoder.train()
        order = rng.permutation(len(tr_images))
        for start in range(0, len(order), batch):
            imgs = order[start:start + batch]
            rows = np.concatenate([np.nonzero(owner == i)[0] for i in imgs])
            rows = rows[np.argsort(-lens[rows].numpy(), kind="stable")]
            if fine_tune_encoder:
                enc = encoder(x_tr[imgs])
            else:  # no gradients reach the encoder, but train() mode updates its BatchNorm statistics
                with torch.no_grad():
                    enc = encoder(x_tr[imgs])
            pos = {int(i): k for k, i in enumerate(imgs)}
            enc_rows = enc[torch.tensor([pos[int(owner[r])] for r in rows])]
            preds, dec_len, alphas = decoder(enc_rows, caps[rows], lens[rows].tolist())
            tgt = caps[rows][:, 1:]
            mask = torch.arange(preds.size(1))[None] < torch.tensor(dec_len)[:, None]
            loss = F.cross_entropy(preds[mask], tgt[:, :preds.size(1)][mask])
            loss = loss + ALPHA_C * ((1.0 - alphas.sum(dim=1)) ** 2).mean()  # train.py alpha_c = 1
            for opt, lr in base_lr:  # cosine decay to 0 over the run (train.py decays by 0.8 on val plateaus)
                opt.param_groups[0]["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * steps / total_steps))
            dec_opt.zero_grad()
            if enc_opt is not None:
                enc_opt.zero_grad()
            loss.backward()
            for opt in (dec_opt, enc_opt):  # utils.clip_gradient(optimizer, grad_clip=5.)
                if opt is not None:
                    _clip(opt, GRAD_CLIP)
            dec_opt.step()
            if enc_opt is not None:
                enc_opt.step()
            steps += 1
        if epoch < min(val_from, epochs - 1):  # validate (and so select) from epoch val_from on
            log(f"epoch {epoch}: train loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)")
            continue
        if bn_calibration:
            calibrate_batchnorm(encoder, x_tr, batch)
        encoder.eval()
        decoder.eval()
        scores = _val_scores(encoder, decoder, x_va, va_refs, wm, val_beam)
        history.append({"epoch": epoch, "train_loss": round(loss.item(), 4),
                        **{k: round(v, 4) for k, v in scores.items()}})
        log(f"epoch {epoch}: train loss {loss.item():.3f}, val Bleu_4 {scores['Bleu_4']:.4f} "
            f"CIDEr {scores['CIDEr']:.4f} ({time.perf_counter() - t0:.0f} s)")
        # train.py: is_best on the val BLEU-4, save_checkpoint right after validate(); here on the val CIDEr (the
        # demo's early, repetitive captions reach a high BLEU-4 with a low CIDEr)
        if scores["CIDEr"] > best:
            best, best_epoch, since, best_scores = scores["CIDEr"], epoch, 0, scores
            with tutorial_names():
                torch.save({"epoch": epoch, "epochs_since_improvement": 0, "bleu-4": scores["Bleu_4"],
                            "encoder": encoder, "decoder": decoder,
                            "encoder_optimizer": enc_opt if save_encoder_optimizer else None,
                            "decoder_optimizer": dec_opt}, out / name)
        else:
            since += 1
    (out / "WORDMAP_demo.json").write_text(json.dumps(wm))
    info = {"seed": seed, "epochs": epochs, "batch_images": batch, "validated_from_epoch": min(val_from, epochs - 1),
            "captions_per_image": 5,
            "train_images": len(tr_images), "train_captions": int(len(caps)), "steps": steps,
            "fine_tune_encoder": fine_tune_encoder, "fine_tuned": f"resnet.children()[{fine_tune_from}:]"
            if fine_tune_encoder else "nothing", "encoder_lr": encoder_lr if fine_tune_encoder else None,
            "decoder_lr": decoder_lr,
            "saved_optimizers": ["decoder_optimizer"] + (["encoder_optimizer"] if enc_opt is not None
                                                         and save_encoder_optimizer else []),
            "grad_clip": GRAD_CLIP, "alpha_c": ALPHA_C, "widths": list(WIDTHS),
            "decoder": {"attention_dim": 32, "embed_dim": 32, "decoder_dim": 64, "dropout": dropout},
            "vocab_size": len(wm), "min_word_freq": min_word_freq,
            "parameters": {"encoder": sum(p.numel() for p in encoder.parameters()),
                           "encoder_trained": sum(p.numel() for p in encoder.parameters() if p.requires_grad),
                           "decoder": sum(p.numel() for p in decoder.parameters())},
            "bn_calibration": "running statistics re-estimated on the train images before each validation"
            if bn_calibration else None, "lr_schedule": "cosine decay to 0 over all steps, per step",
            "total_steps": total_steps,
            "selection": f"best val CIDEr of beam-{val_beam} captions (mmbench caption_scores, "
                         f"{len(va_images)} val images)",
            "best_epoch": best_epoch, "best_val": {k: round(v, 4) for k, v in best_scores.items()},
            "history": history, "final_loss": loss.item(), "threads": torch.get_num_threads(),
            "torch": torch.__version__.split("+")[0], "seconds": round(time.perf_counter() - t0, 1),
            "checkpoint_bytes": (out / name).stat().st_size}
    (out / "TRAINING_demo.json").write_text(json.dumps(info, indent=1) + "\n")
    log(f"best epoch {best_epoch} (val CIDEr {best:.4f}); wrote {out / name} ({info['checkpoint_bytes']} bytes)")
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-word-freq", type=int, default=3)
    ap.add_argument("--no-fine-tune-encoder", dest="fine_tune_encoder", action="store_false",
                    help="train.py fine_tune_encoder = False: a random frozen encoder (the previous demo)")
    ap.add_argument("--fine-tune-from", type=int, default=FINE_TUNE_FROM,
                    help="fine-tune resnet.children()[N:] (the tutorial: 5, layer2..layer4)")
    ap.add_argument("--encoder-lr", type=float, default=ENCODER_LR)
    ap.add_argument("--dropout", type=float, default=DROPOUT)
    ap.add_argument("--batch", type=int, default=BATCH, help="images per step (5 captions each)")
    ap.add_argument("--val-from", type=int, default=VAL_FROM, help="first epoch that is validated")
    ap.add_argument("--no-bn-calibration", dest="bn_calibration", action="store_false",
                    help="do not re-estimate the BatchNorm statistics on the train images before each validation")
    ap.add_argument("--decoder-lr", type=float, default=DECODER_LR)
    ap.add_argument("--save-encoder-optimizer", action="store_true",
                    help="pickle the encoder's Adam too (train.py does when fine-tuning; the file then exceeds 1 MB)")
    args = ap.parse_args(argv)
    train(args.epochs, args.seed, args.out, args.min_word_freq, fine_tune_encoder=args.fine_tune_encoder,
          fine_tune_from=args.fine_tune_from, dropout=args.dropout, bn_calibration=args.bn_calibration,
          batch=args.batch,
          val_from=args.val_from, encoder_lr=args.encoder_lr, decoder_lr=args.decoder_lr,
          save_encoder_optimizer=args.save_encoder_optimizer)


if __name__ == "__main__":
    main()
