"""Shared test fixtures of the MDETR plugin."""

from __future__ import annotations

from pathlib import Path

import pytest


def _tiny_text_encoder(path: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizerFast

    path.mkdir()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["a red circle on the left", "the big blue square", "small green triangle"] * 3,
                            vocab_size=270, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(path))
    RobertaTokenizerFast.from_pretrained(str(path)).save_pretrained(str(path))
    RobertaConfig(vocab_size=270, hidden_size=12, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                  eos_token_id=2).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    """A tiny random RoBERTa folder (config + byte-level BPE tokenizer), built offline once per session."""
    return _tiny_text_encoder(tmp_path_factory.mktemp("tiny") / "text_encoder")


@pytest.fixture(scope="module")
def fx(parity_dir) -> Path:
    """The shared official-format MDETR parity fixture (../shared/parity/mdetr_refexp), or skip."""
    d = parity_dir / "mdetr_refexp"
    if not (d / "checkpoint.pth").is_file():
        pytest.skip(f"{d} not found")
    return d
