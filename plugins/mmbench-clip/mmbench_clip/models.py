"""CLIP and FLAVA dual encoders and zero-shot classifiers over local Hugging Face checkpoints.

Embeddings are what transformers computes: ``CLIPModel.get_image_features`` /
``get_text_features`` (projected pooled outputs), and for FLAVA the projected CLS token of
``FlavaModel.get_image_features`` / ``get_text_features`` (the embedding FLAVA's own
contrastive loss uses: huggingface/transformers:src/transformers/models/flava/modeling_flava.py,
FlavaForPreTraining, ``[:, 0, :]`` then L2 normalisation). Both are L2-normalised here, so the
harness's dot product is the cosine similarity.

Nothing is downloaded: checkpoints load with ``local_files_only=True`` from a folder.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.errors import DataError, MMBenchError

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "demo_clip"
DEMO_FLAVA_CHECKPOINT = Path(__file__).resolve().parent / "demo_flava"
DEMO_CHECKPOINTS = {"clip": DEMO_CHECKPOINT, "flava": DEMO_FLAVA_CHECKPOINT}
DEFAULT_TEMPLATES = ("a photo of a {}.",)
PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _checkpoint_dir(path: str | None, kind: str) -> Path:
    if not path:  # the small checkpoints trained on the demo train split (train_demo.py) ship in the package
        return DEMO_CHECKPOINTS[kind]
    p = Path(path).expanduser()
    if not p.is_dir():
        raise MMBenchError(f"--option model={path!r}: {p} is not a local folder. mmbench never downloads models: "
                           f"give the folder a {kind.upper()} checkpoint was saved to with save_pretrained "
                           f"(config.json, model.safetensors, tokenizer and preprocessor files)")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise DataError(cfg, "missing: not a Hugging Face model folder", expected="config.json written by save_pretrained")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, OSError) as exc:
        raise DataError(cfg, f"cannot read: {exc}", expected="a JSON model config") from None
    if model_type != kind:
        other = {"clip": "clip", "flava": "flava"}.get(model_type)
        hint = f"; use --plugin {other}" if other else ""
        raise DataError(cfg, f"model_type is {model_type!r}", field="model_type", expected=f"{kind!r}{hint}")
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise DataError(p, "no weights file", expected=" or ".join(WEIGHT_FILES))
    return p


def _from_pretrained(cls, path: Path, **kw):
    import torch
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    # the harness draws its own progress bars; transformers' per-load bar is noise in the output
    transformers.utils.logging.disable_progress_bar()
    return cls.from_pretrained(str(path), local_files_only=True, **{dtype_kw: torch.float32}, **kw)


def _features(out: Any):
    """transformers < 5 returns the projected features; >= 5 a model output with them in pooler_output."""
    return out if hasattr(out, "dim") else out.pooler_output


class HFDualEncoder:
    """A CLIPModel or FlavaModel as an mmbench dual encoder (L2-normalised embeddings)."""

    def __init__(self, path: Path, kind: str, *, device: str = "auto", precision: str = "fp32",
                 batch_size: int = 64):
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer

        if precision not in PRECISIONS:
            raise MMBenchError(f"--option precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if precision != "fp32" and not device.startswith("cuda"):
            raise MMBenchError(f"--option precision={precision} needs a CUDA device (device is {device}); "
                               f"on CPU the model runs in fp32")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MMBenchError(f"--option device={device}: CUDA is not available")
        self.kind, self.device, self.precision, self.batch_size = kind, device, precision, batch_size
        if kind == "clip":
            from transformers import CLIPModel as cls
        else:
            from transformers import FlavaModel as cls
        try:
            self.model = _from_pretrained(cls, path).float().eval().to(device)
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.image_processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        except MMBenchError:
            raise
        except Exception as exc:  # a broken folder is a user error with the folder's name
            raise DataError(path, f"cannot load the {kind.upper()} checkpoint: {type(exc).__name__}: {exc}") from None
        self.path = path
        self.checkpoint_path = next(path / w for w in WEIGHT_FILES if (path / w).is_file())
        max_pos = self.model.config.text_config.max_position_embeddings
        self.max_length = int(min(max_pos, getattr(self.tokenizer, "model_max_length", max_pos) or max_pos))

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16)

    def _finish(self, out):
        import torch

        feats = _features(out)
        if self.kind == "flava":
            feats = feats[:, 0, :]
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    def encode_images(self, images):
        import torch

        if not images:
            raise ValueError("encode_images() got an empty batch")
        pils = []
        for item in images:
            if item is None or "image" not in item.forms:
                raise DataError(None, f"image {getattr(item, 'id', None)!r} offers "
                                      f"{sorted(item.forms) if item is not None else []}",
                                field="image", expected=f"pixels: {self.kind} accepts the 'image' input form")
            pils.append(item.load())
        pv = self.image_processor(images=pils, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode(), self._autocast():
            return self._finish(self.model.get_image_features(pixel_values=pv))

    def encode_texts(self, texts):
        import torch

        if not texts:
            raise ValueError("encode_texts() got an empty batch")
        enc = self.tokenizer([str(t) for t in texts], padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.inference_mode(), self._autocast():
            return self._finish(self.model.get_text_features(**enc))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp().item())


class ZeroShotClassifier:
    """Zero-shot classification: class embedding = normalised mean of the normalised prompt embeddings."""

    def __init__(self, encoder: HFDualEncoder, templates: tuple[str, ...], classes: list[str] | None):
        self.encoder = encoder
        self.templates = templates
        self.batch_size = encoder.batch_size
        self.checkpoint_path = encoder.checkpoint_path
        self.classes: list[str] | None = None
        self.class_embeddings: np.ndarray | None = None
        if classes:
            self.set_classes(classes)

    def set_classes(self, classes: list[str]) -> None:
        rows = []
        for name in classes:
            e = self.encoder.encode_texts([t.replace("{}", str(name)) for t in self.templates]).astype(np.float64)
            m = e.mean(0)
            rows.append(m / max(np.linalg.norm(m), 1e-12))
        self.classes = list(classes)
        self.class_embeddings = np.stack(rows).astype(np.float32)

    def predict_proba(self, samples):
        if self.class_embeddings is None:
            raise MMBenchError("zero-shot classifier has no class names: give --option classes=a|b|c or run it on "
                               "a dataset (its classes are read from the train split)")
        if not samples:
            raise ValueError("predict_proba() got an empty batch")
        missing = [s.id for s in samples if s.image is None]
        if missing:
            raise DataError(None, f"sample {missing[0]!r} has no image", field="image",
                            expected="an image: zero-shot CLIP/FLAVA classify the image")
        img = self.encoder.encode_images([s.image for s in samples]).astype(np.float64)
        logits = self.encoder.logit_scale * img @ self.class_embeddings.astype(np.float64).T
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)


class ZeroShotFromData(ZeroShotClassifier):
    """Takes the class names from the dataset: mmbench calls fit(train, val) first; nothing is learned."""

    def fit(self, train, val=None):
        self.set_classes(list(train.classes))


def _int(value, name: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise MMBenchError(f"--option {name}={value!r} is not an integer") from None
    if out < 1:
        raise MMBenchError(f"--option {name}={value!r} must be at least 1")
    return out


def _encoder(kind: str, model=None, device="auto", precision="fp32", batch_size="64", **unknown) -> HFDualEncoder:
    if unknown:
        raise MMBenchError(f"unknown option(s) {sorted(unknown)} for {kind}; known: model, device, precision, "
                           f"batch_size")
    return HFDualEncoder(_checkpoint_dir(model, kind), kind, device=device, precision=precision,
                         batch_size=_int(batch_size, "batch_size"))


def _zeroshot(kind: str, templates=None, classes=None, **options):
    temps = tuple(t.strip() for t in (templates.split("|") if templates else DEFAULT_TEMPLATES) if t.strip())
    bad = [t for t in temps if "{}" not in t]
    if not temps or bad:
        raise MMBenchError(f"--option templates={templates!r}: every template needs '{{}}' where the class name "
                           f"goes (example: templates='a photo of a {{}}.|a picture of a {{}}')")
    names = [c.strip() for c in classes.split("|")] if classes else None
    enc = _encoder(kind, **options)
    if names:
        return ZeroShotClassifier(enc, temps, names)
    return ZeroShotFromData(enc, temps, None)


def build_clip(**options):
    return _encoder("clip", **options)


def build_flava(**options):
    return _encoder("flava", **options)


def build_clip_zeroshot(**options):
    return _zeroshot("clip", **options)


def build_flava_zeroshot(**options):
    return _zeroshot("flava", **options)
