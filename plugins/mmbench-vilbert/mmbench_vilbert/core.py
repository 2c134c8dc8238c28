"""Loading an official ViLBERT checkpoint, BERT tokenisation and the official input layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbench.checkpoints import load_checkpoint, parse_bool, parse_int, resolve_device
from mmbench.errors import DataError, PluginError

from mmbench_vilbert.config import INERT, read_config
from mmbench_vilbert.model import ViLBERT

DATA = Path(__file__).resolve().parent / "data"
DEMO_DIR = DATA / "demo"  # vilbert (retrieval)
REFER_DEMO_DIR = DATA / "demo-refcoco+"  # vilbert-refcoco+ (referring expressions over the demo's proposals)
DEMO_FILES = {"checkpoint": "pytorch_model.bin", "config": "config.json", "vocab": "vocab.txt"}
#: vilbert_tasks.yml task ids (the task token of a multi-task checkpoint)
TASK_IDS = {"RetrievalCOCO": 7, "RetrievalFlickr30k": 8, "refcoco": 9, "refcoco+": 10, "refcocog": 11}
TASK_EMB = "bert.embeddings.task_embeddings.weight"


def official_state_dict(path, *, allow_unsafe_pickle: bool = False) -> dict:
    """The state_dict of ``torch.save(model.state_dict(), "pytorch_model_<epoch>.bin")`` (train_tasks.py,
    train_concap.py); a ``pytorch_ckpt_latest.tar`` dict's ``model_state_dict`` is accepted too. Keys renamed
    gamma -> weight, beta -> bias as ``PreTrainedModel.from_pretrained`` does (vilbert/utils.py); a bare
    ``BertModel`` state_dict (no ``bert.`` prefix) gets the prefix, as from_pretrained loads it into ``.bert``."""
    sd = load_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle, what="ViLBERT checkpoint")
    if isinstance(sd, dict) and "model_state_dict" in sd and isinstance(sd["model_state_dict"], dict):
        sd = sd["model_state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DataError(path, f"is a {type(sd).__name__}, not a state_dict of tensors",
                        expected="torch.save(model.state_dict()) of VILBertForVLTasks / BertForMultiModalPreTraining")
    out = {}
    for k, v in sd.items():
        k = str(k)
        if k.startswith("module."):  # a DataParallel-wrapped save
            k = k[len("module."):]
        out[k.replace("gamma", "weight").replace("beta", "bias")] = v
    if not any(k.startswith("bert.") for k in out):
        out = {"bert." + k: v for k, v in out.items()}
    return out


def load_weights(model: ViLBERT, sd: dict, path) -> list[str]:
    """Copy every tensor the scoring model needs from ``sd`` (shapes checked); returns the unused keys.

    The official ``from_pretrained`` leaves missing weights randomly initialised (it only logs them);
    mmbench refuses instead, naming the first missing key."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        hint = ""
        if any(k.startswith("vil_logit.") for k in missing):
            hint = (" (a pre-trained BertForMultiModalPreTraining checkpoint has no vil_logit head: use "
                    "head=alignment for zero-shot retrieval)")
        elif any(k.startswith("vision_logit.") for k in missing):
            hint = " (referring expressions need a VILBertForVLTasks checkpoint with the vision_logit head)"
        elif TASK_EMB in missing:
            hint = " (task_specific_tokens=true needs a multi-task checkpoint)"
        raise DataError(path, f"{len(missing)} weight(s) missing, first {missing[0]!r}{hint}", field=missing[0],
                        expected="the weights of the architecture the config json describes")
    for k, t in own.items():
        if tuple(sd[k].shape) != tuple(t.shape):
            raise DataError(path, f"weight {k!r} has shape {tuple(sd[k].shape)}, the config gives {tuple(t.shape)}",
                            field=k, expected="the config json the checkpoint was trained with")
    model.load_state_dict({k: sd[k].float() for k in own}, strict=True)
    return sorted(k for k in sd if k not in own)


def resolve_files(plugin: str, checkpoint, config, vocab, demo_dir: Path = DEMO_DIR) -> tuple[Path, Path, Path, bool]:
    """(checkpoint, config, vocab, is_demo): none given -> the shipped demo model in ``demo_dir``; otherwise all
    three."""
    given = {"checkpoint": checkpoint, "config": config, "vocab": vocab}
    if all(v in (None, "") for v in given.values()):
        return (demo_dir / DEMO_FILES["checkpoint"], demo_dir / DEMO_FILES["config"], demo_dir / DEMO_FILES["vocab"],
                True)
    lacking = [k for k, v in given.items() if v in (None, "")]
    if lacking:
        raise PluginError(f"{plugin}: option(s) {', '.join(lacking)} missing: an official model needs checkpoint "
                          f"(pytorch_model.bin / multi_task_model.bin), config (its config json, e.g. "
                          f"bert_base_6layer_6conect.json) and vocab (the bert-base-uncased vocab.txt or its folder)")
    return Path(checkpoint), Path(config), Path(vocab), False


