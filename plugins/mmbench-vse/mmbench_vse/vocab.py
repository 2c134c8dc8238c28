"""The SCAN-format vocabulary (``{split}_vocab.json``) and caption encoding as the official loaders do it.

Format (kuanghuei/SCAN:vocab.py ``serialize_vocab``, also Paranioar/SGRAF vocab/*.json):
``{"word2idx": {word: id}, "idx2word": {"id": word}, "idx": size}`` with the specials
``<pad>`` 0, ``<start>`` 1, ``<end>`` 2, ``<unk>`` 3. A caption becomes
``[<start>] + [id(w) for w in word_tokenize(caption.lower())] + [<end>]``, unknown words
mapping to ``<unk>`` (SCAN/SGRAF/VSE++ data.py ``PrecompDataset.__getitem__``).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Iterable

import numpy as np

from mmbench.errors import DataError, UnsafeFileError
from mmbench_vse.tokenize import word_tokenize

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")


def scan_tokens(caption: str) -> list[str]:
    """The official tokens of one caption (without ``<start>``/``<end>``)."""
    return word_tokenize(caption.strip().lower())


class Vocabulary:
    """word <-> id maps; calling it with a word gives the id (``<unk>`` when unknown)."""

    def __init__(self, word2idx: dict[str, int], *, source: str = "(in memory)"):
        self.word2idx = dict(word2idx)
        self.idx2word = {i: w for w, i in self.word2idx.items()}
        self.source = source
        missing = [s for s in SPECIALS if s not in self.word2idx]
        if missing:
            raise DataError(source, f"vocabulary lacks the special token(s) {missing}", field="word2idx",
                            expected="<pad>, <start>, <end> and <unk> entries")
        self.unk = self.word2idx["<unk>"]
        self.start = self.word2idx["<start>"]
        self.end = self.word2idx["<end>"]
        self.pad = self.word2idx["<pad>"]

    @classmethod
    def from_words(cls, words: Iterable[str]) -> "Vocabulary":
        """Specials first, then ``words`` in order of first appearance (SCAN ``build_vocab`` order)."""
        w2i: dict[str, int] = {}
        for w in (*SPECIALS, *words):
            w2i.setdefault(w, len(w2i))
        return cls(w2i)

    @classmethod
    def from_json(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "vocabulary file not found",
                            expected="a SCAN-format vocab json {word2idx, idx2word, idx}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(path, f"not valid JSON: {exc}",
                            expected="a SCAN-format vocab json {word2idx, idx2word, idx}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("word2idx"), dict):
            raise DataError(path, "missing or malformed", field="word2idx", expected="an object word -> int id")
        w2i = raw["word2idx"]
        bad = [w for w, i in w2i.items() if not isinstance(i, int) or isinstance(i, bool) or i < 0]
        if bad:
            raise DataError(path, f"non-integer or negative id(s) for {bad[:5]}", field="word2idx",
                            expected="non-negative integer ids")
        ids = sorted(w2i.values())
        if ids != list(range(len(ids))):
            raise DataError(path, "ids are not 0..n-1 without gaps or duplicates", field="word2idx",
                            expected=f"the ids 0..{len(ids) - 1}")
        if "idx" in raw and raw["idx"] != len(w2i):
            raise DataError(path, f"idx is {raw['idx']!r} but word2idx has {len(w2i)} entries", field="idx",
                            expected="the vocabulary size")
        return cls(w2i, source=str(path))

    @classmethod
    def from_pickle(cls, path: str | Path) -> "Vocabulary":
        """A pickled ``Vocabulary`` object (VSE++'s ``vocab/<data_name>_vocab.pkl``), read WITHOUT
        running code: only the object's ``word2idx`` dict is taken (see :class:`_VocabUnpickler`)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError(path, "vocabulary file not found", expected="a pickled Vocabulary object") from None
        try:
            obj = _VocabUnpickler(io.BytesIO(raw), str(path)).load()
        except UnsafeFileError:
            raise
        except Exception as exc:
            raise DataError(path, f"cannot read this vocabulary pickle: {type(exc).__name__}: {exc}",
                            expected="a pickled Vocabulary object with word2idx/idx2word/idx") from None
        state = obj.__dict__ if isinstance(obj, _VocabState) else obj
        w2i = state.get("word2idx") if isinstance(state, dict) else None
        if not isinstance(w2i, dict):
            raise DataError(path, "missing or malformed", field="word2idx", expected="a dict word -> int id")
        return cls({_text(w): int(i) for w, i in w2i.items()}, source=str(path))

    @classmethod
    def from_path(cls, path: str | Path) -> "Vocabulary":
        """A ``.json`` (SCAN format) or ``.pkl`` (VSE++ pickled object) vocabulary."""
        return cls.from_pickle(path) if str(path).endswith((".pkl", ".pickle")) else cls.from_json(path)

    def to_json(self, path: str | Path) -> None:
        data = {"word2idx": self.word2idx, "idx2word": {str(i): w for i, w in sorted(self.idx2word.items())},
                "idx": len(self)}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    def __len__(self) -> int:
        return len(self.word2idx)

    def __call__(self, word: str) -> int:
        return self.word2idx.get(word, self.unk)

    def encode(self, caption: str) -> list[int]:
        """``<start>`` + token ids + ``<end>``."""
        return [self.start, *(self(w) for w in scan_tokens(caption)), self.end]


class _VocabState:
    """Inert stand-in for the pickled ``Vocabulary`` class: attributes only, no methods run."""


def _text(w) -> str:
    return w.decode("utf-8") if isinstance(w, bytes) else str(w)


class _VocabUnpickler(pickle.Unpickler):
    """Builds only: plain containers/scalars, a class named ``Vocabulary`` (replaced by the inert
    :class:`_VocabState`) and ``copy_reg._reconstructor`` with ``object`` (how Python 2 pickles
    a new-style instance). Anything else is refused before it is called."""

    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if name == "Vocabulary":
            return _VocabState
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return _reconstruct
        if (module, name) in (("__builtin__", "object"), ("builtins", "object")):
            return object
        raise UnsafeFileError(f"{self.source}: refusing to unpickle {module}.{name}: a vocabulary pickle may "
                              f"only hold a Vocabulary object of plain dicts; building {module}.{name} could "
                              "execute code")


def _reconstruct(cls, base, state):
    if cls is not _VocabState or base is not object or state is not None:
        raise pickle.UnpicklingError("unexpected object reconstruction in a vocabulary pickle")
    return _VocabState()


def encode_captions(vocab: Vocabulary, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded id matrix (B, max_len) int64 and lengths (B,) int64 (``<start>``/``<end>`` included)."""
    seqs = [vocab.encode(c) for c in captions]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    ids = np.full((len(seqs), int(lengths.max()) if len(seqs) else 0), vocab.pad, dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = s
    return ids, lengths
