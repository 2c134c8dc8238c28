"""OWL-ViT, OWLv2 and (MM-)Grounding DINO as mmbench grounders, from local ``save_pretrained`` folders.

Protocol (there is no official referring-expression protocol for these open-vocabulary detectors;
this is the one of ../shared/PROTOCOLS.md section 6 and of mmdetection's RefExpMetric):

- the whole referring expression is ONE text query;
- every box the detector produces is returned (OWL: one per image patch; Grounding DINO: one per
  decoder query), ranked by its score, best first, with NO score threshold; a hit is decided by the
  task (IoU >= 0.5 of the top-ranked box for Acc@0.5, any of the top K for P@K);
- scores and boxes are exactly transformers' post-processing, re-implemented here so the ranking
  does not depend on a post-processing signature (thresholds, renamed keywords) that changes
  between transformers versions; the tests check them against transformers' own functions:
  * OWL-ViT / OWLv2: score = sigmoid(max over queries of the class logits)
    (huggingface/transformers:src/transformers/models/owlvit/image_processing_pil_owlvit.py,
    post_process_object_detection); boxes cxcywh -> xyxy, then times (W, H, W, H) for OWL-ViT
    (the image is resized to a square without keeping its aspect) but times (S, S, S, S) with
    S = max(W, H) for OWLv2, whose processor pads the image to a square at the bottom/right
    before resizing, so the normalised boxes are relative to the padded square
    (huggingface/transformers:src/transformers/models/owlv2/image_processing_pil_owlv2.py,
    ``_scale_boxes``: "for owlv2 image is padded to max size unlike owlvit");
  * Grounding DINO / MM-Grounding-DINO: score = max over text tokens of sigmoid(logits), the
    token positions past the text being -inf in the model's output
    (huggingface/transformers:src/transformers/models/grounding_dino/processing_grounding_dino.py,
    post_process_grounded_object_detection); boxes cxcywh -> xyxy times (W, H, W, H);
- then, unless ``clip_boxes=false``, boxes are clipped to the image (mmdetection's Grounding DINO
  head clamps its boxes to the image the same way before RefExpMetric scores them:
  open-mmlab/mmdetection:mmdet/models/dense_heads/grounding_dino_head.py,
  ``_predict_by_feat_single``): an OWLv2 box in the padding, or a box poking out of the image,
  would otherwise be an impossible box for mmbench's box validation. Clipping never reorders.
- Grounding DINO text: transformers expects lower-case phrases each ending with "." (its processor
  turns a list of labels into "a cat. a dog.":
  huggingface/transformers:src/transformers/models/grounding_dino/processing_grounding_dino.py,
  ``_merge_candidate_labels_text``); the expression is stripped, lower-cased and gets a final "."
  when it has none, and is truncated by the tokenizer to the model's ``max_text_len`` (256 in the
  released models; longer texts make transformers' forward fail). OWL text: the expression as given (CLIP's tokenizer lower-cases), padded to
  the text tower's length as OwlViTProcessor does (``padding="max_length"``) and truncated to it.
- batching: the processor pads Grounding DINO images to the batch's largest size (with a pixel
  mask) and texts to the longest, which changes the outputs measurably; so samples share a forward
  pass only when their processed image and token ids have the same shape (always true for OWL,
  whose images are resized to a fixed square and texts padded to a fixed length): every sample
  gets exactly the boxes transformers gives it alone.

Nothing is downloaded: models, tokenizers and image processors load with ``local_files_only=True``.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.errors import DataError, MMBenchError

HERE = Path(__file__).resolve().parent
KINDS = {
    # plugin name: (model_type in config.json, transformers class, shipped demo folder)
    "owlvit": ("owlvit", "OwlViTForObjectDetection", HERE / "demo_owlvit"),
    "owlv2": ("owlv2", "Owlv2ForObjectDetection", HERE / "demo_owlv2"),
    "grounding-dino": ("grounding-dino", "GroundingDinoForObjectDetection", HERE / "demo_grounding_dino"),
    "mm-grounding-dino": ("mm-grounding-dino", "MMGroundingDinoForObjectDetection", HERE / "demo_mm_grounding_dino"),
}
PLUGIN_FOR_TYPE = {v[0]: k for k, v in KINDS.items()}
PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
OPTIONS = ("model", "device", "precision", "batch_size", "clip_boxes", "seed")


def grounding_dino_query(expression: str) -> str:
    """The text Grounding DINO gets for one expression: stripped, lower-case, ending with '.'."""
    q = str(expression).strip().lower()
    return q if q.endswith(".") else q + "."


def _checkpoint_dir(path: str | None, kind: str) -> Path:
    model_type, _, demo = KINDS[kind]
    if not path:
        return demo
    p = Path(path).expanduser()
    if not p.is_dir():
        raise MMBenchError(f"--option model={path!r}: {p} is not a local folder. mmbench never downloads models: "
                           f"give the folder a {kind} checkpoint was saved to with save_pretrained (config.json, "
                           f"model.safetensors, tokenizer and processor files; e.g. save_pretrained() of the model "
                           f"and of its processor into one folder)")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise DataError(cfg, "missing: not a Hugging Face model folder",
                        expected="config.json written by save_pretrained")
    try:
        got = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, OSError) as exc:
        raise DataError(cfg, f"cannot read: {exc}", expected="a JSON model config") from None
    if got != model_type:
        other = PLUGIN_FOR_TYPE.get(got)
        raise DataError(cfg, f"model_type is {got!r}", field="model_type",
                        expected=f"{model_type!r}" + (f"; use --plugin {other}" if other else ""))
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise DataError(p, "no weights file", expected=" or ".join(WEIGHT_FILES))
    return p


def _load(kind: str, path: Path):
    import torch
    import transformers
    from transformers import AutoProcessor

    cls = getattr(transformers, KINDS[kind][1], None)
    if cls is None:
        raise MMBenchError(f"{kind}: this transformers ({transformers.__version__}) has no {KINDS[kind][1]}; "
                           f"upgrade transformers")
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    transformers.utils.logging.disable_progress_bar()  # the harness draws its own progress bars
    model = cls.from_pretrained(str(path), local_files_only=True, **{dtype_kw: torch.float32})
    processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
    return model, processor


class HFGrounder:
    """One transformers open-vocabulary detector as an mmbench grounder (pixel xyxy boxes, best first)."""

    box_format = "xyxy"
    box_normalized = False
    accepts = ("image",)

    def __init__(self, kind: str, path: Path, *, device: str = "auto", precision: str = "fp32",
                 batch_size: int = 8, clip_boxes: bool = True):
        import torch

        if precision not in PRECISIONS:
            raise MMBenchError(f"--option precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MMBenchError(f"--option device={device}: CUDA is not available")
        if precision != "fp32" and not device.startswith("cuda"):
            raise MMBenchError(f"--option precision={precision} needs a CUDA device (device is {device}); "
                               f"on CPU the model runs in fp32")
        self.kind, self.path, self.device, self.precision = kind, path, device, precision
        self.batch_size, self.clip_boxes = batch_size, clip_boxes
        self.family = "owl" if kind in ("owlvit", "owlv2") else "gdino"
        try:
            model, self.processor = _load(kind, path)
        except MMBenchError:
            raise
        except Exception as exc:  # a broken folder is a user error naming the folder
            raise DataError(path, f"cannot load the {kind} checkpoint: {type(exc).__name__}: {exc}") from None
        self.model = model.float().eval().to(device)
        self.checkpoint_path = next(path / w for w in WEIGHT_FILES if (path / w).is_file())
        self.tokenizer = self.processor.tokenizer
        if self.family == "owl":
            self.max_text = int(self.model.config.text_config.max_position_embeddings)
        else:
            self.max_text = int(self.model.config.max_text_len)
        self._truncated = 0
        self.details: dict[str, Any] = {
            "checkpoint": str(path),
            "random_weights_demo": path == KINDS[kind][2],
            "transformers_class": KINDS[kind][1],
            "query": ("the whole expression, stripped, lower-cased, with a final '.' (Grounding DINO's phrase form); "
                      f"truncated to the model's max_text_len of {self.max_text} tokens"
                      if self.family == "gdino" else
                      f"the whole expression as one text query, padded/truncated to {self.max_text} tokens"),
            "score": ("max over text tokens of sigmoid(logits)" if self.family == "gdino"
                      else "sigmoid(class logit) of the one query per box"),
            "score_threshold": None,
            "text_threshold": None,
            "boxes": ("every decoder query" if self.family == "gdino" else "one per image patch")
                     + ", all returned, ranked by score (stable on ties)",
            "box_scaling": ("max(W, H) on both axes (OWLv2 pads to a square before resizing)" if kind == "owlv2"
                            else "(W, H) of the original image"),
            "clip_boxes": clip_boxes,
            "image_processor": type(self.processor.image_processor).__name__,
            "batching": "samples share a forward pass only when their processed tensors have the same shape",
            "precision": precision,
            "device": device,
            "truncated_queries": 0,
        }

    # ------------------------------------------------------------------ inputs
    def query(self, expression: str) -> str:
        return grounding_dino_query(expression) if self.family == "gdino" else str(expression)

    def _encode(self, pil, expression: str) -> dict:
        """Processor tensors for one (image, expression), batch dimension 1."""
        q = self.query(expression)
        n_tok = len(self.tokenizer(q)["input_ids"])
        if n_tok > self.max_text:
            self._truncated += 1
            self.details["truncated_queries"] = self._truncated
        if self.family == "owl":
            # nested list: one list of queries per image (OwlViTProcessor's batched form)
            enc = self.processor(text=[[q]], images=[pil], return_tensors="pt", truncation=True,
                                 max_length=self.max_text)
        else:
            # truncated by the tokenizer to the model's max_text_len ([SEP] kept): a longer text makes
            # transformers' own forward fail (GroundingDinoModel cuts its masks at max_text_len but the
            # class head still sees the full text: a size mismatch); counted in details["truncated_queries"]
            enc = self.processor(images=[pil], text=[q], return_tensors="pt", truncation=True,
                                 max_length=self.max_text)
        return dict(enc)

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16)

    # ------------------------------------------------------------------ outputs
    def _ranked(self, logits, pred_boxes, sizes, clip: bool):
        """transformers' post-processing (see the module docstring), then a stable sort by score:
        ``(boxes, scores)``, one (K, 4) float64 array and one (K,) array per image, best first."""
        import torch

        logits, pred_boxes = logits.float(), pred_boxes.float()
        if self.family == "owl":
            scores = torch.sigmoid(torch.max(logits, dim=-1).values)
        else:
            scores = torch.max(torch.sigmoid(logits), dim=-1)[0]
        cx, cy, w, h = pred_boxes.unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        out, ranked_scores = [], []
        for i, (W, H) in enumerate(sizes):
            if self.kind == "owlv2":
                S = max(W, H)
                scale = torch.tensor([S, S, S, S], dtype=torch.int64)
            else:
                scale = torch.tensor([W, H, W, H], dtype=torch.int64)
            b = xyxy[i] * scale.to(xyxy.device)
            srt = torch.sort(scores[i], descending=True, stable=True)
            b = b[srt.indices].cpu().numpy().astype(np.float64)
            ranked_scores.append(srt.values.cpu().numpy().astype(np.float64))
            if clip:
                b[:, 0::2] = b[:, 0::2].clip(0, W)
                b[:, 1::2] = b[:, 1::2].clip(0, H)
            out.append(b)
        return out, ranked_scores

    def predict_with_scores(self, samples, *, clip: bool | None = None):
        """``(boxes, scores)`` per sample, both ranked best first (scores float64 from float32)."""
        boxes, scores = self._run(samples, self.clip_boxes if clip is None else clip, with_scores=True)
        return boxes, scores

    def predict(self, samples):
        return self._run(samples, self.clip_boxes)

    def _run(self, samples, clip: bool, with_scores: bool = False):
        import torch

        samples = list(samples)
        if not samples:
            return ([], []) if with_scores else []
        encs, sizes = [], []
        for s in samples:
            item = s.image
            if item is None or "image" not in item.forms:
                raise DataError(None, f"sample {getattr(s, 'id', None)!r}: image offers "
                                      f"{sorted(item.forms) if item is not None else []}",
                                field="image", expected=f"pixels: {self.kind} accepts the 'image' input form")
            pil = item.load()
            if pil.mode != "RGB":
                pil = pil.convert("RGB")
            encs.append(self._encode(pil, s.expression))
            sizes.append(pil.size)  # (W, H) of the pixels the model saw
        groups: dict[tuple, list[int]] = {}
        for i, e in enumerate(encs):
            groups.setdefault(tuple((k, tuple(v.shape)) for k, v in sorted(e.items())), []).append(i)
        boxes: list[Any] = [None] * len(samples)
        scores: list[Any] = [None] * len(samples)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                batch = {k: torch.cat([encs[i][k] for i in chunk]).to(self.device) for k in encs[chunk[0]]}
                with torch.inference_mode(), self._autocast():
                    out = self.model(**batch)
                ranked, sc = self._ranked(out.logits, out.pred_boxes, [sizes[i] for i in chunk], clip)
                for j, i in enumerate(chunk):
                    boxes[i], scores[i] = ranked[j], sc[j]
        return (boxes, scores) if with_scores else boxes


def _int(value, name: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise MMBenchError(f"--option {name}={value!r} is not an integer") from None
    if out < 1:
        raise MMBenchError(f"--option {name}={value!r} must be at least 1")
    return out


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise MMBenchError(f"--option {name}={value!r} is not a boolean (true/false)")


def _build(kind: str, model=None, device="auto", precision="fp32", batch_size="8", clip_boxes="true", seed=0,
           **unknown) -> HFGrounder:
    if unknown:
        raise MMBenchError(f"unknown option(s) {sorted(unknown)} for {kind}; known: {', '.join(OPTIONS[:-1])}")
    # seed: inference is deterministic; accepted because the runner passes the run's seed
    return HFGrounder(kind, _checkpoint_dir(model, kind), device=str(device), precision=str(precision),
                      batch_size=_int(batch_size, "batch_size"), clip_boxes=_bool(clip_boxes, "clip_boxes"))


def build_owlvit(**options):
    return _build("owlvit", **options)


def build_owlv2(**options):
    return _build("owlv2", **options)


def build_grounding_dino(**options):
    return _build("grounding-dino", **options)


def build_mm_grounding_dino(**options):
    return _build("mm-grounding-dino", **options)
