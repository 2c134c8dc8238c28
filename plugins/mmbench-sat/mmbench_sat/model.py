"""Show-Attend-Tell (sgrvinod tutorial) encoder and decoder in plain torch.

Re-implemented from sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning:models.py. The encoder is
``nn.Sequential(*list(resnet.children())[:-2])`` of a torchvision ResNet (so its keys are
``resnet.0`` conv1, ``resnet.1`` bn1, ``resnet.4`` .. ``resnet.7`` layer1..4 with torchvision's
block layout) then ``AdaptiveAvgPool2d((enc_image_size,) * 2)`` and a permute to NHWC. It is
rebuilt from whatever the checkpoint holds: block type (BasicBlock / Bottleneck), blocks per
stage, widths, and every conv / BatchNorm / pooling hyper-parameter as pickled.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmbench.errors import DataError

from mmbench_sat.loading import attr, class_name


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_from(c: Any, weight: torch.Tensor, has_bias: bool) -> nn.Conv2d:
    out_c, in_per_group, kh, kw = weight.shape
    groups = int(attr(c, "groups", 1))
    return nn.Conv2d(in_per_group * groups, out_c, (kh, kw), stride=_pair(attr(c, "stride", 1)),
                     padding=_pair(attr(c, "padding", 0)), dilation=_pair(attr(c, "dilation", 1)), groups=groups,
                     bias=has_bias)


def bn_from(b: Any, n: int) -> nn.BatchNorm2d:
    mom = attr(b, "momentum", 0.1)
    return nn.BatchNorm2d(n, eps=float(attr(b, "eps", 1e-5)), momentum=mom,
                          affine=bool(attr(b, "affine", True)), track_running_stats=bool(attr(b, "track_running_stats", True)))


class Block(nn.Module):
    """torchvision BasicBlock (conv1, conv2) or Bottleneck (conv1, conv2, conv3), same keys and forward."""

    def __init__(self, kind: str, convs: list[nn.Conv2d], bns: list[nn.BatchNorm2d], downsample: nn.Module | None):
        super().__init__()
        self.kind = kind
        for i, (c, b) in enumerate(zip(convs, bns), 1):
            setattr(self, f"conv{i}", c)
            setattr(self, f"bn{i}", b)
        self.n = len(convs)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n:
                out = F.relu(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return F.relu(out + identity)


def _conv_bn(mods: dict, sd: dict, path: str, conv: str, bn: str):
    w = sd[f"{path}.{conv}.weight"]
    c = conv_from(mods[f"{path}.{conv}"], w, f"{path}.{conv}.bias" in sd)
    return c, bn_from(mods[f"{path}.{bn}"], w.shape[0])


def build_resnet_trunk(mods: dict, sd: dict, source: Any) -> nn.Sequential:
    """The ``resnet`` Sequential of the tutorial's Encoder, rebuilt from the collected modules."""
    layers: list[nn.Module] = []
    i = 0
    while f"resnet.{i}" in mods:
        path, m = f"resnet.{i}", mods[f"resnet.{i}"]
        kind = class_name(m)
        if kind == "Conv2d":
            layers.append(conv_from(m, sd[f"{path}.weight"], f"{path}.bias" in sd))
        elif kind == "BatchNorm2d":
            layers.append(bn_from(m, sd[f"{path}.weight"].shape[0] if f"{path}.weight" in sd
                                  else sd[f"{path}.running_mean"].shape[0]))
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "MaxPool2d":
            layers.append(nn.MaxPool2d(attr(m, "kernel_size"), attr(m, "stride"), attr(m, "padding", 0),
                                       attr(m, "dilation", 1), ceil_mode=bool(attr(m, "ceil_mode", False))))
        elif kind == "Sequential":
            blocks = []
            j = 0
            while f"{path}.{j}" in mods:
                bp = f"{path}.{j}"
                bkind = class_name(mods[bp])
                if bkind not in ("BasicBlock", "Bottleneck"):
                    raise DataError(source, f"encoder block {bp} is a {bkind}", expected="BasicBlock or Bottleneck")
                n = 2 if bkind == "BasicBlock" else 3
                pairs = [_conv_bn(mods, sd, bp, f"conv{k}", f"bn{k}") for k in range(1, n + 1)]
                ds = None
                if f"{bp}.downsample" in mods:
                    dc, db = _conv_bn(mods, sd, bp, "downsample.0", "downsample.1")
                    ds = nn.Sequential(dc, db)
                blocks.append(Block(bkind, [p[0] for p in pairs], [p[1] for p in pairs], ds))
                j += 1
            layers.append(nn.Sequential(*blocks))
        else:
            raise DataError(source, f"encoder layer {path} is a {kind}",
                            expected="the children of a torchvision ResNet (conv, bn, relu, maxpool, layers)")
        i += 1
    if not layers:
        raise DataError(source, "the encoder holds no ResNet layers", field="encoder.resnet",
                        expected="nn.Sequential(*list(resnet.children())[:-2])")
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, resnet: nn.Sequential, enc_image_size: int):
        super().__init__()
        self.enc_image_size = enc_image_size
        self.resnet = resnet
        self.adaptive_pool = nn.AdaptiveAvgPool2d((enc_image_size, enc_image_size))

    def forward(self, images):
        return self.adaptive_pool(self.resnet(images)).permute(0, 2, 3, 1)


