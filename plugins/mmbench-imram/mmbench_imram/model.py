"""IMRAM (Chen et al., CVPR 2020) rebuilt from its checkpoint's ``opt``.

Written from the official forward pass (HuiChen24/IMRAM:model.py, evaluation.py at acada5c;
facts summarised in tests/fixtures/imram/README.md), not copied. Parameter names equal the
official ones (``img_enc.fc_local``, ``txt_enc.embed``, ``txt_enc.rnn``, ``linear_t2i``,
``gate_t2i``, ``linear_i2t``, ``gate_i2t``) so the official state_dict (saved through
``nn.DataParallel``: every key prefixed ``module.``) loads with ``strict=True``.

Scoring (``model_mode``):

- ``text_IMRAM`` (HuiChen24/IMRAM:model.py ``xattn_score_Text_IMRAM``): the words are the
  query, the regions the context; at every one of ``iteration_step`` steps the query attends
  to the regions (SCAN's ``func_attention``), the step's score is the mean over words of
  cos(word, attended regions) -- the ORIGINAL word vectors, not the updated query -- and the
  query is updated by the gated memory ``q*g + tanh(W[q;a])*(1-g)``, ``g = sigmoid(G[q;a])``,
  then L2-normalised unless ``no_IMRAM_norm``.
- ``image_IMRAM`` (``xattn_score_Image_IMRAM``): the same with regions as query and words as
  context, mean over regions, the ``*_i2t`` gate.
- ``full_IMRAM``: both. The score is the sum of every step's score, t2i steps first, then i2t
  (evaluation.py ``shard_xattn_Full_IMRAM``), accumulated in float64; each step is computed
  in float32 (the official functions call ``.float()`` on the float64 embedding cache).

``agg_func``, ``lambda_lse`` and ``cross_attn`` are never read on this path (the mean over
words/regions is hard-coded); ``raw_feature_norm`` ``l1norm``/``clipped_l1norm`` raise
``NameError`` (``l1norm_d`` is undefined) in the official ``func_attention``. The official
calls score one caption at a time with its exact length; here a tile of (images x captions)
pairs is scored at once with padded words masked (zeroed in the query, excluded from every
softmax and mean), which gives the same numbers. The encoders, ``func_attention`` and the cosine
are SCAN's (:mod:`mmbench_vse.layers`; IMRAM's ``SCAN`` class is a fork of kuanghuei/SCAN).
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench_vse import layers
from mmbench_vse.layers import EPS, EncoderText, cosine, expand_pairs, l2norm, legacy_weight_norm_names

MODEL_MODES = ("full_IMRAM", "text_IMRAM", "image_IMRAM")
RAW_FEATURE_NORMS = ("clipped_l2norm", "l2norm", "softmax", "clipped", "no_norm")
BROKEN_NORMS = ("l1norm", "clipped_l1norm")  # official func_attention: NameError (l1norm_d)

__all__ = ["BROKEN_NORMS", "EPS", "IMRAM", "MODEL_MODES", "RAW_FEATURE_NORMS", "EncoderImagePrecomp", "EncoderText",
           "attend", "cosine", "l2norm"]


class EncoderImagePrecomp(layers.EncoderImagePrecomp):
    """``fc_local`` (plain or weight-normed with ``dim=None``) on every region, then l2norm.

    The official forward also returns ``feat_local.mean(1)`` (img_fc), which no score uses.
    """

    def __init__(self, img_dim: int, embed_size: int, no_imgnorm: bool = False, weight_norm: bool = False):
        super().__init__(img_dim, embed_size, no_imgnorm, weight_norm, fc_name="fc_local")


def attend(query: torch.Tensor, context: torch.Tensor, *, raw_feature_norm: str, smooth: float,
           query_mask: torch.Tensor | None, context_mask: torch.Tensor | None) -> torch.Tensor:
    """HuiChen24/IMRAM:model.py ``func_attention`` for a tile of pairs (``weight=None``, as every caller):
    SCAN's (:func:`mmbench_vse.layers.attend`) without the l1 norms, for which the official one raises."""
    if raw_feature_norm not in RAW_FEATURE_NORMS:
        raise ValueError(f"unknown raw_feature_norm {raw_feature_norm!r}")
    return layers.attend(query, context, raw_feature_norm=raw_feature_norm, smooth=smooth, query_mask=query_mask,
                         context_mask=context_mask)


