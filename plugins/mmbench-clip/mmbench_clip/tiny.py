"""Tiny CLIP building blocks: a byte-level BPE tokenizer learned from a few captions, and small configs.

Used by ``train_demo.py`` (the shipped demo checkpoint) and by the tests (random tiny checkpoints).
The tokenizer is a real ``CLIPTokenizer``: every byte and byte+``</w>`` is in the vocabulary
(as in OpenAI's CLIP vocabulary), so no text ever maps to the unknown token, which in CLIP is
also the end-of-text token the text tower pools at.
"""

from __future__ import annotations

import json


def train_tokenizer(texts, vocab_size: int = 600):
    """A ``CLIPTokenizer`` whose merges are learned from ``texts`` with the CLIP pre-tokenisation."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                                   r"""[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  end_of_word_suffix="</w>", initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in
              json.loads(tok.to_str())["model"]["merges"]]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab_list = ["<|startoftext|>", "<|endoftext|>"] + alphabet + [c + "</w>" for c in alphabet]
    seen = set(vocab_list)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            vocab_list.append(a + b)
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab_list)}, merges=merges)


def tiny_clip_config(vocab_size: int, *, width: int = 64, layers: int = 2, heads: int = 4, image_size: int = 48,
                     patch: int = 8, proj: int = 64, max_len: int = 40):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_len,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=proj),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch, projection_dim=proj),
        projection_dim=proj)


def image_processor(image_size: int = 48):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


# --------------------------------------------------------------------------- FLAVA

#: BERT's special tokens, in the order of bert-base-uncased's vocab.txt ids 0, 100-103 (renumbered 0-4).
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_vocab(texts) -> list[str]:
    """A BERT WordPiece vocabulary: the specials, every printable ASCII character alone and as a
    ``##`` continuation (so no ASCII word ever becomes ``[UNK]``), then every lower-cased word of
    ``texts`` as split by BERT's basic tokenizer (whitespace, then punctuation), in sorted order."""
    import re
    import string

    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", str(t).lower())})
    vocab = list(BERT_SPECIALS)
    for tok in chars + ["##" + c for c in chars if c.isalnum()] + words:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def wordpiece_tokenizer(texts, directory, max_length: int = 40):
    """A ``BertTokenizer`` (lower-casing, as FLAVA's) over :func:`wordpiece_vocab`; ``vocab.txt`` goes to ``directory``."""
    from pathlib import Path

    from transformers import BertTokenizer

    path = Path(directory) / "vocab.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(wordpiece_vocab(texts)) + "\n", encoding="utf-8")
    return BertTokenizer(str(path), do_lower_case=True, model_max_length=max_length)


def tiny_flava_config(vocab_size: int, *, width: int = 64, layers: int = 2, heads: int = 4, image_size: int = 48,
                      patch: int = 8, proj: int = 64, max_len: int = 40, mm_layers: int = 1, init_range: float = 0.02):
    """A small ``FlavaConfig``. The multimodal tower is unused by the dual encoder (one layer keeps it cheap)."""
    from transformers import FlavaConfig

    common = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=heads,
                  initializer_range=init_range)
    return FlavaConfig(
        image_config=dict(common, image_size=image_size, patch_size=patch),
        text_config=dict(common, vocab_size=vocab_size, max_position_embeddings=max_len, pad_token_id=0),
        multimodal_config=dict(common, num_hidden_layers=mm_layers),
        hidden_size=width, projection_dim=proj, initializer_range=init_range)


def flava_image_processor(image_size: int = 48):
    from transformers import FlavaImageProcessor

    return FlavaImageProcessor(size={"height": image_size, "width": image_size},
                               crop_size={"height": image_size, "width": image_size})
