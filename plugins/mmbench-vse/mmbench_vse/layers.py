"""Torch pieces shared by the SCAN-family models (SCAN, IMRAM; SGRAF's encoders and norms).

Written from the descriptions of the official forward passes (kuanghuei/SCAN:model.py,
HuiChen24/IMRAM:model.py, Paranioar/SGRAF:model.py; facts only), which share them:

- :func:`l2norm` / :func:`l1norm`: ``x / (||x|| + eps)`` (the eps is added, not clamped);
- :class:`EncoderImagePrecomp`: a linear layer (optionally weight-normed with ``dim=None``)
  on every region, then :func:`l2norm`;
- :class:`EncoderText`: embedding (optionally dropout) -> (bi)GRU packed by length, the two
  directions averaged, :func:`l2norm` per word;
- :func:`attend`: ``func_attention`` for a tile of (image, caption) pairs with padded items masked;
- :func:`cosine`: ``cosine_similarity`` with the product of norms clamped at eps;
- :func:`word_mask`, :func:`expand_pairs`, :func:`score_by_caption_chunks`: the tiling of
  (images x captions) pairs that replaces the official per-caption loops.

The module and parameter names of the encoders are arguments (``fc`` / ``fc_local``, ``rnn`` /
``cap_rnn``) so that each model's official state_dicts load with ``strict=True``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8
#: ``raw_feature_norm`` values understood by :func:`attend` (SCAN's set)
RAW_FEATURE_NORMS = ("clipped_l2norm", "l2norm", "clipped_l1norm", "l1norm", "clipped", "softmax", "no_norm")


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # SCAN/SGRAF/IMRAM add eps to the norm (x / (||x|| + eps)), they do not clamp it.
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


def l1norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / (x.abs().sum(dim=dim, keepdim=True) + EPS)


def legacy_weight_norm_names(state: dict, prefix: str) -> dict:
    """Rename ``<prefix>weight_g`` / ``<prefix>weight_v`` (``torch.nn.utils.weight_norm``, as the official
    checkpoints hold them) to the parametrization names of :class:`EncoderImagePrecomp`, in place."""
    if f"{prefix}weight_g" in state:
        state[f"{prefix}parametrizations.weight.original0"] = state.pop(f"{prefix}weight_g")
        state[f"{prefix}parametrizations.weight.original1"] = state.pop(f"{prefix}weight_v")
    return state


class EncoderImagePrecomp(nn.Module):
    """``fc_name`` (a Linear, weight-normed with ``dim=None`` when ``weight_norm``) on every region, then l2norm."""

    def __init__(self, img_dim: int, embed_size: int, no_imgnorm: bool = False, weight_norm: bool = False,
                 fc_name: str = "fc"):
        super().__init__()
        self.no_imgnorm, self.fc_name = no_imgnorm, fc_name
        fc = nn.Linear(img_dim, embed_size)
        if weight_norm:  # precomp_enc_type=weight_norm: weight_g / weight_v in the official state_dict
            fc = nn.utils.parametrizations.weight_norm(fc, dim=None)
        setattr(self, fc_name, fc)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = getattr(self, self.fc_name)(images)
        return x if self.no_imgnorm else l2norm(x, -1)


class EncoderText(nn.Module):
    """Embedding (then dropout when ``dropout`` is given) + (bi)GRU ``rnn_name`` over the packed caption;
    bi-GRU halves averaged; l2norm per word unless ``no_txtnorm``."""

    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 use_bi_gru: bool = False, no_txtnorm: bool = False, rnn_name: str = "rnn",
                 dropout: float | None = None):
        super().__init__()
        self.embed_size, self.bi_gru, self.no_txtnorm, self.rnn_name = embed_size, use_bi_gru, no_txtnorm, rnn_name
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.dropout = nn.Dropout(dropout) if dropout is not None else None
        setattr(self, rnn_name, nn.GRU(word_dim, embed_size, num_layers, batch_first=True,
                                       bidirectional=use_bi_gru))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) ids, (B,) lengths -> (B, max(lengths), E), zero beyond each length."""
        x = self.embed(ids)
        if self.dropout is not None:
            x = self.dropout(x)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = getattr(self, self.rnn_name)(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        if self.bi_gru:
            half = out.size(2) // 2
            out = (out[:, :, :half] + out[:, :, half:]) / 2
        return out if self.no_txtnorm else l2norm(out, -1)


def masked_softmax(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    if mask is not None:
        x = x.masked_fill(~mask, float("-inf"))
    return torch.softmax(x, dim=dim)


def attend(query: torch.Tensor, context: torch.Tensor, *, raw_feature_norm: str, smooth: float,
           query_mask: torch.Tensor | None, context_mask: torch.Tensor | None) -> torch.Tensor:
    """SCAN's ``func_attention`` (IMRAM's, ``weight=None``) for a tile of pairs.

    query (P, Q, E) with padded rows zero, context (P, C, E); masks (P, Q) / (P, C) bool
    (None: all real). Returns the attended context for each query item, (P, Q, E), not normalised.
    """
    attn = torch.bmm(context, query.transpose(1, 2))  # (P, C, Q)
    if context_mask is not None:
        # padded context rows are all zero: their norm over the query axis would be sqrt(0), whose gradient
        # is NaN in training. They are excluded by the context softmax below, so any constant will do.
        attn = attn.masked_fill(~context_mask.unsqueeze(2), 1.0)
    qm = None if query_mask is None else query_mask.unsqueeze(1)  # broadcast over C
    if raw_feature_norm == "softmax":  # softmax over the query axis (nn.Softmax() on (P*C, Q) -> dim 1)
        attn = masked_softmax(attn, qm, dim=2)
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
    attn = masked_softmax(attn.transpose(1, 2) * smooth, cm, dim=2)  # (P, Q, C), over the context
    return torch.bmm(attn, context)


def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # SCAN's / IMRAM's cosine_similarity: <a,b> / clamp(||a|| ||b||, eps)
    return (a * b).sum(dim) / (a.norm(2, dim) * b.norm(2, dim)).clamp(min=EPS)


def word_mask(c: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L) bool of the real words of zero-padded word embeddings ``c`` (B, L, E)."""
    return torch.arange(c.size(1), device=c.device).unsqueeze(0) < lengths.to(c.device).unsqueeze(1)


def expand_pairs(v: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor):
    """Every (image, caption) pair of a tile as rows: v (Bi, R, E), c (Bt, L, E), c_mask (Bt, L) ->
    (Bi*Bt, R, E), (Bi*Bt, L, E), (Bi*Bt, L), image-major."""
    bi, bt = v.size(0), c.size(0)
    vv = v.unsqueeze(1).expand(bi, bt, *v.shape[1:]).reshape(bi * bt, *v.shape[1:])
    cc = c.unsqueeze(0).expand(bi, bt, *c.shape[1:]).reshape(bi * bt, *c.shape[1:])
    mm = c_mask.unsqueeze(0).expand(bi, bt, c.size(1)).reshape(bi * bt, c.size(1))
    return vv, cc, mm


def score_by_caption_chunks(pair_scores: Callable, v: torch.Tensor, c: torch.Tensor, mask: torch.Tensor, *,
                            max_elements: int, dtype: torch.dtype, width: int = 1) -> torch.Tensor:
    """(Bi, Bt) ``pair_scores(v, c_chunk, mask_chunk)`` over consecutive caption chunks, each trimmed to its
    longest caption; a chunk's largest (pairs x items x ``width`` * embed) temporary stays under ``max_elements``."""
    bi, bt = v.size(0), c.size(0)
    per_caption = bi * max(c.size(1), v.size(1)) * width * max(v.size(2), v.size(1), c.size(1))
    step = max(1, max_elements // max(1, per_caption))
    out = torch.empty(bi, bt, dtype=dtype, device=v.device)
    for t0 in range(0, bt, step):
        t1 = min(bt, t0 + step)
        n = int(mask[t0:t1].sum(1).max())
        out[:, t0:t1] = pair_scores(v, c[t0:t1, :n], mask[t0:t1, :n])
    return out
