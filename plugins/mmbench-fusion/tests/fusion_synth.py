"""Tiny synthetic image+text classification data built in code (3 classes).

Text and image are independent partial views of the label: each carries the class cue
with probability ``p_text`` / ``p_image`` and otherwise no cue at all (neutral words, a
grey image), so combining the two views beats either alone.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mmbench.tasks.base import DatasetMeta, ImageItem
from mmbench.tasks.classification import ClassificationData, ClassificationSample

CLASSES = ["positive", "neutral", "negative"]
WORDS = [["great", "love", "happy"], ["okay", "table", "plain"], ["awful", "hate", "sad"]]
FILLER = ["the", "a", "day", "today", "photo", "look", "at", "this", "my", "friend"]
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
GREY = (128, 128, 128)


def _sample(i, y, rng, p_text, p_image, text_only, labelled=True, prefix="s"):
    has_text_cue = rng.random() < p_text
    has_image_cue = rng.random() < p_image
    words = list(rng.choice(FILLER, size=4)) + [str(rng.choice(WORDS[y] if has_text_cue else FILLER))]
    rng.shuffle(words)
    image = None
    if not text_only:
        arr = rng.normal(0, 25, size=(24, 24, 3)) + np.array(COLOURS[y] if has_image_cue else GREY)
        image = ImageItem(id=f"{prefix}{i}", pil=Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return ClassificationSample(id=f"{prefix}{i}", text=" ".join(words), image=image, label=y if labelled else None)


def make_data(n=120, seed=0, split="train", text_only=False, n_unlabelled=0, p_text=0.5, p_image=0.5):
    rng = np.random.default_rng(seed)
    ys = rng.integers(3, size=n)
    samples = [_sample(i, int(y), rng, p_text, p_image, text_only, prefix=f"{split}-") for i, y in enumerate(ys)]
    unl = [_sample(i, int(rng.integers(3)), rng, p_text, p_image, text_only, labelled=False, prefix=f"{split}-u")
           for i in range(n_unlabelled)]
    meta = DatasetMeta(name="synth", split=split, task="classification", fingerprint=f"synth{seed}{text_only}",
                       forms=("text_only",) if text_only else ("image",))
    return ClassificationData(samples=samples, classes=list(CLASSES), meta=meta, unlabelled=unl)
