"""mmbench hooks for MDETR. Cheap: no torch import, no weights read until a run builds the model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

from mmbench_mdetr import __version__

_SRC = "ashkamath/mdetr .github/refexp.md"

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


def _published() -> tuple[PublishedNumber, ...]:
    # Only the ResNet-101 rows: a PublishedNumber matches a run by dataset, split and protocol, not by the
    # checkpoint's backbone, so declaring the EfficientNet-B3 rows too would compare every run with both. The
    # EB3 rows stay listed in REFEXP (and the README) for runs of the EB3 checkpoints, which load since 0.2.
    out = []
    for name, backbone, values in REFEXP:
        if backbone != "resnet101":
            continue
        for split, v in values.items():
            for dataset in (name, "mdetr_refexp"):  # refer layout, or MDETR's finetune_*.json
                out.append(PublishedNumber(dataset=dataset, metric="P@1", value=v, protocol=_PROTOCOL[name],
                                           split=split, tolerance=0.1,
                                           source=f"{_SRC} (MDETR ResNet-101, --ema, GIoU >= 0.5)"))
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
