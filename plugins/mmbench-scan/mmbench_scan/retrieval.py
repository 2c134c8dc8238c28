"""The mmbench cross-attention scorer around an official SCAN checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError
from mmbench_vse import wrapper
from mmbench_vse.checkpoints import official_checkpoint
from mmbench_vse.layers import score_by_caption_chunks, word_mask
from mmbench_vse.vocab import Vocabulary, encode_captions

from mmbench_scan.model import AGG_FUNCS, RAW_FEATURE_NORMS, SCAN

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo_t2i"
DEMO_CHECKPOINT, DEMO_VOCAB = DEMO_DIR / wrapper.CHECKPOINT_FILE, DEMO_DIR / wrapper.VOCAB_FILE
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "vocab_size")
#: elements of the largest (pairs x items x embed) temporary per scoring chunk (bounded memory)
PAIR_CHUNK_ELEMENTS = 1 << 23
#: eval-time options that override the checkpoint's opt (they change the similarity, not the weights)
EVAL_OVERRIDES = ("cross_attn", "raw_feature_norm", "agg_func", "lambda_lse", "lambda_softmax")
OPTIONS = ("checkpoint", "vocab", "device", "batch_size", "allow_unsafe_pickle", "precision", *EVAL_OVERRIDES)


class SCANRetrieval:
    """Cross-attention scorer: ``encode_images``/``encode_texts`` return per-batch blocks, ``score`` a tile."""

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 64, allow_unsafe_pickle: str | bool = False, precision: str = "float64",
                 **overrides: Any):
        checkpoint, vocab = wrapper.checkpoint_and_vocab("scan", checkpoint, vocab, DEMO_DIR)
        self.checkpoint_path = str(checkpoint)
        self.device = torch.device(resolve_device(device))
        self.batch_size = parse_int(batch_size, option="batch_size")
        if precision not in ("float64", "float32"):
            raise PluginError(f"scan: option precision={precision!r}: expected float64 (official) or float32")
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        opt, states, _ = official_checkpoint(checkpoint, n_modules=2, allow_unsafe_pickle=unsafe,
                                             what="SCAN checkpoint")
        wrapper.require_opt(opt, REQUIRED_OPT, checkpoint, what="SCAN")
        opt.update(self._overrides(overrides))
        self._check_opt(opt, checkpoint)
        self.opt = opt
        self.vocab = Vocabulary.from_path(vocab)
        wrapper.check_vocab_size(self.vocab, vocab, opt)
        self.model = SCAN(opt)
        wrapper.load_official_states(self.model, states, checkpoint,
                                     expected="official SCAN [img_enc, txt_enc] weights")
        self.model.to(self.device).eval()

    @staticmethod
    def _overrides(overrides: dict) -> dict:
        out = {}
        for k, v in overrides.items():
            if k in ("lambda_lse", "lambda_softmax"):
                try:
                    out[k] = float(v)
                except ValueError:
                    raise PluginError(f"scan: option {k}={v!r}: expected a number") from None
            else:
                out[k] = str(v)
        return out

    @staticmethod
    def _check_opt(opt: dict, where) -> None:
        checks = {"cross_attn": ("t2i", "i2t"), "raw_feature_norm": RAW_FEATURE_NORMS, "agg_func": AGG_FUNCS,
                  "precomp_enc_type": ("basic", "weight_norm")}
        defaults = {"cross_attn": "t2i", "raw_feature_norm": "clipped_l2norm", "agg_func": "LogSumExp",
                    "precomp_enc_type": "basic"}
        for key, allowed in checks.items():
            val = opt.get(key, defaults[key])
            if val not in allowed:
                raise DataError(where, f"is {val!r}", field=f"opt.{key}", expected=" | ".join(allowed))

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        wrapper.not_empty(images, "encode_images", plugin="scan")
        feats = wrapper.stack_regions(images, int(self.opt["img_dim"]), plugin="scan")
        return self.model.img_enc(torch.from_numpy(feats).to(self.device)).to(self.dtype)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> dict:
        wrapper.not_empty(texts, "encode_texts", plugin="scan")
        ids, lengths = encode_captions(self.vocab, list(texts))
        c = self.model.txt_enc(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths))
        return {"c": c.to(self.dtype), "mask": word_mask(c, torch.from_numpy(lengths))}

    @torch.no_grad()
    def score(self, image_block: torch.Tensor, text_block: dict) -> np.ndarray:
        return score_by_caption_chunks(self.model.pair_scores, image_block, text_block["c"], text_block["mask"],
                                       max_elements=PAIR_CHUNK_ELEMENTS, dtype=self.dtype).cpu().numpy()


def build(**options: Any) -> SCANRetrieval:
    wrapper.check_options("scan", options, OPTIONS)
    return SCANRetrieval(**options)