class Attention(nn.Module):
    def __init__(self, encoder_dim, decoder_dim, attention_dim):
        super().__init__()
        self.encoder_att = nn.Linear(encoder_dim, attention_dim)
        self.decoder_att = nn.Linear(decoder_dim, attention_dim)
        self.full_att = nn.Linear(attention_dim, 1)

    def forward(self, encoder_out, decoder_hidden):
        att1 = self.encoder_att(encoder_out)
        att2 = self.decoder_att(decoder_hidden)
        att = self.full_att(F.relu(att1 + att2.unsqueeze(1))).squeeze(2)
        alpha = F.softmax(att, dim=1)
        return (encoder_out * alpha.unsqueeze(2)).sum(dim=1), alpha


class DecoderWithAttention(nn.Module):
    """The tutorial's decoder (inference parts: init_hidden_state and one step)."""

    def __init__(self, attention_dim, embed_dim, decoder_dim, vocab_size, encoder_dim):
        super().__init__()
        self.encoder_dim, self.attention_dim, self.embed_dim = encoder_dim, attention_dim, embed_dim
        self.decoder_dim, self.vocab_size = decoder_dim, vocab_size
        self.attention = Attention(encoder_dim, decoder_dim, attention_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.decode_step = nn.LSTMCell(embed_dim + encoder_dim, decoder_dim, bias=True)
        self.init_h = nn.Linear(encoder_dim, decoder_dim)
        self.init_c = nn.Linear(encoder_dim, decoder_dim)
        self.f_beta = nn.Linear(decoder_dim, encoder_dim)
        self.fc = nn.Linear(decoder_dim, vocab_size)

    def init_hidden_state(self, encoder_out):
        mean = encoder_out.mean(dim=1)
        return self.init_h(mean), self.init_c(mean)  # no tanh (models.py)

    def step(self, prev_words, encoder_out, h, c):
        """One caption.py loop body up to the log-softmax: (log_probs, alpha, h, c)."""
        emb = self.embedding(prev_words)
        awe, alpha = self.attention(encoder_out, h)
        awe = torch.sigmoid(self.f_beta(h)) * awe
        h, c = self.decode_step(torch.cat([emb, awe], dim=1), (h, c))
        return F.log_softmax(self.fc(h), dim=1), alpha, h, c  # decoder.dropout is not applied in caption.py


def build_decoder(sd: dict, source: Any) -> DecoderWithAttention:
    need = ("attention.encoder_att.weight", "attention.decoder_att.weight", "embedding.weight", "fc.weight",
            "decode_step.weight_ih")
    missing = [k for k in need if k not in sd]
    if missing:
        raise DataError(source, f"decoder lacks {missing}", field="decoder",
                        expected="models.DecoderWithAttention parameters")
    attention_dim, encoder_dim = sd["attention.encoder_att.weight"].shape
    decoder_dim = sd["attention.decoder_att.weight"].shape[1]
    vocab_size, embed_dim = sd["embedding.weight"].shape
    return DecoderWithAttention(int(attention_dim), int(embed_dim), int(decoder_dim), int(vocab_size), int(encoder_dim))