class Tokenizer:
    """BERT WordPiece from a local vocab (transformers' BertTokenizer, lower-cased as ViLBERT's loaders ask).

    ``encode`` is retreival_dataset.py / refer_expression_dataset.py ``tokenize``: ``tokenizer.encode(text)``
    (no special tokens), cut to ``max_seq_length - 2``, ``[CLS] ... [SEP]``, padded with 0 to
    ``max_seq_length`` (input mask and segment ids 0 there)."""

    def __init__(self, vocab: Path, vocab_size: int):
        from transformers import BertTokenizer

        path = Path(vocab)
        file = path / "vocab.txt" if path.is_dir() else path
        if not file.is_file():
            raise DataError(file, "BERT vocab not found", expected="a vocab.txt (one WordPiece token per line) or its folder")
        try:  # transformers >= 5 names the vocab file ``vocab``; 4.x ``vocab_file``
            self.tok = BertTokenizer(vocab=str(file), do_lower_case=True)
        except TypeError:  # pragma: no cover - transformers 4.x
            self.tok = BertTokenizer(vocab_file=str(file), do_lower_case=True)
        self.size = len(self.tok.get_vocab())
        if self.size != vocab_size:
            raise DataError(file, f"{self.size} tokens, the config's vocab_size is {vocab_size}", field="vocab_size",
                            expected="the vocab the checkpoint was trained with")
        self.cls, self.sep = self.tok.convert_tokens_to_ids("[CLS]"), self.tok.convert_tokens_to_ids("[SEP]")
        if self.tok.convert_tokens_to_ids("[PAD]") != 0:
            raise DataError(file, "[PAD] is not token 0", expected="a BERT vocab with [PAD] first (padding id 0)")

    def encode(self, texts: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.zeros((len(texts), max_len), np.int64)
        mask = np.zeros((len(texts), max_len), np.int64)
        for i, t in enumerate(texts):
            toks = self.tok.convert_tokens_to_ids(self.tok.tokenize(t))[: max_len - 2]
            row = [self.cls] + list(toks) + [self.sep]
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return ids, mask


def image_inputs(items, *, feature_size: int, max_regions: int, boxes: str, plugin: str):
    """The official per-image layout (``_image_features_reader.py`` + the datasets' padding).

    Region 0 is the mean of the N region features (float32 ``sum / N``) with location [0, 0, 1, 1, 1];
    regions 1..N carry [x1/w, y1/h, x2/w, y2/h, (y2-y1)(x2-x1)/(w h)] (area in pixels, float32). At most
    ``max_regions`` rows (global + the first ``max_regions - 1`` boxes, as ``max_region_num`` cuts).
    ``boxes='whole_image'``: items without ``region_boxes`` get the location [0, 0, 1, 1, 1] for every region
    (the demo's features have no boxes). Returns (features (B, R, D), locations (B, R, 5), mask (B, R),
    per-image list of (global + kept) pixel boxes)."""
    feats, locs, pix = [], [], []
    for im in items:
        r = getattr(im, "regions", None)
        if r is None:
            raise PluginError(f"{plugin}: image {im.id!r} has no region features (forms {sorted(im.forms)}); ViLBERT "
                              f"reads bottom-up region features with their boxes (e.g. -d vilbert_flickr30k)")
        r = np.asarray(r, dtype=np.float32)
        if r.ndim != 2 or r.shape[1] != feature_size or r.shape[0] == 0:
            raise PluginError(f"{plugin}: image {im.id!r}: regions have shape {r.shape}, the config's v_feature_size "
                              f"is {feature_size}")
        b = getattr(im, "region_boxes", None)
        size = getattr(im, "size", None)
        n = r.shape[0]
        g = (np.sum(r, axis=0) / n).astype(np.float32)
        if b is not None and size is not None:
            b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
            if b.shape[0] != n:
                raise PluginError(f"{plugin}: image {im.id!r}: {b.shape[0]} region boxes for {n} feature rows")
            w, h = float(size[0]), float(size[1])
            loc = np.zeros((n, 5), np.float32)
            loc[:, :4] = b
            loc[:, 4] = (loc[:, 3] - loc[:, 1]) * (loc[:, 2] - loc[:, 0]) / (w * h)
            loc[:, 0] /= w
            loc[:, 1] /= h
            loc[:, 2] /= w
            loc[:, 3] /= h
            px = np.concatenate([np.array([[0, 0, w, h]], np.float64), b.astype(np.float64)])
        elif boxes == "whole_image":
            loc = np.tile(np.array([0, 0, 1, 1, 1], np.float32), (n, 1))
            px = None
        else:
            raise PluginError(f"{plugin}: image {im.id!r} has region features but no region boxes / image size: "
                              f"ViLBERT's 5-d locations need them (ImageItem.region_boxes, e.g. from -d vilbert_flickr30k "
                              f"or -d vilbert_refer); boxes=whole_image gives every region the whole-image location")
        f = np.concatenate([g[None], r])[:max_regions]
        lo = np.concatenate([np.array([[0, 0, 1, 1, 1]], np.float32), loc])[:max_regions]
        feats.append(f)
        locs.append(lo)
        pix.append(None if px is None else px[:max_regions])
    R = max(f.shape[0] for f in feats)
    F = np.zeros((len(items), R, feature_size), np.float32)
    L = np.zeros((len(items), R, 5), np.float32)
    M = np.zeros((len(items), R), np.int64)
    for i, (f, lo) in enumerate(zip(feats, locs)):
        F[i, :len(f)], L[i, :len(f)], M[i, :len(f)] = f, lo, 1
    return F, L, M, pix


class ViLBERTBase:
    """What both models share: files, config, weights, tokeniser, device and the run details."""

    plugin = "vilbert"
    heads: tuple[str, ...] = ()
    default_task = "RetrievalFlickr30k"
    default_max_seq = 30
    demo_dir = DEMO_DIR

    def __init__(self, checkpoint=None, config=None, vocab=None, device=None, task_id=None, task_specific_tokens="auto",
                 max_seq_length=None, max_region_num=101, boxes="auto", allow_unsafe_pickle=False, batch_size=None):
        ck, cfg_path, voc, self.is_demo = resolve_files(self.plugin, checkpoint, config, vocab, self.demo_dir)
        self.device = torch.device(resolve_device(device))
        cfg = read_config(cfg_path)
        sd = official_state_dict(ck, allow_unsafe_pickle=parse_bool(allow_unsafe_pickle, option="allow_unsafe_pickle"))
        tst = str(task_specific_tokens).strip().lower()
        if tst == "auto":
            cfg["task_specific_tokens"] = TASK_EMB in sd
        else:
            cfg["task_specific_tokens"] = parse_bool(task_specific_tokens, option="task_specific_tokens")
        self.task_id = parse_int(TASK_IDS[self.default_task] if task_id in (None, "") else task_id, option="task_id",
                                 minimum=0)
        if self.task_id >= 20:
            raise PluginError(f"{self.plugin}: option task_id={self.task_id}: the task embedding has 20 rows (0..19)")
        self.max_seq = parse_int(self.default_max_seq if max_seq_length in (None, "") else max_seq_length,
                                 option="max_seq_length", minimum=3)
        limit = cfg["max_position_embeddings"]
        if self.max_seq > limit:
            raise PluginError(f"{self.plugin}: option max_seq_length={self.max_seq} exceeds the config's "
                              f"max_position_embeddings={limit}")
        self.max_regions = parse_int(max_region_num, option="max_region_num", minimum=2)
        b = str(boxes).strip().lower()
        if b not in ("auto", "required", "whole_image"):
            raise PluginError(f"{self.plugin}: option boxes={boxes!r}: expected auto | required | whole_image")
        self.boxes = ("whole_image" if self.is_demo else "required") if b == "auto" else b
        self.batch_size = None if batch_size in (None, "") else parse_int(batch_size, option="batch_size")
        self.config = cfg
        self.model = ViLBERT(cfg, self.heads)
        self.unused_keys = load_weights(self.model, sd, ck)
        self.model.to(self.device).eval()
        self.tokenizer = Tokenizer(voc, cfg["vocab_size"])
        # the declared published numbers are single-task ViLBERT's: a multi-task checkpoint (task tokens) is not
        # compared with them
        self.published_variant = "multi-task" if cfg["task_specific_tokens"] else "single-task"
        self.details: dict[str, Any] = {
            "checkpoint": str(ck), "config": str(cfg_path), "demo_model": self.is_demo,
            "task_id": self.task_id, "task_specific_tokens": bool(cfg["task_specific_tokens"]),
            "max_seq_length": self.max_seq, "max_region_num": self.max_regions, "boxes": self.boxes,
            "fusion_method": cfg["fusion_method"], "dynamic_attention": bool(cfg["dynamic_attention"]),
            "with_coattention": bool(cfg["with_coattention"]),
            "v_biattention_id": list(cfg["v_biattention_id"]), "t_biattention_id": list(cfg["t_biattention_id"]),
            "checkpoint_keys_unused": len(self.unused_keys),
            "config_fields_inert_at_eval": sorted(k for k in INERT if k in cfg),
        }

    def _text(self, texts: list[str]):
        ids, mask = self.tokenizer.encode(list(texts), self.max_seq)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def _images(self, items):
        F, L, M, pix = image_inputs(items, feature_size=self.config["v_feature_size"], max_regions=self.max_regions,
                                    boxes=self.boxes, plugin=self.plugin)
        t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        return t(F), t(L), t(M), pix

    def _forward(self, ids, tmask, F, L, M):
        task = torch.full((ids.shape[0], 1), self.task_id, dtype=torch.long, device=self.device)
        return self.model.streams(ids, torch.zeros_like(ids), tmask, F, L, M, task)
