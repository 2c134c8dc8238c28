"""The ViLBERT two-stream network at evaluation time (facebookresearch/vilbert-multi-task ``vilbert/vilbert.py``).

Written for mmbench from the published architecture; module and parameter names follow the
official state_dict keys (``bert.embeddings.*``, ``bert.v_embeddings.*``, ``bert.encoder.layer.N``
/ ``v_layer.N`` / ``c_layer.N``, ``bert.t_pooler``, ``bert.v_pooler``, ``vil_logit``,
``vision_logit``, ``cls.bi_seq_relationship``), so an official checkpoint loads by name. Only
what scoring uses is built; dropout is the identity (``model.eval()``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

MASK_VALUE = -10000.0  # (1 - mask) * -10000.0 everywhere in vilbert.py


def gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


ACTIVATIONS = {"gelu": gelu, "relu": torch.relu, "swish": lambda x: x * torch.sigmoid(x)}


class LayerNorm(nn.Module):
    """BertLayerNorm: the variance inside the square root, eps 1e-12 (the non-apex branch of vilbert.py)."""

    def __init__(self, n: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps = eps

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


def _heads(x, n_heads):
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)


def _merge(x):
    b, h, t, d = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(b, t, h * d)


def _attend(q, k, v, mask, n_heads):
    """Multi-head scaled dot-product attention; ``mask`` is additive, broadcast to (B, 1, 1, Tk)."""
    q, k, v = _heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + mask
    return _merge(torch.matmul(torch.softmax(scores, dim=-1), v))


class _Dense(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)


class _DenseNorm(nn.Module):
    """dense -> (+ residual) -> LayerNorm (BertSelfOutput / BertOutput and their image twins)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = LayerNorm(n_out)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _SelfAttention(nn.Module):
    def __init__(self, size, n_heads, dynamic_from: int | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.query, self.key, self.value = nn.Linear(size, size), nn.Linear(size, size), nn.Linear(size, size)
        self.dynamic = dynamic_from is not None
        if self.dynamic:  # BertImageSelfAttention with dynamic_attention: text-gated queries and keys
            self.dyLinear_q = nn.Linear(dynamic_from, size)
            self.dyLinear_k = nn.Linear(dynamic_from, size)

    def forward(self, x, mask, txt=None, txt_mask2=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        if self.dynamic:
            pooled = (txt * txt_mask2).sum(1) / txt_mask2.sum(1)
            q = q * (1 + torch.sigmoid(self.dyLinear_q(pooled))).unsqueeze(1)
            k = k * (1 + torch.sigmoid(self.dyLinear_k(pooled))).unsqueeze(1)
        return _attend(q, k, v, mask, self.n_heads)


class _Attention(nn.Module):
    def __init__(self, size, n_heads, dynamic_from=None):
        super().__init__()
        self.self = _SelfAttention(size, n_heads, dynamic_from)
        self.output = _DenseNorm(size, size)

    def forward(self, x, mask, txt=None, txt_mask2=None):
        return self.output(self.self(x, mask, txt, txt_mask2), x)


class _Layer(nn.Module):
    """One transformer layer (BertLayer / BertImageLayer)."""

    def __init__(self, size, n_heads, inter, act, dynamic_from=None):
        super().__init__()
        self.attention = _Attention(size, n_heads, dynamic_from)
        self.intermediate = _Dense(size, inter)
        self.output = _DenseNorm(inter, size)
        self.act = ACTIVATIONS[act]

    def forward(self, x, mask, txt=None, txt_mask2=None):
        a = self.attention(x, mask, txt, txt_mask2)
        return self.output(self.act(self.intermediate.dense(a)), a)


class _BiAttention(nn.Module):
    def __init__(self, v_size, t_size, bi_size, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.query1, self.key1, self.value1 = (nn.Linear(v_size, bi_size) for _ in range(3))
        self.query2, self.key2, self.value2 = (nn.Linear(t_size, bi_size) for _ in range(3))

    def forward(self, img, img_mask, txt, txt_mask):
        # words attend to regions (context on text positions), regions attend to words (on image positions)
        t_ctx = _attend(self.query2(txt), self.key1(img), self.value1(img), img_mask, self.n_heads)
        v_ctx = _attend(self.query1(img), self.key2(txt), self.value2(txt), txt_mask, self.n_heads)
        return t_ctx, v_ctx


class _BiOutput(nn.Module):
    def __init__(self, v_size, t_size, bi_size):
        super().__init__()
        self.dense1, self.LayerNorm1 = nn.Linear(bi_size, v_size), LayerNorm(v_size)
        self.dense2, self.LayerNorm2 = nn.Linear(bi_size, t_size), LayerNorm(t_size)


class _CoLayer(nn.Module):
    """BertConnectionLayer: co-attention, then each stream's feed-forward."""

    def __init__(self, c):
        super().__init__()
        v, t, bi = c["v_hidden_size"], c["hidden_size"], c["bi_hidden_size"]
        self.biattention = _BiAttention(v, t, bi, c["bi_num_attention_heads"])
        self.biOutput = _BiOutput(v, t, bi)
        self.v_intermediate, self.v_output = _Dense(v, c["v_intermediate_size"]), _DenseNorm(c["v_intermediate_size"], v)
        self.t_intermediate, self.t_output = _Dense(t, c["intermediate_size"]), _DenseNorm(c["intermediate_size"], t)
        self.v_act, self.t_act = ACTIVATIONS[c["v_hidden_act"]], ACTIVATIONS[c["hidden_act"]]

    def forward(self, img, img_mask, txt, txt_mask):
        t_ctx, v_ctx = self.biattention(img, img_mask, txt, txt_mask)
        o = self.biOutput
        img = o.LayerNorm1(o.dense1(v_ctx) + img)
        txt = o.LayerNorm2(o.dense2(t_ctx) + txt)
        img = self.v_output(self.v_act(self.v_intermediate.dense(img)), img)
        txt = self.t_output(self.t_act(self.t_intermediate.dense(txt)), txt)
        return img, txt


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        dyn = c["hidden_size"] if c["dynamic_attention"] else None
        self.layer = nn.ModuleList(_Layer(c["hidden_size"], c["num_attention_heads"], c["intermediate_size"],
                                          c["hidden_act"]) for _ in range(c["num_hidden_layers"]))
        self.v_layer = nn.ModuleList(_Layer(c["v_hidden_size"], c["v_num_attention_heads"], c["v_intermediate_size"],
                                            c["v_hidden_act"], dyn) for _ in range(c["v_num_hidden_layers"]))
        self.c_layer = nn.ModuleList(_CoLayer(c) for _ in range(len(c["v_biattention_id"])))
        self.v_ids, self.t_ids = list(c["v_biattention_id"]), list(c["t_biattention_id"])
        self.with_coattention = bool(c["with_coattention"])

    def forward(self, txt, img, txt_mask, txt_mask2, img_mask):
        # BertEncoder.forward: before co-attention block i, the text layers up to t_biattention_id[i] run, then
        # the image layers up to v_biattention_id[i] (a dynamic image layer sees the text as it is then); after
        # the last block the remaining image layers run before the remaining text layers
        v0 = t0 = 0
        for i, (v1, t1) in enumerate(zip(self.v_ids, self.t_ids)):
            for k in range(t0, t1):
                txt = self.layer[k](txt, txt_mask)
            for k in range(v0, v1):
                img = self.v_layer[k](img, img_mask, txt, txt_mask2)
            if self.with_coattention:
                img, txt = self.c_layer[i](img, img_mask, txt, txt_mask)
            v0, t0 = v1, t1
        for k in range(v0, len(self.v_layer)):
            img = self.v_layer[k](img, img_mask, txt, txt_mask2)
        for k in range(t0, len(self.layer)):
            txt = self.layer[k](txt, txt_mask)
        return txt, img


class _TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h, padding_idx=0)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
        self.LayerNorm = LayerNorm(h)
        self.task_specific_tokens = bool(c["task_specific_tokens"])
        if self.task_specific_tokens:
            self.task_embeddings = nn.Embedding(20, h)

    def forward(self, ids, segment, task_ids):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0).expand_as(ids)
        e = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(segment)
        if self.task_specific_tokens:  # the task token goes right after [CLS], with no position / type embedding
            e = torch.cat([e[:, :1], self.task_embeddings(task_ids), e[:, 1:]], dim=1)
        return self.LayerNorm(e)


class _ImageEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.image_embeddings = nn.Linear(c["v_feature_size"], c["v_hidden_size"])
        self.image_location_embeddings = nn.Linear(5, c["v_hidden_size"])
        self.LayerNorm = LayerNorm(c["v_hidden_size"])

    def forward(self, feats, locs):
        return self.LayerNorm(self.image_embeddings(feats) + self.image_location_embeddings(locs))


class _Pooler(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)

    def forward(self, seq):
        return torch.relu(self.dense(seq[:, 0]))


class _Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = _TextEmbeddings(c)
        self.v_embeddings = _ImageEmbeddings(c)
        self.encoder = _Encoder(c)
        self.t_pooler = _Pooler(c["hidden_size"], c["bi_hidden_size"])
        self.v_pooler = _Pooler(c["v_hidden_size"], c["bi_hidden_size"])


class _Heads(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bi_seq_relationship = nn.Linear(c["bi_hidden_size"], 2)


class ViLBERT(nn.Module):
    """Both streams plus the three heads mmbench scores with.

    ``forward`` returns the fused pooled vector, the image-stream sequence and the image mask;
    ``vil_logit`` / ``alignment`` / ``vision_logits`` turn them into scores.
    """

    def __init__(self, c: dict, heads: tuple[str, ...]):
        super().__init__()
        self.config = c
        self.bert = _Bert(c)
        self.heads = heads
        if "alignment" in heads:
            self.cls = _Heads(c)
        if "vil_logit" in heads:
            self.vil_logit = nn.Linear(c["bi_hidden_size"], 1)
        if "vision_logit" in heads:
            self.vision_logit = nn.Linear(c["v_hidden_size"], 1)
        self.fusion = c["fusion_method"]

    def streams(self, ids, segment, txt_mask, feats, locs, img_mask, task_ids=None):
        """(pooled fusion (B, bi), image sequence (B, R, v)) for B (caption, image) pairs."""
        dtype = feats.dtype
        if self.bert.embeddings.task_specific_tokens:
            txt_mask = torch.cat([torch.ones_like(txt_mask[:, :1]), txt_mask], dim=1)
        t_add = ((1.0 - txt_mask.to(dtype)) * MASK_VALUE)[:, None, None, :]
        t_mask2 = txt_mask.to(dtype).unsqueeze(2)
        v_add = ((1.0 - img_mask.to(dtype)) * MASK_VALUE)[:, None, None, :]
        txt = self.bert.embeddings(ids, segment, task_ids)
        img = self.bert.v_embeddings(feats, locs)
        txt, img = self.bert.encoder(txt, img, t_add, t_mask2, v_add)
        pt, pv = self.bert.t_pooler(txt), self.bert.v_pooler(img)
        pooled = pt + pv if self.fusion == "sum" else pt * pv
        return pooled, img

    def score_vil_logit(self, pooled):
        return self.vil_logit(pooled).squeeze(1)

    def score_alignment(self, pooled):
        # eval_retrieval.py --zero_shot: softmax over the 2-way next-sentence head, column 0 ("is aligned")
        return torch.softmax(self.cls.bi_seq_relationship(pooled), dim=1)[:, 0]

    def vision_logits(self, img_seq, img_mask):
        return self.vision_logit(img_seq).squeeze(2) + (1.0 - img_mask.to(img_seq.dtype)) * MASK_VALUE
