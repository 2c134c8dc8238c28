"""torchvision-layout ResNets in plain torch (no torchvision needed), with MDETR's FrozenBatchNorm2d.

The module tree mirrors ``torchvision.models.resnet`` (``conv1``, ``bn1``, ``layer1..4`` of
``BasicBlock``/``Bottleneck`` with ``downsample = Sequential(conv1x1, norm)``), so the state_dict
keys of an MDETR checkpoint (``backbone.0.body.*``) load unchanged. As MDETR's
``IntermediateLayerGetter`` does, the module stops after ``layer4`` (no avgpool / fc).
"""

from __future__ import annotations

import torch
from torch import nn

#: torchvision constructor arguments per name: (block, layers, groups, width_per_group)
RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23, 3), 1, 128),
}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms, as ashkamath/mdetr:models/backbone.py defines it.

    Its quirks, kept: eps 1e-5 added before rsqrt; scale and shift folded first
    (``x * scale + (b - rm * scale)``); a ``num_batches_tracked`` entry in a state_dict is dropped.
    """

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(n))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x):
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + 1e-5).rsqrt()
        return x * scale + (b - rm * scale)


class GroupNorm32(nn.GroupNorm):
    """ashkamath/mdetr:models/backbone.py GroupNorm32: 32 groups (the resnet50-gn / resnet101-gn backbones)."""

    def __init__(self, num_channels: int):
        super().__init__(32, num_channels)


def _conv3x3(cin, cout, stride=1, groups=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation)


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=FrozenBatchNorm2d):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64 (as torchvision)")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock (as torchvision): "
                                      "args.dilation=True needs a Bottleneck ResNet (resnet50 or deeper)")
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=FrozenBatchNorm2d):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = _conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBody(nn.Module):
    """torchvision ``ResNet`` up to ``layer4``; ``stem`` is the width of conv1 (64 in every torchvision model).

    ``pool`` > 1 (mmbench's own demo backbones only, never an official one) average-pools layer4 by that
    factor (ceil mode), so the transformer sees ``pool**2`` times fewer image tokens; ``coords`` (demo
    backbones only) appends two CoordConv-style channels, the feature cell's x and y centre in [-1, 1] of
    the (padded) feature map: a tiny frozen random ResNet carries too little absolute position for DETR's
    box head (whose values never see the position embedding) to localise anything.
    """

    def __init__(self, block: str, layers, groups: int = 1, width_per_group: int = 64, dilation: bool = False,
                 norm_layer=FrozenBatchNorm2d, stem: int = 64, pool: int = 1, coords: bool = False):
        super().__init__()
        self.pool, self.coords = int(pool), bool(coords)
        blk = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        self.inplanes, self.dilation, self.groups, self.base_width = stem, 1, groups, width_per_group
        self._norm = norm_layer
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # MDETR passes replace_stride_with_dilation=[False, False, args.dilation]
        dilate = (False, False, bool(dilation))
        self.layer1 = self._make_layer(blk, stem, layers[0])
        self.layer2 = self._make_layer(blk, stem * 2, layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(blk, stem * 4, layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(blk, stem * 8, layers[3], 2, dilate[2])
        self.num_channels = stem * 8 * blk.expansion + (2 if self.coords else 0)

    def _make_layer(self, blk, planes, blocks, stride=1, dilate=False):
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * blk.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * blk.expansion, stride),
                                       self._norm(planes * blk.expansion))
        mods = [blk(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                    self._norm)]
        self.inplanes = planes * blk.expansion
        for _ in range(1, blocks):
            mods.append(blk(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                            dilation=self.dilation, norm_layer=self._norm))
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.pool > 1:
            x = nn.functional.avg_pool2d(x, self.pool, ceil_mode=True)
        if self.coords:
            n, _, h, w = x.shape
            ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h * 2 - 1
            xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w * 2 - 1
            grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])
            x = torch.cat([x, grid[None].expand(n, -1, -1, -1)], 1)
        return x
