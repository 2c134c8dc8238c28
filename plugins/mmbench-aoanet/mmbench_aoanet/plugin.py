"""mmbench hooks for AoANet. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

from mmbench_aoanet import __version__

_SRC = "husthuaan/AoANet README (Karpathy test, eval.py --beam_size 2)"


def _published() -> tuple[PublishedNumber, ...]:
    # husthuaan/AoANet README: the printed lang_stats of the two released models (pycocoevalcap scale:
    # 0..1, CIDEr x10 scale as printed). The SCST model is the headline one; the XE numbers are the
    # cross-entropy stage. SPICE is listed for completeness (mmbench cannot compute it offline).
    scst = {"Bleu_1": 0.805, "Bleu_2": 0.652, "Bleu_3": 0.510, "Bleu_4": 0.391, "METEOR": 0.290,
            "ROUGE_L": 0.589, "CIDEr": 1.289, "SPICE": 0.227}
    xe = {"Bleu_1": 0.773, "Bleu_2": 0.616, "Bleu_3": 0.479, "Bleu_4": 0.369, "METEOR": 0.285,
          "ROUGE_L": 0.573, "CIDEr": 1.184, "SPICE": 0.217}
    out = [PublishedNumber(dataset="cocobu", metric=k, value=v, split="test", tolerance=0.01 if k != "CIDEr" else 0.03,
                           source=_SRC + ", after SCST") for k, v in scst.items()]
    out += [PublishedNumber(dataset="cocobu", metric=k, value=v, split="test", protocol="cross-entropy",
                            tolerance=0.01 if k != "CIDEr" else 0.03, source=_SRC + ", cross-entropy training only")
            for k, v in xe.items()]
    return tuple(out)


@hookimpl
def mmbench_models():
    from mmbench_aoanet.options import OPTIONS

    return [ModelSpec(
        name="aoanet",
        task="captioning",
        factory="mmbench_aoanet.captioner:build",
        accepts=("regions",),
        description=("AoANet captioning from bottom-up region features, loaded from an official model-best.pth + "
                     "infos pickle (read safely); greedy / beam search exactly as the official eval.py. Without "
                     "options, a small model trained on the demo dataset."),
        version=__version__,
        options=dict(OPTIONS),
        published=_published(),
    )]
