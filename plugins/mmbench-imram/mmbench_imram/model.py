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
softmax and mean), which gives the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8
MODEL_MODES = ("full_IMRAM", "text_IMRAM", "image_IMRAM")
RAW_FEATURE_NORMS = ("clipped_l2norm", "l2norm", "softmax", "clipped", "no_norm")
BROKEN_NORMS = ("l1norm", "clipped_l1norm")  # official func_attention: NameError (l1norm_d)


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # HuiChen24/IMRAM:model.py l2norm: x / (||x|| + eps)
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


class EncoderImagePrecomp(nn.Module):
    """``fc_local`` (plain or weight-normed with ``dim=None``) on every region, then l2norm."""

    def __init__(self, img_dim: int, embed_size: int, no_imgnorm: bool = False, weight_norm: bool = False):
        super().__init__()
        self.no_imgnorm = no_imgnorm
        self.fc_local = nn.Linear(img_dim, embed_size)
        if weight_norm:  # precomp_enc_type=weight_norm: EncoderImageWeightNormPrecomp
            self.fc_local = nn.utils.parametrizations.weight_norm(self.fc_local, dim=None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # the official forward also returns feat_local.mean(1) (img_fc), which no score uses
        x = self.fc_local(images)
        return x if self.no_imgnorm else l2norm(x, -1)


class EncoderText(nn.Module):
    """Embedding + (bi)GRU over the packed caption; bi-GRU halves averaged; l2norm per word."""

    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 use_bi_gru: bool = False, no_txtnorm: bool = False):
        super().__init__()
        self.bi_gru, self.no_txtnorm = use_bi_gru, no_txtnorm
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=use_bi_gru)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) ids, (B,) lengths -> (B, max(lengths), E), zero beyond each length.

        The official forward also returns the final hidden state ``ht`` (unused by every score).
        """
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
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
    """HuiChen24/IMRAM:model.py ``func_attention`` for a tile of pairs (``weight=None``, as every caller).

    query (P, Q, E) with padded rows zero, context (P, C, E); masks (P, Q) / (P, C) bool
    (None: all real). Returns the attended context per query item, (P, Q, E), not normalised.
    """
    attn = torch.bmm(context, query.transpose(1, 2))  # (P, C, Q)
    if context_mask is not None:
        # padded context rows are all zero: their norm over the query axis would be sqrt(0), whose gradient
        # is NaN in training. They are excluded by the context softmax below, so any constant will do.
        attn = attn.masked_fill(~context_mask.unsqueeze(2), 1.0)
    qm = None if query_mask is None else query_mask.unsqueeze(1)
    if raw_feature_norm == "softmax":  # over the query axis
        attn = _masked_softmax(attn, qm, dim=2)
    elif raw_feature_norm == "l2norm":
        attn = l2norm(attn, 2)  # padded query items are zeros: they add nothing to the norm
    elif raw_feature_norm == "clipped_l2norm":
        attn = l2norm(torch.nn.functional.leaky_relu(attn, 0.1), 2)
    elif raw_feature_norm == "clipped":
        attn = torch.nn.functional.leaky_relu(attn, 0.1)
    elif raw_feature_norm != "no_norm":
        raise ValueError(f"unknown raw_feature_norm {raw_feature_norm!r}")
    cm = None if context_mask is None else context_mask.unsqueeze(1)
    attn = _masked_softmax(attn.transpose(1, 2) * smooth, cm, dim=2)  # (P, Q, C), over the context
    return torch.bmm(attn, context)


def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # HuiChen24/IMRAM:model.py cosine_similarity: <a,b> / clamp(||a|| ||b||, eps)
    return (a * b).sum(dim) / (a.norm(2, dim) * b.norm(2, dim)).clamp(min=EPS)


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
        if "img_enc.fc_local.weight_g" in sd:  # legacy weight_norm names -> parametrization names
            sd["img_enc.fc_local.parametrizations.weight.original0"] = sd.pop("img_enc.fc_local.weight_g")
            sd["img_enc.fc_local.parametrizations.weight.original1"] = sd.pop("img_enc.fc_local.weight_v")
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
        """For :func:`mmbench.vse.train_demo` (one entry: the official checkpoint's ``model``)."""
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
        v, c = v.float(), c.float()
        vv = v.unsqueeze(1).expand(bi, bt, *v.shape[1:]).reshape(bi * bt, *v.shape[1:])
        cc = c.unsqueeze(0).expand(bi, bt, *c.shape[1:]).reshape(bi * bt, *c.shape[1:])
        mm = c_mask.unsqueeze(0).expand(bi, bt, c.size(1)).reshape(bi * bt, c.size(1))
        directions = {"full_IMRAM": ("t2i", "i2t"), "text_IMRAM": ("t2i",), "image_IMRAM": ("i2t",)}[self.model_mode]
        total = torch.zeros(bi * bt, dtype=torch.float64, device=v.device)
        for which in directions:  # t2i steps first, then i2t (shard_xattn_Full_IMRAM)
            for step in self._steps(which, vv, cc, mm):
                total = total + step.double()
        return total.view(bi, bt)
