"""A Java-free tokenizer that yields the tokens of pycocoevalcap's PTB step.

pycocoevalcap (salaniz/pycocoevalcap:tokenizer/ptbtokenizer.py) runs Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` and then drops the punctuation tokens in
:data:`PUNCTUATIONS`. The filter is case-sensitive and runs after lower-casing, so
``-LRB-`` / ``-RRB-`` survive as ``-lrb-`` / ``-rrb-`` (a reference quirk kept here).

This is our own rule set, written from the tokenizer's observed behaviour (not its
grammar). It is tested token-for-token against the Java program on all 25,014 COCO
val2017 captions and on adversarial strings (tests/test_metrics_captioning.py); known
remaining difference: a run of single-letter initials at the very end of a line
("A. B. C." keeps the last period in Java).
"""

from __future__ import annotations

import re

PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
# words whose following period stays attached (PTB abbreviation classes: titles, streets, states, months)
_ABBR = frozenset("""st ave blvd rd ft ky mr mrs ms mx dr drs prof profs sen sens rep reps lt col gen gov
govs adm rev maj sgt cpl pvt capt ste pres hon brig jr sr bros esq inc co cos corp ltd plc dept assn univ intl
sys no nos vs etc jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat
ala ariz ark calif colo conn ct dak del fla ga ill ind kan kans la mass md mich minn miss mo mont neb nev
okla ore pa penn tenn tex va vt wis wisc wyo mt""".split())
_WORD = re.compile(r"\w+(?:[-./:']\w+|,\d{3}(?!\d))*")
_SPECIAL = re.compile(r"https?://\S+|www\.\S+|[#@][^\W\d_]\w*|[A-Z]+(?:&[A-Z]+)+|'\d\ds?\b|[?!]{2,}")
_SPLITS = {"gonna": 3, "wanna": 3, "gotta": 3, "lemme": 3, "gimme": 3, "cannot": 3, "y'all": 2}
_CHARMAP = str.maketrans({"\u2013": " -- ", "\u2014": " -- ", "\u201c": ' " ', "\u201d": ' " ', "\u2018": "`",
                          "\u2019": "'", "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4", "\u2153": "1/3",
                          "\u2154": "2/3", "\u2026": "..."})
_CONTRACTION = re.compile(r"(?i)^(\w.*?)(n't|'s|'re|'ve|'m|'ll|'d)$")
_SPACE = re.compile(r"[ \t\n\r\f\v]+")  # not str.split(): U+00A0 is part of a fraction token
_TIME = re.compile(r"(?i)^(\d{1,2}:\d{2})([ap]m)$")
_FRACTION_TOKEN = re.compile(r"\d{1,4}\xa0\d{1,4}/\d{1,4}")
_FRACTION = re.compile(r"(?<!\S)(\d{1,4})[ \xa0](\d{1,4}/\d{1,4})(?!\S)")
_LETTER = re.compile(r"[^\W\d_]")
_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")


# Words after which a line break ends a sentence, for the period of a single-letter initial
# observed from CoreNLP 3.4.1 by probing "reads K." + "\n<Word> thing"; the first
# letter must be a capital, the rest may be any case.
_SENTENCE_STARTERS = frozenset("""a an as at but he her however if in it many now one she so some such that the
their there these they this we what when while you after our since then yet other here once last""".split())
_FIRST_WORD = re.compile(r"[ \t\r\f\v]*([A-Za-z]+)(?=[ \t\r\f\v]|$)")


def _keeps_period(word: str, line_end: bool, next_starts_sentence: bool) -> bool:
    low = word.lower()
    if low == "fig":  # "Fig. 3" -> "fig."; at the end of a line -> "fig ."
        return not line_end
    if _LETTER.fullmatch(word) and low != "i":
        # single-letter initials keep their period, except at the end of a line whose next line
        # starts a sentence: "reads K." + "\nThe dog" -> "k ."; + "\nSmall dog" -> "k."
        return not (line_end and next_starts_sentence)
    return low in _ABBR or bool(_ACRONYM.fullmatch(word))


def _starts_sentence(line: str | None) -> bool:
    if line is None:
        return False
    m = _FIRST_WORD.match(line)
    return bool(m) and m.group(1)[0].isupper() and m.group(1).lower() in _SENTENCE_STARTERS


def ptb_tokens(line: str, next_line: str | None = None) -> list[str]:
    """All PTB tokens of one line, lower-cased (before the punctuation filter).

    ``next_line``: the line that follows in the same tokenizer input (pycocoevalcap feeds
    all captions as one file), which decides one sentence-break case; None at the end.
    """
    next_starts = _starts_sentence(next_line)
    # characters outside the BMP are "untokenizable" for the 3.4.1 lexer and deleted
    s = "".join(ch for ch in line.translate(_CHARMAP) if ord(ch) <= 0xFFFF)
    s = _FRACTION.sub(lambda m: m.group(1) + "\xa0" + m.group(2), s)  # "22 3/4" is one token
    out: list[str] = []
    chunks = [c for c in _SPACE.split(s) if c]
    for ci, chunk in enumerate(chunks):
        last_chunk = ci == len(chunks) - 1
        i, n = 0, len(chunk)
        while i < n:
            m = _SPECIAL.match(chunk, i) or _FRACTION_TOKEN.match(chunk, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
            m = _WORD.match(chunk, i)
            if m:
                w, j = m.group(0), m.end()
                if j < n and chunk[j] == "." and _keeps_period(w, last_chunk and j + 1 == n, next_starts):
                    w += "."
                    j += 1
                i = j
                low = w.lower()
                t = _TIME.match(w)
                c = _CONTRACTION.match(w)
                if t:
                    out += [t.group(1), t.group(2)]
                elif c:
                    out += [c.group(1), c.group(2)]
                elif low in _SPLITS:
                    out += [w[:_SPLITS[low]], w[_SPLITS[low]:]]
                else:
                    out.append(w)
                continue
            if chunk.startswith("...", i):
                out.append("...")
                i += 3
            elif chunk.startswith("--", i):
                out.append("--")
                i += 2
            elif chunk[i] in _BRACKETS:
                out.append(_BRACKETS[chunk[i]])
                i += 1
            elif chunk[i] == '"':
                out.append("''")
                i += 1
            else:
                out.append(chunk[i])
                i += 1
    return [t.lower() for t in out]


def tokenize_caption(caption: str, next_caption: str | None = None) -> str:
    """One caption as pycocoevalcap's PTB step leaves it: space-joined, punctuation dropped.

    ``next_caption``: the caption after this one in the tokenizer's input (see :func:`ptb_tokens`).
    """
    nxt = None if next_caption is None else next_caption.replace("\n", " ")
    return " ".join(t for t in ptb_tokens(caption.replace("\n", " "), nxt) if t not in PUNCTUATIONS)


def tokenize_lines(captions: list[str]) -> list[str]:
    """Captions tokenised as ONE tokenizer input, in order (as pycocoevalcap does per call)."""
    return [tokenize_caption(c, captions[i + 1] if i + 1 < len(captions) else None)
            for i, c in enumerate(captions)]
