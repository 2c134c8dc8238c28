"""The mmbench cross-attention scorer around an official SCAN checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import official_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError
from mmbench.text import Vocabulary, encode_captions

from mmbench_scan.model import AGG_FUNCS, RAW_FEATURE_NORMS, SCAN

DATA = Path(__file__).resolve().parent / "data"
DEMO_CHECKPOINT = DATA / "demo_t2i" / "model_best.pth.tar"
DEMO_VOCAB = DATA / "demo_t2i" / "demo_precomp_vocab.json"
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "vocab_size")
#: elements of the largest (pairs x items x embed) temporary per scoring chunk (bounded memory)
PAIR_CHUNK_ELEMENTS = 1 << 23
#: eval-time options that override the checkpoint's opt (they change the similarity, not the weights)
EVAL_OVERRIDES = ("cross_attn", "raw_feature_norm", "agg_func", "lambda_lse", "lambda_softmax")
OPTIONS = ("checkpoint", "vocab", "device", "batch_size", "allow_unsafe_pickle", "precision", *EVAL_OVERRIDES)


def stack_regions(images, img_dim: int, *, plugin: str) -> np.ndarray:
    """(B, R, D) float32 from ImageItems' region features, with clear errors."""
    out = []
    for im in images:
        r = getattr(im, "regions", None)
        if r is None:
            raise PluginError(f"{plugin}: image {im.id!r} has no region features (it offers "
                              f"{sorted(im.forms)}); {plugin} takes the 'regions' input form")
        r = np.asarray(r, dtype=np.float32)
        if r.ndim != 2 or r.shape[1] != img_dim:
            raise DataError(None, f"image {im.id!r}: region features have shape {tuple(r.shape)}",
                            field="regions", expected=f"(R, {img_dim}) to fit this {plugin} checkpoint")
        out.append(r)
    if len({r.shape[0] for r in out}) > 1:
        raise DataError(None, "images in one batch have different region counts", field="regions",
                        expected="the same number of regions for every image")
    return np.stack(out) if out else np.zeros((0, 0, img_dim), np.float32)


def _not_empty(items, what: str) -> None:
    if len(items) == 0:
        raise PluginError(f"scan: {what}() got an empty batch (a cross-attention block needs at least one item)")


class SCANRetrieval:
    """Cross-attention scorer: ``encode_images``/``encode_texts`` return per-batch blocks, ``score`` a tile."""

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 64, allow_unsafe_pickle: str | bool = False, precision: str = "float64",
                 **overrides: Any):
        if checkpoint is None and vocab is None:
            checkpoint, vocab = DEMO_CHECKPOINT, DEMO_VOCAB
        elif checkpoint is None or vocab is None:
            raise PluginError("scan: give both checkpoint=PATH (model_best.pth.tar) and vocab=PATH "
                              "(the <data_name>_vocab.json it was trained with), or neither for the demo model")
        self.checkpoint_path = str(checkpoint)
        self.device = torch.device(resolve_device(device))
        self.batch_size = parse_int(batch_size, option="batch_size")
        if precision not in ("float64", "float32"):
            raise PluginError(f"scan: option precision={precision!r}: expected float64 (official) or float32")
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        opt, states, _ = official_checkpoint(checkpoint, n_modules=2, allow_unsafe_pickle=unsafe,
                                             what="SCAN checkpoint")
        missing = [k for k in REQUIRED_OPT if k not in opt]
        if missing:
            raise DataError(checkpoint, f"lacks {missing}", field="opt", expected="SCAN training options")
        opt.update(self._overrides(overrides))
        self._check_opt(opt, checkpoint)
        self.opt = opt
        self.vocab = Vocabulary.from_path(vocab)
        if len(self.vocab) != int(opt["vocab_size"]):
            raise DataError(vocab, f"has {len(self.vocab)} words but the checkpoint's opt.vocab_size is "
                            f"{opt['vocab_size']}", field="word2idx", expected="the vocabulary the model was trained with")
        self.model = SCAN(opt)
        try:
            self.model.load_official(states)
        except RuntimeError as exc:
            raise DataError(checkpoint, f"state_dicts do not fit the architecture built from opt: {exc}",
                            field="model", expected="official SCAN [img_enc, txt_enc] weights") from None
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
        _not_empty(images, 'encode_images')
        feats = stack_regions(images, int(self.opt["img_dim"]), plugin="scan")
        return self.model.img_enc(torch.from_numpy(feats).to(self.device)).to(self.dtype)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> dict:
        _not_empty(texts, 'encode_texts')
        ids, lengths = encode_captions(self.vocab, list(texts))
        c = self.model.txt_enc(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths))
        mask = torch.arange(c.size(1), device=c.device).unsqueeze(0) < torch.from_numpy(lengths).to(c.device)[:, None]
        return {"c": c.to(self.dtype), "mask": mask}

    @torch.no_grad()
    def score(self, image_block: torch.Tensor, text_block: dict) -> np.ndarray:
        v, c, mask = image_block, text_block["c"], text_block["mask"]
        bi, bt = v.size(0), c.size(0)
        per_caption = bi * max(c.size(1), v.size(1)) * max(v.size(2), v.size(1), c.size(1))
        step = max(1, PAIR_CHUNK_ELEMENTS // max(1, per_caption))
        out = torch.empty(bi, bt, dtype=self.dtype, device=v.device)
        for t0 in range(0, bt, step):
            t1 = min(bt, t0 + step)
            n = int(mask[t0:t1].sum(1).max())
            out[:, t0:t1] = self.model.pair_scores(v, c[t0:t1, :n], mask[t0:t1, :n])
        return out.cpu().numpy()


def build(**options: Any) -> SCANRetrieval:
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise PluginError(f"scan: unknown option(s) {bad}; known: {', '.join(OPTIONS)}")
    return SCANRetrieval(**options)
