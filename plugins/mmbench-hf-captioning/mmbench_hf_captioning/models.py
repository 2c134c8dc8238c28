"""BLIP and GIT captioners over local Hugging Face checkpoints, decoding with transformers' ``generate``.

Every generation setting is passed to ``generate`` explicitly (from a named preset, overridable
option by option), so neither transformers' defaults (greedy, ``max_length=20``) nor a
checkpoint's ``generation_config.json`` decide silently; the settings go into ``details``
(recorded as ``details["model"]`` in the run record).

Decoding and post-processing follow the official code:

- BLIP (salesforce/BLIP:models/blip.py, ``BLIP_Decoder.generate``): the prompt is tokenised as
  given, trailing space included (``[CLS] a picture of [SEP]``), ``[CLS]`` is replaced by the bos
  token ``[DEC]`` and the final ``[SEP]`` dropped (transformers' ``BlipForConditionalGeneration.generate``
  does exactly these two steps); ``[SEP]`` ends a caption; ``max_length``/``min_length`` count the
  prompt tokens (decoder-only ``generate``). The caption is ``decode(ids, skip_special_tokens=True)``
  with the first ``len(prompt)`` *characters* cut off (the official string slice, quirk included:
  it assumes the decoded prompt is spelled like the given one), then stripped.
- GIT (microsoft/GenerativeImage2Text:generativeimage2text/inference.py, ``test_git_inference_single_image``):
  the input is ``[CLS]`` + the prompt's tokens without special tokens; ``[SEP]`` ends a caption
  (``get_git_model``: ``eos_index=tokenizer.sep_token_id``); the prompt tokens are cut from the
  output as *tokens* (layers/decoder.py, ``CaptioningModel.infer``), then
  ``decode(skip_special_tokens=True)`` and strip.

Nothing is downloaded: checkpoints load with ``local_files_only=True`` from a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmbench.errors import DataError, MMBenchError

HERE = Path(__file__).resolve().parent
DEMO_CHECKPOINTS = {"blip": HERE / "demo_blip", "git": HERE / "demo_git"}
PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MODEL_TYPES = {"blip": "blip", "git": "git"}
CLASSES = {"blip": "BlipForConditionalGeneration", "git": "GitForCausalLM"}

#: The papers' evaluation settings. ``max_length`` counts prompt tokens (and GIT's [CLS] / BLIP's [DEC]).
PRESETS: dict[str, dict[str, Any]] = {
    # salesforce/BLIP:configs/caption_coco.yaml (image_size 384, max_length 20, min_length 5, num_beams 3,
    # prompt 'a picture of '); models/blip.py generate(): beam search, repetition_penalty=1.0; the other
    # settings are transformers' generate defaults of the time (length_penalty 1, no early stopping).
    "blip-coco": {"num_beams": 3, "max_length": 20, "min_length": 5, "repetition_penalty": 1.0,
                  "length_penalty": 1.0, "no_repeat_ngram_size": 0, "prompt": "a picture of ", "image_size": 384,
                  "source": "salesforce/BLIP:configs/caption_coco.yaml + models/blip.py"},
    # microsoft/GenerativeImage2Text:generativeimage2text/model.py get_git_model(): GeneratorWithBeamSearch(
    # eos_index=[SEP], max_steps=1024, beam_size=4, length_penalty=0.6); inference.py: prefix '' for captioning.
    "git-coco": {"num_beams": 4, "max_length": 1024, "min_length": 0, "repetition_penalty": 1.0,
                 "length_penalty": 0.6, "no_repeat_ngram_size": 0, "prompt": "", "image_size": None,
                 "source": "microsoft/GenerativeImage2Text:generativeimage2text/model.py + inference.py"},
    # not a paper setting: plain greedy decoding, named so that it is never a silent default
    "greedy": {"num_beams": 1, "max_length": 20, "min_length": 0, "repetition_penalty": 1.0,
               "length_penalty": 1.0, "no_repeat_ngram_size": 0, "prompt": "", "image_size": None,
               "source": "greedy decoding, max_length 20 (not a paper setting)"},
}
DEFAULT_PRESET = {"blip": "blip-coco", "git": "git-coco"}
GEN_OPTIONS = ("num_beams", "max_length", "max_new_tokens", "min_length", "repetition_penalty", "length_penalty",
               "no_repeat_ngram_size", "prompt")
OPTIONS = ("model", "device", "precision", "batch_size", "preset") + GEN_OPTIONS + ("seed",)

#: Known differences between transformers' beam search and the official decoders, recorded with every run.
CAVEATS = {
    "git": "official GIT ranks finished beams with the GNMT length penalty ((5+len)/6)**lp and expands each beam "
           "with its 2 best tokens only (microsoft/GenerativeImage2Text:generativeimage2text/layers/decoder.py, "
           "BeamHypotheses.get_score / GeneratorWithBeamSearch per_node_beam_size=2); transformers' generate "
           "divides by len**lp and keeps 2*num_beams candidates over all beams, so a caption can differ from the "
           "official decoder's on some images",
    "blip": "",
}


def _checkpoint_dir(path: str | None, kind: str) -> Path:
    if not path:  # the small checkpoints trained on the demo train split (train_demo.py) ship in the package
        return DEMO_CHECKPOINTS[kind]
    p = Path(path).expanduser()
    if not p.is_dir():
        raise MMBenchError(f"--option model={path!r}: {p} is not a local folder. mmbench never downloads models: "
                           f"give the folder a {CLASSES[kind]} checkpoint was saved to with save_pretrained "
                           f"(config.json, model.safetensors, tokenizer and processor files)")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise DataError(cfg, "missing: not a Hugging Face model folder", expected="config.json written by save_pretrained")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, OSError) as exc:
        raise DataError(cfg, f"cannot read: {exc}", expected="a JSON model config") from None
    if model_type != MODEL_TYPES[kind]:
        other = {v: k for k, v in MODEL_TYPES.items()}.get(model_type)
        hint = f"; use --plugin {other}" if other else ""
        raise DataError(cfg, f"model_type is {model_type!r}", field="model_type", expected=f"{MODEL_TYPES[kind]!r}{hint}")
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise DataError(p, "no weights file", expected=" or ".join(WEIGHT_FILES))
    return p


def _int(value, name: str, minimum: int = 1) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise MMBenchError(f"--option {name}={value!r} is not an integer") from None
    if out < minimum:
        raise MMBenchError(f"--option {name}={value!r} must be at least {minimum}")
    return out


def _float(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MMBenchError(f"--option {name}={value!r} is not a number") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise MMBenchError(f"--option {name}={value!r} must be finite")
    return out


def _get(obj, key):
    """A field of a processor size (a dict, or transformers 5's SizeDict)."""
    if obj is None:
        return None
    value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return int(value) if isinstance(value, (int, float)) else None


class HFCaptioner:
    """A BlipForConditionalGeneration or GitForCausalLM as an mmbench captioning model."""

    def __init__(self, path: Path, kind: str, *, preset: str, overrides: dict[str, Any], device: str = "auto",
                 precision: str = "fp32", batch_size: int = 16, seed: int = 0):
        import torch
        import transformers
        from transformers import AutoProcessor

        if precision not in PRECISIONS:
            raise MMBenchError(f"--option precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if precision != "fp32" and not device.startswith("cuda"):
            raise MMBenchError(f"--option precision={precision} needs a CUDA device (device is {device}); "
                               f"on CPU the model runs in fp32")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MMBenchError(f"--option device={device}: CUDA is not available")
        self.kind, self.device, self.precision, self.batch_size, self.seed = kind, device, precision, batch_size, seed
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        cls = getattr(transformers, CLASSES[kind])
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        transformers.utils.logging.disable_progress_bar()  # the harness draws its own progress bars
        try:
            model = cls.from_pretrained(str(path), local_files_only=True, **{dtype_kw: torch.float32})
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        except MMBenchError:
            raise
        except Exception as exc:  # a broken folder is a user error with the folder's name
            raise DataError(path, f"cannot load the {CLASSES[kind]} checkpoint: {type(exc).__name__}: {exc}") from None
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = self.processor.tokenizer
        self.path = path
        self.checkpoint_path = next(path / w for w in WEIGHT_FILES if (path / w).is_file())
        self._settings(preset, overrides)

    # ------------------------------------------------------------------ settings
    def _settings(self, preset: str, overrides: dict[str, Any]) -> None:
        cfg = self.model.config
        s = {k: v for k, v in PRESETS[preset].items() if k not in ("source", "image_size")}
        s["max_new_tokens"] = None
        s.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("max_new_tokens") is not None and overrides.get("max_length") is None:
            s["max_length"] = None  # max_new_tokens replaces the preset's max_length (transformers' precedence)
        if s["max_length"] is not None and s["max_new_tokens"] is not None:
            raise MMBenchError("give --option max_length or --option max_new_tokens, not both")
        max_pos = cfg.text_config.max_position_embeddings if self.kind == "blip" else cfg.max_position_embeddings
        notes = []
        if s["max_length"] is not None and s["max_length"] > max_pos:
            if overrides.get("max_length") is not None:
                raise MMBenchError(f"--option max_length={s['max_length']} exceeds the checkpoint's "
                                   f"max_position_embeddings ({max_pos})")
            notes.append(f"preset max_length {s['max_length']} capped at the checkpoint's max_position_embeddings "
                         f"{max_pos}")
            s["max_length"] = max_pos
        self.prompt = str(s.pop("prompt"))
        ids = self._prompt_ids(1)
        if s["max_length"] is not None and ids.shape[1] >= s["max_length"]:
            raise MMBenchError(f"the prompt {self.prompt!r} takes {ids.shape[1]} tokens, not less than "
                               f"max_length={s['max_length']}")
        if s["num_beams"] < 1:
            raise MMBenchError("--option num_beams must be at least 1")
        gen = {"do_sample": False, "num_beams": s["num_beams"], "num_return_sequences": 1, "early_stopping": False,
               "min_length": s["min_length"], "repetition_penalty": s["repetition_penalty"],
               "length_penalty": s["length_penalty"], "no_repeat_ngram_size": s["no_repeat_ngram_size"]}
        if s["max_new_tokens"] is not None:
            gen["max_new_tokens"] = s["max_new_tokens"]
        else:
            gen["max_length"] = s["max_length"]
        if self.kind == "git":  # BLIP's generate passes [SEP] / [PAD] itself
            gen["eos_token_id"] = self.tokenizer.sep_token_id
            gen["pad_token_id"] = self.tokenizer.pad_token_id
        self.generate_kwargs = gen
        ip = self.processor.image_processor
        size = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", False) else getattr(ip, "size", None)
        paper_size = PRESETS[preset]["image_size"]
        got = {k: _get(size, k) for k in ("height", "width", "shortest_edge") if _get(size, k) is not None}
        if paper_size and (got.get("height"), got.get("width")) != (paper_size, paper_size):
            notes.append(f"the preset's image size is {paper_size} px; this checkpoint's processor uses {got}")
        if CAVEATS[self.kind]:
            notes.append(CAVEATS[self.kind])
        self.details = {
            "model_class": CLASSES[self.kind], "preset": preset, "preset_source": PRESETS[preset]["source"],
            "generate": dict(gen), "prompt": self.prompt, "prompt_tokens": ids[0].tolist(),
            "prompt_removal": ("first len(prompt) characters of the decoded caption (salesforce/BLIP:models/blip.py)"
                               if self.kind == "blip" else "prompt tokens cut from the output "
                               "(microsoft/GenerativeImage2Text:generativeimage2text/layers/decoder.py)"),
            "postprocess": "batch_decode(skip_special_tokens=True), prompt removal, strip()",
            "image_processor": type(ip).__name__, "image_size": got,
            "checkpoint_generation_config": self.model.generation_config.to_diff_dict(),
            "device": self.device, "precision": self.precision, "batch_size": self.batch_size, "seed": self.seed,
            "notes": notes,
        }

    def _prompt_ids(self, n: int):
        import torch

        if self.kind == "blip":  # [CLS] prompt [SEP]; generate() swaps [CLS] for [DEC] and drops [SEP]
            enc = self.tokenizer([self.prompt] * n, return_tensors="pt")
            return enc["input_ids"]
        ids = [self.tokenizer.cls_token_id] + self.tokenizer(self.prompt, add_special_tokens=False)["input_ids"]
        return torch.tensor([ids] * n, dtype=torch.long)

    # ------------------------------------------------------------------ protocol
    def _pixels(self, images):
        pils = []
        for item in images:
            if item is None or "image" not in item.forms:
                raise DataError(None, f"image {getattr(item, 'id', None)!r} offers "
                                      f"{sorted(item.forms) if item is not None else []}",
                                field="image", expected=f"pixels: {self.kind} accepts the 'image' input form")
            pils.append(item.load())
        pv = self.processor.image_processor(images=pils, return_tensors="pt")["pixel_values"]
        return pv.to(device=self.device, dtype=self.dtype)

    def generate_ids(self, images):
        """The token ids ``generate`` returns (prompt included), as a CPU tensor."""
        import torch

        if not images:
            raise ValueError("generate() got an empty batch")
        pv = self._pixels(images)
        ids = self._prompt_ids(len(images)).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(pixel_values=pv, input_ids=ids, attention_mask=torch.ones_like(ids),
                                      **self.generate_kwargs)
        return out.cpu()

    def decode(self, ids) -> list[str]:
        if self.kind == "git":
            ids = ids[:, len(self._prompt_ids(1)[0]):]
            return [c.strip() for c in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        caps = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [c[len(self.prompt):].strip() for c in caps]

    def generate(self, images) -> list[str]:
        return self.decode(self.generate_ids(list(images)))


def _build(kind: str, model=None, device="auto", precision="fp32", batch_size="16", preset=None, seed=0,
           **rest) -> HFCaptioner:
    unknown = sorted(set(rest) - set(GEN_OPTIONS))
    if unknown:
        raise MMBenchError(f"unknown option(s) {unknown} for {kind}; known: {', '.join(OPTIONS)}")
    preset = preset or DEFAULT_PRESET[kind]
    if preset not in PRESETS:
        raise MMBenchError(f"--option preset={preset!r} is not one of {', '.join(PRESETS)}")
    ov: dict[str, Any] = {}
    for name in ("num_beams", "max_length", "max_new_tokens"):
        if rest.get(name) is not None:
            ov[name] = _int(rest[name], name)
    for name in ("min_length", "no_repeat_ngram_size"):
        if rest.get(name) is not None:
            ov[name] = _int(rest[name], name, minimum=0)
    for name in ("repetition_penalty", "length_penalty"):
        if rest.get(name) is not None:
            ov[name] = _float(rest[name], name)
    if rest.get("prompt") is not None:
        ov["prompt"] = str(rest["prompt"])
    return HFCaptioner(_checkpoint_dir(model, kind), kind, preset=preset, overrides=ov, device=str(device),
                       precision=str(precision), batch_size=_int(batch_size, "batch_size"),
                       seed=_int(seed, "seed", minimum=0))


def build_blip(**options) -> HFCaptioner:
    return _build("blip", **options)


def build_git(**options) -> HFCaptioner:
    return _build("git", **options)
