"""mmbench hooks for Show-Attend-Tell. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

from mmbench_sat import __version__
from mmbench_sat.options import OPTIONS

_SRC = ("sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning README (COCO Karpathy test, BLEU-4 by NLTK corpus_bleu "
        "on word ids, NOT pycocoevalcap: not comparable with mmbench's Bleu_4)")


def _published() -> tuple[PublishedNumber, ...]:
    # README "Model Checkpoint" table: BLEU-4 30.28 / 33.06 / 33.29 at beam sizes 1 / 3 / 5. The metric is
    # named nltk_bleu4_beam<B> so it is never compared with pycocoevalcap's Bleu_4 (no run computes it).
    return tuple(PublishedNumber(dataset="coco", metric=f"nltk_bleu4_beam{b}", value=v, split="test", tolerance=0.5,
                                 source=_SRC) for b, v in ((1, 30.28), (3, 33.06), (5, 33.29)))


@hookimpl
def mmbench_models():
    return [ModelSpec(
        name="sat",
        task="captioning",
        factory="mmbench_sat.captioner:build",
        accepts=("image", "image_file"),
        description=("Show, Attend and Tell (sgrvinod tutorial): ResNet encoder + attention LSTM, loaded from the "
                     "tutorial's whole-module BEST_checkpoint without running its pickle; beam search as caption.py. "
                     "Without options, a small model trained on the demo dataset."),
        version=__version__,
        options=dict(OPTIONS),
        published=_published(),
    )]
