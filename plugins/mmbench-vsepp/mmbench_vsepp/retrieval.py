"""The mmbench model around an official VSE++ precomp checkpoint.

``opt.measure == "cosine"``: a dual encoder (the harness forms the dot products).
``opt.measure == "order"`` (the README's Order0 / Order++ rows, with or without ``use_abs``):
the order-embedding score is not a dot product, so the model is a pairwise scorer
(:class:`VSEPPOrderRetrieval`: ``score(image_block, text_block)``) and the harness ranks its
tiles with bounded memory; scores are float32, as the official evaluation computes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError
from mmbench_vse import wrapper
from mmbench_vse.checkpoints import official_checkpoint
from mmbench_vse.vocab import Vocabulary, encode_captions

from mmbench_vsepp.model import VSE, order_scores

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo"
DEMO_CHECKPOINT, DEMO_VOCAB = DEMO_DIR / wrapper.CHECKPOINT_FILE, DEMO_DIR / wrapper.VOCAB_FILE
REQUIRED_OPT = ("img_dim", "word_dim", "embed_size", "vocab_size")
OPTIONS = ("checkpoint", "vocab", "device", "batch_size", "allow_unsafe_pickle", "region_pool")
MEASURES = ("cosine", "order")  # fartashf/vsepp:train.py --measure; model.py ContrastiveLoss
#: elements of the largest (images x captions x embed) temporary per order-scoring chunk
PAIR_CHUNK_ELEMENTS = 1 << 23


def image_vectors(images, img_dim: int, *, region_pool: str) -> np.ndarray:
    """(B, D) float32: one precomputed vector per image.

    VSE++ precomp data has one vector per image; an image offering R > 1 region rows
    (bottom-up features, the demo) is mean-pooled when ``region_pool=mean``.
    """
    out = []
    for im in images:
        r = getattr(im, "regions", None)
        if r is None:
            raise PluginError(f"vsepp: image {im.id!r} has no precomputed features (it offers {sorted(im.forms)}); "
                              "vsepp takes the 'regions' input form")
        r = np.asarray(r, dtype=np.float32)
        if r.ndim == 1:
            r = r[None]
        if r.ndim != 2 or r.shape[1] != img_dim:
            raise DataError(None, f"image {im.id!r}: features have shape {tuple(r.shape)}", field="regions",
                            expected=f"({img_dim},) or (R, {img_dim}) to fit this VSE++ checkpoint")
        if r.shape[0] > 1:
            if region_pool != "mean":
                raise DataError(None, f"image {im.id!r} has {r.shape[0]} region rows", field="regions",
                                expected="one feature vector per image (or pass region_pool=mean)")
            r = r.mean(0, keepdims=True)
        out.append(r[0])
    return np.stack(out) if out else np.zeros((0, img_dim), np.float32)


class VSEPPRetrieval:
    """Dual encoder: the harness forms similarities as dot products of the normalised embeddings."""

    def __init__(self, checkpoint: str | None = None, vocab: str | None = None, device: str | None = None,
                 batch_size: str | int = 128, allow_unsafe_pickle: str | bool = False, region_pool: str = "mean"):
        checkpoint, vocab = wrapper.checkpoint_and_vocab("vsepp", checkpoint, vocab, DEMO_DIR,
                                                     vocab_hint="a SCAN-format vocab json")
        if region_pool not in ("mean", "none"):
            raise PluginError(f"vsepp: option region_pool={region_pool!r}: expected mean or none")
        self.region_pool = region_pool
        self.checkpoint_path = str(checkpoint)
        self.device = torch.device(resolve_device(device))
        self.batch_size = parse_int(batch_size, option="batch_size")
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        opt, states, _ = official_checkpoint(checkpoint, n_modules=2, allow_unsafe_pickle=unsafe,
                                             what="VSE++ checkpoint")
        wrapper.require_opt(opt, REQUIRED_OPT, checkpoint, what="VSE++")
        # ContrastiveLoss uses order_sim only for 'order' and cosine_sim for anything else, but the
        # official evaluation (i2t/t2i) also branches on 'order' only: refuse other values by name
        if opt.get("measure", "cosine") not in MEASURES:
            raise DataError(checkpoint, f"is {opt.get('measure')!r}", field="opt.measure",
                            expected=" | ".join(MEASURES))
        self.measure = opt.get("measure", "cosine")
        if "fc.weight" not in states[0] or any(k.startswith("cnn.") for k in states[0]):
            raise DataError(checkpoint, "is not the precomputed-feature image encoder", field="model[0]",
                            expected="EncoderImagePrecomp weights (fc.weight, fc.bias): a *_precomp run")
        self.opt = opt
        self.vocab = Vocabulary.from_path(vocab)
        wrapper.check_vocab_size(self.vocab, vocab, opt)
        self.model = VSE(opt)
        wrapper.load_official_states(self.model, states, checkpoint,
                                     expected="official VSE++ [img_enc, txt_enc] weights")
        self.model.to(self.device).eval()

    @torch.no_grad()
    def encode_images(self, images) -> np.ndarray:
        feats = image_vectors(images, int(self.opt["img_dim"]), region_pool=self.region_pool)
        return self.model.img_enc(torch.from_numpy(feats).to(self.device)).cpu().numpy()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, int(self.opt["embed_size"])), np.float32)
        ids, lengths = encode_captions(self.vocab, list(texts))
        return self.model.txt_enc(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths)).cpu().numpy()


class VSEPPOrderRetrieval:
    """Order embeddings (``opt.measure == 'order'``): a pairwise scorer over the VSE++ embeddings.

    ``encode_images`` / ``encode_texts`` return the (B, D) float32 embeddings of the wrapped
    :class:`VSEPPRetrieval` (``abs`` already applied when ``opt.use_abs``); ``score`` is
    fartashf/vsepp:model.py ``order_sim`` in float32, chunked over captions (bounded memory).
    """

    def __init__(self, encoder: VSEPPRetrieval):
        self.encoder = encoder
        self.opt, self.vocab, self.model, self.device = encoder.opt, encoder.vocab, encoder.model, encoder.device
        self.checkpoint_path, self.batch_size, self.measure = encoder.checkpoint_path, encoder.batch_size, "order"

    def encode_images(self, images) -> np.ndarray:
        wrapper.not_empty(images, "encode_images", plugin="vsepp")
        return self.encoder.encode_images(images)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        wrapper.not_empty(texts, "encode_texts", plugin="vsepp")
        return self.encoder.encode_texts(texts)

    @torch.no_grad()
    def score(self, image_block, text_block) -> np.ndarray:
        im = torch.as_tensor(np.asarray(image_block, np.float32), device=self.device)
        s = torch.as_tensor(np.asarray(text_block, np.float32), device=self.device)
        out = torch.empty(im.size(0), s.size(0), dtype=torch.float32, device=self.device)
        step = max(1, PAIR_CHUNK_ELEMENTS // max(1, im.size(0) * im.size(1)))
        for t0 in range(0, s.size(0), step):
            out[:, t0:t0 + step] = order_scores(im, s[t0:t0 + step])
        return out.cpu().numpy()


def build(seed: int | str = 0, **options: Any) -> VSEPPRetrieval | VSEPPOrderRetrieval:
    """``seed`` is accepted (the runner passes the run's seed) and unused: evaluation is deterministic."""
    wrapper.check_options("vsepp", options, OPTIONS)
    model = VSEPPRetrieval(**options)
    return VSEPPOrderRetrieval(model) if model.measure == "order" else model
