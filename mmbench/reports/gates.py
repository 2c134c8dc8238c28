"""Regression gates: tolerance rules for ``mmbench compare``, parsed from the command line or a file.

A rule is one line. Optional ``key=value`` scopes (plugin, dataset, split, protocol, task;
glob patterns allowed) come first, then a metric name (or glob, ``*`` for every metric),
then the condition. Every condition has a terse and a plain-English spelling::

    t2i.R@1 drop<=0.5                     t2i R@1 may not drop more than 0.5 points
    rsum drop<=1%                         rsum may not drop more than 1%
    CIDEr no-sig-drop p<0.05              CIDEr may not drop significantly at p<0.05
    acc@0.5 >= 80                         (absolute floor on the new value; <= for a ceiling)
    i2t.R@1 within-published              published            (every declared paper number)
    dataset=coco* split=test CIDEr drop<=0.02

Metric names match ignoring case, spaces, dots, dashes and underscores ("t2i R@1" is
``t2i.R@1``, "bleu 4" is ``Bleu_4``). A drop is measured in the metric's own units
("points" for R@K and accuracies, which mmbench stores in percent); ``%`` makes it
relative to the baseline value. Each metric's direction comes from its task kind (or, for a
model's own extra metrics, from the direction the model declared): where lower is better
(medr, meanr, ECE) a drop is a rise.
A significance gate fails when the new run is worse and the paired-bootstrap p-value
(two-sided, over the shared samples) is below the level (default 0.05).

A rule that matches nothing in the compared runs is an error (exit code 2), never a silent pass.
A metric the baseline has as a number but the new run lacks (deleted, null/NaN, text) fails every
rule that matches it, a glob such as ``*`` included.

Checking rules (:func:`check_rules`, :func:`apply_rule`) works on the paired metric rows that
:mod:`mmbench.reports.compare` builds; the pairs are taken duck-typed (``label``, ``fields()``,
``rows``, ``new.record.published``), so this module does not import the comparison.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path

from mmbench.errors import DataError, MMBenchError
from mmbench.reports.format import delta as _d
from mmbench.reports.format import delta_ci, fmt, num, p_value

KINDS = ("max_drop", "no_sig_drop", "min", "max", "published")
SCOPES = ("plugin", "dataset", "split", "protocol", "task")
DEFAULT_ALPHA = 0.05

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERNS = [
    ("max_drop", re.compile(
        rf"^(?P<metric>.+?)\s*(?:\bdrop\s*<=?|\bmax[-_ ]drop\s*=?|\bmay\s+not\s+drop\s+(?:by\s+)?more\s+than)"
        rf"\s*(?P<x>{_NUM})\s*(?P<unit>%|percent\b|points?\b|pts?\b)?\s*$", re.I)),
    ("no_sig_drop", re.compile(
        rf"^(?P<metric>.+?)\s+(?:no[-_ ]sig(?:nificant)?[-_ ]drop|may\s+not\s+drop\s+significantly)"
        rf"(?:\s*(?:at\s+)?(?:p|alpha)\s*(?:<|=|<=)\s*(?P<p>{_NUM}))?\s*$", re.I)),
    ("published", re.compile(
        r"^(?:(?P<metric>.+?)\s+)?(?:within[-_ ]published(?:[-_ ]tolerance)?|within\s+published(?:\s+tolerance)?"
        r"|published)\s*$", re.I)),
    ("bound", re.compile(rf"^(?P<metric>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<x>{_NUM})\s*$", re.I)),
]

RULE_HELP = ("METRIC drop<=X[%] | METRIC no-sig-drop [p<A] | METRIC >= X | METRIC <= X | "
             "[METRIC] within-published, optionally preceded by plugin=/dataset=/split=/protocol=/task= scopes "
             "(e.g. 't2i.R@1 drop<=0.5', 'CIDEr no-sig-drop p<0.05')")


def canonical(name: str) -> str:
    """The form metric names are matched in: lower case, no spaces, dots, dashes or underscores."""
    return re.sub(r"[\s._\-]", "", str(name)).lower()


@dataclass(frozen=True)
class GateRule:
    text: str  # the rule as written
    kind: str  # one of KINDS
    metric: str  # metric name or glob; "*" = every metric
    threshold: float | None = None  # points / percent / alpha / bound
    relative: bool = False  # max_drop in percent of the baseline value
    op: str = ""  # for min/max: ">=", ">", "<=", "<"
    scopes: tuple[tuple[str, str], ...] = ()  # (field, glob)
    origin: str = "--gate"  # where the rule came from (for messages)

    @property
    def is_glob(self) -> bool:
        return any(ch in self.metric for ch in "*?[")

    def matches_metric(self, name: str) -> bool:
        if self.is_glob:
            return fnmatch.fnmatchcase(canonical(name), canonical(self.metric))
        return canonical(name) == canonical(self.metric)

    def matches_run(self, fields: dict[str, str]) -> bool:
        return all(fnmatch.fnmatchcase(str(fields.get(k, "")), pat) for k, pat in self.scopes)

    def describe(self) -> str:
        """A normalised one-line spelling of the rule."""
        scope = " ".join(f"{k}={v}" for k, v in self.scopes)
        scope = scope + " " if scope else ""
        m = self.metric
        if self.kind == "max_drop":
            return f"{scope}{m} drop<={_g(self.threshold)}{'%' if self.relative else ''}"
        if self.kind == "no_sig_drop":
            return f"{scope}{m} no-sig-drop p<{_g(self.threshold)}"
        if self.kind in ("min", "max"):
            return f"{scope}{m} {self.op} {_g(self.threshold)}"
        return f"{scope}{'' if m == '*' else m + ' '}within-published"


def _g(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) else str(x)


def parse_rule(text: str, origin: str = "--gate") -> GateRule:
    """Parse one rule; raise MMBenchError naming where it came from and the accepted forms."""
    raw = str(text).strip()
    if not raw:
        raise MMBenchError(f"{origin}: empty gate rule; expected {RULE_HELP}")
    tokens = raw.split()
    scopes = []
    while tokens:
        m = re.match(r"^(\w+)=(\S+)$", tokens[0])
        if not m or m.group(1).lower() not in SCOPES:
            break
        scopes.append((m.group(1).lower(), m.group(2)))
        tokens.pop(0)
    body = " ".join(tokens)
    for kind, pat in _PATTERNS:
        m = pat.match(body)
        if not m:
            continue
        metric = (m.group("metric") or "*").strip().strip(":").strip()
        if not metric or re.search(r"(^|\s)(max[-_ ]?)?drop$", metric, re.I):
            break  # "drop<=1" without a metric name
        common = dict(text=raw, metric=metric, scopes=tuple(scopes), origin=origin)
        if kind == "max_drop":
            x = float(m.group("x"))
            if x < 0:
                raise MMBenchError(f"{origin}: gate {raw!r}: a tolerated drop must be >= 0, got {x:g}")
            unit = (m.group("unit") or "").lower()
            return GateRule(kind="max_drop", threshold=x, relative=unit in ("%", "percent"), **common)
        if kind == "no_sig_drop":
            p = float(m.group("p")) if m.group("p") else DEFAULT_ALPHA
            if not 0 < p < 1:
                raise MMBenchError(f"{origin}: gate {raw!r}: the significance level must be in (0, 1), got {p:g}")
            return GateRule(kind="no_sig_drop", threshold=p, **common)
        if kind == "published":
            return GateRule(kind="published", **common)
        op = m.group("op")
        return GateRule(kind="min" if op.startswith(">") else "max", threshold=float(m.group("x")), op=op,
                        **common)
    raise MMBenchError(f"{origin}: cannot parse gate rule {raw!r}; expected {RULE_HELP}")


def parse_rules(rules: list[str] | None, origin: str = "--gate") -> list[GateRule]:
    return [parse_rule(r, origin) for r in rules or []]


def load_rules(path: str | Path) -> list[GateRule]:
    """Read a gate file: one rule per line; blank lines and ``#`` comments are ignored.

    A ``.json`` file may instead hold a list of rule strings (or ``{"gates": [...]}``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "gate file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read gate file: {exc}") from None
    if path.suffix.lower() == ".json":
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("gates")
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise DataError(path, "bad gate file", field="gates", expected="a list of rule strings")
        return [parse_rule(r, f"{path}: gates[{i}]") for i, r in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            out.append(parse_rule(line, f"{path}:{lineno}"))
    if not out:
        raise DataError(path, "gate file holds no rules", expected=RULE_HELP)
    return out


# ----------------------------------------------------------------------------------- checking


@dataclass
class GateCheck:
    rule: str  # normalised rule text
    origin: str
    run: str  # run label
    metric: str
    passed: bool
    message: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_rules(rules, pairs, *, strict: bool = True) -> list[GateCheck]:
    """Checks of every rule on the pairs (``mmbench.reports.compare.RunPair``), in rule order."""
    out: list[GateCheck] = []
    for rule in rules:
        out.extend(apply_rule(rule, pairs, strict=strict))
    return out


def mark_rows(pairs, checks: list[GateCheck]) -> None:
    """Set each metric row's ``gate`` to the worst result of the checks on it ("", "pass" or "fail")."""
    for p in pairs:
        worst: dict[str, str] = {}
        for c in checks:
            if c.run == p.label and c.metric:
                worst[c.metric] = "fail" if (not c.passed or worst.get(c.metric) == "fail") else "pass"
        for row in p.rows:
            row.gate = worst.get(row.metric, "")


def apply_rule(rule: GateRule, pairs, *, strict: bool = True) -> list[GateCheck]:
    """Checks of one rule on every pair in its scope; a rule matching nothing raises (when strict)."""
    out: list[GateCheck] = []
    seen_metrics: set[str] = set()
    for p in pairs:
        if not rule.matches_run(p.fields()):
            continue
        if rule.kind == "published":
            for pub in p.new.record.published or []:
                if not rule.matches_metric(pub.get("metric", "")):
                    continue
                within = bool(pub.get("within"))
                msg = (f"{pub.get('metric')}: measured {fmt(num(pub.get('measured')))}, published "
                       f"{fmt(num(pub.get('published')))} (Δ {_d(num(pub.get('delta')))}, tolerance "
                       f"±{pub.get('tolerance')}, {pub.get('source') or 'no source'})")
                out.append(GateCheck(rule.describe(), rule.origin, p.label, pub.get("metric", ""), within,
                                     msg + ("" if within else ": outside the published tolerance")))
            seen_metrics |= {str(x.get("metric")) for x in p.new.record.published or []}
            continue
        for row in p.rows:
            seen_metrics.add(row.metric)
            if not rule.matches_metric(row.metric):
                continue
            if row.baseline is None or row.new is None:
                if row.baseline is not None:
                    # the baseline has a number and the new run does not: deleting or nulling a metric
                    # never passes a gate, a glob (``*``) included
                    out.append(GateCheck(rule.describe(), rule.origin, p.label, row.metric, False,
                                         f"{row.metric}: baseline {fmt(row.baseline)}, but the metric is "
                                         f"{row.note or 'missing in the new run'}: a metric of the baseline must "
                                         f"be a number in the new run"))
                elif not rule.is_glob:
                    out.append(GateCheck(rule.describe(), rule.origin, p.label, row.metric, False,
                                         f"{row.metric} is {row.note}"))
                continue
            out.append(_check(rule, p, row))
    if not out and strict:
        where = " ".join(f"{k}={v}" for k, v in rule.scopes)
        what = "published numbers" if rule.kind == "published" else "metrics"
        declared = "declared " if rule.kind == "published" else ""
        raise MMBenchError(f"gate {rule.text!r} ({rule.origin}) matches no {declared}"
                           f"metric in the compared runs{' for ' + where if where else ''}. "
                           f"{what} present: {', '.join(sorted(seen_metrics)) or '(none)'}")
    return out


def _check(rule: GateRule, p, row) -> GateCheck:
    drop = (row.baseline - row.new) if row.higher_is_better else (row.new - row.baseline)
    base = f"{row.metric}: baseline {fmt(row.baseline)}, new {fmt(row.new)} (Δ {_d(row.delta)})"
    eps = 1e-9 * max(1.0, abs(row.baseline))
    if rule.kind == "max_drop":
        if rule.relative:
            rel = 100.0 * drop / abs(row.baseline) if row.baseline else (0.0 if drop <= 0 else math.inf)
            ok = rel <= rule.threshold + 1e-9
            msg = f"{base}: dropped {rel:.2f}% of the baseline, allowed {rule.threshold:g}%"
        else:
            ok = drop <= rule.threshold + eps
            msg = f"{base}: dropped {max(drop, 0.0):.4g}, allowed {rule.threshold:g}"
        return GateCheck(rule.describe(), rule.origin, p.label, row.metric, ok, msg)
    if rule.kind == "no_sig_drop":
        if row.p_value is None:
            return GateCheck(rule.describe(), rule.origin, p.label, row.metric, False,
                             f"{base}: significance cannot be tested ({row.note or 'no per-sample outcomes'})")
        sig = drop > 0 and row.p_value < rule.threshold
        ci = f", 95% CI of Δ {delta_ci(row.ci)}" if row.ci else ""
        msg = (f"{base}{ci}, p={p_value(row.p_value)}: "
               + ("significant drop" if sig else ("no significant drop" if drop > 0 else "no drop"))
               + f" at p<{rule.threshold:g}")
        return GateCheck(rule.describe(), rule.origin, p.label, row.metric, not sig, msg)
    v, t = row.new, rule.threshold
    ok = {">=": v >= t, ">": v > t, "<=": v <= t, "<": v < t}[rule.op]
    return GateCheck(rule.describe(), rule.origin, p.label, row.metric, ok,
                     f"{row.metric}: new {fmt(v)} {'satisfies' if ok else 'violates'} {rule.op} {t:g}")
