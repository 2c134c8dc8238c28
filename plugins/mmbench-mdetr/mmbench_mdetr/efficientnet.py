"""The TF-ported EfficientNets of MDETR's ``TimmBackbone`` in plain torch (no timm, no torchvision at run time).

MDETR's EB3/EB5 checkpoints use ``args.backbone = "timm_tf_efficientnet_b3_ns"`` / ``..._b5_ns``:
ashkamath/mdetr:models/backbone.py ``TimmBackbone`` builds
``timm.create_model(name, pretrained=True, in_chans=3, features_only=True, out_indices=(1, 2, 3, 4))``,
runs ``replace_bn`` on it and keeps the model as ``self.body``, so the checkpoint keys are
``backbone.0.body.<timm EfficientNetFeatures key>``. This module rebuilds that feature extractor with the
same module tree (``conv_stem``, ``bn1``, ``blocks.<stage>.<block>.{conv_pw, bn1, conv_dw, bn2, se.conv_reduce,
se.conv_expand, conv_pwl, bn3}``), so those weights load unchanged.

Numerics follow timm 0.4.5 (the timm of MDETR's release, whose checkpoints these are), with MDETR's
changes applied, each cited:

* every ``nn.BatchNorm2d`` is a :class:`~mmbench_mdetr.resnet.FrozenBatchNorm2d` with **eps 1e-5**: MDETR's
  ``replace_bn`` copies weight, bias and running statistics into its FrozenBatchNorm2d, whose eps is fixed at
  1e-5, so the tf_ variants' BN eps 1e-3 (timm ``BN_EPS_TF_DEFAULT``) is dropped
  (ashkamath/mdetr:models/backbone.py ``replace_bn`` / ``FrozenBatchNorm2d.forward``);
* the activations stay separate modules after each BN (timm 0.4.5 ``efficientnet_blocks.py``: ``bn1`` then
  ``act1``). From timm 0.6 on, EfficientNet uses fused ``BatchNormAct2d`` (a ``BatchNorm2d`` subclass), so
  ``replace_bn`` there swaps norm+activation for a bare FrozenBatchNorm2d and silently drops every SiLU
  (huggingface/pytorch-image-models#1631); this module keeps the 0.4.5 behaviour the checkpoints were trained with;
* "same" padding of the tf_ variants (timm ``layers/padding.py`` ``get_padding_value``): stride-1 convs get the
  static symmetric padding ``(k - 1) // 2``; stride-2 convs are timm's ``Conv2dSame``, TF "SAME" padding computed
  from the input size at run time, the odd pixel going to the bottom / right (``pad_same``);
* SiLU (``swish``) everywhere, squeeze-excite of ``round(0.25 * block input channels)`` (divisor 1) with SiLU
  and a sigmoid gate on the spatial mean; drop-path is an identity at eval;
* no ``conv_head`` / ``bn2``: ``features_only`` stops after the last block stage.

MDETR keeps only the last of the four feature maps (``main_layer=-1`` with ``return_interm_layers=args.masks``,
which this plugin refuses), so :meth:`EfficientNetFeatures.forward` returns that map; :meth:`features` returns all
four (``out_indices=(1, 2, 3, 4)``). ``args.dilation`` has no effect on a timm backbone (``build_backbone`` does
not pass it to ``TimmBackbone``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmbench_mdetr.resnet import FrozenBatchNorm2d

#: timm 0.4.5 ``_gen_efficientnet`` arch_def (efficientnet.py): per stage (block type, repeats, kernel, stride,
#: expansion, output channels); every block has squeeze-excite ratio 0.25.
ARCH_DEF = (("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
            ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320))

#: (channel_multiplier, depth_multiplier) of timm 0.4.5's tf_efficientnet_* entry points.
_SCALES = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4), "b4": (1.4, 1.8),
           "b5": (1.6, 2.2), "b6": (1.8, 2.6), "b7": (2.0, 3.1), "b8": (2.2, 3.6), "l2": (4.3, 5.3)}

#: timm model names (without MDETR's ``timm_`` prefix) -> (channel_multiplier, depth_multiplier). The _ap / _ns
#: suffixes are other pretrained weights of one architecture; weights come from the MDETR checkpoint anyway.
EFFICIENTNETS: dict[str, tuple[float, float]] = {
    **{f"tf_efficientnet_{b}": _SCALES[b] for b in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8")},
    **{f"tf_efficientnet_{b}_ap": _SCALES[b] for b in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8")},
    **{f"tf_efficientnet_{b}_ns": _SCALES[b] for b in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7")},
    "tf_efficientnet_l2_ns": _SCALES["l2"], "tf_efficientnet_l2_ns_475": _SCALES["l2"],
}


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm 0.4.5 efficientnet_blocks.make_divisible (min_value = divisor; never more than 10 % below v)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def round_channels(channels: int, multiplier: float) -> int:
    return make_divisible(channels * multiplier, 8)


def scale_depth(repeats: int, depth_multiplier: float) -> int:
    """timm 0.4.5 ``_scale_stage_depth`` of a stage with one block string, depth_trunc='ceil'."""
    return max(1, int(math.ceil(repeats * depth_multiplier)))


def _same_pad(size: int, k: int, s: int) -> int:
    return max((math.ceil(size / s) - 1) * s + k - size, 0)


class Conv2dSame(nn.Conv2d):
    """A conv with TF "SAME" padding from the input size (timm layers/conv2d_same.py, padding.py ``pad_same``)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        ph = _same_pad(ih, self.kernel_size[0], self.stride[0])
        pw = _same_pad(iw, self.kernel_size[1], self.stride[1])
        if ph > 0 or pw > 0:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_same(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """timm ``create_conv2d(..., padding='same')``: static symmetric padding at stride 1, Conv2dSame otherwise."""
    if stride == 1:
        return nn.Conv2d(cin, cout, k, stride=1, padding=(k - 1) // 2, groups=groups, bias=bias)
    return Conv2dSame(cin, cout, k, stride=stride, padding=0, groups=groups, bias=bias)


class SqueezeExcite(nn.Module):
    """timm 0.4.5 efficientnet_blocks.SqueezeExcite: mean -> conv_reduce -> SiLU -> conv_expand -> sigmoid gate."""

    def __init__(self, chs: int, reduced: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, reduced, 1, bias=True)
        self.act1 = nn.SiLU()
        self.conv_expand = nn.Conv2d(reduced, chs, 1, bias=True)

    def forward(self, x):
        s = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * s.sigmoid()


class DepthwiseSeparableConv(nn.Module):
    """timm 0.4.5 DepthwiseSeparableConv (stage 0): conv_dw, bn1, act1, se, conv_pw, bn2 (no pw activation)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.has_residual = stride == 1 and cin == cout
        self.conv_dw = conv_same(cin, cin, k, stride, groups=cin)
        self.bn1 = FrozenBatchNorm2d(cin)
        self.act1 = nn.SiLU()
        self.se = SqueezeExcite(cin, make_divisible(cin * 0.25, 1))
        self.conv_pw = conv_same(cin, cout, 1)
        self.bn2 = FrozenBatchNorm2d(cout)

    def forward(self, x):
        y = self.se(self.act1(self.bn1(self.conv_dw(x))))
        y = self.bn2(self.conv_pw(y))
        return y + x if self.has_residual else y


class InvertedResidual(nn.Module):
    """timm 0.4.5 InvertedResidual: conv_pw, bn1, act1, conv_dw, bn2, act2, se, conv_pwl, bn3 (+ input if kept size).

    The squeeze-excite width is from the block's *input* channels (timm ``resolve_se_args``, reduce_mid=False).
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, exp: float):
        super().__init__()
        mid = make_divisible(cin * exp)
        self.has_residual = stride == 1 and cin == cout
        self.conv_pw = conv_same(cin, mid, 1)
        self.bn1 = FrozenBatchNorm2d(mid)
        self.act1 = nn.SiLU()
        self.conv_dw = conv_same(mid, mid, k, stride, groups=mid)
        self.bn2 = FrozenBatchNorm2d(mid)
        self.act2 = nn.SiLU()
        self.se = SqueezeExcite(mid, make_divisible(cin * 0.25, 1))
        self.conv_pwl = conv_same(mid, cout, 1)
        self.bn3 = FrozenBatchNorm2d(cout)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_residual else y


class EfficientNetFeatures(nn.Module):
    """timm 0.4.5 ``EfficientNetFeatures`` of a tf_efficientnet, after MDETR's ``replace_bn``.

    ``feature_stages`` are the block stages whose outputs are timm's feature indices 1..4 (strides 4, 8, 16, 32:
    the last block of a stage followed by a stride-2 stage, and the last stage); ``num_channels`` is
    ``feature_info.channels()[-1]``, as ``TimmBackbone`` sets it.
    """

    def __init__(self, channel_multiplier: float = 1.0, depth_multiplier: float = 1.0, in_chans: int = 3):
        super().__init__()
        stem = round_channels(32, channel_multiplier)
        self.conv_stem = conv_same(in_chans, stem, 3, stride=2)
        self.bn1 = FrozenBatchNorm2d(stem)
        self.act1 = nn.SiLU()
        stages, cin, ends = [], stem, []
        for si, (kind, reps, k, stride, exp, cout) in enumerate(ARCH_DEF):
            cout = round_channels(cout, channel_multiplier)
            blocks = []
            for bi in range(scale_depth(reps, depth_multiplier)):
                s = stride if bi == 0 else 1
                blocks.append(DepthwiseSeparableConv(cin, cout, k, s) if kind == "ds"
                              else InvertedResidual(cin, cout, k, s, exp))
                cin = cout
            stages.append(nn.Sequential(*blocks))
            if si + 1 == len(ARCH_DEF) or ARCH_DEF[si + 1][3] > 1:
                ends.append((si, cout))
        self.blocks = nn.Sequential(*stages)
        # timm feature index 0 is stage 0's output (stride 2); out_indices=(1, 2, 3, 4) are the next four
        self.feature_stages = tuple(si for si, _ in ends[1:])
        self.feature_channels = tuple(c for _, c in ends[1:])
        self.num_channels = self.feature_channels[-1]

    def features(self, x) -> list[torch.Tensor]:
        """The four maps of ``create_model(..., features_only=True, out_indices=(1, 2, 3, 4))``."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        out = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.feature_stages:
                out.append(x)
        return out

    def forward(self, x):
        """The map MDETR uses (``TimmBackbone``: ``xs[main_layer]`` with main_layer=-1)."""
        return self.features(x)[-1]


def efficientnet_features(name: str) -> EfficientNetFeatures:
    """The backbone of ``args.backbone = "timm_" + name``; KeyError for a name not in :data:`EFFICIENTNETS`."""
    cm, dm = EFFICIENTNETS[name]
    return EfficientNetFeatures(cm, dm)
