"""mmbench hooks for MDETR. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

from mmbench_mdetr import __version__

_SRC = "ashkamath/mdetr .github/refexp.md"
_FLICKR_SRC = "ashkamath/mdetr .github/flickr.md"

#: ashkamath/mdetr:.github/refexp.md, Precision@1 (%), evaluated with --ema. (dataset, backbone, {split: value})
REFEXP = (
    ("refcoco", "resnet101", {"val": 86.75, "testA": 89.58, "testB": 81.41}),
    ("refcoco", "timm_tf_efficientnet_b3_ns", {"val": 87.51, "testA": 90.40, "testB": 82.67}),
    ("refcoco+", "resnet101", {"val": 79.52, "testA": 84.09, "testB": 70.62}),
    ("refcoco+", "timm_tf_efficientnet_b3_ns", {"val": 81.13, "testA": 85.52, "testB": 72.96}),
    ("refcocog", "resnet101", {"val": 81.64, "test": 80.89}),
    ("refcocog", "timm_tf_efficientnet_b3_ns", {"val": 83.35, "test": 83.31}),
)
_PROTOCOL = {"refcoco": "refcoco-unc", "refcoco+": "refcoco+-unc", "refcocog": "refcocog-umd"}

#: ashkamath/mdetr:.github/flickr.md, Flickr30k Entities phrase grounding Recall@1/5/10 (%), --ema: the
#: pre-trained checkpoints evaluated directly (ANY-box) and the MERGED-box fine-tuned ResNet-101.
#: (protocol, backbone, checkpoint, {split: (R@1, R@5, R@10)})
FLICKR = (
    ("any-box", "resnet101", "pretrained_resnet101_checkpoint.pth",
     {"val": (82.5, 92.9, 94.9), "test": (83.4, 93.5, 95.3)}),
    ("any-box", "timm_tf_efficientnet_b3_ns", "pretrained_EB3_checkpoint.pth",
     {"val": (82.9, 93.2, 95.2), "test": (84.0, 93.8, 95.6)}),
    ("any-box", "timm_tf_efficientnet_b5_ns", "pretrained_EB5_checkpoint.pth",
     {"val": (83.6, 93.4, 95.1), "test": (84.3, 93.9, 95.8)}),
    ("merged-box", "resnet101", "flickr_merged_resnet101_checkpoint.pth",
     {"val": (82.3, 91.8, 93.7), "test": (83.8, 92.7, 94.4)}),
)


def _published() -> tuple[PublishedNumber, ...]:
    # variant = the checkpoint's args.backbone (the model's published_variant): a run is compared only with the
    # rows of its own backbone
    out = []
    for name, backbone, values in REFEXP:
        for split, v in values.items():
            for dataset in (name, "mdetr_refexp"):  # refer layout, or MDETR's finetune_*.json
                out.append(PublishedNumber(dataset=dataset, metric="P@1", value=v, protocol=_PROTOCOL[name],
                                           split=split, tolerance=0.1, variant=backbone,
                                           source=f"{_SRC} (MDETR {backbone}, --ema, GIoU >= 0.5)"))
    for protocol, backbone, ckpt, values in FLICKR:
        for split, recalls in values.items():
            for k, v in zip((1, 5, 10), recalls):
                out.append(PublishedNumber(dataset="flickr30k_entities", metric=f"P@{k}", value=v, protocol=protocol,
                                           split=split, tolerance=0.1, variant=backbone,
                                           source=f"{_FLICKR_SRC} ({ckpt}, --ema, Recall@{k}, IoU >= 0.5; score "
                                                  "with --task-option outside=score)"))
    return tuple(out)


@hookimpl
def mmbench_models():
    return [ModelSpec(
        name="mdetr",
        task="grounding",
        factory="mmbench_mdetr.grounding:build",
        accepts=("image", "image_file"),
        description=("MDETR (ashkamath/mdetr) referring-expression grounding from an official main.py checkpoint "
                     "(ResNet or timm EfficientNet backbones built in plain torch, RoBERTa from a local folder), evaluated as the official refexp path; "
                     "score with --task-option convention=giou for the official Precision@k. Without options, "
                     "a small model trained on the demo data."),
        version=__version__,
        options={
            "checkpoint": "official MDETR checkpoint.pth (dict with model, model_ema, args; default: the shipped "
                          "demo model)",
            "text_encoder": "local folder of the RoBERTa that args.text_encoder_type names (config.json + tokenizer "
                            "files, e.g. roberta-base saved with save_pretrained); needed when that is a hub id",
            "ema": "true: evaluate checkpoint['model_ema'], as the official eval commands (--ema) do for the "
                   "published numbers (default false: checkpoint['model'], main.py without --ema)",
            "device": "cpu, cuda or cuda:N (default: cuda when available)",
            "precision": "fp32 (default, the official numerics), fp16 or bf16",
            "batch_size": "images per forward pass (default 1 = no padding, the official --batch_size 1 result); "
                          "N pads like the official --batch_size N, which changes padded images' outputs",
            "batching": "official (default: consecutive samples share a padded batch, as main.py) or by-size "
                        "(only images of the same resized size share a batch: no padding effects, faster)",
            "allow_unsafe_pickle": "true to load a checkpoint needing more than mmbench's allow-list (trusted files "
                                   "only)",
        },
        published=_published(),
    )]
