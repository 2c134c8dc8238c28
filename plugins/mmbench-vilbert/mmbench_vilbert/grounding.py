"""ViLBERT referring expressions (RefCOCO+, task_utils.py ``V-logit``): every proposal scored, the best one's box."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmbench.errors import PluginError

from mmbench_vilbert.core import REFER_DEMO_DIR, ViLBERTBase

OPTIONS = ("checkpoint", "config", "vocab", "device", "task_id", "task_specific_tokens", "max_seq_length",
           "max_region_num", "batch_size", "allow_unsafe_pickle")


class ViLBERTGrounding(ViLBERTBase):
    """``predict`` returns every kept proposal's pixel xyxy box, ranked by ``vision_logit`` (best first).

    Proposal 0 is the global region (the whole image, box [0, 0, w, h]): the official argmax runs over it too.
    Inputs must be in the ``proposals`` form (region features, their boxes and the image size)."""

    plugin = "vilbert-refcoco+"
    heads = ("vision_logit",)
    default_task = "refcoco+"
    default_max_seq = 20  # vilbert_tasks.yml TASK9/10/11 max_seq_length
    box_format = "xyxy"
    box_normalized = False
    demo_dir = REFER_DEMO_DIR

    def __init__(self, **options: Any):
        # no checkpoint/config/vocab: the demo model trained on the demo grounding data's proposals
        # (train_demo.py train_refer; data/demo-refcoco+)
        options["boxes"] = "required"
        super().__init__(**options)
        del self.details["boxes"]
        self.details.update({
            "score": "vision_logit(image stream) + (1 - mask) * -10000 per proposal (task_utils.py V-logit)",
            "official_metric": ("task_utils.py counts a hit when the IoU of the best proposal with the ground truth "
                                "is > 0.5 (strictly), IoU with +1 on each side of the xyxy boxes "
                                "(refer_expression_dataset.py iou)"),
        })

    @torch.no_grad()
    def logits(self, inputs):
        """(vision_logit of each input's kept proposals, float32; their pixel boxes), global region first."""
        items = []
        for x in inputs:
            im = x.image
            if getattr(im, "region_boxes", None) is None or getattr(im, "regions", None) is None or im.size is None:
                raise PluginError(f"{self.plugin}: sample {x.id!r}: the image is not in the proposals form (region "
                                  f"features + their boxes + the image size; forms {sorted(im.forms)}): ViLBERT "
                                  f"ranks detector proposals (e.g. -d vilbert_refer, or the demo's grounding data)")
            items.append(im)
        F, L, M, pix = self._images(items)
        ids, tmask = self._text([x.expression for x in inputs])
        _, img = self._forward(ids, tmask, F, L, M)
        v = self.model.vision_logits(img, M).float().cpu().numpy()
        return [v[k, :len(pix[k])] for k in range(len(inputs))], pix

    def predict(self, inputs) -> list[np.ndarray]:
        if len(inputs) == 0:
            return []
        out = []
        step = self.batch_size or 32
        for s in range(0, len(inputs), step):
            logits, pix = self.logits(inputs[s:s + step])
            for lg, px in zip(logits, pix):
                order = np.argsort(-lg, kind="stable")  # ties: the first maximum first, as torch.max reports it
                out.append(px[order])
        return out


def build(seed: int | str = 0, **options: Any) -> ViLBERTGrounding:
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise PluginError(f"vilbert-refcoco+: unknown option(s) {', '.join(bad)}; known: {', '.join(OPTIONS)}")
    return ViLBERTGrounding(**options)