class IMRAM(nn.Module):
    """The official ``SCAN`` class of HuiChen24/IMRAM (encoders + the two gated memories)."""

    def __init__(self, opt: dict):
        super().__init__()
        e = int(opt["embed_size"])
        enc_type = opt.get("precomp_enc_type", "basic")
        if enc_type not in ("basic", "weight_norm"):
            raise ValueError(f"precomp_enc_type must be basic or weight_norm, got {enc_type!r}")
        self.img_enc = EncoderImagePrecomp(int(opt["img_dim"]), e, bool(opt.get("no_imgnorm", False)),
                                           weight_norm=enc_type == "weight_norm")
        self.txt_enc = EncoderText(int(opt["vocab_size"]), int(opt["word_dim"]), e, int(opt.get("num_layers", 1)),
                                   bool(opt.get("bi_gru", False)), bool(opt.get("no_txtnorm", False)))
        self.linear_t2i = nn.Linear(2 * e, e)
        self.gate_t2i = nn.Linear(2 * e, e)
        self.linear_i2t = nn.Linear(2 * e, e)
        self.gate_i2t = nn.Linear(2 * e, e)
        self.set_scoring(opt)

    def set_scoring(self, opt: dict) -> None:
        """The eval-time fields of ``opt`` that shape the score (not the weights)."""
        self.model_mode = opt.get("model_mode", "full_IMRAM")
        self.iteration_step = int(opt.get("iteration_step", 3))
        self.no_imram_norm = bool(opt.get("no_IMRAM_norm", False))
        self.raw_feature_norm = opt.get("raw_feature_norm", "clipped_l2norm")
        self.lambda_softmax = float(opt.get("lambda_softmax", 9.0))

    # --- official state_dict <-> this module
    def load_official(self, state: dict) -> None:
        sd = dict(state)
        if sd and all(k.startswith("module.") for k in sd):  # saved through nn.DataParallel
            sd = {k[len("module."):]: v for k, v in sd.items()}
        sd = legacy_weight_norm_names(sd, "img_enc.fc_local.")  # legacy weight_norm names -> parametrization names
        self.load_state_dict(sd, strict=True)

    def official_state(self) -> dict:
        """The state_dict as the official train_gpus.py saves it (``nn.DataParallel``: ``module.`` keys)."""
        out = {}
        for k, v in self.state_dict().items():
            k = k.replace("fc_local.parametrizations.weight.original0", "fc_local.weight_g")
            k = k.replace("fc_local.parametrizations.weight.original1", "fc_local.weight_v")
            out[f"module.{k}"] = v
        return out

    def official_states(self) -> list[dict]:
        """For :func:`mmbench_vse.training.train_demo` (one entry: the official checkpoint's ``model``)."""
        return [self.official_state()]

    # --- scoring
    def _gated(self, which: str, query: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        lin, gate = (self.linear_t2i, self.gate_t2i) if which == "t2i" else (self.linear_i2t, self.gate_i2t)
        cat = torch.cat([query, attended], 2)
        g = torch.sigmoid(gate(cat))
        return query * g + torch.tanh(lin(cat)) * (1 - g)

    def _steps(self, which: str, v: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor) -> list[torch.Tensor]:
        """Per-step (P,) float32 scores of one direction for P pairs (v (P, R, E), c (P, L, E))."""
        kw = dict(raw_feature_norm=self.raw_feature_norm, smooth=self.lambda_softmax)
        fm = c_mask.to(c.dtype).unsqueeze(2)
        out = []
        if which == "t2i":  # words attend to regions; mean over the real words
            query = c
            for step in range(self.iteration_step):
                att = attend(query, v, query_mask=c_mask, context_mask=None, **kw)
                sim = cosine(c, att)
                out.append((sim * c_mask).sum(1) / c_mask.sum(1))
                if step == self.iteration_step - 1:
                    break  # the official loop also updates the query after the last step; nothing reads it
                query = self._gated("t2i", query, att)
                if not self.no_imram_norm:
                    query = l2norm(query, -1)
                query = query * fm  # padded words stay zero (the official loop never has any)
        else:  # regions attend to words; mean over regions
            query = v
            for step in range(self.iteration_step):
                att = attend(query, c, query_mask=None, context_mask=c_mask, **kw)
                out.append(cosine(v, att).mean(1))
                if step == self.iteration_step - 1:
                    break
                query = self._gated("i2t", query, att)
                if not self.no_imram_norm:
                    query = l2norm(query, -1)
        return out

    def pair_scores(self, v: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        """v (Bi, R, E) regions; c (Bt, L, E) zero-padded words, c_mask (Bt, L). Returns (Bi, Bt) float64."""
        bi, bt = v.size(0), c.size(0)
        vv, cc, mm = expand_pairs(v.float(), c.float(), c_mask)
        directions = {"full_IMRAM": ("t2i", "i2t"), "text_IMRAM": ("t2i",), "image_IMRAM": ("i2t",)}[self.model_mode]
        total = torch.zeros(bi * bt, dtype=torch.float64, device=v.device)
        for which in directions:  # t2i steps first, then i2t (shard_xattn_Full_IMRAM)
            for step in self._steps(which, vv, cc, mm):
                total = total + step.double()
        return total.view(bi, bt)
