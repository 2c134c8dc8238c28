"""Hook implementations: one classification ModelSpec per fusion method (cheap: no torch import)."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_fusion import __version__

DESCRIPTIONS = {
    "early-fusion": "Early fusion: concatenated text+image features, one MLP.",
    "late-fusion": "Late fusion: one MLP per modality, probabilities averaged with val-tuned weights.",
    "tfn": "Tensor Fusion Network (Zadeh et al. 2017): outer product of [1, h_text] and [1, h_image].",
    "lmf": "Low-rank Multimodal Fusion (Liu et al. 2018): TFN's fusion layer with rank-r factors.",
    "tmc": "Trusted Multi-view Classification (Han et al. 2021): Dirichlet evidence per modality, "
           "Dempster-Shafer combination; reports ECE and uncertainty.",
    "etmc": "Enhanced TMC (Han et al., TPAMI 2022): TMC plus a pseudo-view of the concatenated "
            "modality encodings with its own evidence head; reports ECE and uncertainty.",
    "cmml": "CMML (Yang et al. 2019): modality attention, diversity term on labelled and robust Huber "
            "consistency on unlabelled samples (semi-supervised).",
    "ptp": "Polynomial Tensor Pooling (Hou et al., NeurIPS 2019): [0.5, h_text, h_image] raised to order P "
           "through a rank-R symmetric CP weight (HPFN's PTP block).",
    "modal-attention": "Modality attention (Moon et al., NAACL 2018): softmax(sigmoid(W[h_text; h_image])) "
                       "weights over the modalities, classifier on the weighted sum.",
    "mbt": "Attention Bottlenecks / MBT (Nagrani et al., NeurIPS 2021): two transformer streams that exchange "
           "information only through shared bottleneck tokens from a fusion layer on.",
    "text-only": "Unimodal reference: MLP on the text features alone.",
    "image-only": "Unimodal reference: MLP on the image features alone.",
}


@hookimpl
def mmbench_models():
    from mmbench_fusion.classifier import option_help

    return [
        ModelSpec(name=name, task="classification", factory=f"mmbench_fusion.factories:{name.replace('-', '_')}",
                  accepts=("image",) if name == "image-only" else ("image", "text_only"),
                  description=desc, version=__version__, options=option_help(name))
        for name, desc in DESCRIPTIONS.items()
    ]
