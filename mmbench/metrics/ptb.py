"""A Java-free tokenizer that yields the tokens of pycocoevalcap's PTB step.

pycocoevalcap (salaniz/pycocoevalcap:tokenizer/ptbtokenizer.py) runs Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` and then drops the punctuation tokens in
:data:`PUNCTUATIONS`. The filter is case-sensitive and runs after lower-casing, so
``-LRB-`` / ``-RRB-`` survive as ``-lrb-`` / ``-rrb-`` (a reference quirk kept here).

This is our own rule set, written from the tokenizer's observed behaviour (not its
grammar). It is tested token-for-token against the Java program on all 25,014 COCO
val2017 captions and on adversarial strings (tests/test_metrics_captioning.py,
tests/test_metrics_caption_tokenizer.py).

Periods after abbreviations, as probed from CoreNLP 3.4.1:
- a single letter (``I`` included) keeps its period unless the next word -- the next
  whitespace-separated chunk, or at the end of a line the first word of the next non-blank
  line -- is a sentence starter (capitalised, from :data:`_SENTENCE_STARTERS`) itself followed
  by whitespace: "A. B. The dog" -> ``a. b . the dog``; "J. K." at the end of a line keeps
  both periods (this closes the gap the previous rule set had with runs of initials, and
  drops its special case for "I");
- ``no``, ``nos``, ``fig``, ``figs``, ``ca``, ``art``, ``pp``, ``op``, ``prop`` keep
  their period only before a number one whitespace character away ("No. 5" -> ``no.``,
  "No. the" -> ``no .``, "No.  5" -> ``no .``);
- state abbreviations such as ``Mass.``/``Pa.`` only when capitalised ("mass." splits);
- the words of :data:`_ABBR` and acronyms (``U.S.``) always keep it.
Characters outside the BMP (deleted by the 3.4.1 lexer) still count as a following word.

Speed: a line's tokens are the concatenation of its whitespace-separated chunks' tokens,
and a chunk's tokens depend on the chunk alone (plus, for a chunk ending in a period, on
the next word), so :func:`tokenize_lines` caches them per chunk: a caption costs a split,
a few dict look-ups and a join.
"""

from __future__ import annotations

import re

PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
# words whose following period stays attached (PTB abbreviation classes: titles, streets, states, months);
# probed from CoreNLP 3.4.1: "mx sat" are NOT in this class, "ark del ill la mass miss ore pa tex thur"
# only when capitalised (below), "bldg" is
_ABBR = frozenset("""st ave blvd rd ft ky bldg mr mrs ms dr drs prof profs sen sens rep reps lt col gen gov govs adm
rev maj sgt cpl pvt capt ste pres hon brig jr sr bros esq inc co cos corp ltd plc dept assn univ intl sys vs etc
jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri ala ariz calif colo conn
ct dak fla ga ind kan kans md mich minn mo mont neb nev okla penn tenn va vt wis wisc wyo mt""".split())
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
# keep their period only before a number ("No. 5", "Fig. 3"); observed: "No. the" -> "no ."
_BEFORE_NUMBER = frozenset("no nos fig figs ca art pp op prop".split())
# abbreviations only when capitalised: "Ark. the" -> "ark.", "ark. the" -> "ark ."
_CAPITALISED_ABBR = frozenset("ark del ill la mass miss ore pa tex thur".split())
_STARTER_CHUNK = re.compile(r"[A-Za-z]+")
_FIRST_WORD = re.compile(r"[ \t\r\f\v]*([A-Za-z]+)(?=[ \t\r\f\v]|$)")


def _keeps_period(word: str, at_chunk_end: bool, starter_next: bool, digit_next: bool) -> bool:
    """Does ``word`` keep the period that follows it? ``at_chunk_end``: the period ends its chunk,
    so the next word decides (``starter_next``: a sentence starter, ``digit_next``: a number)."""
    low = word.lower()
    if low in _BEFORE_NUMBER:
        return digit_next if at_chunk_end else True
    if _LETTER.fullmatch(word):
        # initials keep their period unless a sentence starts after them: "K. The" -> "k ."
        return not (at_chunk_end and starter_next)
    if low in _CAPITALISED_ABBR:
        return word[0].isupper()
    return low in _ABBR or bool(_ACRONYM.fullmatch(word))


