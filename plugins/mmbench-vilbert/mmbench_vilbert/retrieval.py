"""ViLBERT image retrieval as ``eval_retrieval.py`` scores it: a cross-encoder over every (caption, image) pair."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import parse_int
from mmbench.errors import PluginError

from mmbench_vilbert.core import ViLBERTBase

HEADS = ("vil_logit", "alignment")
OPTIONS = ("checkpoint", "config", "vocab", "device", "head", "task_id", "task_specific_tokens", "max_seq_length",
           "max_region_num", "boxes", "pair_batch", "batch_size", "allow_unsafe_pickle")


class ViLBERTRetrieval(ViLBERTBase):
    """``encode_images`` / ``encode_texts`` prepare padded input blocks; ``score`` runs the network per pair.

    ``head=vil_logit`` (default): ``VILBertForVLTasks.vil_logit`` of the fused pooled streams, the score of a
    fine-tuned or multi-task checkpoint. ``head=alignment``: ``eval_retrieval.py --zero_shot``, the softmax of the
    pre-training image-text alignment head (``cls.bi_seq_relationship``), column 0."""

    plugin = "vilbert"
    default_task = "RetrievalFlickr30k"
    default_max_seq = 30  # vilbert_tasks.yml TASK7 / TASK8 max_seq_length

    def __init__(self, head: str = "vil_logit", pair_batch: Any = 500, **options: Any):
        head = str(head).strip()
        if head not in HEADS:
            raise PluginError(f"vilbert: option head={head!r}: expected vil_logit | alignment")
        self.head = head
        self.heads = (head,)
        self.pair_batch = parse_int(pair_batch, option="pair_batch")
        super().__init__(**options)
        self.details.update({
            "head": head,
            "official_protocol": ("text->image only: eval_retrieval.py ranks the test images for each caption and "
                                  "reports R@1/5/10, medr, meanr of that direction; mmbench's i2t numbers come from the "
                                  "same pair scores and have no official counterpart"),
            "score": ("softmax(cls.bi_seq_relationship(pooled))[:, 0] (eval_retrieval.py --zero_shot)"
                      if head == "alignment" else "vil_logit(pooled) (VILBertForVLTasks, eval_retrieval.py)"),
        })

    @torch.no_grad()
    def encode_images(self, images) -> dict:
        if len(images) == 0:
            raise PluginError("vilbert: encode_images() got no images")
        F, L, M, _ = self._images(images)
        return {"F": F, "L": L, "M": M}

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> dict:
        if len(texts) == 0:
            raise PluginError("vilbert: encode_texts() got no texts")
        ids, mask = self._text(texts)
        return {"ids": ids, "mask": mask}

    @torch.no_grad()
    def score(self, image_block: dict, text_block: dict) -> np.ndarray:
        F, L, M = image_block["F"], image_block["L"], image_block["M"]
        ids, tmask = text_block["ids"], text_block["mask"]
        n = int(tmask.sum(1).max())  # padding past the block's longest caption is masked out: not computed
        ids, tmask = ids[:, :n], tmask[:, :n]
        ni, nt = F.shape[0], ids.shape[0]
        out = torch.empty(nt * ni, dtype=torch.float32)
        # pairs caption-major (caption j with every image), as eval_retrieval.py expands one caption over 500 images
        for start in range(0, nt * ni, self.pair_batch):
            p = torch.arange(start, min(start + self.pair_batch, nt * ni), device=F.device)
            t, i = p // ni, p % ni
            pooled, _ = self._forward(ids[t], tmask[t], F[i], L[i], M[i])
            s = self.model.score_alignment(pooled) if self.head == "alignment" else self.model.score_vil_logit(pooled)
            out[start:start + len(p)] = s.float().cpu()
        return out.view(nt, ni).T.numpy()


def build(seed: int | str = 0, **options: Any) -> ViLBERTRetrieval:
    """``seed`` is accepted (the runner passes the run's seed) and unused: evaluation is deterministic."""
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise PluginError(f"vilbert: unknown option(s) {', '.join(bad)}; known: {', '.join(OPTIONS)}")
    return ViLBERTRetrieval(**options)
