"""Tiny BLIP / GIT building blocks: a BERT WordPiece tokenizer over a few captions, and small configs.

Used by ``train_demo.py`` (the shipped demo checkpoints) and by the tests (random tiny checkpoints).
BLIP and GIT both use ``bert-base-uncased``'s tokenizer; BLIP adds ``[DEC]`` as its bos token
(salesforce/BLIP:models/blip.py, ``init_tokenizer``: ``add_special_tokens({'bos_token': '[DEC]'})``),
GIT starts from ``[CLS]`` and stops at ``[SEP]`` (microsoft/GenerativeImage2Text:generativeimage2text/model.py).
"""

from __future__ import annotations

import re
import string
from pathlib import Path

#: bert-base-uncased's special tokens (ids 0, 100-103 there; renumbered 0-4 here).
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_vocab(texts) -> list[str]:
    """The specials, every printable lower-case ASCII character alone and as a ``##`` continuation
    (so no ASCII word becomes ``[UNK]``), then every lower-cased word of ``texts`` (split as BERT's basic
    tokenizer does: whitespace, then punctuation), sorted."""
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", str(t).lower())})
    vocab = list(BERT_SPECIALS)
    for tok in chars + ["##" + c for c in chars if c.isalnum()] + words:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def bert_tokenizer(texts, directory, *, blip: bool, max_length: int = 40):
    """A lower-casing ``BertTokenizer`` over :func:`wordpiece_vocab`; for BLIP with ``[DEC]`` added as bos."""
    from transformers import BertTokenizer

    path = Path(directory) / "vocab.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(wordpiece_vocab(texts)) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(path), do_lower_case=True, model_max_length=max_length)
    if blip:
        tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


def tiny_blip_config(tok, *, width: int = 64, layers: int = 2, heads: int = 4, image_size: int = 48, patch: int = 8,
                     max_len: int = 48, init_range: float = 0.02):
    from transformers import BlipConfig

    common = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=heads,
                  initializer_range=init_range)
    return BlipConfig(
        text_config=dict(common, vocab_size=len(tok), max_position_embeddings=max_len, encoder_hidden_size=width,
                         bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.sep_token_id),
        vision_config=dict(common, image_size=image_size, patch_size=patch),
        projection_dim=width, initializer_range=init_range)


def blip_image_processor(image_size: int = 48):
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": image_size, "width": image_size})


def tiny_git_config(tok, *, width: int = 64, layers: int = 2, heads: int = 4, image_size: int = 48, patch: int = 8,
                    max_len: int = 48, init_range: float = 0.02):
    from transformers import GitConfig

    return GitConfig(
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch,
                           initializer_range=init_range),
        vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=max_len, initializer_range=init_range,
        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)


def git_image_processor(image_size: int = 48):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def processor(kind: str, tok, image_size: int = 48):
    from transformers import BlipProcessor, GitProcessor

    if kind == "blip":
        return BlipProcessor(image_processor=blip_image_processor(image_size), tokenizer=tok)
    return GitProcessor(image_processor=git_image_processor(image_size), tokenizer=tok)
