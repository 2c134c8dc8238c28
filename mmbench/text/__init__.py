"""Text utilities shared by plugins: an nltk-compatible word tokenizer and the SCAN-format vocabulary.

Nothing here imports torch or needs data downloads, so the CLI and dataset adapters may
import it freely.
"""

from mmbench.text.tokenize import word_tokenize
from mmbench.text.vocab import Vocabulary, encode_captions, scan_tokens

__all__ = ["word_tokenize", "Vocabulary", "encode_captions", "scan_tokens"]
