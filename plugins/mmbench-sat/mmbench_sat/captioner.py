"""The mmbench captioner around a Show-Attend-Tell tutorial checkpoint + WORDMAP json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError

from mmbench_sat.loading import attr, flatten, load_whole_checkpoint
from mmbench_sat.model import Encoder, build_decoder, build_resnet_trunk
from mmbench_sat.options import OPTIONS

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo"
DEMO_CHECKPOINT = DEMO_DIR / "BEST_checkpoint_demo.pth.tar"
DEMO_WORDMAP = DEMO_DIR / "WORDMAP_demo.json"

IMAGE_SIZE = 256
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MAX_STEPS = 50  # caption.py: `if step > 50: break`


def preprocess(pil) -> np.ndarray:
    """caption.py: imresize(img, (256, 256)) (PIL bilinear on uint8), /255., Normalize -> (3, 256, 256) float32."""
    from PIL import Image

    img = pil if pil.mode == "RGB" else pil.convert("RGB")  # a greyscale image is stacked to 3 channels
    arr = np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.uint8)
    x = torch.FloatTensor(arr.transpose(2, 0, 1) / 255.)  # float64 division, then float32 (as caption.py)
    return ((x - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]).numpy()


def beam_search(decoder, encoder_out: torch.Tensor, word_map: dict, beam_size: int) -> dict:
    """caption.py caption_image_beam_search for one image's ``encoder_out`` (1, H, W, D).

    Returns {seq (with <start>/<end>), score, alphas (len(seq), H, W), complete_seqs, complete_scores,
    steps}; ``seq`` is None when no beam reached ``<end>`` within the official 51 steps.
    """
    k = beam_size
    vocab_size = len(word_map)
    enc_size, dim = encoder_out.size(1), encoder_out.size(3)
    encoder_out = encoder_out.view(1, -1, dim).expand(k, -1, dim)
    start, end = word_map["<start>"], word_map["<end>"]
    k_prev_words = torch.LongTensor([[start]] * k)
    seqs = k_prev_words
    top_k_scores = torch.zeros(k, 1)
    seqs_alpha = torch.ones(k, 1, enc_size, enc_size)
    complete_seqs, complete_alpha, complete_scores, steps = [], [], [], []
    step = 1
    h, c = decoder.init_hidden_state(encoder_out)
    while True:
        scores, alpha, h, c = decoder.step(k_prev_words.squeeze(1), encoder_out, h, c)
        alpha = alpha.view(-1, enc_size, enc_size)
        scores = top_k_scores.expand_as(scores) + scores
        if step == 1:
            top_k_scores, top_k_words = scores[0].topk(k, 0, True, True)
        else:
            top_k_scores, top_k_words = scores.view(-1).topk(k, 0, True, True)
        prev_word_inds = top_k_words // vocab_size
        next_word_inds = top_k_words % vocab_size
        seqs = torch.cat([seqs[prev_word_inds], next_word_inds.unsqueeze(1)], dim=1)
        seqs_alpha = torch.cat([seqs_alpha[prev_word_inds], alpha[prev_word_inds].unsqueeze(1)], dim=1)
        steps.append({"k": k, "top_k_scores": top_k_scores.tolist(), "prev_beam": prev_word_inds.tolist(),
                      "words": next_word_inds.tolist()})
        incomplete = [i for i, w in enumerate(next_word_inds.tolist()) if w != end]
        complete = list(set(range(len(next_word_inds))) - set(incomplete))  # a set, as caption.py (ascending here)
        if complete:
            complete_seqs.extend(seqs[complete].tolist())
            complete_alpha.extend(seqs_alpha[complete])
            complete_scores.extend(top_k_scores[complete])
        k -= len(complete)
        if k == 0:
            break
        seqs = seqs[incomplete]
        seqs_alpha = seqs_alpha[incomplete]
        h = h[prev_word_inds[incomplete]]
        c = c[prev_word_inds[incomplete]]
        encoder_out = encoder_out[prev_word_inds[incomplete]]
        top_k_scores = top_k_scores[incomplete].unsqueeze(1)
        k_prev_words = next_word_inds[incomplete].unsqueeze(1)
        if step > MAX_STEPS:
            break
        step += 1
    out = {"complete_seqs": complete_seqs, "complete_scores": [float(s) for s in complete_scores], "steps": steps,
           "seq": None, "score": None, "alphas": None}
    if complete_scores:
        i = complete_scores.index(max(complete_scores))  # first of equal maxima
        out.update(seq=complete_seqs[i], score=float(complete_scores[i]), alphas=complete_alpha[i].numpy())
    return out


class SATCaptioner:
    """``generate(images) -> captions``: the tutorial's encoder + beam search (caption.py / eval.py)."""

    accepts = ("image", "image_file")

    def __init__(self, checkpoint: str | None = None, word_map: str | None = None, beam_size="3",
                 batch_size="16", device=None, allow_unsafe_pickle="false", seed=0, precision="fp32"):
        if (checkpoint is None) != (word_map is None):
            raise PluginError("sat: give both checkpoint=PATH (BEST_checkpoint_*.pth.tar) and word_map=PATH "
                              "(WORDMAP_*.json), or neither for the shipped demo model")
        if checkpoint is None:
            checkpoint, word_map = DEMO_CHECKPOINT, DEMO_WORDMAP
        self.checkpoint_path = str(checkpoint)
        self.beam_size = parse_int(beam_size, option="beam_size")
        self.batch_size = parse_int(batch_size, option="batch_size")
        self.device = torch.device(resolve_device(device))
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        self.precision = str(precision).strip()
        if self.precision not in dtypes:
            raise PluginError(f"sat: option precision={precision!r}: expected one of {', '.join(dtypes)}")
        if self.precision != "fp32" and self.device.type != "cuda":
            raise PluginError(f"sat: option precision={self.precision} needs a CUDA device (device is {self.device})")
        self.dtype = dtypes[self.precision]
        self.seed = int(seed)
        unsafe = parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle")
        self.word_map = self._read_word_map(Path(word_map))
        self.rev_word_map = {v: w for w, v in self.word_map.items()}
        ck = load_whole_checkpoint(checkpoint, allow_unsafe_pickle=unsafe)
        enc_sd, enc_mods = flatten(ck["encoder"])
        dec_sd, _ = flatten(ck["decoder"])
        self.encoder = Encoder(build_resnet_trunk(enc_mods, enc_sd, checkpoint),
                               int(attr(ck["encoder"], "enc_image_size", 14)))
        self.decoder = build_decoder(dec_sd, checkpoint)
        for name, module, sd in (("encoder", self.encoder, enc_sd), ("decoder", self.decoder, dec_sd)):
            res = module.load_state_dict(sd, strict=False)
            if res.missing_keys or res.unexpected_keys:
                raise DataError(checkpoint, f"{name} tensors do not fit the rebuilt network (missing "
                                            f"{res.missing_keys[:5]}, unexpected {res.unexpected_keys[:5]})",
                                field=name, expected="the tutorial's Encoder / DecoderWithAttention")
        if self.decoder.vocab_size != len(self.word_map):
            raise DataError(word_map, f"has {len(self.word_map)} words but the decoder has {self.decoder.vocab_size}",
                            expected="the word map the checkpoint was trained with")
        self.encoder.eval()  # before any forward: BatchNorm in train mode would update the running statistics
        with torch.no_grad():
            enc_dim = self.encoder.resnet(torch.zeros(1, 3, 64, 64)).shape[1]
        if enc_dim != self.decoder.encoder_dim:
            raise DataError(checkpoint, f"encoder gives {enc_dim} channels but the decoder expects "
                                        f"{self.decoder.encoder_dim}", expected="a matching encoder and decoder")
        self.encoder.to(self.device, self.dtype).eval()
        self.decoder.eval()  # the beam search runs on the CPU (a Python loop over a few beams)
        self.details = {
            "beam_size": self.beam_size, "max_steps": MAX_STEPS + 1, "image_size": IMAGE_SIZE,
            "resize": "PIL bilinear to 256x256 (scipy.misc.imresize as caption.py), ImageNet mean/std",
            "encoder": {"blocks": [len(m) for m in self.encoder.resnet if isinstance(m, torch.nn.Sequential)],
                        "block": next((b[0].kind for b in self.encoder.resnet if isinstance(b, torch.nn.Sequential)), ""),
                        "channels": int(enc_dim), "enc_image_size": self.encoder.enc_image_size},
            "decoder": {"attention_dim": self.decoder.attention_dim, "embed_dim": self.decoder.embed_dim,
                        "decoder_dim": self.decoder.decoder_dim, "vocab_size": self.decoder.vocab_size},
            "device": str(self.device), "precision": self.precision,
            "precision_applies_to": "the encoder (the beam search runs in float32 on the CPU)",
            "unk_suppressed": False, "length_normalisation": False,
            "checkpoint_epoch": ck.get("epoch") if isinstance(ck, dict) else None,
        }
        self.last_results: list[dict] = []

    @staticmethod
    def _read_word_map(path: Path) -> dict:
        try:
            wm = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "word map not found", expected="WORDMAP_*.json (create_input_files)") from None
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a readable JSON word map: {exc}") from None
        if not isinstance(wm, dict) or not all(isinstance(v, int) for v in wm.values()):
            raise DataError(path, "is not a {word: id} object", expected="WORDMAP_*.json")
        for tok in ("<start>", "<end>", "<pad>"):
            if tok not in wm:
                raise DataError(path, f"has no {tok}", field=tok, expected="the tutorial's special tokens")
        return wm

    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        for item in images:
            if not ({"image", "image_file"} & set(getattr(item, "forms", ()))):
                raise PluginError(f"sat: image {item.id!r} has no pixels (forms: {sorted(item.forms)}); "
                                  "Show-Attend-Tell encodes images with its ResNet")
        x = torch.from_numpy(np.stack([preprocess(item.load()) for item in images])).to(self.device, self.dtype)
        return self.encoder(x).float().cpu()

    @torch.no_grad()
    def caption(self, images) -> list[dict]:
        if not images:
            raise PluginError("sat: generate() called with no images")
        enc = self.encode(images)
        out = []
        for item, e in zip(images, enc):
            r = beam_search(self.decoder, e.unsqueeze(0), self.word_map, self.beam_size)
            if r["seq"] is None:
                raise PluginError(f"sat: image {item.id!r}: no beam reached <end> within {MAX_STEPS + 1} steps; the "
                                  "official caption.py fails here too (max() of an empty sequence)")
            out.append(r)
        return out

    def words(self, seq: list[int]) -> str:
        # eval.py: hypotheses drop <start>, <end> and <pad>; <unk> stays a word
        drop = {self.word_map["<start>"], self.word_map["<end>"], self.word_map["<pad>"]}
        return " ".join(self.rev_word_map[i] for i in seq if i not in drop)

    def generate(self, images) -> list[str]:
        res = self.caption(list(images))
        self.last_results = res
        return [self.words(r["seq"]) for r in res]


def build(**options: Any) -> SATCaptioner:
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise PluginError(f"sat: unknown option(s) {bad}; known: {', '.join(OPTIONS)}")
    return SATCaptioner(**options)
