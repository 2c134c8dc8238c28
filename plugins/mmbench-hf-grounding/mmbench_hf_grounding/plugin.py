"""mmbench hook module of mmbench-hf-grounding: model specs only (no torch or transformers import here)."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

VERSION = "0.1.0"

_OPTIONS = {
    "model": "path to a local Hugging Face folder holding the model and its processor (save_pretrained of both: "
             "config.json, model.safetensors, tokenizer and image-processor files); never downloaded "
             "(default: the tiny random-weight demo folder shipped in the package)",
    "device": "auto | cpu | cuda | cuda:N (default auto: cuda when available)",
    "precision": "fp32 | fp16 | bf16 (default fp32; fp16/bf16 autocast on GPU only)",
    "batch_size": "samples per forward pass (default 8); only samples whose processed tensors have the same "
                  "shape share one, so results never depend on it",
    "clip_boxes": "true | false (default true): clip boxes to the image after transformers' post-processing",
}

_DEMO_NOTE = ("The shipped demo folder is a tiny model with RANDOM weights (zero-shot models are not trained on the "
              "demo data): its demo numbers are near chance by design; give --option model=PATH for a real "
              "checkpoint.")

_MMDET = ("open-mmlab/mmdetection:configs/mm_grounding_dino/README.md, Referring Expression Comprehension Results "
          "(zero-shot, precision@1). Caveat: mmdetection scores a box by the MEAN token probability over the "
          "expression's positive tokens (mmdet/models/dense_heads/atss_vlfusion_head.py, "
          "convert_grounding_to_cls_scores), this plugin as transformers' post-processing (MAX over tokens), so a "
          "gap is expected even with the same weights")


def _refexp(values: dict, column: str) -> tuple[PublishedNumber, ...]:
    """P@1 per (dataset, split) for the refer adapters and for MDETR's finetune_*.json (mdetr_refexp)."""
    protocol = {"refcoco": "refcoco-unc", "refcoco+": "refcoco+-unc", "refcocog": "refcocog-umd"}
    out = []
    for (dataset, split), v in values.items():
        src = f"{_MMDET}, column {column}"
        out.append(PublishedNumber(dataset=dataset, metric="P@1", value=v, split=split, protocol=protocol[dataset],
                                   tolerance=1.0, source=src))
        out.append(PublishedNumber(dataset="mdetr_refexp", metric="P@1", value=v, split=split,
                                   protocol=protocol[dataset], tolerance=1.0, source=src))
    return tuple(out)


#: GDINO-T (O365, GoldG, Cap4M) = IDEA-Research/grounding-dino-tiny (the swint_ogc weights).
GDINO_T = _refexp({("refcoco", "val"): 50.8, ("refcoco", "testA"): 57.4, ("refcoco", "testB"): 45.0,
                   ("refcoco+", "val"): 51.6, ("refcoco+", "testA"): 57.3, ("refcoco+", "testB"): 46.4,
                   ("refcocog", "val"): 60.4, ("refcocog", "test"): 59.7}, "GDINO-T (O365,GoldG,Cap4M)")
#: MM-GDINO-T (O365, GoldG, GRIT, V3Det) = openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_grit_v3det.
MM_GDINO_T = _refexp({("refcoco", "val"): 53.1, ("refcoco", "testA"): 59.1, ("refcoco", "testB"): 46.8,
                      ("refcoco+", "val"): 52.7, ("refcoco+", "testA"): 58.7, ("refcoco+", "testB"): 48.4,
                      ("refcocog", "val"): 62.9, ("refcocog", "test"): 62.9}, "MM-GDINO-T (O365,GoldG,GRIT,V3Det)")


@hookimpl
def mmbench_models():
    common = dict(task="grounding", accepts=("image",), version=VERSION, options=_OPTIONS)
    return [
        ModelSpec(name="owlvit", factory="mmbench_hf_grounding.models:build_owlvit", **common,
                  description="OWL-ViT (transformers OwlViTForObjectDetection, local folder) as a zero-shot grounder: "
                              "the expression is the one text query, every patch box ranked by score, no threshold. "
                              "Neither the OWL-ViT paper nor its model cards report RefCOCO numbers. " + _DEMO_NOTE),
        ModelSpec(name="owlv2", factory="mmbench_hf_grounding.models:build_owlv2", **common,
                  description="OWLv2 (Owlv2ForObjectDetection): as owlvit, with the image padded to a square before "
                              "resizing and boxes scaled against the padded size, as transformers' post-processing. "
                              "No published RefCOCO numbers. " + _DEMO_NOTE),
        ModelSpec(name="grounding-dino", factory="mmbench_hf_grounding.models:build_grounding_dino", **common,
                  published=GDINO_T,
                  description="Grounding DINO (GroundingDinoForObjectDetection): lower-cased expression ending in '.', "
                              "every decoder query ranked by max token score, no box/text threshold; published: "
                              "mmdetection's zero-shot RefCOCO/+/g P@1 of GDINO-T. " + _DEMO_NOTE),
        ModelSpec(name="mm-grounding-dino", factory="mmbench_hf_grounding.models:build_mm_grounding_dino", **common,
                  published=MM_GDINO_T,
                  description="MM-Grounding-DINO (MMGroundingDinoForObjectDetection), same protocol as grounding-dino; "
                              "published: mmdetection's zero-shot RefCOCO/+/g P@1 of MM-GDINO-T "
                              "(O365,GoldG,GRIT,V3Det). " + _DEMO_NOTE),
    ]
