"""mmbench hook module of mmbench-hf-captioning: model specs only (no torch or transformers import here)."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

VERSION = "0.1.0"

_COMMON = {
    "model": "path to a local Hugging Face checkpoint folder (save_pretrained: config, weights, tokenizer, "
             "processor); never downloaded (default: the shipped demo checkpoint; blip2 has none)",
    "device": "auto | cpu | cuda | cuda:N (default auto: cuda when available)",
    "precision": "fp32 | fp16 | bf16 (default fp32; fp16/bf16 cast the model, CUDA only)",
    "batch_size": "images per generate call (default 16)",
    "preset": "generation preset: blip-coco (beams 3, max_length 20, min_length 5, prompt 'a picture of '), "
              "git-coco (beams 4, length_penalty 0.6, max_length 1024 capped at the checkpoint's positions) "
              "blip2-coco (beams 5, max_new_tokens 30, min_length 8, prompt 'a photo of', LAVIS) "
              "or greedy (beams 1, max_length 20); default blip-coco for blip, git-coco for git, blip2-coco for blip2",
    "num_beams": "beam width (overrides the preset)",
    "max_length": "maximum sequence length, prompt tokens included, as transformers' generate (overrides the preset; "
                  "blip2: the query tokens are not counted, as in LAVIS)",
    "max_new_tokens": "maximum number of generated tokens (replaces max_length)",
    "min_length": "minimum sequence length, prompt tokens included (overrides the preset; blip2: the query tokens "
                  "are not counted, as in LAVIS)",
    "repetition_penalty": "transformers' repetition_penalty (overrides the preset; 1.0 = none)",
    "length_penalty": "transformers' beam length_penalty (overrides the preset)",
    "no_repeat_ngram_size": "transformers' no_repeat_ngram_size (overrides the preset; 0 = off)",
    "prompt": "text prompt the caption continues; removed from the output (overrides the preset)",
    "seed": "the run's seed (recorded; decoding is deterministic)",
}

_LAVIS = "salesforce/LAVIS:docs/benchmark.rst (BLIP base, COCO Karpathy test)"
_BLIP2 = ("BLIP-2 paper (Li et al. 2023, arXiv:2301.12597) Table 3, COCO fine-tuned, Karpathy test: {} "
          "(salesforce/LAVIS:lavis/projects/blip2/eval/caption_coco_{}_eval.yaml's header records {} for the "
          "released checkpoint)")
_GIT = "microsoft/GenerativeImage2Text:README.md ({} on COCO Karpathy test; the README's evaluation step expects {})"


@hookimpl
def mmbench_models():
    return [
        ModelSpec(name="blip", task="captioning", factory="mmbench_hf_captioning.models:build_blip",
                  accepts=("image",), version=VERSION, options=dict(_COMMON),
                  description="BLIP captioning (BlipForConditionalGeneration from a local folder, transformers "
                              "generate with BLIP's COCO settings; default: a tiny BLIP trained on the demo).",
                  published=(PublishedNumber("coco", "Bleu_4", 0.399, split="test", tolerance=0.01, source=_LAVIS),
                             PublishedNumber("coco", "CIDEr", 1.335, split="test", tolerance=0.02, source=_LAVIS))),
        ModelSpec(name="git", task="captioning", factory="mmbench_hf_captioning.models:build_git",
                  accepts=("image",), version=VERSION, options=dict(_COMMON),
                  description="GIT captioning (GitForCausalLM from a local folder, transformers generate with "
                              "GIT's settings; published numbers of GIT_BASE_COCO; default: a tiny GIT trained "
                              "on the demo).",
                  published=(PublishedNumber("coco", "CIDEr", 1.3135, split="test", tolerance=0.02,
                                             source=_GIT.format("GIT_BASE_COCO CIDEr 131.4", "131.35")),)),
        ModelSpec(name="git-large", task="captioning", factory="mmbench_hf_captioning.models:build_git",
                  accepts=("image",), version=VERSION, options=dict(_COMMON),
                  description="The same GIT captioner, declaring GIT_LARGE_COCO's published numbers: give "
                              "--option model= a GIT-large COCO folder (default: the tiny demo GIT).",
                  published=(PublishedNumber("coco", "CIDEr", 1.3845, split="test", tolerance=0.02,
                                             source=_GIT.format("GIT_LARGE_COCO CIDEr 138.5", "138.45")),)),
        ModelSpec(name="blip2", task="captioning", factory="mmbench_hf_captioning.models:build_blip2",
                  accepts=("image",), version=VERSION, options=dict(_COMMON),
                  description="BLIP-2 OPT captioning (Blip2ForConditionalGeneration from a local folder, transformers "
                              "generate with LAVIS's COCO settings; published numbers of ViT-g OPT2.7B; needs "
                              "--option model=, no demo checkpoint ships).",
                  published=(PublishedNumber("coco", "Bleu_4", 0.437, split="test", tolerance=0.01, source=_BLIP2.format(
                                 "ViT-g OPT2.7B BLEU-4 43.7, CIDEr 145.8", "opt2.7b", "Bleu_4 0.438, CIDEr 1.461")),
                             PublishedNumber("coco", "CIDEr", 1.458, split="test", tolerance=0.02, source=_BLIP2.format(
                                 "ViT-g OPT2.7B BLEU-4 43.7, CIDEr 145.8", "opt2.7b", "Bleu_4 0.438, CIDEr 1.461")))),
        ModelSpec(name="blip2-opt-6.7b", task="captioning", factory="mmbench_hf_captioning.models:build_blip2",
                  accepts=("image",), version=VERSION, options=dict(_COMMON),
                  description="The same BLIP-2 captioner, declaring ViT-g OPT6.7B's published numbers: give "
                              "--option model= a BLIP-2 OPT-6.7b COCO folder.",
                  published=(PublishedNumber("coco", "Bleu_4", 0.435, split="test", tolerance=0.01, source=_BLIP2.format(
                                 "ViT-g OPT6.7B BLEU-4 43.5, CIDEr 145.2", "opt6.7b", "Bleu_4 0.434, CIDEr 1.451")),
                             PublishedNumber("coco", "CIDEr", 1.452, split="test", tolerance=0.02, source=_BLIP2.format(
                                 "ViT-g OPT6.7B BLEU-4 43.5, CIDEr 145.2", "opt6.7b", "Bleu_4 0.434, CIDEr 1.451")))),
    ]
