"""mmbench hooks for SGRAF. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_sgraf import __version__

_SRC = "Paranioar/SGRAF README"


# SGRAF README results table (SGR+SAF ensemble, i.e. checkpoint + checkpoint2), PROTOCOLS.md section 1.
_ROWS = (
    ("f30k_precomp", "test", "flickr30k-1k", (78.4, 94.6, 97.5), (58.2, 83.0, 89.1)),
    ("coco_precomp", "testall", "coco-1k-5fold", (79.2, 96.5, 98.6), (63.5, 90.2, 95.8)),
    ("coco_precomp", "testall", "coco-5k", (58.8, 84.8, 92.1), (41.6, 70.9, 81.5)),
)


@hookimpl
def mmbench_models():
    from mmbench_vse.wrapper import loader_options, recall_numbers

    return [ModelSpec(
        name="sgraf",
        task="retrieval",
        factory="mmbench_sgraf.retrieval:build",
        accepts=("regions",),
        description=("SGRAF similarity reasoning (SGR) / attention filtration (SAF) cross-attention scorer "
                     "loaded from an official model_best.pth.tar; without options, a small model trained on "
                     "the demo dataset. Published numbers are the SGR+SAF ensemble (pass checkpoint2=)."),
        version=__version__,
        options={
            "checkpoint": "official SGRAF model_best.pth.tar (SGR or SAF; default: the shipped demo model)",
            "checkpoint2": "a second checkpoint (e.g. SAF next to an SGR checkpoint): scores are the mean of "
                           "both, as SGRAF's ensemble evaluation does",
            **loader_options(batch_size="images / captions per block (default 64)"),
        },
        published=recall_numbers(_ROWS, _SRC),
    )]
