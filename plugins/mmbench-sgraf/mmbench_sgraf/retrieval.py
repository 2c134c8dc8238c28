"""The mmbench cross-attention scorer around an official SGRAF checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import official_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError
from mmbench.text import Vocabulary, encode_captions

from mmbench_sgraf.model import N_REGIONS, SGRAF

DATA = Path(__file__).resolve().parent / "data"
DEMO_CHECKPOINT = DATA / "demo_sgr" / "model_best.pth.tar"
DEMO_VOCAB = DATA / "demo_sgr" / "demo_precomp_vocab.json"
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "sim_dim", "vocab_size")
#: elements of the largest (pairs x words x embed) temporary per scoring chunk (bounded memory)
PAIR_CHUNK_ELEMENTS = 1 << 24


def stack_regions(images, img_dim: int, *, n_regions: int | None = None, plugin: str) -> np.ndarray:
    """(B, R, D) float32 from ImageItems' region features, with clear errors."""
    out = []
    for im in images:
        r = getattr(im, "regions", None)
        if r is None:
            raise PluginError(f"{plugin}: image {im.id!r} has no region features (it offers "
                              f"{sorted(im.forms)}); {plugin} takes the 'regions' input form")
        r = np.asarray(r, dtype=np.float32)
        if r.ndim != 2 or r.shape[1] != img_dim or (n_regions is not None and r.shape[0] != n_regions):
            want = f"({n_regions if n_regions else 'R'}, {img_dim})"
            raise DataError(None, f"image {im.id!r}: region features have shape {tuple(r.shape)}",
                            field="regions", expected=f"{want} to fit this {plugin} checkpoint"
                            + (" (SGRAF's VisualSA has BatchNorm1d over exactly 36 regions)" if n_regions else ""))
        out.append(r)
    if len({r.shape[0] for r in out}) > 1:
        raise DataError(None, "images in one batch have different region counts", field="regions",
                        expected="the same number of regions for every image")
    return np.stack(out) if out else np.zeros((0, n_regions or 0, img_dim), np.float32)


def _not_empty(items, what: str) -> None:
    if len(items) == 0:
        raise PluginError(f"sgraf: {what}() got an empty batch (a cross-attention block needs at least one item)")


class SGRAFRetrieval:
    """Cross-attention scorer: ``encode_images``/``encode_texts`` return per-batch blocks, ``score`` a tile.

    With ``checkpoint2`` the score is the mean of the two models' scores (the SGR+SAF
    ensemble that the SGRAF paper and README report as "SGRAF").
    """

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 64, allow_unsafe_pickle: str | bool = False,
                 checkpoint2: str | None = None):
        if checkpoint is None and vocab is None:
            checkpoint, vocab = DEMO_CHECKPOINT, DEMO_VOCAB
        elif checkpoint is None or vocab is None:
            raise PluginError("sgraf: give both checkpoint=PATH (model_best.pth.tar) and vocab=PATH "
                              "(the <data_name>_vocab.json it was trained with), or neither for the demo model")
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
        missing = [k for k in REQUIRED_OPT if k not in opt]
        if missing:
            raise DataError(checkpoint, f"lacks {missing}", field="opt", expected="SGRAF training options")
        if opt.get("module_name", "SGR") not in ("SGR", "SAF"):
            raise DataError(checkpoint, f"is {opt.get('module_name')!r}", field="opt.module_name",
                            expected="SGR or SAF")
        if len(self.vocab) != int(opt["vocab_size"]):
            raise DataError(vocab, f"has {len(self.vocab)} words but the checkpoint {checkpoint} has "
                            f"opt.vocab_size {opt['vocab_size']}", field="word2idx",
                            expected="the vocabulary the model was trained with")
        model = SGRAF(opt)
        try:
            model.load_official(states)
        except RuntimeError as exc:
            raise DataError(checkpoint, f"state_dicts do not fit the architecture built from opt: {exc}",
                            field="model", expected="official SGRAF [img_enc, txt_enc, sim_enc] weights") from None
        return opt, model.to(self.device).eval()

    @property
    def model(self) -> SGRAF:
        return self.models[0]

    @torch.no_grad()
    def encode_images(self, images) -> list[dict]:
        _not_empty(images, 'encode_images')
        feats = torch.from_numpy(stack_regions(images, int(self.opt["img_dim"]), n_regions=N_REGIONS,
                                               plugin="sgraf")).to(self.device)
        blocks = []
        for model in self.models:
            v, v_glo = model.encode_images(feats)
            blocks.append({"v": v, "glo": v_glo})
        return blocks

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> list[dict]:
        _not_empty(texts, 'encode_texts')
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
    known = {"checkpoint", "checkpoint2", "vocab", "device", "batch_size", "allow_unsafe_pickle"}
    bad = sorted(set(options) - known)
    if bad:
        raise PluginError(f"sgraf: unknown option(s) {bad}; known: {', '.join(sorted(known))}")
    return SGRAFRetrieval(**options)
