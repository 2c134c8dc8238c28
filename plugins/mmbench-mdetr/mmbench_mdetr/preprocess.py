"""The official MDETR eval preprocessing and batching, without torchvision.

- ashkamath/mdetr:datasets/coco.py make_coco_transforms("val"): RandomResize([800], max_size=1333),
  ToTensor, Normalize(ImageNet mean / std);
- ashkamath/mdetr:datasets/transforms.py resize / get_size_with_aspect_ratio: the size rule below;
  torchvision's F.resize of a PIL image is PIL ``resize((w, h), BILINEAR)``;
- ashkamath/mdetr:util/misc.py NestedTensor.from_tensor_list (collate_fn do_round=False): zero padding
  bottom / right to the batch maximum, mask True on padding.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MIN_SIZE, MAX_SIZE = 800, 1333


def resized_hw(w: int, h: int, size: int = MIN_SIZE, max_size: int | None = MAX_SIZE) -> tuple[int, int]:
    """(height, width) after the official eval resize of a (w, h) image."""
    if max_size is not None:
        lo, hi = float(min(w, h)), float(max(w, h))
        if hi / lo * size > max_size:
            size = int(round(max_size * lo / hi))  # quirk kept: Python round (banker's) then int
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size  # long side floored
    return size, int(size * w / h)


def image_tensor(img) -> torch.Tensor:
    """RGB PIL image -> normalised float32 (3, H', W') tensor, exactly as the official val transform."""
    from PIL import Image

    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    oh, ow = resized_hw(w, h)
    if (ow, oh) != (w, h):
        img = img.resize((ow, oh), Image.BILINEAR)
    x = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


def nested(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (3, H, W) tensors to the batch max; mask (B, H, W) True on padding."""
    c = tensors[0].shape[0]
    h = max(t.shape[1] for t in tensors)
    w = max(t.shape[2] for t in tensors)
    out = torch.zeros((len(tensors), c, h, w), dtype=tensors[0].dtype)
    mask = torch.ones((len(tensors), h, w), dtype=torch.bool)
    for t, o, m in zip(tensors, out, mask):
        o[:, : t.shape[1], : t.shape[2]].copy_(t)
        m[: t.shape[1], : t.shape[2]] = False
    return out, mask
