"""The mmbench captioner around an official AoANet checkpoint (``model-best.pth`` + ``infos_<id>-best.pkl``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import load_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError

from mmbench_aoanet.decoding import DecodeSettings, bad_endings_ix, beam_search, decode_sequence, greedy, \
    parse_sample_method, penalty_builder
from mmbench_aoanet.infos import load_infos
from mmbench_aoanet.model import ARCH_KEYS, AoAModel, check_opt
from mmbench_aoanet.options import OPTIONS

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo"
DEMO_MODEL, DEMO_INFOS = DEMO_DIR / "model-best.pth", DEMO_DIR / "infos_demo-best.pkl"

def _float(value: Any, option: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise PluginError(f"aoanet: option {option}={value!r}: expected a number") from None


def _int01(value: Any, option: str) -> int:
    v = parse_int(value, option=option, minimum=0)
    if v > 1:
        raise PluginError(f"aoanet: option {option}={value!r}: expected 0 or 1")
    return v


class AoANetCaptioner:
    """``generate(images) -> captions`` from precomputed region features, as the official ``eval.py``."""

    accepts = ("regions",)

    def __init__(self, model: str | None = None, infos_path: str | None = None, beam_size="2", max_length="20",
                 sample_method="greedy", length_penalty="", group_size="1", diversity_lambda="0.5",
                 temperature="1.0", decoding_constraint="0", block_trigrams="0", remove_bad_endings="0",
                 batch_size="50", device=None, allow_unsafe_pickle="false", seed=0, sample_n=None,
                 precision="fp32"):
        if sample_n is not None:
            raise PluginError("aoanet: option sample_n is refused: husthuaan/AoANet's eval (opts.add_eval_options, "
                              "AttModel._sample) has no sample_n; several samples per image came to "
                              "self-critical.pytorch after the AoANet fork. Run with different seeds instead")
        if (model is None) != (infos_path is None):
            raise PluginError("aoanet: give both model=PATH (model-best.pth) and infos_path=PATH "
                              "(infos_<id>-best.pkl), or neither for the shipped demo model")
        if model is None:
            model, infos_path = DEMO_MODEL, DEMO_INFOS
        self.checkpoint_path = str(model)
        method = str(sample_method).strip()
        try:
            parse_sample_method(method)
        except ValueError:
            raise PluginError(f"aoanet: option sample_method={sample_method!r}: expected greedy, sample, gumbel, "
                              "topK (an integer K >= 1) or topP (0 < P < 1), the values "
                              "CaptionModel.sample_next_word distinguishes") from None
        s = DecodeSettings(beam_size=parse_int(beam_size, option="beam_size"),
                           max_length=parse_int(max_length, option="max_length"),
                           sample_method=method, length_penalty=str(length_penalty),
                           group_size=parse_int(group_size, option="group_size"),
                           diversity_lambda=_float(diversity_lambda, "diversity_lambda"),
                           temperature=_float(temperature, "temperature"),
                           decoding_constraint=_int01(decoding_constraint, "decoding_constraint"),
                           block_trigrams=_int01(block_trigrams, "block_trigrams"),
                           remove_bad_endings=_int01(remove_bad_endings, "remove_bad_endings"))
        try:
            penalty_builder(s.length_penalty)
        except ValueError:
            raise PluginError(f"aoanet: option length_penalty={length_penalty!r}: expected '', wu_X or avg_X "
                              "(X a number)") from None
        if s.beam_size % s.group_size:
            raise PluginError(f"aoanet: beam_size {s.beam_size} is not a multiple of group_size {s.group_size}")
        if s.block_trigrams and s.beam_size > 1:
            raise PluginError("aoanet: block_trigrams acts in greedy decoding only (AttModel._sample); "
                              "set beam_size=1 with it")
        if s.sample_method != "greedy" and s.beam_size > 1:
            raise PluginError(f"aoanet: sample_method={s.sample_method} acts only with beam_size=1: the official "
                              "AttModel._sample hands beam_size > 1 to _sample_beam, which never reads "
                              "sample_method (it would be silently ignored)")
        if s.temperature <= 0:
            raise PluginError("aoanet: option temperature must be > 0")
        self.settings = s
        self.batch_size = parse_int(batch_size, option="batch_size")
        self.device = torch.device(resolve_device(device))
        self.precision = str(precision).strip()
        if self.precision not in DTYPES:
            raise PluginError(f"aoanet: option precision={precision!r}: expected one of {', '.join(DTYPES)}")
        if self.precision != "fp32" and self.device.type != "cuda":
            raise PluginError(f"aoanet: option precision={self.precision} needs a CUDA device (device is "
                              f"{self.device}); half precision on the CPU is slow and not what the official ran")
        self.dtype = DTYPES[self.precision]
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        self.seed = parse_int(seed, option="seed", minimum=0)
        # the random draws of the sampling methods: one CPU generator per model, seeded from the run's
        # seed, advancing over the batches in order (as the official global RNG does over eval_split)
        self.generator = torch.Generator().manual_seed(self.seed)
        infos = load_infos(infos_path, allow_unsafe_pickle=unsafe)
        self.infos_path = str(infos_path)
        self.opt, self.vocab = infos["opt"], infos["vocab"]
        check_opt(self.opt, infos_path)
        if int(self.opt["vocab_size"]) != len(self.vocab):
            raise DataError(infos_path, f"vocab has {len(self.vocab)} words but opt.vocab_size is "
                                        f"{self.opt['vocab_size']}", field="vocab", expected="the same size")
        if s.beam_size > len(self.vocab) + 1:  # _sample_beam asserts it
            raise PluginError(f"aoanet: beam_size {s.beam_size} exceeds the vocabulary size + 1")
        state = load_checkpoint(model, allow_unsafe_pickle=unsafe, what="AoANet model-best.pth")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise DataError(model, "is not a state_dict of tensors", expected="torch.save(model.state_dict())")
        self.model = AoAModel(self.opt)
        res = self.model.load_state_dict(state, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise DataError(model, f"does not fit the architecture of its opt (missing {res.missing_keys[:5]}, "
                                   f"unexpected {res.unexpected_keys[:5]})",
                            expected="the state_dict of the model described by infos['opt']")
        self.model.to(self.device, self.dtype).eval()
        self.bad_ix = bad_endings_ix(self.vocab)
        self.norm_att_feat = int(self.opt.get("norm_att_feat", 0) or 0)
        self.details = {
            "decoding": s.as_dict(),
            "sampling": None if s.sample_method == "greedy" else {
                "seed": self.seed,
                "rng": "torch.Generator (CPU) seeded with the run's seed, advanced batch after batch in order",
                "draws": "as CaptionModel.sample_next_word: gumbel torch.rand; otherwise "
                         "torch.multinomial(Categorical(logits=logprobs/temperature).probs, 1, True)",
                "temperature_applies": True},
            "architecture": {k: self.opt[k] for k in ARCH_KEYS if k in self.opt},
            "norm_att_feat": self.norm_att_feat,
            "device": str(self.device), "precision": self.precision,
            "unk_suppressed_in_beam_search": True,
            "infos": str(infos_path),
            "fc_feats": "cocobu_fc feature when the item has one, else regions.mean(0) (scripts/make_bu_data.py)"
                        if not int(self.opt.get("mean_feats", 1)) else "unused (mean_feats=1)",
        }
        self.last_done_beams: list = []

    # ----------------------------------------------------------------------------------- inputs
    def _features(self, images):
        d = int(self.opt["att_feat_size"])
        feats, fcs = [], []
        for item in images:
            r = getattr(item, "regions", None)
            if r is None:
                raise PluginError(f"aoanet: image {item.id!r} has no region features (forms: "
                                  f"{sorted(getattr(item, 'forms', ()))}); AoANet reads bottom-up regions")
            r = np.asarray(r, dtype=np.float32)
            r = r.reshape(-1, r.shape[-1])  # dataloader.py: att_feat.reshape(-1, att_feat.shape[-1])
            if r.shape[-1] != d or r.shape[0] == 0:
                raise DataError(None, f"image {item.id!r}: regions of shape {r.shape}",
                                expected=f"(n_regions >= 1, {d}) = opt.att_feat_size")
            if self.norm_att_feat:
                r = r / np.linalg.norm(r, 2, 1, keepdims=True)
            feats.append(r)
            fc = None
            if not int(self.opt.get("mean_feats", 1)):
                fc = getattr(item, "fc", None)
                fc = r.mean(0) if fc is None else np.asarray(fc, dtype=np.float32).reshape(-1)
            fcs.append(fc)
        n = max(f.shape[0] for f in feats)
        att = np.zeros((len(feats), n, d), np.float32)
        masks = np.zeros((len(feats), n), np.float32)
        for i, f in enumerate(feats):
            att[i, :f.shape[0]] = f
            masks[i, :f.shape[0]] = 1
        # dataloader.py: att_masks is None when every image of the batch has the same region count
        mask_t = None if masks.all() else torch.from_numpy(masks).to(self.device, self.dtype)
        fc_t = None
        if fcs[0] is not None:
            fc_t = torch.from_numpy(np.stack(fcs)).to(self.device, self.dtype)
        return fc_t, torch.from_numpy(att).to(self.device, self.dtype), mask_t

    @torch.no_grad()
    def decode(self, images):
        """(seq (B, max_length), seq_logprobs (B, max_length), done_beams or None)."""
        if not images:
            raise PluginError("aoanet: generate() called with no images")
        fc, att, masks = self._features(images)
        feats = self.model.prepare_feature(fc, att, masks)
        if self.settings.beam_size > 1:
            return beam_search(self.model, feats, self.settings, self.bad_ix)
        seq, lp = greedy(self.model, feats, self.settings, self.bad_ix, self.generator)
        return seq, lp, None

    def generate(self, images) -> list[str]:
        seq, _, done = self.decode(list(images))
        self.last_done_beams = done or []
        return decode_sequence(self.vocab, seq.cpu(), self.settings.remove_bad_endings)


def build(**options: Any) -> AoANetCaptioner:
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise PluginError(f"aoanet: unknown option(s) {bad}; known: {', '.join(OPTIONS)}")
    return AoANetCaptioner(**options)
