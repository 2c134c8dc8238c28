"""The Java-free PTB tokenizer: abbreviation periods probed from CoreNLP 3.4.1, and its cached fast path."""

from __future__ import annotations

import random
import shutil

import pytest

from mmbench.metrics import captioning as cap
from mmbench.metrics.ptb import PUNCTUATIONS, ptb_tokens, tokenize_caption, tokenize_lines

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime")

# each probe is followed by "zz" (a line that starts no sentence) unless it is a two-line case
INITIALS = [
    ["A. B. C.", "zz"], ["A. B. C. The dog", "zz"], ["reads A. B. The dog", "zz"], ["reads A. B. the dog", "zz"],
    ["A. B. C.", "The dog"], ["J. K.", "zz"], ["by J. K.", "zz"], ["I. B.", "zz"], ["I. B.", "The dog"],
    ["a I. B. The dog", "zz"], ["A person I. A hood", "zz"], ["reads I.", "zz"], ["I. J. K.", "zz"],
    ["reads K. However dog", "zz"], ["reads K. Small dog", "zz"], ["reads K. THE dog", "zz"],
    ["reads K. Which dog", "zz"], ["x K.\tThe y", "zz"], ["A. B.  C. The", "zz"], ["x K. The, y", "zz"],
    ["x K. Many", "zz"], ["x K.", "Many"], ["x K. The.", "zz"], ["x K.", "  The y"],
    ["x no. the y", "zz"], ["x No. 5 y", "zz"], ["x No. (5) y", "zz"], ["x no.", "5 dogs"], ["x no.", "the dogs"],
    ["x Fig. The y", "zz"], ["x Fig.", "3 dogs"], ["x figs. 5 y", "zz"], ["x ca. 5 y", "zz"], ["x pp. 5 y", "zz"],
    ["x bldg. the y", "zz"], ["x bldg. The y", "zz"], ["x Ark. the y", "zz"], ["x Mass. The y", "zz"],
    ["x Pa. 5 y", "zz"], ["x Sat. the y", "zz"], ["the U.S. The dog", "zz"], ["reads Jan. The dog", "zz"],
    ["reads Dr. The dog", "zz"],
]
FLAT = [s for pair in INITIALS for s in pair] + ["x K. Many"]  # ends on a starter with no line break after it


def java_ptb(lines):
    out = cap._ptb_java(lines)
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in out[:len(lines)]]


@pytest.mark.java
@needs_java
def test_abbreviation_periods_equal_java():
    want = java_ptb(FLAT)
    got = tokenize_lines(FLAT)
    diff = [(c, w, g) for c, w, g in zip(FLAT, want, got) if w != g]
    assert not diff, diff


def test_initials_rules_without_java():
    assert tokenize_lines(["by J. K.", "zz"]) == ["by j. k.", "zz"]
    assert tokenize_lines(["A. B. The dog", "zz"]) == ["a. b the dog", "zz"]
    assert tokenize_lines(["I. B.", "zz"]) == ["i. b.", "zz"]
    assert tokenize_lines(["A person I. A hood", "zz"]) == ["a person i a hood", "zz"]
    assert tokenize_lines(["x No. 5 y", "x no. the y"]) == ["x no. 5 y", "x no the y"]
    assert tokenize_lines(["x K. Many", "zz", "x K. Many"]) == ["x k many", "zz", "x k. many"]


def _fuzz_lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = ["A.", "B.", "I.", "K.", "the", "The", "dog.", "No.", "no.", "5", "3.5", "Fig.", "U.S.", "St.", "Many",
             "However", "it's", "don't", "(x)", "a,b", "1,000", "22", "3/4", "--", "...", "\"q\"", "e.g.", "Dr.",
             "caf\u00e9", "\u2014", "a\tb", "bldg.", "x.", "", "  ", "reads", "cannot", "10:30pm", "\U0001F600"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(n)]


def test_cached_fast_path_equals_the_rules_line_by_line():
    # (no blank lines: ptb_tokens sees one next line, tokenize_lines also looks past blank ones)
    lines = [s for s in _fuzz_lines(7, 3000) if s.strip()]
    want = []
    for i, c in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        toks = ptb_tokens(c, nxt, next_is_last=i + 2 == len(lines))
        want.append(" ".join(t for t in toks if t not in PUNCTUATIONS))
    assert tokenize_lines(lines) == want
    assert tokenize_caption(lines[0], lines[1]) == want[0]


@pytest.mark.java
@needs_java
def test_fuzz_equals_java():
    lines = _fuzz_lines(11, 1500)
    want = java_ptb(lines)
    got = tokenize_lines(lines)
    diff = [(c, w, g) for c, w, g in zip(lines, want, got) if w != g]
    assert len(diff) <= 0, diff[:10]
