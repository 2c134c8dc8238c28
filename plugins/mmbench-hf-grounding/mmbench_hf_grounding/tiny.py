"""Tiny local building blocks for OWL-ViT, OWLv2 and (MM-)Grounding DINO: tokenizers, configs, processors.

Used by ``make_demo.py`` (the shipped demo folders) and by the tests (random tiny checkpoints written
with ``save_pretrained`` into a temporary folder). Nothing here downloads anything.

- OWL-ViT / OWLv2 read text with CLIP's byte-level BPE. :func:`clip_bpe_tokenizer` learns merges from a
  few texts and, as in OpenAI's vocabulary, puts ``<|startoftext|>`` and ``<|endoftext|>`` at the two
  *highest* ids: the OWL text tower pools at ``input_ids.argmax(-1)``
  (huggingface/transformers:src/transformers/models/owlvit/modeling_owlvit.py, OwlViTTextTransformer),
  which is the end-of-text token only when it has the largest id. The pad token is ``!`` (id 0 here,
  as in google/owlvit-*'s tokenizer), and ``model_max_length`` is the text tower's 16 positions.
- Grounding DINO splits phrases at the token ids of bert-base-uncased's ``[CLS]``, ``[SEP]``, ``.`` and
  ``?`` (101, 102, 1012, 1029; ``SPECIAL_TOKENS`` in
  huggingface/transformers:src/transformers/models/grounding_dino/modeling_grounding_dino.py), so
  :func:`bert_wordpiece_vocab` keeps BERT's id layout for its first 1030 entries ([PAD] 0, [unusedN],
  [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, punctuation from 999 in ASCII order) and appends words.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

#: Texts the tiny tokenizers learn from: the demo grounding vocabulary (mmbench/datasets/demo.py's
#: shapes, colours, sizes, places and synonyms) plus a few generic words.
DEMO_WORDS = (
    "the a an one thing shape object on in at of to left right middle center centre top bottom "
    "red green blue yellow purple orange brown grey gray dark bright light small big little tiny large huge "
    "circle square triangle diamond ball disc round box block wedge rhombus lozenge "
    "man woman person dog cat car next near far behind front with and")


def clip_bpe_tokenizer(texts=(DEMO_WORDS,), vocab_size: int = 700, model_max_length: int = 16):
    """A ``CLIPTokenizer`` with byte-level BPE merges learned from ``texts`` (every byte is in the vocabulary,
    so no text maps to an unknown token); ``<|startoftext|>``/``<|endoftext|>`` take the two highest ids."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    # CLIP's pre-tokenisation pattern (openai/CLIP:clip/simple_tokenizer.py), then bytes -> unicode
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, end_of_word_suffix="</w>", initial_alphabet=alphabet,
                                  show_progress=False)
    bpe.train_from_iterator([str(t) for t in texts], trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    # "!" first so that it is id 0, the pad token of the OWL-ViT tokenizers
    alphabet.remove("!")
    tokens = ["!"] + alphabet + ["!</w>"] + [c + "</w>" for c in alphabet]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, pad_token="!",
                         model_max_length=model_max_length)


def tiny_owl_config(kind: str, vocab_size: int, *, width: int = 32, layers: int = 2, heads: int = 4,
                    image_size: int = 64, patch: int = 16, max_len: int = 16, proj: int = 32,
                    eos_token_id: int | None = None):
    """A small ``OwlViTConfig`` (kind 'owlvit') or ``Owlv2Config`` (kind 'owlv2')."""
    from transformers import Owlv2Config, OwlViTConfig

    cls = OwlViTConfig if kind == "owlvit" else Owlv2Config
    eos = vocab_size - 1 if eos_token_id is None else eos_token_id
    return cls(
        text_config=dict(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_len,
                         pad_token_id=0, bos_token_id=vocab_size - 2, eos_token_id=eos),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch),
        projection_dim=proj)


def owl_image_processor(kind: str, image_size: int = 64):
    """The PIL-backend image processor (no torchvision needed) at ``image_size``, otherwise the defaults."""
    import transformers

    # transformers >= 5 names the numpy/PIL processors *Pil; before, they were the plain classes
    vit = getattr(transformers, "OwlViTImageProcessorPil", None) or transformers.OwlViTImageProcessor
    v2 = getattr(transformers, "Owlv2ImageProcessorPil", None) or transformers.Owlv2ImageProcessor
    if kind == "owlvit":
        return vit(size={"height": image_size, "width": image_size},
                                       crop_size={"height": image_size, "width": image_size})
    return v2(size={"height": image_size, "width": image_size})


