"""BLIP, BLIP-2 and GIT captioners over local Hugging Face checkpoints, decoding with transformers' ``generate``.

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
- BLIP-2 with an OPT language model (salesforce/LAVIS:lavis/models/blip2_models/blip2_opt.py, ``Blip2OPT.generate``
  at commit cd4db98, the release the paper's numbers come from): the prompt is tokenised with the tokenizer's
  special tokens (``</s> a photo of``); the language model sees the ``num_query_tokens`` projected Q-Former
  outputs, then the prompt; ``"\n"``'s first token ends a caption (``self.eos_token_id``); ``max_len`` is
  ``max_new_tokens`` and ``min_len`` counts the prompt's tokens (the 4.26-era ``generate`` was given the
  prompt ids only, the queries were concatenated inside OPT's forward); the output after the prompt is
  ``batch_decode(skip_special_tokens=True)`` and stripped. transformers' ``Blip2ForConditionalGeneration``
  takes ``num_query_tokens`` image placeholder tokens before the prompt instead, so the plugin builds
  ``[image_token] * num_query_tokens + tokenizer(prompt)`` itself, translates the lengths to
  ``max_new_tokens`` / ``min_new_tokens`` and cuts exactly that input prefix from the output when
  ``generate`` returns it (it does when the input ids reach the language model's ``generate``, as in 5.x;
  the pre-image-token releases returned the new tokens only). It needs transformers >= 4.45, the first
  with the image-token path (huggingface/transformers#34223 shows it in 4.45.2); tested on 5.24.

Nothing is downloaded: checkpoints load with ``local_files_only=True`` from a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmbench.errors import DataError, MMBenchError

HERE = Path(__file__).resolve().parent
DEMO_CHECKPOINTS = {"blip": HERE / "demo_blip", "git": HERE / "demo_git", "blip2": HERE / "demo_blip2"}
PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MODEL_TYPES = {"blip": "blip", "git": "git", "blip2": "blip-2"}
CLASSES = {"blip": "BlipForConditionalGeneration", "git": "GitForCausalLM", "blip2": "Blip2ForConditionalGeneration"}

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
    # salesforce/LAVIS:lavis/projects/blip2/eval/caption_coco_opt2.7b_eval.yaml (and _opt6.7b_): image_size 364,
    # max_len 30, min_len 8, num_beams 5; lavis/configs/models/blip2/blip2_caption_opt2.7b.yaml: prompt 'a photo of';
    # lavis/tasks/captioning.py valid_step (at cd4db98) passes only those three; Blip2OPT.generate's defaults:
    # repetition_penalty 1.0, length_penalty 1.0, eos = the first token of "\n". For BLIP-2 the lengths are LAVIS's:
    # max_length = max_new_tokens, min_length counts the prompt tokens (not the query tokens).
    "blip2-coco": {"num_beams": 5, "max_length": None, "max_new_tokens": 30, "min_length": 8,
                   "repetition_penalty": 1.0, "length_penalty": 1.0, "no_repeat_ngram_size": 0, "prompt": "a photo of",
                   "image_size": 364,
                   "source": "salesforce/LAVIS:lavis/projects/blip2/eval/caption_coco_opt2.7b_eval.yaml + "
                             "lavis/configs/models/blip2/blip2_caption_opt2.7b.yaml + "
                             "lavis/models/blip2_models/blip2_opt.py (cd4db98)"},
    # not a paper setting: plain greedy decoding, named so that it is never a silent default
    "greedy": {"num_beams": 1, "max_length": 20, "min_length": 0, "repetition_penalty": 1.0,
               "length_penalty": 1.0, "no_repeat_ngram_size": 0, "prompt": "", "image_size": None,
               "source": "greedy decoding, max_length 20 (not a paper setting)"},
}
#: salesforce/LAVIS:lavis/models/blip2_models/blip2_opt.py: BLIP-2 OPT captions end at the first token of "\n".
BLIP2_EOS = "\n"
DEFAULT_PRESET = {"blip": "blip-coco", "git": "git-coco", "blip2": "blip2-coco"}
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
    "blip2": "LAVIS's BLIP-2 evaluation ran transformers 4.25/4.26 (salesforce/LAVIS:requirements.txt at cd4db98), whose "
             "beam search divided a finished beam's summed log-probability by its whole length, prompt tokens "
             "included; since huggingface/transformers#27351 and #27808 (v4.36) it divides by the generated length "
             "only, so with length_penalty 1 a caption can differ from LAVIS's on some images",
}


def _checkpoint_dir(path: str | None, kind: str) -> Path:
    if not path:  # the small checkpoints trained on the demo train split (train_demo.py) ship in the package
        if not DEMO_CHECKPOINTS[kind].is_dir():
            raise MMBenchError(f"{kind}: no demo checkpoint ships with this package; give --option model=PATH, a "
                               f"local folder a {CLASSES[kind]} was saved to with save_pretrained")
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
    """A BlipForConditionalGeneration, Blip2ForConditionalGeneration (OPT) or GitForCausalLM as a captioning model."""

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
        if kind == "blip2":
            self._check_blip2(path)
        self.path = path
        self.checkpoint_path = next(path / w for w in WEIGHT_FILES if (path / w).is_file())
        self._settings(preset, overrides)

    def _check_blip2(self, path: Path) -> None:
        cfg = self.model.config
        cfg_file = path / "config.json"
        if not getattr(cfg, "use_decoder_only_language_model", True):
            raise DataError(cfg_file, f"the language model is a {cfg.text_config.model_type!r} (encoder-decoder)",
                            field="text_config.model_type",
                            expected="a decoder-only OPT language model (LAVIS blip2_opt); BLIP-2 Flan-T5 is not "
                                     "supported by this plugin")
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        if (major, minor) < (4, 45):
            raise MMBenchError(f"blip2 needs transformers >= 4.45 (BLIP-2 with image tokens in the input); this is "
                               f"{transformers.__version__}")
        if getattr(cfg, "image_token_index", None) is None:
            raise DataError(cfg_file, "image_token_index is not set: transformers' Blip2ForConditionalGeneration "
                                      "marks the query positions with image tokens (without it the images would be "
                                      "ignored)",
                            field="image_token_index",
                            expected="the tokenizer's id of '<image>' (checkpoints saved by older transformers "
                                     "lack it; add it and num_query_tokens, or re-save with a current release)")
        self.image_token_id = int(cfg.image_token_index)
        self.num_query_tokens = int(cfg.num_query_tokens)

    # ------------------------------------------------------------------ settings
    def _settings(self, preset: str, overrides: dict[str, Any]) -> None:
        if self.kind == "blip2":
            return self._settings_blip2(preset, overrides)
        cfg = self.model.config
        s = {k: v for k, v in PRESETS[preset].items() if k not in ("source", "image_size")}
        s.setdefault("max_new_tokens", None)
        s.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("max_new_tokens") is not None and overrides.get("max_length") is None:
            s["max_length"] = None  # max_new_tokens replaces the preset's max_length (transformers' precedence)
        if overrides.get("max_length") is not None and overrides.get("max_new_tokens") is None:
            s["max_new_tokens"] = None  # and max_length a preset's max_new_tokens
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
        got = self._image_size(preset, notes)
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

    def _settings_blip2(self, preset: str, overrides: dict[str, Any]) -> None:
        """LAVIS's lengths: ``max_length`` counts the prompt's tokens (its ``max_len`` is ``max_new_tokens``),
        ``min_length`` counts them too; translated to ``max_new_tokens`` / ``min_new_tokens`` because
        transformers' input also holds the ``num_query_tokens`` image tokens."""
        cfg = self.model.config
        s = {k: v for k, v in PRESETS[preset].items() if k not in ("source", "image_size")}
        s.setdefault("max_new_tokens", None)
        s.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("max_new_tokens") is not None and overrides.get("max_length") is None:
            s["max_length"] = None
        if overrides.get("max_length") is not None and overrides.get("max_new_tokens") is None:
            s["max_new_tokens"] = None
        if s["max_length"] is not None and s["max_new_tokens"] is not None:
            raise MMBenchError("give --option max_length or --option max_new_tokens, not both")
        if s["num_beams"] < 1:
            raise MMBenchError("--option num_beams must be at least 1")
        self.prompt = str(s.pop("prompt"))
        ids = self._prompt_ids(1)
        n_prompt = ids.shape[1] - self.num_query_tokens
        if s["max_new_tokens"] is None:
            if n_prompt >= s["max_length"]:
                raise MMBenchError(f"the prompt {self.prompt!r} takes {n_prompt} tokens, not less than "
                                   f"max_length={s['max_length']}")
            s["max_new_tokens"] = s["max_length"] - n_prompt
        notes = []
        max_pos = cfg.text_config.max_position_embeddings
        if ids.shape[1] + s["max_new_tokens"] > max_pos:
            room = max_pos - ids.shape[1]
            if overrides.get("max_length") is not None or overrides.get("max_new_tokens") is not None or room < 1:
                raise MMBenchError(f"{self.num_query_tokens} query tokens + {n_prompt} prompt tokens + "
                                   f"{s['max_new_tokens']} new tokens exceed the checkpoint's "
                                   f"max_position_embeddings ({max_pos})")
            notes.append(f"preset max_new_tokens {s['max_new_tokens']} capped at {room} by the checkpoint's "
                         f"max_position_embeddings {max_pos}")
            s["max_new_tokens"] = room
        eos_ids = self.tokenizer(BLIP2_EOS, add_special_tokens=False)["input_ids"]
        if not eos_ids:
            raise DataError(self.path, f"the tokenizer encodes {BLIP2_EOS!r} as no token",
                            expected="an OPT tokenizer (LAVIS ends BLIP-2 captions at the first token of '\\n')")
        self.eos_token_id = int(eos_ids[0])  # Blip2OPT.__init__: opt_tokenizer("\n", add_special_tokens=False).input_ids[0]
        gen = {"do_sample": False, "num_beams": s["num_beams"], "num_return_sequences": 1, "early_stopping": False,
               "max_new_tokens": s["max_new_tokens"], "min_new_tokens": max(0, s["min_length"] - n_prompt),
               "repetition_penalty": s["repetition_penalty"], "length_penalty": s["length_penalty"],
               "no_repeat_ngram_size": s["no_repeat_ngram_size"], "eos_token_id": self.eos_token_id,
               "pad_token_id": self.tokenizer.pad_token_id}
        self.generate_kwargs = gen
        got = self._image_size(preset, notes)
        notes.append(CAVEATS["blip2"])
        self.details = {
            "model_class": CLASSES[self.kind], "preset": preset, "preset_source": PRESETS[preset]["source"],
            "generate": dict(gen), "prompt": self.prompt, "prompt_tokens": ids[0, self.num_query_tokens:].tolist(),
            "num_query_tokens": self.num_query_tokens, "image_token_id": self.image_token_id,
            "lavis_lengths": {"max_len (new tokens)": s["max_new_tokens"], "min_len (prompt tokens included)":
                              s["min_length"], "prompt_tokens": n_prompt},
            "eos": BLIP2_EOS, "prompt_removal": "the input ids (query image tokens + prompt tokens) are cut from the "
                                              "output when generate returns them (salesforce/LAVIS:lavis/models/"
                                              "blip2_models/blip2_opt.py, outputs[:, prompt_length:])",
            "postprocess": "batch_decode(skip_special_tokens=True), strip()",
            "image_processor": type(self.processor.image_processor).__name__, "image_size": got,
            "checkpoint_generation_config": self.model.generation_config.to_diff_dict(),
            "device": self.device, "precision": self.precision, "batch_size": self.batch_size, "seed": self.seed,
            "notes": notes,
        }

    def _image_size(self, preset: str, notes: list) -> dict:
        ip = self.processor.image_processor
        size = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", False) else getattr(ip, "size", None)
        paper_size = PRESETS[preset]["image_size"]
        got = {k: _get(size, k) for k in ("height", "width", "shortest_edge") if _get(size, k) is not None}
        if paper_size and (got.get("height"), got.get("width")) != (paper_size, paper_size):
            notes.append(f"the preset's image size is {paper_size} px; this checkpoint's processor uses {got}")
        return got

    def _prompt_ids(self, n: int):
        import torch

        if self.kind == "blip2":  # [image]*Q + tokenizer(prompt) with its special tokens (LAVIS: opt_tokenizer(prompt))
            ids = [self.image_token_id] * self.num_query_tokens + self.tokenizer(self.prompt)["input_ids"]
            return torch.tensor([ids] * n, dtype=torch.long)
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
        if self.kind == "blip2":
            return [c.strip() for c in self.tokenizer.batch_decode(self.new_tokens(ids), skip_special_tokens=True)]
        if self.kind == "git":
            ids = ids[:, len(self._prompt_ids(1)[0]):]
            return [c.strip() for c in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        caps = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [c[len(self.prompt):].strip() for c in caps]

    def new_tokens(self, ids):
        """BLIP-2: the generated tokens. transformers 5.x returns the input ids (query image tokens + prompt)
        before them, the pre-image-token releases only the new tokens; the input prefix is cut exactly when it
        is there."""
        start = self._prompt_ids(ids.shape[0])
        n = start.shape[1]
        if ids.shape[1] >= n and bool((ids[:, :n] == start).all()):
            return ids[:, n:]
        return ids

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


def build_blip2(**options) -> HFCaptioner:
    return _build("blip2", **options)
