"""mmbench hook module of mmbench-clip: model specs only (no torch or transformers import here)."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

_COMMON = {
    "model": "path to a local Hugging Face checkpoint folder (save_pretrained: config, weights, tokenizer, "
             "image processor); never downloaded (default: the shipped demo checkpoint)",
    "device": "auto | cpu | cuda | cuda:N (default auto: cuda when available)",
    "precision": "fp32 | fp16 | bf16 (default fp32; fp16/bf16 autocast on GPU only)",
    "batch_size": "items per forward pass (default 64)",
}
_ZS = dict(_COMMON, templates="prompt templates joined by '|', '{}' = class name (default 'a photo of a {}.')",
           classes="class names joined by '|' (default: the dataset's classes, read from its train split)")


@hookimpl
def mmbench_models():
    return [
        ModelSpec(name="clip", task="retrieval", factory="mmbench_clip.models:build_clip", accepts=("image",),
                  version="0.1.0", options=_COMMON,
                  description="CLIP dual encoder (any local CLIPModel checkpoint; default: a 0.3 M-parameter "
                              "CLIP trained on the demo train split, shipped in the package)."),
        ModelSpec(name="flava", task="retrieval", factory="mmbench_clip.models:build_flava", accepts=("image",),
                  version="0.1.0", options=_COMMON,
                  description="FLAVA dual encoder (any local FlavaModel checkpoint, projected CLS embeddings; "
                              "default: a 0.2 M-parameter FLAVA trained on the demo train split, shipped in the "
                              "package)."),
        ModelSpec(name="clip-zeroshot", task="classification", factory="mmbench_clip.models:build_clip_zeroshot",
                  accepts=("image",), version="0.1.0", options=_ZS,
                  description="CLIP zero-shot image classification with prompt templates over the dataset's classes."),
        ModelSpec(name="flava-zeroshot", task="classification",
                  factory="mmbench_clip.models:build_flava_zeroshot", accepts=("image",), version="0.1.0",
                  options=_ZS, description="FLAVA zero-shot image classification with prompt templates."),
    ]
