"""AoANet (Attention on Attention) in plain torch, rebuilt from the official ``opt``.

A re-implementation of husthuaan/AoANet:models/AoAModel.py (with the parts of
models/AttModel.py and models/TransformerModel.py it uses). Module names and nesting are
the official ones, so an official ``model-best.pth`` state_dict loads with ``strict=True``.
Only inference is implemented (every dropout is the identity at eval).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmbench.errors import DataError

#: opt keys the architecture reads (each honoured below)
ARCH_KEYS = ("caption_model", "vocab_size", "input_encoding_size", "rnn_size", "fc_feat_size", "att_feat_size",
             "att_hid_size", "use_bn", "logit_layers", "refine", "refine_aoa", "use_ff", "num_heads",
             "multi_head_scale", "use_multi_head", "mean_feats", "out_res", "decoder_type", "drop_prob_lm",
             "dropout_aoa", "ctx_drop", "num_layers")
REQUIRED = ("caption_model", "vocab_size", "input_encoding_size", "rnn_size", "att_feat_size", "num_heads",
            "use_multi_head", "refine", "refine_aoa")


def _get(opt: dict, key: str, default: Any) -> Any:
    # husthuaan/AoANet code reads many options with getattr(opt, key, default)
    v = opt.get(key, default)
    return default if v is None else v


def check_opt(opt: dict, source: Any = None) -> None:
    """Refuse, by name, the options this re-implementation (or the official code) cannot run."""
    missing = [k for k in REQUIRED if k not in opt]
    if missing:
        raise DataError(source, f"opt lacks {', '.join(missing)}", field="opt",
                        expected="the options of an official AoANet training run (opts.parse_opt)")
    if opt["caption_model"] != "aoa":
        raise DataError(source, f"caption_model is {opt['caption_model']!r}", field="opt.caption_model",
                        expected="'aoa' (the other self-critical.pytorch models are not implemented here)")
    if int(_get(opt, "logit_layers", 1)) != 1:
        # husthuaan/AoANet:models/AttModel.py builds logit_layers > 1 with `reduce`, which that
        # module never imports: the official code cannot build such a model either
        raise DataError(source, f"logit_layers is {opt['logit_layers']}", field="opt.logit_layers",
                        expected="1 (the official AttModel cannot build more: NameError on reduce)")
    if int(_get(opt, "use_box", 0)):
        raise DataError(source, "use_box is set: the model needs box features appended to every region "
                                "(cocobu_box + image sizes), which mmbench's region inputs do not carry",
                        field="opt.use_box", expected="0")
    if int(opt["rnn_size"]) * int(_get(opt, "multi_head_scale", 1)) % int(opt["num_heads"]):
        raise DataError(source, "rnn_size * multi_head_scale is not divisible by num_heads", field="opt.num_heads",
                        expected="a divisor (MultiHeadedDotAttention asserts it)")


class LayerNorm(nn.Module):
    """The annotated-transformer LayerNorm: unbiased std, eps added to the std
    (husthuaan/AoANet:models/TransformerModel.py LayerNorm)."""

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


def scaled_dot_attention(q, k, v, mask=None):
    # husthuaan/AoANet:models/TransformerModel.py attention(): masked_fill(mask == 0, -1e9), softmax over keys
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    return torch.matmul(F.softmax(scores, dim=-1), v)


class MultiHeadedDotAttention(nn.Module):
    """husthuaan/AoANet:models/AoAModel.py MultiHeadedDotAttention (eval path)."""

    def __init__(self, h, d_model, scale=1, project_k_v=1, use_output_layer=1, do_aoa=0, norm_q=0):
        super().__init__()
        self.d_k = d_model * scale // h
        self.h = h
        self.project_k_v = project_k_v
        self.norm = LayerNorm(d_model) if norm_q else None
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model * scale) for _ in range(1 + 2 * project_k_v)])
        self.use_aoa = bool(do_aoa)
        if self.use_aoa:
            self.aoa_layer = nn.Sequential(nn.Linear((1 + scale) * d_model, 2 * d_model), nn.GLU())
        # the official deletes output_layer when AoA is used or use_output_layer=0
        self.output_layer = nn.Linear(d_model * scale, d_model) if not (self.use_aoa or not use_output_layer) else None

    def forward(self, query, value, key, mask=None):
        # NB the official argument order is (query, value, key, mask)
        if mask is not None:
            if mask.dim() == 2:
                mask = mask.unsqueeze(-2)
            mask = mask.unsqueeze(1)
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)
        nb = query.size(0)
        if self.norm is not None:
            query = self.norm(query)
        split = lambda x: x.view(nb, -1, self.h, self.d_k).transpose(1, 2)  # noqa: E731
        if self.project_k_v == 0:
            q, k, v = split(self.linears[0](query)), split(key), split(value)
        else:
            q, k, v = (split(lin(x)) for lin, x in zip(self.linears, (query, key, value)))
        x = scaled_dot_attention(q, k, v, mask)
        x = x.transpose(1, 2).contiguous().view(nb, -1, self.h * self.d_k)
        if self.use_aoa:
            x = self.aoa_layer(torch.cat([x, query], -1))
        if self.output_layer is not None:
            x = self.output_layer(x)
        return x.squeeze(1) if single else x


class SublayerConnection(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.norm = LayerNorm(size)

    def forward(self, x, sublayer):
        return x + sublayer(self.norm(x))


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.w_2(F.relu(self.w_1(x)))


class RefinerLayer(nn.Module):
    """AoA_Refiner_Layer: x + MHA(LN(x)) [+ x + FF(LN(x)) with use_ff]."""

    def __init__(self, size: int, self_attn: nn.Module, feed_forward: nn.Module | None):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = nn.ModuleList([SublayerConnection(size) for _ in range(1 + (feed_forward is not None))])

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, mask))
        return self.sublayer[-1](x, self.feed_forward) if self.feed_forward is not None else x


class RefinerCore(nn.Module):
    """AoA_Refiner_Core: 6 refiner layers then a LayerNorm (6 is hard-coded officially)."""

    def __init__(self, opt: dict):
        super().__init__()
        r = int(opt["rnn_size"])
        ff = int(_get(opt, "use_ff", 0))
        self.layers = nn.ModuleList([
            RefinerLayer(r, MultiHeadedDotAttention(int(opt["num_heads"]), r, project_k_v=1,
                                                    scale=int(_get(opt, "multi_head_scale", 1)),
                                                    do_aoa=int(opt["refine_aoa"]), norm_q=0),
                         PositionwiseFeedForward(r, 2048) if ff else None)
            for _ in range(6)])
        self.norm = LayerNorm(r)

    def forward(self, x, mask):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class AdditiveAttention(nn.Module):
    """husthuaan/AoANet:models/AttModel.py Attention (used when use_multi_head != 2)."""

    def __init__(self, rnn_size: int, att_hid_size: int):
        super().__init__()
        self.att_hid_size = att_hid_size
        self.h2att = nn.Linear(rnn_size, att_hid_size)
        self.alpha_net = nn.Linear(att_hid_size, 1)

    def forward(self, h, att_feats, p_att_feats, att_masks=None):
        n = att_feats.numel() // att_feats.size(0) // att_feats.size(-1)
        att = p_att_feats.view(-1, n, self.att_hid_size)
        dot = torch.tanh(att + self.h2att(h).unsqueeze(1).expand_as(att))
        dot = self.alpha_net(dot.view(-1, self.att_hid_size)).view(-1, n)
        weight = F.softmax(dot, dim=1)
        if att_masks is not None:  # softmax first, then mask and renormalise (the official order)
            weight = weight * att_masks.view(-1, n).float()
            weight = weight / weight.sum(1, keepdim=True)
        return torch.bmm(weight.unsqueeze(1), att_feats.view(-1, n, att_feats.size(-1))).squeeze(1)


class DecoderCore(nn.Module):
    """AoA_Decoder_Core (eval path; ctx_drop/out_drop are identities)."""

    def __init__(self, opt: dict):
        super().__init__()
        r, scale = int(opt["rnn_size"]), int(_get(opt, "multi_head_scale", 1))
        self.d_model, self.scale = r, scale
        self.use_multi_head = int(opt["use_multi_head"])
        self.out_res = int(_get(opt, "out_res", 0))
        self.decoder_type = str(_get(opt, "decoder_type", "AoA"))
        self.att_lstm = nn.LSTMCell(int(opt["input_encoding_size"]) + r, r)
        if self.decoder_type == "AoA":
            self.att2ctx = nn.Sequential(nn.Linear(r * scale + r, 2 * r), nn.GLU())
        elif self.decoder_type == "LSTM":
            self.att2ctx = nn.LSTMCell(r * scale + r, r)
        else:  # husthuaan/AoANet: any other decoder_type is the base linear layer
            self.att2ctx = nn.Sequential(nn.Linear(r * scale + r, r), nn.ReLU())
        if self.use_multi_head == 2:
            self.attention = MultiHeadedDotAttention(int(opt["num_heads"]), r, project_k_v=0, scale=scale,
                                                     use_output_layer=0, do_aoa=0, norm_q=1)
        else:
            self.attention = AdditiveAttention(r, int(_get(opt, "att_hid_size", 512)))

    def forward(self, xt, mean_feats, att_feats, p_att_feats, state, att_masks=None):
        h_att, c_att = self.att_lstm(torch.cat([xt, mean_feats + state[0][1]], 1), (state[0][0], state[1][0]))
        if self.use_multi_head == 2:
            w = self.scale * self.d_model
            # official call: attention(h_att, p_att[..., :w], p_att[..., w:], mask) with the signature
            # (query, value, key, mask): the FIRST half is the value, the second half the key
            att = self.attention(h_att, p_att_feats.narrow(2, 0, w), p_att_feats.narrow(2, w, w), att_masks)
        else:
            att = self.attention(h_att, att_feats, p_att_feats, att_masks)
        ctx_input = torch.cat([att, h_att], 1)
        if self.decoder_type == "LSTM":
            output, c_logic = self.att2ctx(ctx_input, (state[0][1], state[1][1]))
            state = (torch.stack((h_att, output)), torch.stack((c_att, c_logic)))
        else:
            output = self.att2ctx(ctx_input)
            state = (torch.stack((h_att, output)), torch.stack((c_att, state[1][1])))
        if self.out_res:
            output = output + h_att
        return output, state


class AoAModel(nn.Module):
    """husthuaan/AoANet:models/AoAModel.py AoAModel (+ the AttModel parts it uses), inference only."""

    def __init__(self, opt: dict):
        super().__init__()
        check_opt(opt)
        v, e, r = int(opt["vocab_size"]), int(opt["input_encoding_size"]), int(opt["rnn_size"])
        self.vocab_size, self.rnn_size = v, r
        self.num_layers = 2  # AoAModel overrides opt.num_layers
        self.use_bn = int(_get(opt, "use_bn", 0))
        self.use_mean_feats = int(_get(opt, "mean_feats", 1))
        self.att_feat_size = int(opt["att_feat_size"])
        self.fc_feat_size = int(_get(opt, "fc_feat_size", 2048))
        self.embed = nn.Sequential(nn.Embedding(v + 1, e), nn.ReLU(), nn.Dropout(0.0))
        if not self.use_mean_feats:
            self.fc_embed = nn.Sequential(nn.Linear(self.fc_feat_size, r), nn.ReLU(), nn.Dropout(0.0))
        layers: list[nn.Module] = []
        if self.use_bn:
            layers.append(nn.BatchNorm1d(self.att_feat_size))
        layers += [nn.Linear(self.att_feat_size, r), nn.ReLU(), nn.Dropout(0.0)]
        if self.use_bn == 2:
            layers.append(nn.BatchNorm1d(r))
        self.att_embed = nn.Sequential(*layers)
        self.logit = nn.Linear(r, v + 1)
        scale = int(_get(opt, "multi_head_scale", 1))
        if int(opt["use_multi_head"]) == 2:
            self.ctx2att = nn.Linear(r, 2 * scale * r)
        else:
            self.ctx2att = nn.Linear(r, int(_get(opt, "att_hid_size", 512)))
        self.refiner = RefinerCore(opt) if int(opt["refine"]) else None
        self.core = DecoderCore(opt)

    def init_hidden(self, bsz: int):
        w = self.logit.weight
        return (w.new_zeros(self.num_layers, bsz, self.rnn_size), w.new_zeros(self.num_layers, bsz, self.rnn_size))

    def _embed_att(self, att_feats, att_masks):
        # pack_wrapper: the embedding runs on the valid rows only; padding rows stay exact zeros
        if att_masks is None:
            if self.use_bn:
                # deviation, on purpose: the official pack_wrapper hands the 3-D batch to BatchNorm1d here,
                # which normalises over the REGION axis (and raises unless n_regions == att_feat_size);
                # mmbench applies the embedding row-wise, as the official code does for masked batches
                b, n, d = att_feats.shape
                return self.att_embed(att_feats.reshape(b * n, d)).reshape(b, n, -1)
            return self.att_embed(att_feats)
        valid = att_masks.bool()
        out = att_feats.new_zeros(att_feats.shape[:2] + (self.rnn_size,))
        out[valid] = self.att_embed(att_feats[valid])
        return out

    def prepare_feature(self, fc_feats, att_feats, att_masks):
        """``_prepare_feature``: (mean_feats, att_feats, p_att_feats, att_masks)."""
        if att_masks is not None:  # clip_att
            n = int(att_masks.long().sum(1).max())
            att_feats, att_masks = att_feats[:, :n].contiguous(), att_masks[:, :n].contiguous()
        att = self._embed_att(att_feats, att_masks)
        if self.refiner is not None:
            att = self.refiner(att, att_masks)
        if self.use_mean_feats:
            if att_masks is None:
                mean = torch.mean(att, dim=1)
            else:
                m = att_masks.unsqueeze(-1)
                mean = torch.sum(att * m, 1) / torch.sum(m, 1)
        else:
            mean = self.fc_embed(fc_feats)
        return mean, att, self.ctx2att(att), att_masks

    def get_logprobs_state(self, it, mean_feats, att_feats, p_att_feats, att_masks, state):
        xt = self.embed(it)
        output, state = self.core(xt, mean_feats, att_feats, p_att_feats, state, att_masks)
        return F.log_softmax(self.logit(output), dim=1), state

    def teacher_forced(self, fc_feats, att_feats, seq, att_masks=None):
        """``_forward`` at eval (no scheduled sampling): log-probs (B, T-1, V+1) for ``seq`` (B, T)."""
        b = att_feats.size(0)
        state = self.init_hidden(b)
        feats = self.prepare_feature(fc_feats, att_feats, att_masks)
        outputs = att_feats.new_zeros(b, seq.size(1) - 1, self.vocab_size + 1)
        for i in range(seq.size(1) - 1):
            if i >= 1 and seq[:, i].sum() == 0:
                break
            out, state = self.get_logprobs_state(seq[:, i].clone(), *feats, state)
            outputs[:, i] = out
        return outputs