def _starts_sentence(line: str | None) -> bool:
    if line is None:
        return False
    m = _FIRST_WORD.match(line)
    return bool(m) and m.group(1)[0].isupper() and m.group(1).lower() in _SENTENCE_STARTERS


def _starter_chunk(chunk: str | None) -> bool:
    return (chunk is not None and chunk[:1].isupper() and _STARTER_CHUNK.fullmatch(chunk) is not None
            and chunk.lower() in _SENTENCE_STARTERS)


_UNTOKENIZABLE = "\uffff"


def _prepare(line: str) -> str:
    # characters outside the BMP are "untokenizable" for the 3.4.1 lexer and deleted; until the
    # chunk is tokenised they stay as a mark, which the lexer's look-ahead still sees as a character
    s = "".join(ch if ord(ch) <= 0xFFFF else _UNTOKENIZABLE for ch in line.translate(_CHARMAP))
    return _FRACTION.sub(lambda m: m.group(1) + "\xa0" + m.group(2), s)  # "22 3/4" is one token


def chunk_tokens(chunk: str, starter_next: bool = False, digit_next: bool = False) -> list[str]:
    """PTB tokens (lower-cased, before the punctuation filter) of one whitespace-free chunk.

    ``starter_next`` / ``digit_next``: the next word (in the line, or the first of the next
    line) is a sentence starter / starts with a digit; only a chunk ending in "." uses them.
    """
    if _UNTOKENIZABLE in chunk:
        chunk = chunk.replace(_UNTOKENIZABLE, "")
    out: list[str] = []
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
            if j < n and chunk[j] == "." and _keeps_period(w, j + 1 == n, starter_next, digit_next):
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


def _chunks(line: str) -> list[str]:
    if line.isascii() and line.isprintable() and "/" not in line:
        return line.split()  # printable ASCII, no fraction: the only whitespace is " ", nothing to map
    return [c for c in _SPACE.split(_prepare(line)) if c]


def _contexts(chunks: list[str], ci: int, line: str, following) -> tuple[bool, bool]:
    """(next word is a sentence starter, next word is a number) for the chunk at ``ci``.

    ``following()`` -> (the next line or None, the next non-blank line or None, whether that
    one is the last line of the input). Observed from CoreNLP 3.4.1: the look-ahead skips
    whitespace and line breaks (blank lines included) to the next word; the starter must itself
    be followed by whitespace (a line break counts), so the last word of the whole input is no
    starter ("x K. Many" ends as ``k.`` on the last line, ``k .`` before it); the number must
    follow after exactly one whitespace character ("No. 5" -> ``no.``, "No.  5" -> ``no``).
    """
    prepared = _prepare(line)
    spans = [m.span() for m in _CHUNK.finditer(prepared)]
    if len(spans) != len(chunks):  # pragma: no cover - defensive; the two splits agree
        spans = [(0, 0)] * len(chunks)
    if ci + 1 < len(chunks):
        nxt = chunks[ci + 1]
        spaced = ci + 2 < len(chunks) or line[-1:].isspace() or following()[0] is not None
        one_gap = spans[ci + 1][0] - spans[ci][1] == 1
        return spaced and _starter_chunk(nxt), one_gap and nxt[:1].isdigit() and nxt[:1].isascii()
    nxt_line, nonblank, nonblank_last = following()
    if nonblank is None:
        return False, False
    nl = nonblank.replace("\n", " ")
    starter = _starts_sentence(nl)
    if starter and nonblank_last and not nl[-1:].isspace() and _FIRST_WORD.match(nl).end() == len(nl):
        starter = False
    digit = (nxt_line is nonblank and spans[ci][1] == len(prepared) and nl[:1].isdigit() and nl[:1].isascii())
    return starter, digit


