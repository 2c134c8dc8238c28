"""Reusable hand-made features for baselines: image colour statistics, colour regions, bag of words.

Everything here is deterministic, needs no downloaded weights and imports sklearn/scipy
lazily, so other plugins may build on it cheaply:

- ``colour_features(images)``: (B, F) float32 colour statistics of RGB images
  (global joint histogram, a coarse spatial grid of histograms, channel means/stds);
- ``colour_components(image)``: connected regions of saturated colour with their boxes,
  named colour and fill ratio (what a box is made of, without any detector);
- ``tokenize(text)`` and ``TextVectorizer``: lower-cased word tokens and a TF-IDF
  bag of words (uni+bigrams) over them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

#: Named basic colours (RGB) for naming saturated regions; extend by passing ``palette=``.
BASIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "purple": (140, 60, 180), "orange": (245, 140, 30),
    "pink": (240, 120, 180), "brown": (130, 80, 40),
}


def as_rgb_array(image) -> np.ndarray:
    """(H, W, 3) uint8 array of an ImageItem, PIL image or array."""
    if hasattr(image, "load") and hasattr(image, "forms"):  # an mmbench ImageItem
        image = image.load()
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got an array of shape {arr.shape}")
    return arr


def _histograms(arrs: np.ndarray, bins: int) -> np.ndarray:
    """Normalised joint RGB histograms of (B, N, 3) uint8 pixel sets: (B, bins**3)."""
    b, n = arrs.shape[:2]
    q = (arrs.astype(np.int32) * bins) >> 8  # == floor(v * bins / 256)
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2] + (np.arange(b, dtype=np.int32) * bins ** 3)[:, None]
    h = np.bincount(idx.ravel(), minlength=b * bins ** 3).reshape(b, bins ** 3).astype(np.float32)
    return h / np.float32(max(1, n))


def colour_histogram(arr: np.ndarray, bins: int = 4) -> np.ndarray:
    """Normalised joint RGB histogram with ``bins`` levels per channel: (bins**3,)."""
    return _histograms(arr.reshape(1, -1, 3), bins)[0]


def _grid(arrs: np.ndarray, grid: int, bins: int) -> np.ndarray:
    """(B, H, W, 3) -> (B, grid*grid*bins**3): histograms of a grid x grid partition, row-major."""
    h, w = arrs.shape[1:3]
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    cells = [_histograms(arrs[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]].reshape(len(arrs), -1, 3), bins)
             for i in range(grid) for j in range(grid)]
    return np.concatenate(cells, axis=1)


def colour_grid(arr: np.ndarray, grid: int = 3, bins: int = 3) -> np.ndarray:
    """Joint RGB histograms of a grid x grid partition, concatenated: (grid*grid*bins**3,)."""
    return _grid(arr[None], grid, bins)[0]


def channel_stats(arr: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation scaled to [0, 1]: (6,)."""
    x = arr.reshape(-1, 3).astype(np.float32) / 255.0
    return np.concatenate([x.mean(0), x.std(0)])


def colour_features(images: Iterable, *, bins: int = 4, grid: int = 3, grid_bins: int = 3) -> np.ndarray:
    """(B, bins**3 + grid*grid*grid_bins**3 + 6) float32 colour statistics of each image.

    Row b is [colour_histogram(bins), colour_grid(grid, grid_bins), channel_stats] of image b;
    images of one size are processed as one batch.
    """
    arrs = [as_rgb_array(im) for im in images]
    width = bins ** 3 + grid * grid * grid_bins ** 3 + 6
    if not arrs:
        return np.zeros((0, width), np.float32)
    rows = []
    start = 0
    while start < len(arrs):  # runs of equally sized images go through together
        end = start + 1
        while end < len(arrs) and arrs[end].shape == arrs[start].shape:
            end += 1
        batch = np.stack(arrs[start:end])
        flat = batch.reshape(len(batch), -1, 3)
        x = np.ascontiguousarray(flat.transpose(0, 2, 1), dtype=np.float32) / 255.0  # reduce a contiguous axis
        rows.append(np.concatenate([_histograms(flat, bins), _grid(batch, grid, grid_bins),
                                    x.mean(2), x.std(2)], axis=1))
        start = end
    return np.concatenate(rows).astype(np.float32)


@dataclass
class Component:
    """A connected region of one saturated colour."""

    colour: str
    box: tuple[float, float, float, float]  # pixel xyxy, continuous (x2 = last column + 1)
    area: int
    fill: float  # area / box area: ~1 square, ~0.79 disc, ~0.5 triangle or diamond
    mean_rgb: tuple[float, float, float]


def colour_components(image, *, palette: dict[str, Sequence[int]] | None = None, min_saturation: float = 0.45,
                      min_value: float = 0.55, min_area: int = 12) -> list[Component]:
    """Connected regions of saturated pixels, split by nearest named colour, largest first.

    Low-saturation pixels (greys, pale or dark backgrounds) are background. Each saturated
    pixel is named by its nearest palette colour, then 8-connected regions of one name of at
    least ``min_area`` pixels are returned with their tight boxes.
    """
    from scipy import ndimage

    palette = dict(palette or BASIC_COLOURS)
    arr = as_rgb_array(image).astype(np.float32)
    mx, mn = arr.max(2), arr.min(2)
    sat = (mx - mn) / np.maximum(mx, 1.0)
    mask = (sat >= min_saturation) & (mx >= 255.0 * min_value)
    names = list(palette)
    ref = np.asarray([palette[n] for n in names], np.float32)
    dist = ((arr[:, :, None, :] - ref[None, None]) ** 2).sum(-1)
    nearest = dist.argmin(-1)
    out = []
    for k, name in enumerate(names):
        lab, n = ndimage.label(mask & (nearest == k), structure=np.ones((3, 3), bool))
        if not n:
            continue
        for sl, idx in zip(ndimage.find_objects(lab), range(1, n + 1)):
            region = lab[sl] == idx
            area = int(region.sum())
            if area < min_area:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            rgb = arr[sl][region].mean(0)
            out.append(Component(colour=name, box=(float(x0), float(y0), float(x1), float(y1)), area=area,
                                 fill=area / float((x1 - x0) * (y1 - y0)), mean_rgb=tuple(float(c) for c in rgb)))
    out.sort(key=lambda c: (-c.area, c.box))
    return out


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[#@][a-z0-9_]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (hashtags and mentions kept whole)."""
    return _TOKEN.findall((text or "").lower())


class TextVectorizer:
    """TF-IDF bag of words over ``tokenize`` tokens (uni- and bigrams by default), L2-normalised rows."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 1, sublinear_tf: bool = True):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self._vec = None

    def fit(self, texts: Sequence[str]) -> "TextVectorizer":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vec = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                                    ngram_range=self.ngram_range, min_df=self.min_df,
                                    sublinear_tf=self.sublinear_tf)
        self._vec.fit(list(texts))
        return self

    @property
    def vocabulary(self) -> dict[str, int]:
        self._check()
        return dict(self._vec.vocabulary_)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(B, V) float32 dense TF-IDF rows (the vocabularies here are small)."""
        self._check()
        return np.asarray(self._vec.transform(list(texts)).todense(), dtype=np.float32)

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)

    def _check(self):
        if self._vec is None:
            raise RuntimeError("TextVectorizer is not fitted; call fit(texts) first")


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)
