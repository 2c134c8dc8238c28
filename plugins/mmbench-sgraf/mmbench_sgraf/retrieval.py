"""The mmbench cross-attention scorer around an official SGRAF checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import parse_bool, parse_int, resolve_device
from mmbench.errors import DataError
from mmbench_vse import wrapper
from mmbench_vse.checkpoints import official_checkpoint
from mmbench_vse.vocab import Vocabulary, encode_captions

from mmbench_sgraf.model import N_REGIONS, SGRAF

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo_sgr"
DEMO_CHECKPOINT, DEMO_VOCAB = DEMO_DIR / wrapper.CHECKPOINT_FILE, DEMO_DIR / wrapper.VOCAB_FILE
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "sim_dim", "vocab_size")
#: elements of the largest (pairs x words x embed) temporary per scoring chunk (bounded memory)
PAIR_CHUNK_ELEMENTS = 1 << 24
#: why the region count is fixed (appended to the shape error)
WHY_N_REGIONS = " (SGRAF's VisualSA has BatchNorm1d over exactly 36 regions)"
OPTIONS = ("allow_unsafe_pickle", "batch_size", "checkpoint", "checkpoint2", "device", "vocab")


class SGRAFRetrieval:
    """Cross-attention scorer: ``encode_images``/``encode_texts`` return per-batch blocks, ``score`` a tile.

    With ``checkpoint2`` the score is the mean of the two models' scores (the SGR+SAF
    ensemble that the SGRAF paper and README report as "SGRAF").
    """

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 64, allow_unsafe_pickle: str | bool = False,
                 checkpoint2: str | None = None):
        checkpoint, vocab = wrapper.checkpoint_and_vocab("sgraf", checkpoint, vocab, DEMO_DIR)
        self.checkpoint_path = str(checkpoint)
        self.device = torch.device(resolve_device(device))
        self.batch_size = parse_int(batch_size, option="batch_size")
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        self.vocab = Vocabulary.from_path(vocab)
        self.models: list[SGRAF] = []
        self.opts: list[dict] = []
        for path in [checkpoint] + ([checkpoint2] if checkpoint2 else []):
            opt, model = self._load(path, vocab, unsafe)
            self.opts.append(opt)
            self.models.append(model)
        if len(self.opts) == 2 and self.opts[0]["img_dim"] != self.opts[1]["img_dim"]:
            raise DataError(checkpoint2, f"img_dim {self.opts[1]['img_dim']} differs from checkpoint's "
                            f"{self.opts[0]['img_dim']}", field="opt.img_dim", expected="the same image features")
        self.opt = self.opts[0]

    def _load(self, checkpoint, vocab, unsafe: bool) -> tuple[dict, SGRAF]:
        opt, states, _ = official_checkpoint(checkpoint, n_modules=3, allow_unsafe_pickle=unsafe,
                                             what="SGRAF checkpoint")
        wrapper.require_opt(opt, REQUIRED_OPT, checkpoint, what="SGRAF")
        if opt.get("module_name", "SGR") not in ("SGR", "SAF"):
            raise DataError(checkpoint, f"is {opt.get('module_name')!r}", field="opt.module_name",
                            expected="SGR or SAF")
        wrapper.check_vocab_size(self.vocab, vocab, opt, checkpoint=checkpoint)
        model = SGRAF(opt)
        wrapper.load_official_states(model, states, checkpoint,
                                     expected="official SGRAF [img_enc, txt_enc, sim_enc] weights")
        return opt, model.to(self.device).eval()

    @property
    def model(self) -> SGRAF:
        return self.models[0]

    @torch.no_grad()
    def encode_images(self, images) -> list[dict]:
        wrapper.not_empty(images, "encode_images", plugin="sgraf")
        feats = torch.from_numpy(wrapper.stack_regions(images, int(self.opt["img_dim"]), plugin="sgraf",
                                                       n_regions=N_REGIONS, why=WHY_N_REGIONS)).to(self.device)
        blocks = []
        for model in self.models:
            v, v_glo = model.encode_images(feats)
            blocks.append({"v": v, "glo": v_glo})
        return blocks

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> list[dict]:
        wrapper.not_empty(texts, "encode_texts", plugin="sgraf")
        ids, lengths = encode_captions(self.vocab, list(texts))
        ids_t, len_t = torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths)
        blocks = []
        for model in self.models:
            c, mask, c_glo = model.encode_texts(ids_t, len_t)
            blocks.append({"c": c, "mask": mask, "glo": c_glo})
        return blocks

    @torch.no_grad()
    def score(self, image_block: list[dict], text_block: list[dict]) -> np.ndarray:
        total = None
        for model, ib, tb in zip(self.models, image_block, text_block):
            s = self._score_one(model, ib, tb)
            total = s if total is None else total + s
        return (total / len(self.models)).cpu().numpy()

    @staticmethod
    def _score_one(model: SGRAF, ib: dict, tb: dict) -> torch.Tensor:
        return model.sim_enc.score_tile(ib["v"], ib["glo"], tb["c"], tb["mask"], tb["glo"],
                                        max_elements=PAIR_CHUNK_ELEMENTS)


def build(**options: Any) -> SGRAFRetrieval:
    wrapper.check_options("sgraf", options, OPTIONS)
    return SGRAFRetrieval(**options)
