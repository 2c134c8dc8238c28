"""mmbench hooks for SCAN. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_scan import __version__


@hookimpl
def mmbench_models():
    from mmbench_vse.wrapper import loader_options

    return [ModelSpec(
        name="scan",
        task="retrieval",
        factory="mmbench_scan.retrieval:build",
        accepts=("regions",),
        description=("SCAN stacked cross attention (t2i or i2t, as the checkpoint's opt says) loaded from an "
                     "official model_best.pth.tar; scored in float64 like the official evaluation. Without "
                     "options, a small t2i model trained on the demo dataset."),
        version=__version__,
        options={
            "checkpoint": "official SCAN model_best.pth.tar (default: the shipped demo model)",
            **loader_options(batch_size="images / captions per block (default 64)"),
            "precision": "float64 (default, as the official evaluation) or float32 (faster on GPUs)",
            "cross_attn": "override opt.cross_attn: t2i | i2t",
            "raw_feature_norm": "override opt.raw_feature_norm: clipped_l2norm | l2norm | clipped_l1norm | "
                                "l1norm | clipped | softmax | no_norm",
            "agg_func": "override opt.agg_func: Mean | Max | Sum | LogSumExp",
            "lambda_lse": "override opt.lambda_lse (LogSumExp temperature)",
            "lambda_softmax": "override opt.lambda_softmax (attention temperature)",
        },
    )]
