"""The mmbench cross-attention scorer around an official IMRAM ``model_best.pth.tar``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import load_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError
from mmbench_vse import wrapper
from mmbench_vse.checkpoints import namespace_dict
from mmbench_vse.layers import score_by_caption_chunks, word_mask
from mmbench_vse.vocab import Vocabulary, encode_captions

from mmbench_imram.model import BROKEN_NORMS, IMRAM, MODEL_MODES, RAW_FEATURE_NORMS

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo"
DEMO_CHECKPOINT, DEMO_VOCAB = DEMO_DIR / wrapper.CHECKPOINT_FILE, DEMO_DIR / wrapper.VOCAB_FILE
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "vocab_size")
#: elements of the largest (pairs x items x 2*embed) temporary per scoring chunk (bounded memory)
PAIR_CHUNK_ELEMENTS = 1 << 22
#: eval-time fields of opt that change the similarity, not the weights (HuiChen24/IMRAM:opts.py names)
EVAL_OVERRIDES = ("model_mode", "iteration_step", "no_IMRAM_norm", "lambda_softmax", "raw_feature_norm")
OPTIONS = ("checkpoint", "vocab", "device", "batch_size", "allow_unsafe_pickle", *EVAL_OVERRIDES)
#: opt fields the official IMRAM scoring never reads (recorded in ``details``)
UNUSED_OPT = ("agg_func", "lambda_lse", "cross_attn", "pos_emb")


def official_imram_checkpoint(path, *, allow_unsafe_pickle: bool = False) -> tuple[dict, dict, dict]:
    """(opt dict, state_dict, whole dict) of an IMRAM ``model_best.pth.tar``.

    HuiChen24/IMRAM:train_gpus.py saves ``{'epoch', 'model', 'best_rsum', 'opt'}`` (no
    ``Eiters``) where ``model`` is ONE state_dict of ``nn.DataParallel(SCAN)`` (``module.`` keys),
    not the [img_enc, txt_enc] list of SCAN/VSE++.
    """
    ck = load_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle, what="IMRAM checkpoint")
    expected = "a dict with keys epoch, model, best_rsum, opt (HuiChen24/IMRAM train_gpus.py)"
    if not isinstance(ck, dict):
        raise DataError(path, f"top level is a {type(ck).__name__}", expected=expected)
    for key in ("model", "opt"):
        if key not in ck:
            raise DataError(path, f"key missing (keys: {sorted(map(str, ck))})", field=key, expected=expected)
    state = ck["model"]
    if isinstance(state, (list, tuple)):
        raise DataError(path, f"is a list of {len(state)} state_dicts", field="model",
                        expected="one state_dict of the whole IMRAM model (module.img_enc..., module.linear_t2i...); "
                                 "a list is the SCAN/VSE++ layout (use -p scan / -p vsepp)")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "is not a state_dict of tensors", field="model", expected="a mapping name -> tensor")
    return namespace_dict(ck["opt"], path=path), dict(state), ck


class IMRAMRetrieval:
    """Cross-attention scorer: ``encode_images``/``encode_texts`` return per-batch blocks, ``score`` a tile."""

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 64, allow_unsafe_pickle: str | bool = False, **overrides: Any):
        checkpoint, vocab = wrapper.checkpoint_and_vocab("imram", checkpoint, vocab, DEMO_DIR)
        self.checkpoint_path = str(checkpoint)
        self.device = torch.device(resolve_device(device))
        self.batch_size = parse_int(batch_size, option="batch_size")
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        opt, state, _ = official_imram_checkpoint(checkpoint, allow_unsafe_pickle=unsafe)
        wrapper.require_opt(opt, REQUIRED_OPT, checkpoint, what="IMRAM")
        opt.setdefault("model_mode", "vse")  # the parser default; refused below
        opt.update(self._overrides(overrides))
        self._check_opt(opt, checkpoint, overridden=set(overrides))
        self.opt = opt
        self.vocab = Vocabulary.from_path(vocab)
        wrapper.check_vocab_size(self.vocab, vocab, opt)
        self.model = IMRAM(opt)
        try:
            self.model.load_official(state)
        except RuntimeError as exc:
            raise DataError(checkpoint, f"state_dict does not fit the architecture built from opt: {exc}",
                            field="model", expected="official IMRAM weights (module.img_enc.fc_local..., "
                                                    "module.txt_enc..., module.{linear,gate}_{t2i,i2t}...)") from None
        self.model.to(self.device).eval()
        self.details = {"scoring": {k: opt.get(k) for k in EVAL_OVERRIDES},
                        "opt_fields_unused_by_imram_scoring": {k: opt[k] for k in UNUSED_OPT if k in opt},
                        "precision": "float32 per step, steps summed in float64 (as the official evaluation)"}

    @staticmethod
    def _overrides(overrides: dict) -> dict:
        out = {}
        for k, v in overrides.items():
            if k == "lambda_softmax":
                try:
                    out[k] = float(v)
                except ValueError:
                    raise PluginError(f"imram: option {k}={v!r}: expected a number") from None
            elif k == "iteration_step":
                out[k] = parse_int(v, option=k)
            elif k == "no_IMRAM_norm":
                out[k] = parse_bool(v, option=k)
            else:
                out[k] = str(v)
        return out

    @staticmethod
    def _check_opt(opt: dict, where, *, overridden: set) -> None:
        def bad(key, msg, expected):
            src = f"option {key}" if key in overridden else f"opt.{key}"
            if key in overridden:
                raise PluginError(f"imram: {src}={opt[key]!r}: {msg}; expected {expected}")
            raise DataError(where, f"is {opt[key]!r}: {msg}" if msg else f"is {opt[key]!r}", field=src,
                            expected=expected)

        if opt["model_mode"] not in MODEL_MODES:
            # evaluation.py shard_xattn: assert False, "wrong model mode" (the parser default 'vse' included)
            bad("model_mode", "the official evaluation asserts 'wrong model mode'", " | ".join(MODEL_MODES))
        opt.setdefault("raw_feature_norm", "clipped_l2norm")
        if opt["raw_feature_norm"] in BROKEN_NORMS:
            bad("raw_feature_norm", "the official func_attention raises NameError (l1norm_d is undefined) for it",
                " | ".join(RAW_FEATURE_NORMS))
        if opt["raw_feature_norm"] not in RAW_FEATURE_NORMS:
            bad("raw_feature_norm", "", " | ".join(RAW_FEATURE_NORMS))
        opt.setdefault("iteration_step", 3)
        if int(opt["iteration_step"]) < 1:
            bad("iteration_step", "no routing step", "an integer >= 1")
        opt.setdefault("precomp_enc_type", "basic")
        if opt["precomp_enc_type"] not in ("basic", "weight_norm"):
            bad("precomp_enc_type", "", "basic | weight_norm")
        if not opt.get("bi_gru", False) and int(opt.get("num_layers", 1)) < 2:
            raise DataError(where, "is False with num_layers=1", field="opt.bi_gru",
                            expected="bi_gru=True or num_layers >= 2: the official EncoderText indexes ht[1] "
                                     "(IndexError for a 1-layer unidirectional GRU), so no official run has it")

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        wrapper.not_empty(images, "encode_images", plugin="imram")
        feats = wrapper.stack_regions(images, int(self.opt["img_dim"]), plugin="imram")
        return self.model.img_enc(torch.from_numpy(feats).to(self.device)).float()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> dict:
        wrapper.not_empty(texts, "encode_texts", plugin="imram")
        ids, lengths = encode_captions(self.vocab, list(texts))
        c = self.model.txt_enc(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths))
        return {"c": c.float(), "mask": word_mask(c, torch.from_numpy(lengths))}

    @torch.no_grad()
    def score(self, image_block: torch.Tensor, text_block: dict) -> np.ndarray:
        return score_by_caption_chunks(self.model.pair_scores, image_block, text_block["c"], text_block["mask"],
                                       max_elements=PAIR_CHUNK_ELEMENTS, dtype=torch.float64, width=2).cpu().numpy()


def build(seed: int | str = 0, **options: Any) -> IMRAMRetrieval:
    """``seed`` is accepted (the runner passes the run's seed) and unused: evaluation is deterministic."""
    wrapper.check_options("imram", options, OPTIONS)
    return IMRAMRetrieval(**options)
