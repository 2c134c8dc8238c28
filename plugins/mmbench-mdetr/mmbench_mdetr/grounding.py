"""The mmbench grounding model around an official MDETR checkpoint (refexp evaluation path).

Per expression, as ashkamath/mdetr main.py --eval on a refexp dataset computes it:
image -> official val transform (preprocess.py) -> batch padded like NestedTensor ->
MDETR forward (model.py) -> PostProcess (models/postprocessors.py): scores = 1 - softmax(logits)[..., -1],
boxes cxcywh -> xyxy x (W, H, W, H) of the ORIGINAL image, no clamping -> ranked as RefExpEvaluator does
(datasets/refexp.py: ``sorted(zip(scores, boxes), reverse=True)``, ties broken by the box coordinates).
Score these with the task option ``convention=giou`` for the official Precision@k.

Phrase grounding (Flickr30k Entities: inputs with a ``context`` sentence and the phrase's character ``spans``),
as main.py --eval on the flickr dataset computes it: the model reads the whole sentence once; each phrase's
score for a query is the largest softmax probability over the phrase's tokens (PostProcessFlickr,
models/postprocessors.py; the token map of datasets/coco.py create_positive_map, with its char_to_token
fallbacks), boxes sorted by it with ``torch.sort(descending=True)`` as the official code does. Score these with
the default continuous IoU >= 0.5 and ``--task-option outside=score`` for the official Recall@k
(datasets/flickr_eval.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import load_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError

from mmbench_mdetr.model import MDETR, ArgsError, build_from_args, load_state
from mmbench_mdetr.preprocess import image_tensor, nested, resized_hw

DATA = Path(__file__).resolve().parent / "data"
DEMO_CHECKPOINT = DATA / "demo" / "checkpoint.pth"
OPTIONS = ("allow_unsafe_pickle", "batch_size", "batching", "checkpoint", "device", "ema", "precision", "seed",
           "text_encoder")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BATCHING = ("official", "by-size")


def namespace_dict(args: Any, *, path: Path, field: str = "args") -> dict:
    """checkpoint["args"] (argparse.Namespace, as main.py saves it, or a dict) as a plain dict, or DataError."""
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, dict):
        return dict(args)
    raise DataError(path, f"is a {type(args).__name__}", field=field,
                    expected="the training options (argparse.Namespace, as ashkamath/mdetr main.py saves them)")


def resolve_text_encoder(option: str | None, text_encoder_type: str, checkpoint: Path) -> Path:
    """The local RoBERTa folder: the ``text_encoder`` option, else args.text_encoder_type when it is a folder
    (as given, i.e. relative to the working directory like the official code, then relative to the checkpoint)."""
    if option:
        p = Path(option).expanduser()
        if not (p / "config.json").is_file():
            raise PluginError(f"mdetr: option text_encoder={option!r} is not a folder with a config.json "
                              "(a RoBERTa saved with save_pretrained, with its tokenizer files)")
        return p
    t = str(text_encoder_type)
    for cand in (Path(t).expanduser(), checkpoint.parent / t):
        if (cand / "config.json").is_file():
            return cand
    raise PluginError(
        f"mdetr: the checkpoint's args.text_encoder_type is {t!r}, a Hugging Face hub id (or a folder that does "
        f"not exist here), and mmbench never downloads: pass --option text_encoder=PATH, a local folder holding "
        f"{t}'s config.json and tokenizer files (e.g. from {t} save_pretrained). The RoBERTa weights themselves "
        "come from the checkpoint.")


def rank_official(scores: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RefExpEvaluator's order: sorted(zip(scores.tolist(), boxes.tolist()), reverse=True) -> (order, boxes)."""
    rows = sorted(zip(scores.tolist(), boxes.tolist(), range(len(scores))), key=lambda r: (r[0], r[1]),
                  reverse=True)
    order = np.array([r[2] for r in rows], dtype=np.int64)
    return order, boxes[order]


