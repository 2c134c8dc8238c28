"""SCAN (Lee et al., ECCV 2018) rebuilt from its checkpoint's ``opt``: t2i / i2t stacked cross attention.

Written from the description of the official forward pass (kuanghuei/SCAN:model.py,
evaluation.py; facts only, summarised in ../shared/parity/scan_*/README.md). Parameter
names equal the official ones (``model[0]``: ``fc`` or weight-normed ``fc``; ``model[1]``:
``embed``, ``rnn``) so the official state_dicts load with ``strict=True``.

Scoring is vectorised over a tile of (images x captions) pairs with padded words masked,
and runs in float64 like the official ``shard_xattn_*`` (which applies
``torch.from_numpy`` to the float64 embedding cache of ``encode_data``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8
RAW_FEATURE_NORMS = ("clipped_l2norm", "l2norm", "clipped_l1norm", "l1norm", "clipped", "softmax", "no_norm")
AGG_FUNCS = ("Mean", "Max", "Sum", "LogSumExp")


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # SCAN adds eps to the norm (x / (||x|| + eps)), it does not clamp it.
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


def l1norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / (x.abs().sum(dim=dim, keepdim=True) + EPS)


class EncoderImagePrecomp(nn.Module):
    def __init__(self, img_dim: int, embed_size: int, no_imgnorm: bool = False, weight_norm: bool = False):
        super().__init__()
        self.no_imgnorm = no_imgnorm
        self.fc = nn.Linear(img_dim, embed_size)
        if weight_norm:  # precomp_enc_type=weight_norm: fc.weight_g / fc.weight_v in the state_dict
            self.fc = nn.utils.parametrizations.weight_norm(self.fc, dim=None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.fc(images)
        return x if self.no_imgnorm else l2norm(x, -1)


class EncoderText(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 use_bi_gru: bool = False, no_txtnorm: bool = False, rnn_name: str = "rnn"):
        super().__init__()
        self.bi_gru, self.no_txtnorm, self.rnn_name = use_bi_gru, no_txtnorm, rnn_name
        self.embed = nn.Embedding(vocab_size, word_dim)
        setattr(self, rnn_name, nn.GRU(word_dim, embed_size, num_layers, batch_first=True,
                                       bidirectional=use_bi_gru))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) ids, (B,) lengths -> (B, max(lengths), E), zero beyond each length."""
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = getattr(self, self.rnn_name)(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        if self.bi_gru:
            half = out.size(2) // 2
            out = (out[:, :, :half] + out[:, :, half:]) / 2
        return out if self.no_txtnorm else l2norm(out, -1)


def _masked_softmax(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    if mask is not None:
        x = x.masked_fill(~mask, float("-inf"))
    return torch.softmax(x, dim=dim)


def attend(query: torch.Tensor, context: torch.Tensor, *, raw_feature_norm: str, smooth: float,
           query_mask: torch.Tensor | None, context_mask: torch.Tensor | None) -> torch.Tensor:
    """SCAN's ``func_attention`` for a tile of pairs.

    query (P, Q, E), context (P, C, E), masks (P, Q) / (P, C) bool (None: all real).
    Returns the attended context for each query item, (P, Q, E), not normalised.
    """
    attn = torch.bmm(context, query.transpose(1, 2))  # (P, C, Q)
    qm = None if query_mask is None else query_mask.unsqueeze(1)  # broadcast over C
    if raw_feature_norm == "softmax":  # softmax over the query axis (nn.Softmax() on (P*C, Q) -> dim 1)
        attn = _masked_softmax(attn, qm, dim=2)
    elif raw_feature_norm in ("l2norm", "clipped_l2norm"):
        if raw_feature_norm == "clipped_l2norm":
            attn = torch.nn.functional.leaky_relu(attn, 0.1)
        attn = l2norm(attn, 2)  # padded query items are zeros: they add nothing to the norm
    elif raw_feature_norm in ("l1norm", "clipped_l1norm"):
        if raw_feature_norm == "clipped_l1norm":
            attn = torch.nn.functional.leaky_relu(attn, 0.1)
        attn = l1norm(attn, 2)
    elif raw_feature_norm == "clipped":
        attn = torch.nn.functional.leaky_relu(attn, 0.1)
    elif raw_feature_norm != "no_norm":
        raise ValueError(f"unknown raw_feature_norm {raw_feature_norm!r}")
    cm = None if context_mask is None else context_mask.unsqueeze(1)
    attn = _masked_softmax(attn.transpose(1, 2) * smooth, cm, dim=2)  # (P, Q, C), over the context
    return torch.bmm(attn, context)


def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # SCAN's cosine_similarity: <a,b> / clamp(||a|| ||b||, eps)
    return (a * b).sum(dim) / (a.norm(2, dim) * b.norm(2, dim)).clamp(min=EPS)


def aggregate(sim: torch.Tensor, mask: torch.Tensor | None, agg_func: str, lambda_lse: float) -> torch.Tensor:
    """Aggregate per-query-item cosines (P, Q) over the real items."""
    if mask is None:
        mask = torch.ones_like(sim, dtype=torch.bool)
    if agg_func == "Mean":
        return (sim * mask).sum(1) / mask.sum(1)
    if agg_func == "Sum":
        return (sim * mask).sum(1)
    if agg_func == "Max":
        return sim.masked_fill(~mask, float("-inf")).max(1).values
    if agg_func == "LogSumExp":
        return torch.log(((sim * lambda_lse).exp() * mask).sum(1)) / lambda_lse
    raise ValueError(f"unknown agg_func {agg_func!r}")


class SCAN(nn.Module):
    def __init__(self, opt: dict):
        super().__init__()
        enc_type = opt.get("precomp_enc_type", "basic")
        if enc_type not in ("basic", "weight_norm"):
            raise ValueError(f"precomp_enc_type must be basic or weight_norm, got {enc_type!r}")
        self.img_enc = EncoderImagePrecomp(opt["img_dim"], opt["embed_size"], bool(opt.get("no_imgnorm", False)),
                                           weight_norm=enc_type == "weight_norm")
        self.txt_enc = EncoderText(opt["vocab_size"], opt["word_dim"], opt["embed_size"],
                                   int(opt.get("num_layers", 1)), bool(opt.get("bi_gru", False)),
                                   bool(opt.get("no_txtnorm", False)))
        self.cross_attn = opt.get("cross_attn", "t2i")
        self.raw_feature_norm = opt.get("raw_feature_norm", "clipped_l2norm")
        self.agg_func = opt.get("agg_func", "LogSumExp")
        self.lambda_lse = float(opt.get("lambda_lse", 6.0))
        self.lambda_softmax = float(opt.get("lambda_softmax", 9.0))

    def load_official(self, states: list[dict]) -> None:
        img_sd = dict(states[0])
        if "fc.weight_g" in img_sd:  # legacy torch.nn.utils.weight_norm names -> parametrization names
            img_sd["fc.parametrizations.weight.original0"] = img_sd.pop("fc.weight_g")
            img_sd["fc.parametrizations.weight.original1"] = img_sd.pop("fc.weight_v")
        self.img_enc.load_state_dict(img_sd, strict=True)
        self.txt_enc.load_state_dict(states[1], strict=True)

    def official_states(self) -> list[dict]:
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]

    def pair_scores(self, v: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        """v (Bi, R, E) regions; c (Bt, L, E) zero-padded words, c_mask (Bt, L). Returns (Bi, Bt)."""
        bi, bt = v.size(0), c.size(0)
        vv = v.unsqueeze(1).expand(bi, bt, *v.shape[1:]).reshape(bi * bt, *v.shape[1:])
        cc = c.unsqueeze(0).expand(bi, bt, *c.shape[1:]).reshape(bi * bt, *c.shape[1:])
        mm = c_mask.unsqueeze(0).expand(bi, bt, c.size(1)).reshape(bi * bt, c.size(1))
        kw = dict(raw_feature_norm=self.raw_feature_norm, smooth=self.lambda_softmax)
        if self.cross_attn == "t2i":  # words attend to regions; aggregate over words
            weighted = attend(cc, vv, query_mask=mm, context_mask=None, **kw)
            sims = aggregate(cosine(cc, weighted), mm, self.agg_func, self.lambda_lse)
        elif self.cross_attn == "i2t":  # regions attend to words; aggregate over regions
            weighted = attend(vv, cc, query_mask=None, context_mask=mm, **kw)
            sims = aggregate(cosine(vv, weighted), None, self.agg_func, self.lambda_lse)
        else:
            raise ValueError(f"unknown cross_attn {self.cross_attn!r}")
        return sims.view(bi, bt)
