"""mmbench hooks for IMRAM. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_imram import __version__

_SRC = ("Chen et al., IMRAM: Iterative Matching with Recurrent Attention Memory for Cross-Modal Image-Text "
        "Retrieval, CVPR 2020 (arXiv 2003.03772), results tables, full IMRAM (model_mode=full_IMRAM)")


_ROWS = (
    ("f30k_precomp", "test", "flickr30k-1k", (74.1, 93.0, 96.6), (53.9, 79.4, 87.2)),
    ("coco_precomp", "testall", "coco-1k-5fold", (76.7, 95.6, 98.5), (61.7, 89.1, 95.0)),
    ("coco_precomp", "testall", "coco-5k", (53.7, 83.2, 91.0), (39.7, 69.1, 79.8)),
)


@hookimpl
def mmbench_models():
    from mmbench_vse.wrapper import loader_options, recall_numbers

    return [ModelSpec(
        name="imram",
        task="retrieval",
        factory="mmbench_imram.retrieval:build",
        accepts=("regions",),
        description=("IMRAM iterative matching with recurrent attention memory (full / text / image IMRAM, as "
                     "the checkpoint's opt says) loaded from an official model_best.pth.tar; steps scored in "
                     "float32 and summed in float64 like the official evaluation. Without options, a small "
                     "full_IMRAM model trained on the demo dataset."),
        version=__version__,
        options={
            "checkpoint": "official IMRAM model_best.pth.tar (train_gpus.py; default: the shipped demo model)",
            **loader_options(vocab="the <data_name>_vocab.json the checkpoint was trained with (IMRAM's vocab/)",
                             batch_size="images / captions per block (default 64)"),
            "model_mode": "override opt.model_mode: full_IMRAM (sum of t2i and i2t steps) | text_IMRAM | image_IMRAM",
            "iteration_step": "override opt.iteration_step (matching steps per direction; every step's score is summed)",
            "no_IMRAM_norm": "override opt.no_IMRAM_norm: true skips the L2 norm of the updated query",
            "lambda_softmax": "override opt.lambda_softmax (attention temperature)",
            "raw_feature_norm": "override opt.raw_feature_norm: clipped_l2norm | l2norm | softmax | clipped | no_norm",
        },
        published=recall_numbers(_ROWS, _SRC),
    )]
