"""A Treebank-style word tokenizer equal to ``nltk.word_tokenize(text, preserve_line=True)``.

The SCAN / SGRAF / VSE++ data loaders tokenise every caption with
``nltk.tokenize.word_tokenize(caption.lower())``. nltk needs its punkt model (a data
download) for the sentence split that ``word_tokenize`` does first; a caption is one
sentence, and with ``preserve_line=True`` nltk runs only its ``NLTKWordTokenizer``.
This module reproduces that word tokenizer with the standard library alone, so no
nltk and no data download are needed at run time.

Reference (facts only, rewritten here): nltk 3.10.4, nltk/tokenize/destructive.py
(``NLTKWordTokenizer.tokenize``, ``MacIntyreContractions``); this is the nltk version
the parity fixtures in ../shared/parity were produced with. The rules are applied as
ordered text rewrites; every rewrite pads the pieces it separates with spaces, and the
final tokens are the whitespace-split result. Tests compare this tokenizer with nltk
itself on the real SCAN caption files.

Known difference from the *full* ``word_tokenize`` (without ``preserve_line``): a
caption holding several sentences ("a dog. a cat.") is not split at its inner full
stops first, so "dog." stays one token there, exactly as with ``preserve_line=True``.
"""

from __future__ import annotations

import re

_QUOTE_CHARS_CLOSING = "»”’"

# (pattern, replacement) pairs, applied in this order. Groups are spelled out in the
# replacement strings; "\g<0>" is the whole match.
_OPENING_QUOTES = (
    # typographic opening quotes and runs of backticks become their own tokens
    (re.compile("([«“‘„]|`+)"), r" \1 "),
    # a straight double quote at the very start opens a quotation
    (re.compile(r'^"'), "``"),
    (re.compile("(``)"), r" \1 "),
    # a straight double quote (or two single quotes) after a space or an opening bracket
    (re.compile(r"""([ (\[{<])("|'')"""), r"\1 `` "),
    # a single quote opening a word that is not a clitic ('re 've 'll 'm 't 's 'd 'n)
    (re.compile(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
)

_PUNCTUATION = (
    # the final full stop of the text, before any closing brackets/quotes and trailing blanks
    (re.compile(r"([^.])(\.)([\])}>\"'" + _QUOTE_CHARS_CLOSING + r" ]*+)\s*$"), r"\1 \2 \3 "),
    # colon / comma not followed by a digit ("3,36" and "10:30" stay whole)
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    # ellipses
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    # figure dash, en dash, em dash, horizontal bar
    (re.compile("[\u2012-\u2015]"), r" \g<0> "),
    # the final full stop again (now without the closing-quote set containing a space)
    (re.compile(r"([^.])(\.)([\])}>\"']*)\s*$"), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"\*"), r" \g<0> "),
)

_BRACKETS = (re.compile(r"[\][(){}<>]"), r" \g<0> ")
_DOUBLE_DASH = (re.compile("--"), " -- ")

_CLOSING_QUOTES = (
    (re.compile("([" + _QUOTE_CHARS_CLOSING + "])"), r" \1 "),
    (re.compile("''"), " '' "),
    (re.compile('"'), " '' "),
    (re.compile(r"\s+"), " "),
    # clitics split off the word before them
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
)

# Two-part words split in the middle (cannot -> can not, gonna -> gon na, ...), then
# 'tis / 'twas (MacIntyre's contraction lists).
_SPLIT_WORDS = tuple(re.compile(p) for p in (
    r"(?i)\b(can)(not)\b", r"(?i)\b(d)('ye)\b", r"(?i)\b(gim)(me)\b", r"(?i)\b(gon)(na)\b",
    r"(?i)\b(got)(ta)\b", r"(?i)\b(lem)(me)\b", r"(?i)\b(more)('n)\b", r"(?i)\b(wan)(na)(?=\s)",
    r"(?i) ('t)(is)\b", r"(?i) ('t)(was)\b",
))


def _apply(rules, text: str) -> str:
    for pattern, repl in rules:
        text = pattern.sub(repl, text)
    return text


def word_tokenize(text: str) -> list[str]:
    """Tokens of ``text`` exactly as ``nltk.word_tokenize(text, preserve_line=True)`` gives them."""
    text = _apply(_OPENING_QUOTES, text)
    text = _apply(_PUNCTUATION, text)
    text = _apply((_BRACKETS, _DOUBLE_DASH), text)
    text = _apply(_CLOSING_QUOTES, " " + text + " ")
    for pattern in _SPLIT_WORDS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()
