"""What a report checks before it trusts a record (issue 12): its stored metrics against its own
per-sample outcomes, whether two records of the same run agree, and whether its ``created`` time
can be believed.

**Stored vs recomputed.** Every metric a record stores that its task kind can recompute from the
record's per-sample outcomes (``kind.unit_stats(per_sample)`` then ``kind.compute(stats)``, the
metric's one definition; ``kind.canonical_metric`` maps e.g. grounding's ``acc@0.5`` to ``acc``) is
recomputed and must agree to ``REL_TOL`` (relative; absolute below 1). Not recomputed: metrics the
kind cannot rebuild exactly (captioning's METEOR and SPICE, whose corpus values come from their
jars: the per-image mean differs), a model's own extra metrics (``details.extra_metrics``), and
anything ``compute`` does not return. A record that stores raised metrics over the per-sample
outcomes of a worse model therefore fails here, whatever gate is asked.

**created.** Written by the machine that made the run, never authenticated: a time in the future of
this machine's clock (beyond ``CLOCK_SLACK_S``) is flagged as untrusted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field

from mmbench.errors import MMBenchError
from mmbench.reports.format import fmt, num

#: relative tolerance of stored vs recomputed metrics (absolute for values below 1)
REL_TOL = 1e-9
#: metrics a kind cannot recompute exactly from its per-sample outcomes (fallback when the kind does not say)
UNVERIFIABLE = {"captioning": ("METEOR", "SPICE")}
#: how far in the future a ``created`` time may be before it is untrusted (clock skew between machines)
CLOCK_SLACK_S = 600.0


@dataclass
class Verification:
    #: "ok" (every recomputable metric agrees), "mismatch", "unusable" (per-sample data cannot be
    #: recomputed), "unverifiable" (nothing to recompute from: no per-sample outcomes, kind not installed)
    status: str
    reason: str = ""
    mismatches: list[tuple[str, object, float]] = field(default_factory=list)  # (metric, stored, recomputed)
    checked: list[str] = field(default_factory=list)

    def describe(self, limit: int = 6) -> str:
        """``rsum stored 405.30, recomputed 400.30; ...``."""
        parts = [f"{m!s} stored {_v(s)}, recomputed {_v(r)}" for m, s, r in self.mismatches[:limit]]
        more = len(self.mismatches) - limit
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _v(x) -> str:
    if isinstance(x, float) and math.isfinite(x):
        return f"{x:.10g}"
    return fmt(x) if x is not None else "null"


def _excluded(kind, task: str) -> set[str]:
    own = getattr(kind, "unverifiable_metrics", None)
    return set(own if own is not None else UNVERIFIABLE.get(task, ()))


def verify_record(rec) -> Verification:
    """Recompute every recomputable metric of ``rec`` from its per-sample outcomes (see the module doc)."""
    from mmbench.tasks import UnknownKind, kind_for_report

    if rec.status != "ok":
        return Verification("unverifiable", "a failed run")
    ps = rec.per_sample or {}
    if not ps:
        return Verification("unverifiable", "the record has no per-sample outcomes")
    kind = kind_for_report(rec.task)
    if isinstance(kind, UnknownKind):
        return Verification("unverifiable", f"task kind {rec.task!r} is not installed")
    try:
        n, stats = kind.unit_stats(ps)
        values = kind.compute(stats)
    except NotImplementedError as exc:
        return Verification("unverifiable", str(exc))
    except MMBenchError as exc:
        return Verification("unusable", str(exc))
    except Exception as exc:  # noqa: BLE001 - numbers where numbers cannot be: a hand-edited record
        return Verification("unusable", f"{type(exc).__name__}: {str(exc)[:200]}")
    if not n or not isinstance(values, dict):
        return Verification("unverifiable", "the per-sample outcomes hold no unit to recompute from")
    excluded = _excluded(kind, rec.task)
    extra = set((rec.details or {}).get("extra_metrics") or ())
    out = Verification("ok")
    for m, stored in (rec.metrics or {}).items():
        if m in excluded:
            continue
        if m in extra and not any(info.matches(m) for info in getattr(kind, "metrics", ())):
            continue  # a model's own metric, not the kind's
        key = kind.canonical_metric(m)
        if key not in values:
            continue
        s = num(stored)
        if s is None:
            continue  # missing / null / text: the gates fail it (a metric of the baseline must be a number)
        try:
            r = float(values[key])
        except (TypeError, ValueError, OverflowError):
            continue
        out.checked.append(m)
        if not math.isfinite(r) or abs(s - r) > REL_TOL * max(1.0, abs(r)):
            out.mismatches.append((m, stored, r))
    if out.mismatches:
        out.status = "mismatch"
    elif not out.checked:
        return Verification("unverifiable", "none of its stored metrics can be recomputed from its per-sample "
                                            "outcomes")
    return out


def result_digest(rec) -> str:
    """What two records of the same run must share to be the same result: metrics and per-sample outcomes."""
    payload = {"status": rec.status, "metrics": rec.metrics, "per_sample": rec.per_sample,
               "sample_ids": rec.sample_ids}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def created_time(rec) -> float | None:
    """``created`` as a POSIX time (a naive time is UTC), None when unparsable."""
    try:
        d = _dt.datetime.fromisoformat(str(rec.created))
    except (TypeError, ValueError):
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    try:
        return d.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def in_future(rec, now: float | None = None) -> bool:
    """Whether the record's ``created`` lies in the future of this machine's clock (beyond the slack)."""
    t = created_time(rec)
    if t is None:
        return False
    if now is None:
        now = _dt.datetime.now(_dt.timezone.utc).timestamp()
    return t > now + CLOCK_SLACK_S


def future_text(rec) -> str:
    return (f"created {str(rec.created)[:40]!r} is in the future of this machine's clock: the record's date is not "
            f"trusted (it decides which re-run is the newest)")
