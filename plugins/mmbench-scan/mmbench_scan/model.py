"""SCAN (Lee et al., ECCV 2018) rebuilt from its checkpoint's ``opt``: t2i / i2t stacked cross attention.

Written from the description of the official forward pass (kuanghuei/SCAN:model.py,
evaluation.py; facts only, summarised in ../shared/parity/scan_*/README.md). Parameter
names equal the official ones (``model[0]``: ``fc`` or weight-normed ``fc``; ``model[1]``:
``embed``, ``rnn``) so the official state_dicts load with ``strict=True``.

Scoring is vectorised over a tile of (images x captions) pairs with padded words masked,
and runs in float64 like the official ``shard_xattn_*`` (which applies
``torch.from_numpy`` to the float64 embedding cache of ``encode_data``). The encoders,
``func_attention`` and the cosine are shared with IMRAM (:mod:`mmbench_vse.layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench_vse.layers import EPS, RAW_FEATURE_NORMS, EncoderImagePrecomp, EncoderText, attend, cosine, \
    expand_pairs, l1norm, l2norm, legacy_weight_norm_names

__all__ = ["AGG_FUNCS", "EPS", "RAW_FEATURE_NORMS", "SCAN", "EncoderImagePrecomp", "EncoderText", "aggregate", "attend",
           "cosine", "l1norm", "l2norm"]

AGG_FUNCS = ("Mean", "Max", "Sum", "LogSumExp")


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
        # legacy torch.nn.utils.weight_norm names -> parametrization names
        img_sd = legacy_weight_norm_names(dict(states[0]), "fc.")
        self.img_enc.load_state_dict(img_sd, strict=True)
        self.txt_enc.load_state_dict(states[1], strict=True)

    def official_states(self) -> list[dict]:
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]

    def pair_scores(self, v: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        """v (Bi, R, E) regions; c (Bt, L, E) zero-padded words, c_mask (Bt, L). Returns (Bi, Bt)."""
        bi, bt = v.size(0), c.size(0)
        vv, cc, mm = expand_pairs(v, c, c_mask)
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