class MDETRGrounder:
    """``predict(samples)`` -> ranked pixel xyxy boxes (all num_queries of them), official MDETR refexp path."""

    box_format = "xyxy"
    box_normalized = False

    def __init__(self, checkpoint: str | None = None, text_encoder: str | None = None, ema: Any = False,
                 device: str | None = None, precision: str = "fp32", batch_size: Any = 1, batching: str = "official",
                 allow_unsafe_pickle: Any = False):
        path = Path(checkpoint).expanduser() if checkpoint else DEMO_CHECKPOINT
        self.checkpoint_path = str(path)
        self.device = torch.device(resolve_device(device))
        prec = str(precision).strip().lower()
        if prec not in PRECISIONS:
            raise PluginError(f"mdetr: option precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.precision, self.dtype = prec, PRECISIONS[prec]
        self.batch_size = parse_int(batch_size, option="batch_size")
        self.batching = str(batching).strip().lower()
        if self.batching not in BATCHING:
            raise PluginError(f"mdetr: option batching={batching!r}: expected one of {', '.join(BATCHING)} "
                              "(official: consecutive samples padded together like main.py --batch_size; by-size: "
                              "only same-size images share a batch, so padding never changes an output)")
        self.ema = parse_bool(ema, option="ema")
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        ck = load_checkpoint(path, allow_unsafe_pickle=unsafe, what="MDETR checkpoint")
        if not isinstance(ck, dict) or "model" not in ck or "args" not in ck:
            keys = sorted(map(str, ck)) if isinstance(ck, dict) else type(ck).__name__
            raise DataError(path, f"is not an MDETR main.py checkpoint (top level: {keys})",
                            expected="a dict with model, model_ema, optimizer, epoch, args")
        self.args = namespace_dict(ck["args"], path=path, field="args")
        key = "model_ema" if self.ema else "model"
        state = ck.get(key)
        if state is None:
            raise DataError(path, "is None: this checkpoint was trained without --ema" if self.ema else "is None",
                            field=key, expected="a state_dict (use ema=false for checkpoint['model'])"
                            if self.ema else "a state_dict")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise DataError(path, "is not a state_dict of tensors", field=key, expected="parameter name -> tensor")
        self.text_encoder_dir = resolve_text_encoder(text_encoder, self.args.get("text_encoder_type", ""), path)
        try:
            model = build_from_args(self.args, self.text_encoder_dir)
            load_state(model, dict(state), where=f"{path} [{key}]")
        except ArgsError as exc:
            raise DataError(path, str(exc), field="args", expected="an MDETR this plugin can rebuild") from None
        from transformers import RobertaTokenizerFast

        self.tokenizer = RobertaTokenizerFast.from_pretrained(str(self.text_encoder_dir))
        self.max_tokens = int(model.transformer.text_encoder.config.max_position_embeddings) - 2
        self.model: MDETR = model.to(self.device, self.dtype).eval()
        self.published_variant = str(self.args["backbone"])  # published numbers are per backbone
        self.details = {"weights": key, "backbone": self.args["backbone"], "num_queries": int(self.args["num_queries"]),
                        "precision": prec, "batching": self.batching, "batch_size": self.batch_size,
                        "epoch": ck.get("epoch"), "score": "1 - softmax(pred_logits)[..., no-object]",
                        "hit_rule": "official RefExpEvaluator: GIoU >= 0.5 (use --task-option convention=giou)"}

    # -- batching ------------------------------------------------------------------------------

    def _chunks(self, samples: list) -> list[list[int]]:
        idx = list(range(len(samples)))
        if self.batching == "official":
            return [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(samples):
            w, h = s.image.size if s.image.size is not None else s.image.load().size
            groups.setdefault(resized_hw(w, h), []).append(i)
        return [g[i:i + self.batch_size] for g in groups.values() for i in range(0, len(g), self.batch_size)]

    def _tokenize(self, texts: list[str]):
        tok = self.tokenizer(texts, padding="longest", return_tensors="pt")  # official: no truncation
        if tok["input_ids"].shape[1] > self.max_tokens:
            raise PluginError(f"mdetr: an expression has {tok['input_ids'].shape[1]} tokens; this RoBERTa has "
                              f"positions for at most {self.max_tokens} (max_position_embeddings - 2)")
        return tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)

    @torch.no_grad()
    def _forward(self, samples: list, debug: bool = False, texts: list[str] | None = None) -> dict:
        imgs = [s.image.load() for s in samples]
        tensors, mask = nested([image_tensor(im) for im in imgs])
        ids, am = self._tokenize(texts if texts is not None else [str(s.expression) for s in samples])
        out = self.model(tensors.to(self.device, self.dtype), mask.to(self.device), ids, am, debug=debug)
        logits = out["pred_logits"].float()
        pboxes = out["pred_boxes"].float()
        # PostProcess (ashkamath/mdetr:models/postprocessors.py), float32
        prob = torch.softmax(logits, -1)
        scores = 1 - prob[..., -1]
        cx, cy, w, h = pboxes.unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        sizes = torch.tensor([[im.size[1], im.size[0]] for im in imgs], device=xyxy.device)  # (H, W) original
        ih, iw = sizes.unbind(1)
        xyxy = xyxy * torch.stack([iw, ih, iw, ih], dim=1)[:, None, :]
        res = {"pred_logits": logits, "pred_boxes": pboxes, "scores": scores, "boxes_xyxy": xyxy}
        if debug:
            res.update({k: v for k, v in out.items() if k not in res})
        return {k: v.float().cpu().numpy() for k, v in res.items()}

    def raw_outputs(self, samples: list, texts: list[str] | None = None) -> dict[str, np.ndarray]:
        """pred_logits, pred_boxes, PostProcess scores and boxes_xyxy per sample, in input order; the model reads
        ``texts[i]`` with sample i's image (default: the samples' expressions)."""
        outs: list[dict | None] = [None] * len(samples)
        for chunk in self._chunks(list(samples)):
            res = self._forward([samples[i] for i in chunk],
                                texts=None if texts is None else [texts[i] for i in chunk])
            for j, i in enumerate(chunk):
                outs[i] = {k: v[j] for k, v in res.items()}
        return {k: np.stack([o[k] for o in outs]) for k in ("pred_logits", "pred_boxes", "scores", "boxes_xyxy")}

    def predict(self, samples) -> list[np.ndarray]:
        samples = list(samples)
        if not samples:
            return []
        if all(getattr(s, "context", None) is None for s in samples):
            raw = self.raw_outputs(samples)
            return [rank_official(s, b)[1] for s, b in zip(raw["scores"], raw["boxes_xyxy"])]
        return self._predict_phrases(samples)

    # -- phrase grounding (Flickr30k Entities) ---------------------------------------------------

    def phrase_outputs(self, samples: list) -> tuple[list, list[int], dict[str, np.ndarray]]:
        """Run the model once per distinct (image, sentence): (units, unit index of each sample, raw outputs per
        unit). A unit is (first sample, text): the sentence for phrases, the expression for the others."""
        units: list[tuple[Any, str]] = []
        index: dict[tuple[str, str], int] = {}
        of_sample = []
        for s in samples:
            ctx = getattr(s, "context", None)
            key = None if ctx is None else (str(s.image.id), str(ctx))
            if key is None or key not in index:  # a stand-alone expression is always its own unit
                if key is not None:
                    index[key] = len(units)
                units.append((s, str(s.expression) if ctx is None else str(ctx)))
            of_sample.append(len(units) - 1 if key is None else index[key])
        raw = self.raw_outputs([u[0] for u in units], texts=[u[1] for u in units])
        return units, of_sample, raw

    def _predict_phrases(self, samples: list, outputs: tuple | None = None) -> list[np.ndarray]:
        """Ranked boxes per sample; ``outputs``: ``phrase_outputs(samples)`` when already computed."""
        units, of_sample, raw = outputs if outputs is not None else self.phrase_outputs(samples)
        prob = torch.softmax(torch.from_numpy(raw["pred_logits"]), -1)  # PostProcessFlickr, float32
        boxes = torch.from_numpy(raw["boxes_xyxy"])
        tokenized: dict[int, Any] = {}  # one tokenisation per sentence, as the official dataset does
        out = []
        for s, u in zip(samples, of_sample):
            if getattr(s, "context", None) is None:
                out.append(rank_official(raw["scores"][u], raw["boxes_xyxy"][u])[1])
                continue
            if u not in tokenized:
                tokenized[u] = self.tokenizer(str(s.context), return_tensors="pt")
            pos = self.positive_tokens(str(s.context), s.spans, prob.shape[-1], tokenized[u])
            scores, _ = torch.max(pos.unsqueeze(0) * prob[u], dim=-1)
            _, order = torch.sort(scores, descending=True)
            out.append(boxes[u][order].numpy())
        return out

    def positive_tokens(self, context: str, spans, width: int, tok=None) -> torch.Tensor:
        """The phrase's token mask over the ``width`` logit columns, as ashkamath/mdetr:datasets/coco.py
        create_positive_map builds it from tokens_positive (then binarised, > 1e-6, by PostProcessFlickr): the
        tokens from char_to_token(begin) to char_to_token(end - 1); where either maps to no token (a space), the
        official fallbacks begin + 1, begin + 2 and end - 2, end - 3; a span still unmapped is skipped."""
        if tok is None:  # ``tok``: the tokenizer's encoding of ``context``, when already made
            tok = self.tokenizer(context, return_tensors="pt")
        pos = torch.zeros(width, dtype=torch.bool)

        def c2t(i):
            try:
                return tok.char_to_token(i)
            except Exception:  # the official code treats a failing lookup as no token
                return None

        for beg, end in spans or ():
            b, e = c2t(beg), c2t(end - 1)
            if b is None:
                b = c2t(beg + 1)
                if b is None:
                    b = c2t(beg + 2)
            if e is None:
                e = c2t(end - 2)
                if e is None:
                    e = c2t(end - 3)
            if b is None or e is None:
                continue
            pos[b:e + 1] = True
        return pos


def build(**options: Any) -> MDETRGrounder:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PluginError(f"mdetr: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(OPTIONS)}")
    options.pop("seed", None)  # the model is deterministic: nothing is sampled
    return MDETRGrounder(**options)