def _following(lines, i: int):
    """``following`` for line ``i`` of ``lines`` (see :func:`_contexts`)."""
    def f():
        n = len(lines)
        if i + 1 >= n:
            return None, None, False
        for j in range(i + 1, n):
            if lines[j].replace("\n", " ").strip(" \t\r\f\v"):
                return lines[i + 1], lines[j], j + 1 == n
        return lines[i + 1], None, False
    return f


_CHUNK = re.compile(r"[^ \t\n\r\f\v]+")


def ptb_tokens(line: str, next_line: str | None = None, next_is_last: bool = False) -> list[str]:
    """All PTB tokens of one line, lower-cased (before the punctuation filter).

    ``next_line``: the line that follows in the same tokenizer input (pycocoevalcap feeds
    all captions as one file), which decides one sentence-break case; None at the end.
    ``next_is_last``: the next line is the last of the input. (:func:`tokenize_lines` knows
    the whole input and also looks past blank lines.)
    """
    line = line.replace("\n", " ")
    chunks = _chunks(line)
    # the input as far as it is known: this line, the next one, and a stand-in when that is not the last
    rest = [line] if next_line is None else [line, next_line] + ([] if next_is_last else ["x"])
    out: list[str] = []
    for ci, chunk in enumerate(chunks):
        ctx = (_contexts(chunks, ci, line, _following(rest, 0)) if chunk.endswith(".") else (False, False))
        out += chunk_tokens(chunk, *ctx)
    return out


def tokenize_caption(caption: str, next_caption: str | None = None) -> str:
    """One caption as pycocoevalcap's PTB step leaves it: space-joined, punctuation dropped.

    ``next_caption``: the caption after this one in the tokenizer's input (see :func:`ptb_tokens`).
    """
    nxt = None if next_caption is None else next_caption.replace("\n", " ")
    return " ".join(t for t in ptb_tokens(caption.replace("\n", " "), nxt) if t not in PUNCTUATIONS)


_SENSITIVE = object()  # cache mark: this chunk's tokens depend on the next word


def _filtered(chunk: str, ctx: tuple[bool, bool]) -> str:
    return " ".join(t for t in chunk_tokens(chunk, *ctx) if t not in PUNCTUATIONS)


def _plain_word(w: str) -> str | None:
    """Tokens of an ASCII letters-and-digits word (no rule but the splits applies), else None."""
    if w.isascii() and w.isalnum():
        low = w.lower()
        k = _SPLITS.get(low)
        return low if k is None else low[:k] + " " + low[k:]
    return None


def _fill(cache: dict, chunk: str) -> None:
    got = _plain_word(chunk)
    if got is None and chunk[-1] == "." and len(chunk) > 2:
        word = chunk[:-1]
        low = word.lower()
        if low not in _ABBR and low not in _BEFORE_NUMBER and low not in _CAPITALISED_ABBR:
            got = _plain_word(word)  # "table." -> "table" whatever follows
    if got is not None:
        cache[chunk] = got
        return
    plain = _filtered(chunk, (False, False))
    if chunk[-1] == "." and (plain != _filtered(chunk, (True, False)) or plain != _filtered(chunk, (False, True))):
        cache[chunk] = _SENSITIVE
    else:
        cache[chunk] = plain


def tokenize_lines(captions: list[str]) -> list[str]:
    """Captions tokenised as ONE tokenizer input, in order (as pycocoevalcap does per call)."""
    cache: dict = {}  # chunk -> its filtered tokens, or _SENSITIVE; (chunk, contexts) -> filtered tokens
    get = cache.get
    out = []
    n = len(captions)
    for i, caption in enumerate(captions):
        line = caption.replace("\n", " ") if "\n" in caption else caption
        chunks = _chunks(line)
        parts = list(map(get, chunks))
        if None in parts or _SENSITIVE in parts:
            for ci, chunk in enumerate(chunks):
                if cache.get(chunk) is None:
                    _fill(cache, chunk)
                got = cache[chunk]
                if got is _SENSITIVE:
                    ctx = _contexts(chunks, ci, line, _following(captions, i))
                    key = (chunk, ctx)
                    if key not in cache:
                        cache[key] = _filtered(chunk, ctx)
                    got = cache[key]
                parts[ci] = got
        out.append(" ".join(filter(None, parts)))
    return out