def owl_processor(kind: str, tokenizer, image_size: int = 64):
    from transformers import Owlv2Processor, OwlViTProcessor

    cls = OwlViTProcessor if kind == "owlvit" else Owlv2Processor
    return cls(image_processor=owl_image_processor(kind, image_size), tokenizer=tokenizer)


# --------------------------------------------------------------------------- Grounding DINO

_BERT_PUNCT = "!\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~"


def bert_wordpiece_vocab(texts=(DEMO_WORDS,)) -> list[str]:
    """A WordPiece vocabulary laid out like bert-base-uncased's first 1030 ids (see the module docstring),
    then lower-case letters alone and as ``##`` continuations (no ASCII word becomes [UNK]) and the words."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 999 - len(vocab))]
    assert len(vocab) == 999
    vocab += list(_BERT_PUNCT)
    assert vocab.index("[CLS]") == 101 and vocab.index(".") == 1012 and vocab.index("?") == 1029
    letters = list(string.ascii_lowercase)
    vocab += letters + ["##" + c for c in letters + list(string.digits)]
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", str(t).lower())})
    vocab += [w for w in words if w not in vocab]
    return vocab


def bert_tokenizer(directory, texts=(DEMO_WORDS,)):
    """A lower-casing ``BertTokenizer`` over :func:`bert_wordpiece_vocab`; writes ``vocab.txt`` to ``directory``."""
    from transformers import BertTokenizer

    path = Path(directory) / "vocab.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(bert_wordpiece_vocab(texts)) + "\n", encoding="utf-8")
    return BertTokenizer(str(path), do_lower_case=True)


def tiny_grounding_dino_config(vocab_size: int, *, mm: bool = False, d_model: int = 32, queries: int = 20,
                               layers: int = 1, max_text_len: int = 32, levels: int = 2, text_layers: int = 2,
                               text_hidden: int | None = None):
    """A small ``GroundingDinoConfig`` (or ``MMGroundingDinoConfig`` when ``mm``): a 2-stage Swin
    backbone with 4-pixel patches, a ``text_layers``-layer BERT, one encoder layer and two decoder layers
    (transformers ties the box heads of decoder layers 1.. to layer 0, so at least two), few queries.
    ``d_model`` must be a multiple of 32 (the model has GroupNorm(32, d_model))."""
    import transformers

    cls = transformers.MMGroundingDinoConfig if mm else transformers.GroundingDinoConfig
    backbone = dict(model_type="swin", embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                    image_size=64, patch_size=4, out_indices=[1, 2], out_features=None)
    th = text_hidden or d_model  # the model projects the text features to d_model (text_projection)
    text = dict(model_type="bert", vocab_size=vocab_size, hidden_size=th, num_hidden_layers=text_layers,
                num_attention_heads=2, intermediate_size=2 * th, max_position_embeddings=max_text_len)
    return cls(backbone_config=backbone, text_config=text, d_model=d_model, num_queries=queries,
               encoder_layers=layers, decoder_layers=max(2, layers), encoder_ffn_dim=2 * d_model,
               decoder_ffn_dim=2 * d_model, encoder_attention_heads=2, decoder_attention_heads=2,
               num_feature_levels=levels, encoder_n_points=2, decoder_n_points=2, max_text_len=max_text_len)


def grounding_dino_processor(tokenizer, shortest_edge: int = 64, longest_edge: int = 96):
    import transformers

    cls = getattr(transformers, "GroundingDinoImageProcessorPil", None) or transformers.GroundingDinoImageProcessor
    image = cls(size={"shortest_edge": shortest_edge, "longest_edge": longest_edge})
    return transformers.GroundingDinoProcessor(image_processor=image, tokenizer=tokenizer)


def randomize(model, seed: int = 0, std: float = 0.05):
    """Re-draw every parameter from N(0, std) with a seeded generator (LayerNorm-like weights 1, their biases 0).

    transformers' own initialisation of these tiny configs saturates: OWL's box head puts every box at
    a corner and its logits at +-50, so all scores tie at 1.0. Small weights keep boxes near the patch
    grid (OWL adds the grid as a box bias) and scores spread, which is what a ranking test needs.
    Independent of transformers' init code, so the same seed gives the same model across versions.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    norms = tuple(t for t in (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d))
    with torch.no_grad():
        for mod in model.modules():
            for name, p in mod.named_parameters(recurse=False):
                if isinstance(mod, norms) or "norm" in type(mod).__name__.lower():
                    p.fill_(1.0 if name == "weight" else 0.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
