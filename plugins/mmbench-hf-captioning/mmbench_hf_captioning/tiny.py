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


# --------------------------------------------------------------------------- BLIP-2 (OPT)

#: facebook/opt-*'s special tokens, in its order (ids 0-3): <s>, <pad>, </s> (bos = eos), <unk>.
OPT_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def opt_tokenizer(texts, *, vocab_size: int = 400, max_length: int = 64):
    """A byte-level BPE tokenizer laid out like OPT's GPT-2 tokenizer: ``</s>`` is bos and eos and is put
    before every text (``tokenizer(prompt)`` gives ``</s> a photo of``, as LAVIS feeds OPT), ``<pad>`` pads;
    merges learnt from ``texts`` (deterministic); every byte is in the alphabet, so nothing is ``<unk>``
    and ``"\\n"`` is one token (LAVIS's BLIP-2 caption end)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(OPT_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator([str(t) for t in texts], trainer)
    bos = tk.token_to_id("</s>")
    tk.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                      special_tokens=[("</s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=max_length)


def tiny_blip2_config(tok, *, width: int = 64, layers: int = 2, heads: int = 4, image_size: int = 48, patch: int = 8,
                      num_query_tokens: int = 8, max_len: int = 64, init_range: float = 0.02):
    """A tiny Blip2Config: ViT, Q-Former (cross-attention in every layer) and OPT. ``tok`` must already hold
    ``<image>`` (``blip2_processor`` adds it), whose id becomes ``image_token_index``."""
    from transformers import Blip2Config

    image_token = tok.convert_tokens_to_ids("<image>")
    if image_token is None or image_token == tok.unk_token_id:
        raise ValueError("the tokenizer has no <image> token: build the processor first (blip2_processor)")
    common = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=heads,
                  initializer_range=init_range)
    return Blip2Config(
        vision_config=dict(common, image_size=image_size, patch_size=patch),
        qformer_config=dict(common, vocab_size=len(tok), max_position_embeddings=max_len, cross_attention_frequency=1),
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=width, word_embed_proj_dim=width,
                         ffn_dim=2 * width, num_hidden_layers=layers, num_attention_heads=heads,
                         max_position_embeddings=max_len, init_std=init_range, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        num_query_tokens=num_query_tokens, image_token_index=image_token, initializer_range=init_range)


def blip2_processor(tok, image_size: int = 48, num_query_tokens: int = 8):
    """Blip2Processor (BLIP's image processor: bicubic resize to a square, CLIP mean/std, as LAVIS's
    ``blip_image_eval``); it adds ``<image>`` to ``tok``."""
    from transformers import Blip2Processor

    return Blip2Processor(image_processor=blip_image_processor(image_size), tokenizer=tok,
                          num_query_tokens=num_query_tokens)
