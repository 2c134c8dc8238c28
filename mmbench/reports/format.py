"""Text pieces every report renderer shares: number formatting and markdown escaping.

One place decides how a value, a delta, a p-value or a confidence interval is printed, so the
leaderboard (terminal, markdown, HTML) and ``mmbench compare`` (terminal, markdown, JUnit) print
the same number the same way. HTML escaping is not here: that is another language
(:func:`html.escape`, in :mod:`mmbench.reports.html`).
"""

from __future__ import annotations

import math
import re

#: what a missing number prints as
MISSING = "–"

# every character str.splitlines() breaks on: none of them may reach a markdown table row
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")

# terminal escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings
# (ESC P/X/^/_ ... ST), two-character escapes (ESC + one char), and the 8-bit CSI / OSC introducers
_ANSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
                   r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                   r"|\x1b[ -/]*[0-~]?")
# what is left that a terminal or a reader could act on: C0 / C1 controls (tab and newline aside), DEL,
# and the bidirectional overrides / isolates that reorder what is displayed ("Trojan Source")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: CSV cells a spreadsheet would run as a formula (or whose first character it would act on)
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def num(v) -> float | None:
    """``v`` as a finite float, or None (bools, strings, NaN and infinities are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer beyond any float
        return None
    return v if math.isfinite(v) else None


def fmt(v, digits: int = 2) -> str:
    """A metric value: ``digits`` decimals, 4 for a value on a 0..1 scale; ints and text as they are."""
    if v is None:
        return MISSING
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 1 or v == 0 else f"{v:.4f}"
    return str(v)


def precise(v) -> str:
    """A value with 4 decimals (hover titles)."""
    return f"{v:.4f}"


def delta(v) -> str:
    """A signed difference: ``+0.00``, ``-1.25``, ``+0.0123`` (below 1 in size: 4 decimals)."""
    if v is None:
        return MISSING
    if abs(v) < 5e-10:  # float noise of a zero difference (e.g. rsum of equal R@K sums)
        v = 0.0
    return f"{v:+.2f}" if abs(v) >= 1 or v == 0 else f"{v:+.4f}"


def delta_ci(ci) -> str:
    """A confidence interval of a delta, ``[-1.20, +0.40]``; ``–`` when there is none."""
    return f"[{delta(ci[0])}, {delta(ci[1])}]" if ci else MISSING


def published_delta(v, missing: str = MISSING) -> str:
    """Measured minus published, always 2 decimals: ``-0.70``; ``missing`` when not a number."""
    return f"{v:+.2f}" if isinstance(v, (int, float)) else missing


def p_value(p) -> str:
    """A p-value: 3 decimals, ``<0.001`` below that."""
    if p is None:
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def ci_half(v, ci) -> str:
    """`` ±half-width`` of ``ci`` at the precision of the value ``v`` ("" without a usable interval)."""
    if not ci or None in ci:
        return ""
    half = (ci[1] - ci[0]) / 2
    # same precision as the value: 0..1-scale metrics (BLEU, METEOR) need 4 decimals
    return f" ±{half:.4f}" if isinstance(v, float) and abs(v) < 1 else f" ±{half:.1f}"


def safe_text(s, *, newlines: bool = False) -> str:
    """Data- or plugin-supplied text made safe to print on a terminal (or in any report): terminal
    escape sequences (ANSI colours, cursor moves, OSC titles and hyperlinks) and every other control
    character removed, bidirectional overrides too. Line breaks become spaces unless ``newlines``;
    a tab becomes a space."""
    s = _ANSI.sub("", "" if s is None else str(s))
    if newlines:
        s = s.replace("\r\n", "\n")
        s = "\n".join(_CONTROLS.sub("", part) for part in _LINE_BREAKS.split(s))
        return s.replace("\t", " ")
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", s)).replace("\t", " ")


# markdown punctuation that can start a link, an image, emphasis, a code span or an escape
_MD_PUNCT = re.compile(r"([\\`*\[\]~])")


def md_escape(s) -> str:
    """Plain text in markdown (a table cell, a list item): no line breaks or control characters, pipes
    escaped, no raw HTML (nor entities), no link / image / code span / emphasis markup."""
    s = safe_text(s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", s).replace("|", "\\|")


def code_span(s) -> str:
    """Text inside a `code span` in a table cell (entities would show literally there): no backtick
    (it would close the span), no line break or control character, pipes escaped (GFM tables)."""
    return safe_text(s).replace("`", "'").replace("|", "\\|")


def csv_cell(v):
    """A CSV cell: numbers as they are; text that a spreadsheet would run as a formula (``=``, ``+``,
    ``-``, ``@``, tab or CR first) prefixed with a single quote, escape sequences and control
    characters (newlines and tabs aside) removed."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    s = str(v)
    lead = s.startswith(_CSV_FORMULA)
    s = _CONTROLS.sub("", _ANSI.sub("", s))
    return "'" + s if lead or s.startswith(_CSV_FORMULA) else s
