"""mmbench_vse.tokenize / .vocab: the nltk-compatible word tokenizer and the SCAN-format vocabulary."""

from __future__ import annotations

import json

import pytest

from mmbench.errors import DataError
from mmbench_vse.tokenize import word_tokenize
from mmbench_vse.vocab import Vocabulary, encode_captions, scan_tokens

# Outputs of nltk 3.10.4 ``word_tokenize(text, preserve_line=True)``, pinned so this test fails
# without nltk installed too.
PINNED = [
    ('He said "hello" (twice)...', ["He", "said", "``", "hello", "''", "(", "twice", ")", "..."]),
    ("i can't, won't -- 'tis gonna be 3,36 euros: ok?",
     ["i", "ca", "n't", ",", "wo", "n't", "--", "'", "tis", "gon", "na", "be", "3,36", "euros", ":", "ok", "?"]),
    ("“quoted” ‘x’ «y» it's o'neil's 10:30 a--b",
     ["“", "quoted", "”", "‘", "x", "’", "«", "y", "»", "it", "'s", "o'neil", "'s", "10:30", "a", "--", "b"]),
    ("wanna go. now.", ["wan", "na", "go.", "now", "."]),
    ('"start', ["``", "start"]),
    ("a ' b' c'd 'hello", ["a", "'", "b", "'", "c", "'d", "'", "hello"]),
    ("good muffins cost $3.88 (roughly 3,36 euros)\nin new york.  please buy me\ntwo of them.\nthanks.",
     ["good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in", "new", "york.",
      "please", "buy", "me", "two", "of", "them.", "thanks", "."]),
    ("end .)'\" ", ["end", ".", ")", "'", "''"]),
    ("x–y—z", ["x", "–", "y", "—", "z"]),
    ("a*b @c #d", ["a", "*", "b", "@", "c", "#", "d"]),
    ("a man's hat.", ["a", "man", "'s", "hat", "."]),
    ("cannot gimme lemme", ["can", "not", "gim", "me", "lem", "me"]),
    ("it was 'the best'", ["it", "was", "'", "the", "best", "'"]),
    ("dogs' toys are here .", ["dogs", "'", "toys", "are", "here", "."]),
    ("the u.s. flag", ["the", "u.s.", "flag"]),
    ("", []),
]


@pytest.mark.parametrize("text,tokens", PINNED)
def test_pinned_nltk_outputs(text, tokens):
    assert word_tokenize(text) == tokens


@pytest.mark.shared
def test_equals_nltk_on_real_scan_captions(shared_data):
    nltk_tok = pytest.importorskip("nltk.tokenize")
    lines = []
    for name in ("f30k_precomp/test_caps.txt", "coco_precomp/test_caps.txt"):
        lines += (shared_data / "scan_precomp_caps" / name).read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 9999
    diffs = [c for c in lines if word_tokenize(c.strip().lower()) != nltk_tok.word_tokenize(c.strip().lower(),
                                                                                             preserve_line=True)]
    assert diffs == []


def test_equals_nltk_on_random_text():
    nltk_tok = pytest.importorskip("nltk.tokenize")
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("ab c.,;:'\"`()[]{}<>-?!$%&*@#0123456789\n“”‘’«»–—") + ["n't", "'s", "can"])

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(alphabet, max_size=25).map("".join))
    def check(text):
        assert word_tokenize(text) == nltk_tok.word_tokenize(text, preserve_line=True)

    check()


@pytest.mark.shared
def test_real_sgraf_vocab_and_official_ids(shared_data, parity_dir):
    vocab = Vocabulary.from_json(shared_data / "scan_precomp_caps" / "vocab_from_SGRAF" / "f30k_precomp_vocab.json")
    assert (vocab.pad, vocab.start, vocab.end, vocab.unk) == (0, 1, 2, 3)
    assert len(vocab) > 8000
    entries = json.loads((parity_dir / "sgraf_sgr" / "expected_tokens.json").read_text())
    small = Vocabulary.from_json(parity_dir / "sgraf_sgr" / "f30k_precomp_vocab.json")
    for e in entries:
        assert scan_tokens(e["caption"]) == e["tokens"]
        assert small.encode(e["caption"]) == e["ids_with_start_end"]
    ids, lengths = encode_captions(small, [e["caption"] for e in entries])
    assert lengths.tolist() == [len(e["ids_with_start_end"]) for e in entries]
    assert ids[0, :lengths[0]].tolist() == entries[0]["ids_with_start_end"] and ids.shape[1] == lengths.max()


def test_vocabulary_roundtrip_and_errors(tmp_path):
    v = Vocabulary.from_words(["dog", "cat", "dog"])
    assert v.word2idx == {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "dog": 4, "cat": 5}
    assert v.encode("A Dog  and a CAT") == [1, 3, 4, 3, 3, 5, 2]
    v.to_json(tmp_path / "v.json")
    assert Vocabulary.from_json(tmp_path / "v.json").word2idx == v.word2idx
    (tmp_path / "bad.json").write_text(json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2}}))
    with pytest.raises(DataError, match=r"bad.json.*<unk>"):
        Vocabulary.from_json(tmp_path / "bad.json")
    (tmp_path / "gap.json").write_text(json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 5}}))
    with pytest.raises(DataError, match="without gaps"):
        Vocabulary.from_json(tmp_path / "gap.json")
    with pytest.raises(DataError, match="not found"):
        Vocabulary.from_json(tmp_path / "missing.json")


def _pickled_vocab(tmp_path, protocol):
    """A pickle shaped like VSE++'s vocab/<data_name>_vocab.pkl (a vocab.Vocabulary instance)."""
    import pickle
    import sys
    import types

    mod = types.ModuleType("vocab")

    class Vocabulary:
        def __init__(self):
            self.word2idx, self.idx2word, self.idx = {}, {}, 0

    Vocabulary.__module__, Vocabulary.__qualname__ = "vocab", "Vocabulary"
    mod.Vocabulary = Vocabulary
    v = Vocabulary()
    for w in ("<pad>", "<start>", "<end>", "<unk>", "dog"):
        v.word2idx[w], v.idx2word[v.idx] = v.idx, w
        v.idx += 1
    sys.modules["vocab"] = mod
    try:
        data = pickle.dumps(v, protocol=protocol)
    finally:
        del sys.modules["vocab"]
    path = tmp_path / f"f30k_precomp_vocab_p{protocol}.pkl"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_vsepp_vocab_pickle_is_read_without_code(tmp_path, protocol):
    v = Vocabulary.from_path(_pickled_vocab(tmp_path, protocol))
    assert v.encode("a dog") == [1, 3, 4, 2] and len(v) == 5


def test_vocab_pickle_with_code_is_refused(tmp_path):
    import os
    import pickle

    from mmbench.errors import UnsafeFileError

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    p = tmp_path / "evil_vocab.pkl"
    p.write_bytes(pickle.dumps({"word2idx": Payload()}))
    with pytest.raises(UnsafeFileError, match="system"):
        Vocabulary.from_path(p)
    assert not (tmp_path / "pwned").exists()
