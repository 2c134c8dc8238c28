"""Train the small Show-Attend-Tell model shipped with this plugin on the demo dataset's images.

    python -m mmbench_sat.train_demo [--out DIR] [--epochs N] [--seed S]

Seeded, single-threaded CPU. The encoder is a narrow torchvision-layout ResNet (BasicBlock, one
block per stage, widths 8/16/24/48: the shipped file must stay under 1 MB), randomly initialised
and NOT fine-tuned (the tutorial's ``fine_tune_encoder = False``): it gets no gradients, but
``encoder.train()`` mode lets its BatchNorm running statistics follow the training batches, as in
the tutorial. (Fine-tuning it crashed torch 2.13's CPU backward on this machine: double free.)
The decoder is the tutorial's DecoderWithAttention. The loss
is the tutorial's train.py loss: cross-entropy over the packed (unpadded) predictions plus the doubly
stochastic attention regularisation ``alpha_c * ((1 - alphas.sum(1)) ** 2).mean()``. Words seen at
least ``min_word_freq`` times in the train captions (first-appearance order, then ``<unk>``,
``<start>``, ``<end>``, ``<pad>`` = 0) form the word map, as create_input_files does.

The file is written in the tutorial's format: ``torch.save`` of
``{'epoch', 'epochs_since_improvement', 'bleu-4', 'encoder': models.Encoder, 'decoder':
models.DecoderWithAttention, 'encoder_optimizer', 'decoder_optimizer': torch.optim.Adam}`` with
whole pickled modules. To size it, the encoder optimizer's state is not saved (``None``, which is
what the tutorial writes when ``fine_tune_encoder`` is off). The class names are the tutorial's
(``models.*``, ``torchvision.models.resnet.BasicBlock``): stand-in modules of those names are put in
``sys.modules`` only while saving. ``bleu-4`` holds the best validation token accuracy instead (the
demo's val selection criterion), as a float.
"""

from __future__ import annotations

import argparse
import json
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

WIDTHS = (8, 16, 24, 48)
MAX_LEN = 20


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


def train(epochs: int = 12, seed: int = 0, out: Path | None = None, min_word_freq: int = 3) -> Path:
    from mmbench.datasets.demo import load

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    tr, va = load("captioning", "train"), load("captioning", "val")
    wm = word_map_from([c for r in tr.references for c in r], min_word_freq)
    x_tr = torch.from_numpy(np.stack([preprocess(im.load()) for im in tr.images]))
    x_va = torch.from_numpy(np.stack([preprocess(im.load()) for im in va.images]))
    caps, lens, owner = encode_caps(tr.references, wm)
    vcaps, vlens, vowner = encode_caps(va.references, wm)
    encoder = Encoder()
    decoder = DecoderWithAttention(attention_dim=32, embed_dim=32, decoder_dim=64, vocab_size=len(wm),
                                   encoder_dim=WIDTHS[-1], dropout=0.5)
    dec_opt = torch.optim.Adam(decoder.parameters(), lr=4e-3)
    rng = np.random.default_rng(seed)
    best, best_epoch, since = -1.0, -1, 0
    out = Path(out or DEMO_DIR)
    out.mkdir(parents=True, exist_ok=True)
    name = "BEST_checkpoint_demo.pth.tar"
    for epoch in range(epochs):
        encoder.train()
        decoder.train()
        order = rng.permutation(len(tr.images))
        for start in range(0, len(order), 16):
            imgs = order[start:start + 16]
            rows = np.concatenate([np.nonzero(owner == i)[0] for i in imgs])
            rows = rows[np.argsort(-lens[rows].numpy(), kind="stable")]
            with torch.no_grad():  # fine_tune_encoder False: no gradients, but train() mode updates BN statistics
                enc = encoder(x_tr[imgs])
            pos = {int(i): k for k, i in enumerate(imgs)}
            enc_rows = enc[torch.tensor([pos[int(owner[r])] for r in rows])]
            preds, dec_len, alphas = decoder(enc_rows, caps[rows], lens[rows].tolist())
            tgt = caps[rows][:, 1:]
            mask = torch.arange(preds.size(1))[None] < torch.tensor(dec_len)[:, None]
            loss = F.cross_entropy(preds[mask], tgt[:, :preds.size(1)][mask])
            loss = loss + 1.0 * ((1.0 - alphas.sum(dim=1)) ** 2).mean()  # train.py alpha_c = 1
            dec_opt.zero_grad()
            loss.backward()
            for opt in (dec_opt,):  # utils.clip_gradient(optimizer, grad_clip=5.)
                for group in opt.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad.data.clamp_(-5.0, 5.0)
            dec_opt.step()
        encoder.eval()
        decoder.eval()
        with torch.no_grad():
            enc = encoder(x_va)[vowner]
            order_v = np.argsort(-vlens.numpy(), kind="stable")
            preds, dec_len, _ = decoder(enc[order_v], vcaps[order_v], vlens[order_v].tolist())
            tgt = vcaps[order_v][:, 1:]
            mask = torch.arange(preds.size(1))[None] < torch.tensor(dec_len)[:, None]
            acc = float((preds.argmax(-1)[mask] == tgt[:, :preds.size(1)][mask]).float().mean())
        print(f"epoch {epoch}: train loss {loss.item():.3f}, val token accuracy {acc:.3f}")
        if acc > best:  # utils.save_checkpoint(is_best=True) right after validate(): modules in eval mode
            best, best_epoch, since = acc, epoch, 0
            with tutorial_names():
                torch.save({"epoch": epoch, "epochs_since_improvement": 0, "bleu-4": acc, "encoder": encoder,
                            "decoder": decoder, "encoder_optimizer": None, "decoder_optimizer": dec_opt},
                           out / name)
        else:
            since += 1
    (out / "WORDMAP_demo.json").write_text(json.dumps(wm))
    print(f"best epoch {best_epoch} (val token accuracy {best:.3f}); wrote {out / name}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-word-freq", type=int, default=3)
    args = ap.parse_args(argv)
    train(args.epochs, args.seed, args.out, args.min_word_freq)


if __name__ == "__main__":
    main()
