"""ViLBERT's BERT-style config json (``config/bert_base_6layer_6conect.json``), read as the official code does.

``BertConfig.from_json_file`` builds ``BertConfig(-1)`` (every constructor default) and then sets every
json key over it, so a field the json lacks keeps the constructor default and a json key the code
never reads (the shipped configs' ``pooling_method``, ``bi_intermediate_size``, ``bi_attention_type``)
is carried but ignored. Quirk: the fusion of the pooled streams is ``fusion_method`` (default
``mul``); the shipped configs' ``"pooling_method": "mul"`` is not read
(facebookresearch/vilbert-multi-task:vilbert/vilbert.py ``BertConfig``, ``VILBertForVLTasks.forward``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mmbench.errors import DataError

#: BertConfig.__init__ defaults (vilbert/vilbert.py), the base ``from_json_file`` starts from
DEFAULTS = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02, "v_feature_size": 2048,
    "v_target_size": 1601, "v_hidden_size": 768, "v_num_hidden_layers": 3, "v_num_attention_heads": 12,
    "v_intermediate_size": 3072, "bi_hidden_size": 1024, "bi_num_attention_heads": 16,
    "v_attention_probs_dropout_prob": 0.1, "v_hidden_act": "gelu", "v_hidden_dropout_prob": 0.1,
    "v_initializer_range": 0.2, "v_biattention_id": [0, 1], "t_biattention_id": [10, 11], "visual_target": 0,
    "fast_mode": False, "fixed_v_layer": 0, "fixed_t_layer": 0, "in_batch_pairs": False, "fusion_method": "mul",
    "dynamic_attention": False, "with_coattention": True, "objective": 0, "num_negative": 128, "model": "bert",
    "task_specific_tokens": False, "visualization": False,
}
INT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "v_feature_size", "v_hidden_size", "v_num_hidden_layers",
              "v_num_attention_heads", "v_intermediate_size", "bi_hidden_size", "bi_num_attention_heads")
ACTS = ("gelu", "relu", "swish")
#: fields that change nothing at evaluation time (training-only, or numerically inert), recorded as such
INERT = ("hidden_dropout_prob", "attention_probs_dropout_prob", "v_attention_probs_dropout_prob",
         "v_hidden_dropout_prob", "initializer_range", "v_initializer_range", "visual_target", "v_target_size",
         "fixed_v_layer", "fixed_t_layer", "objective", "num_negative", "visualization", "fast_mode")


def read_config(path: str | Path) -> dict:
    """The config json over the constructor defaults, validated for what the evaluation builds."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "ViLBERT config json not found",
                        expected="a BERT-style config json (vilbert-multi-task config/bert_base_6layer_6conect.json)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid json ({exc})", expected="a BERT-style config json") from None
    if not isinstance(raw, dict):
        raise DataError(path, f"top level is {type(raw).__name__}", expected="a json object")
    c = dict(DEFAULTS)
    c.update(raw)
    check_config(c, path)
    return c


def check_config(c: dict, where) -> None:
    def bad(key, msg, expected):
        raise DataError(where, f"is {c.get(key)!r}{': ' + msg if msg else ''}", field=key, expected=expected)

    if "vocab_size" not in c:
        bad("vocab_size", "missing", "the vocabulary size (30522 for bert-base-uncased)")
    for k in INT_FIELDS:
        if not isinstance(c[k], int) or isinstance(c[k], bool) or c[k] < 1:
            bad(k, "", "a positive integer")
    for k, heads in (("hidden_size", "num_attention_heads"), ("v_hidden_size", "v_num_attention_heads"),
                     ("bi_hidden_size", "bi_num_attention_heads")):
        if c[k] % c[heads]:
            bad(k, f"not a multiple of {heads}={c[heads]} (the official code raises ValueError)",
                f"a multiple of {heads}")
    for k in ("hidden_act", "v_hidden_act"):
        if c[k] not in ACTS:
            bad(k, "", " | ".join(ACTS))
    v_ids, t_ids = c["v_biattention_id"], c["t_biattention_id"]
    for k, ids, n in (("v_biattention_id", v_ids, c["v_num_hidden_layers"]),
                      ("t_biattention_id", t_ids, c["num_hidden_layers"])):
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and 0 <= i < n for i in ids) \
                or ids != sorted(ids):
            bad(k, "", f"a non-empty increasing list of layer indices < {n}")
    if len(v_ids) != len(t_ids):
        bad("v_biattention_id", f"{len(v_ids)} entries, t_biattention_id {len(t_ids)} (the official code asserts equal)",
            "as many image as text co-attention positions")
    if c["fusion_method"] not in ("sum", "mul"):
        bad("fusion_method", "the official forward asserts False", "sum | mul")
    if c["model"] != "bert":
        bad("model", "RoBERTa needs its BPE tokeniser, which this plugin does not provide", "bert")
    if c["in_batch_pairs"]:
        bad("in_batch_pairs", "a training-time pairing (B x B pairs per batch) that changes the output shape",
            "false")
