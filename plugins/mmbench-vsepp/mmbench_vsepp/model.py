"""VSE++ (Faghri et al., BMVC 2018) precomputed-feature model rebuilt from its checkpoint's ``opt``.

Written from the description of the official forward pass (fartashf/vsepp:model.py,
python3 branch; facts only, summarised in ../shared/parity/vsepp/README.md): a linear
image encoder on one precomputed vector per image and a unidirectional GRU text encoder
whose output at the last real word is the caption vector. Both are divided by their
L2 norm WITHOUT an eps (unlike SCAN/SGRAF), then ``abs`` when ``use_abs``. Parameter names
equal the official ones (``fc``; ``embed``, ``rnn``) for ``strict=True`` loading.
:func:`order_scores` is the order-embedding measure (``opt.measure == "order"``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def l2norm(x: torch.Tensor) -> torch.Tensor:
    # fartashf/vsepp:model.py l2norm: x / sqrt(sum x^2) over dim 1, no eps
    return x / x.pow(2).sum(dim=1, keepdim=True).sqrt()


class EncoderImagePrecomp(nn.Module):
    def __init__(self, img_dim: int, embed_size: int, use_abs: bool = False, no_imgnorm: bool = False):
        super().__init__()
        self.use_abs, self.no_imgnorm = use_abs, no_imgnorm
        self.fc = nn.Linear(img_dim, embed_size)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.fc(feats)
        if not self.no_imgnorm:
            x = l2norm(x)
        return x.abs() if self.use_abs else x


class EncoderText(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1, use_abs: bool = False):
        super().__init__()
        self.use_abs = use_abs
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        last = out[torch.arange(out.size(0), device=out.device), lengths.to(out.device) - 1]
        x = l2norm(last)  # always normalised in the official text encoder
        return x.abs() if self.use_abs else x


class VSE(nn.Module):
    def __init__(self, opt: dict):
        super().__init__()
        use_abs = bool(opt.get("use_abs", False))
        self.img_enc = EncoderImagePrecomp(opt["img_dim"], opt["embed_size"], use_abs, bool(opt.get("no_imgnorm", False)))
        self.txt_enc = EncoderText(opt["vocab_size"], opt["word_dim"], opt["embed_size"],
                                   int(opt.get("num_layers", 1)), use_abs)

    def load_official(self, states: list[dict]) -> None:
        self.img_enc.load_state_dict(states[0], strict=True)
        self.txt_enc.load_state_dict(states[1], strict=True)

    def official_states(self) -> list[dict]:
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]


def order_scores(im: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """(Bi, D) image and (Bt, D) caption embeddings -> (Bi, Bt) order-embedding scores.

    fartashf/vsepp:model.py order_sim: ``-sqrt(sum_d max(0, s_d - im_d)^2)``, computed in
    the embeddings' dtype. The official evaluation (evaluation.py i2t/t2i, ``measure ==
    'order'``) feeds it ``torch.Tensor(...)`` of its float64 embedding cache, i.e. float32,
    in chunks of 100 images (i2t) or 100 captions (t2i); each score depends on one pair only,
    so the chunking does not change it. The caption - image difference is summed over the
    last axis of a (Bi, Bt, D) tensor, as the official (Bt, Bi, D) one is, then transposed.
    """
    diff = s.unsqueeze(0) - im.unsqueeze(1)  # (Bi, Bt, D): caption minus image, as YmX
    return -diff.clamp(min=0).pow(2).sum(2).sqrt()
