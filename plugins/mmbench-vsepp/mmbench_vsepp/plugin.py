"""mmbench hooks for VSE++. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_vsepp import __version__


@hookimpl
def mmbench_models():
    from mmbench_vse.wrapper import loader_options

    return [ModelSpec(
        name="vsepp",
        task="retrieval",
        factory="mmbench_vsepp.retrieval:build",
        accepts=("regions",),
        description=("VSE++ (precomputed image features + GRU text encoder) loaded from an official *_precomp "
                     "model_best.pth.tar: a dual encoder for measure=cosine, a float32 pairwise scorer for "
                     "order embeddings (measure=order, Order0/Order++, with or without use_abs); without "
                     "options, a small cosine model trained on the demo dataset (region rows mean-pooled)."),
        version=__version__,
        options={
            "checkpoint": "official VSE++ model_best.pth.tar of a *_precomp run (default: the shipped demo model)",
            **loader_options(vocab="the official vocab/<data_name>_vocab.pkl (read without running code) or a "
                                   "SCAN-format json", batch_size="images / captions per encoding batch (default 128)"),
            "region_pool": "mean (default): average an image's region rows into one vector; none: require one",
        },
    )]
