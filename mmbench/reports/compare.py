"""Regression reports: compare a baseline set of run records with a new one, and check gates.

Runs are aligned by (plugin, dataset, split, protocol) — or, with ``pair_by="samples"``, by
(dataset, split, protocol) whatever the plugin, to compare two different models on the same
samples: then both runs must carry data fingerprints that agree and per-sample outcomes over
exactly the same sample ids, or the pair is refused. Two runs are only compared when
they were computed on the same data under the same protocol: a different protocol, data
fingerprint, task, dataset options or scoring convention (ties policy, IoU convention and
threshold, tokenizer) is refused with a ``MismatchError`` naming the field and both values.

For every metric the report gives baseline, new, delta (new − baseline, from the records),
and a paired-bootstrap confidence interval and two-sided p-value of the delta over the
samples both runs share (aligned by ``sample_ids``; ``mmbench.metrics.bootstrap.paired_bootstrap``).
Gates are parsed and checked on those rows by ``mmbench.reports.gates``; a comparison is
rendered (rich tables, markdown, JUnit XML, JSON) by ``mmbench.reports.compare_render``. This
module is the data: loading, matching, the paired metric rows and their statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mmbench import records as _records
from mmbench.errors import MismatchError, MMBenchError
from mmbench.records import RunRecord
from mmbench.reports.format import num as _num
from mmbench.reports.gates import GateCheck, GateRule, check_rules, mark_rows
from mmbench.reports.leaderboard import newest_first
from mmbench.tasks import kind_for_report

# moved to compare_render / gates / format; re-exported for code that imports them from here
from mmbench.reports.compare_render import to_json, to_junit, to_markdown, to_rich  # noqa: F401
from mmbench.reports.format import p_value as _p  # noqa: F401
from mmbench.reports.gates import apply_rule  # noqa: F401

#: how runs are paired: by plugin (a regression check of one model) or by samples (two models, same data)
PAIR_BY = ("plugin", "samples")


@dataclass
class LoadedRun:
    record: RunRecord
    path: str

    @property
    def label(self) -> str:
        plugin, dataset, split, protocol = self.record.key
        return f"{plugin} · {dataset}/{split}" + (f" [{protocol}]" if protocol else "")


@dataclass
class MetricRow:
    metric: str
    baseline: float | None
    new: float | None
    delta: float | None  # new - baseline (record values)
    ci: list[float] | None = None  # paired bootstrap CI of the delta
    p_value: float | None = None
    n: int | None = None  # shared resampling units
    higher_is_better: bool = True
    note: str = ""
    gate: str = ""  # "", "pass" or "fail" (worst gate result on this row)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("metric", "baseline", "new", "delta", "ci", "p_value", "n",
                                               "higher_is_better", "note", "gate")}


@dataclass
class RunPair:
    baseline: LoadedRun
    new: LoadedRun
    rows: list[MetricRow] = field(default_factory=list)
    n_baseline: int = 0
    n_new: int = 0
    n_shared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def key(self):
        return self.new.record.key

    @property
    def label(self) -> str:
        bp = self.baseline.record.plugin.get("name", "")
        if bp == self.key[0]:
            return self.new.label
        _, dataset, split, protocol = self.key  # two plugins on the same samples (pair_by="samples")
        return f"{bp} → {self.key[0]} · {dataset}/{split}" + (f" [{protocol}]" if protocol else "")

    def fields(self) -> dict[str, str]:
        """What gate scopes match; ``plugin`` is the new run's plugin."""
        plugin, dataset, split, protocol = self.key
        return {"plugin": plugin, "dataset": dataset, "split": split, "protocol": protocol,
                "task": self.new.record.task}


@dataclass
class Comparison:
    pairs: list[RunPair]
    checks: list[GateCheck]
    only_baseline: list[LoadedRun] = field(default_factory=list)
    only_new: list[LoadedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        return {
            "passed": self.passed, "n_checks": len(self.checks), "n_failed": len(self.failures),
            "settings": self.settings, "notes": self.notes,
            "checks": [c.to_dict() for c in self.checks],
            "runs": [{"plugin": p.key[0], "baseline_plugin": p.baseline.record.plugin.get("name", ""),
                      "dataset": p.key[1], "split": p.key[2], "protocol": p.key[3],
                      "task": p.new.record.task, "fingerprint": p.new.record.dataset.get("fingerprint", ""),
                      "baseline_record": p.baseline.path, "new_record": p.new.path,
                      "baseline_run_id": p.baseline.record.run_id, "new_run_id": p.new.record.run_id,
                      "n_baseline": p.n_baseline, "n_new": p.n_new, "n_shared": p.n_shared, "notes": p.notes,
                      "metrics": [r.to_dict() for r in p.rows]} for p in self.pairs],
            "only_in_baseline": [{"key": list(r.record.key), "path": r.path} for r in self.only_baseline],
            "only_in_new": [{"key": list(r.record.key), "path": r.path} for r in self.only_new],
        }


# ----------------------------------------------------------------------------------- loading


def load_runs(paths, side: str = "records") -> list[LoadedRun]:
    """Record files or folders of them (searched recursively for ``*.json``), keeping each path;
    ``side`` ("baseline", "new") labels the errors (``mmbench.records.load_many``)."""
    return [LoadedRun(rec, path) for path, rec in _records.load_many(paths, with_paths=True, what=side)]


# ----------------------------------------------------------------------------------- matching


def _dedupe(runs: list[LoadedRun], side: str, notes: list[str], newest: bool = False) -> dict[tuple, LoadedRun]:
    """One record per run (plugin, dataset, split, protocol).

    Records of the same run with the same results (metrics and per-sample outcomes: a copy, a
    deterministic re-run) are one: the newest is used, with a note. Records that DISAGREE are
    ambiguous, since the ``created`` time that would pick one is written by whoever made the file:
    refused, listing the files, unless ``newest`` (``--newest``): then the newest by ``created`` is
    used, with a note naming the ignored files, and a ``created`` in the future of this machine's
    clock is refused as untrusted.
    """
    from mmbench.reports.verify import future_text, in_future, result_digest

    by_key: dict[tuple, list[LoadedRun]] = {}
    for r in runs:
        by_key.setdefault(r.record.key, []).append(r)
    out = {}
    ambiguous, untrusted = [], []
    for key, rs in by_key.items():
        # newest by 'created', ties by run id and content, then path: never the order files were listed in
        rs.sort(key=lambda r: (newest_first(r.record), r.path))
        out[key] = rs[-1]
        if len(rs) == 1:
            continue
        differ = len({result_digest(r.record) for r in rs}) > 1
        if differ and not newest:
            ambiguous.append(f"{rs[-1].label}: " + ", ".join(f"{r.path} (created {str(r.record.created)[:40]})"
                                                            for r in rs))
            continue
        if differ:
            untrusted += [f"{r.path}: {future_text(r.record)}" for r in rs if in_future(r.record)]
        same = "" if differ else " (same results)"
        notes.append(f"{side}: {len(rs)} records for {rs[-1].label}{same}; using the newest ({rs[-1].path}), "
                     f"ignoring {', '.join(r.path for r in rs[:-1])}")
    if ambiguous:
        raise MMBenchError(f"{side}: several records of the same run with different results (metrics or per-sample "
                           f"outcomes); which one to compare is ambiguous, and their 'created' times are not "
                           f"authenticated. Pass one record (or a folder holding one record per run), or --newest "
                           f"to use the newest by 'created':\n  " + "\n  ".join(ambiguous))
    if untrusted:
        raise MMBenchError(f"{side}: --newest cannot pick the newest record: a record is dated in the future, so its "
                           f"date cannot be trusted:\n  " + "\n  ".join(untrusted))
    return out


def data_fingerprint(record, pair_by: str = "run") -> str:
    """The fingerprint two runs must share: of everything the run read (``fingerprint``: evaluated
    split, dataset options and the data a model was fitted on), or, pairing two plugins by samples,
    of the evaluated data alone (``data_fingerprint``; records before it have only the first)."""
    if pair_by == "samples":
        return record.dataset.get("data_fingerprint") or record.dataset.get("fingerprint", "")
    return record.dataset.get("fingerprint", "")


def _mismatches(b: LoadedRun, n: LoadedRun, pair_by: str = "run") -> list[str]:
    """Fields that make two runs' numbers incomparable, as readable lines."""
    out = []

    def differ(field_name: str, vb, vn):
        out.append(f"field {field_name!r} differs: baseline {vb!r} ({b.path}) vs new {vn!r} ({n.path})")

    rb, rn = b.record, n.record
    if rb.task != rn.task:
        differ("task", rb.task, rn.task)
    fb, fn = data_fingerprint(rb, pair_by), data_fingerprint(rn, pair_by)
    if fb and fn and fb != fn:
        differ("dataset." + ("data_fingerprint" if pair_by == "samples" else "fingerprint"), fb, fn)
    ob = (rb.config or {}).get("dataset_options") or {}
    on = (rn.config or {}).get("dataset_options") or {}
    if ob != on:
        differ("config.dataset_options", ob, on)
    for f in kind_for_report(rn.task).conventions:
        if f in (rb.details or {}) and f in (rn.details or {}) and rb.details[f] != rn.details[f]:
            differ(f"details.{f}", rb.details[f], rn.details[f])
    return out


def _by_samples(runs: dict[tuple, LoadedRun], side: str) -> dict[tuple, LoadedRun]:
    """Key runs by (dataset, split, protocol); two plugins on the same key make the pairing ambiguous."""
    out: dict[tuple, list[LoadedRun]] = {}
    for r in runs.values():
        out.setdefault(r.record.key[1:], []).append(r)
    bad = {k: rs for k, rs in out.items() if len(rs) > 1}
    if bad:
        lines = [f"{k[0]}/{k[1]}" + (f" [{k[2]}]" if k[2] else "") + ": " + ", ".join(
            f"{r.record.key[0]} ({r.path})" for r in rs) for k, rs in bad.items()]
        raise MMBenchError(f"--pair-by samples: {side} holds runs of several plugins on the same dataset, split and "
                           f"protocol, so which to pair is ambiguous; give one record (or a folder with one "
                           f"plugin's runs) per side:\n  " + "\n  ".join(lines))
    return {k: rs[0] for k, rs in out.items()}


def sample_problems(task: str, rb: RunRecord, rn: RunRecord) -> list[str]:
    """Why two runs' per-sample outcomes are not over exactly the same samples ([] when they are)."""
    kind = kind_for_report(task)
    pa, pb = rb.per_sample or {}, rn.per_sample or {}
    ua, ub = kind.unit_key(pa), kind.unit_key(pb)
    if ua is None or ub is None:
        return [f"the {'baseline' if ua is None else 'new'} record has no per-sample outcomes to pair"]
    if ua != ub:
        return [f"per-sample outcomes of another kind: baseline {ua!r} vs new {ub!r}"]
    # one key per unit the records hold (retrieval: images and captions)
    keys, seen = [], set()
    for k in [ua] + [k for k in pa if k in pb]:
        unit = (rb.per_sample_units or {}).get(k) or kind.per_sample_units.get(k, k)
        if unit not in seen and k in pa and k in pb:
            seen.add(unit)
            keys.append(k)
    out = []
    for k in keys:
        ida, idb = rb.ids_for(k), rn.ids_for(k)
        if ida is None or idb is None:
            if k != ua:
                continue
            out.append(f"the {'baseline' if ida is None else 'new'} record has no sample ids for {k!r}: "
                       f"outcomes cannot be aligned by sample")
            continue
        sa, sb = set(ida), set(idb)
        if sa != sb:
            only_a, only_b = sorted(sa - sb), sorted(sb - sa)
            ex = lambda xs: ", ".join(repr(x) for x in xs[:3]) + (", …" if len(xs) > 3 else "")  # noqa: E731
            out.append(f"sample ids differ ({k}): baseline {len(sa)}, new {len(sb)}, shared {len(sa & sb)}; "
                       + "; ".join(part for part in (
                           f"only in baseline: {ex(only_a)}" if only_a else "",
                           f"only in new: {ex(only_b)}" if only_b else "") if part))
    return out


def match_runs(baseline: list[LoadedRun], new: list[LoadedRun], notes: list[str], pair_by: str = "plugin", *,
               newest: bool = False, allow_missing_fingerprint: bool = False):
    """Pair runs by (plugin, dataset, split, protocol); refuse incomparable pairs with MismatchError.

    ``pair_by="samples"``: pair by (dataset, split, protocol) whatever the plugin; the pair must have
    equal data fingerprints (both present) and per-sample outcomes over the same sample ids.
    A record without a data fingerprint (``dataset.fingerprint``) cannot show that both runs saw the
    same data: refused unless ``allow_missing_fingerprint`` (then a note on the pair). Duplicate
    records of a run: see :func:`_dedupe` (``newest``).
    """
    if pair_by not in PAIR_BY:
        raise MMBenchError(f"unknown pairing {pair_by!r}; choose {' or '.join(PAIR_BY)}")
    bmap, nmap = _dedupe(baseline, "baseline", notes, newest), _dedupe(new, "new", notes, newest)
    if pair_by == "samples":
        bmap, nmap = _by_samples(bmap, "baseline"), _by_samples(nmap, "new")
    # the part of the key that must agree when only the protocol differs
    same = (lambda k: k[:3]) if pair_by == "plugin" else (lambda k: k[1:3])
    pairs, problems, unproven = [], [], []
    only_b = [r for k, r in bmap.items() if k not in nmap]
    only_n = [r for k, r in nmap.items() if k not in bmap]
    # same plugin/dataset/split under another protocol: the user meant to compare them, refuse loudly
    for rb in list(only_b):
        for rn in list(only_n):
            if same(rb.record.key) == same(rn.record.key):
                problems.append(f"{rb.label}: field 'dataset.protocol' differs: baseline {rb.record.key[3]!r} "
                                f"({rb.path}) vs new {rn.record.key[3]!r} ({rn.path})")
                only_b.remove(rb)
                only_n.remove(rn)
                break
    for key, rb in bmap.items():
        if key not in nmap:
            continue
        rn = nmap[key]
        bad = _mismatches(rb, rn, pair_by)
        pair = RunPair(rb, rn)
        if pair_by == "samples" and not bad:
            fb, fn = data_fingerprint(rb.record, pair_by), data_fingerprint(rn.record, pair_by)
            if not (fb and fn):
                bad.append("pairing by samples needs the data fingerprint of both runs; missing in the "
                           + " and ".join(side for side, f in (("baseline", fb), ("new", fn)) if not f)
                           + f" record ({rb.path if not fb else rn.path})")
            else:
                bad.extend(sample_problems(rn.record.task, rb.record, rn.record))
        if bad:
            problems.extend(f"{pair.label}: {line}" for line in bad)
            continue
        fb, fn = data_fingerprint(rb.record, pair_by), data_fingerprint(rn.record, pair_by)
        missing = [(side, r) for side, r, f in (("baseline", rb, fb), ("new", rn, fn)) if not f]
        for side, r in missing:
            if allow_missing_fingerprint:
                pair.notes.append(f"data fingerprint missing in the {side} record ({r.path}): cannot verify that both "
                                  f"runs saw the same data; compared anyway (--allow-missing-fingerprint)")
            else:
                unproven.append(f"{pair.label}: {r.path}: field 'dataset.fingerprint' is missing in the {side} "
                                f"record")
        pairs.append(pair)
    if problems or unproven:
        msg = []
        if problems:
            what = "different protocols or on different data" + (" or samples" if pair_by == "samples" else "")
            msg.append(f"refusing to compare numbers made under {what}:\n  " + "\n  ".join(problems))
        if unproven:
            msg.append("refusing to compare runs whose data cannot be verified (no data fingerprint: nothing shows "
                       "that both runs saw the same data; --allow-missing-fingerprint compares them anyway):\n  "
                       + "\n  ".join(unproven))
        raise MismatchError("\n".join(msg))
    return pairs, only_b, only_n


# ----------------------------------------------------------------------------------- alignment


def align_per_sample(task: str, rb: RunRecord, rn: RunRecord) -> tuple[dict, dict, int, int, int]:
    """Restrict both runs' per-sample data to their shared units, in the baseline's order (the task
    kind's ``align``). Returns (per_sample_baseline, per_sample_new, n_baseline, n_new, n_shared)."""
    return kind_for_report(task).align(rb.per_sample or {}, rb.sample_ids or {}, rn.per_sample or {},
                                       rn.sample_ids or {})


# ----------------------------------------------------------------------------------- comparing


def _metric_order(task: str, names) -> list[str]:
    return kind_for_report(task).order_metrics(names)


def higher_is_better(record: RunRecord, metric: str) -> bool:
    """The metric's direction: the task kind's declaration, else what the record declares (a model's
    extra metrics, ``details.extra_metric_info``)."""
    declared = (record.details or {}).get("extra_metric_info") or {}
    return kind_for_report(record.task).metric_info(metric, declared).higher_is_better


def compare_pair(pair: RunPair, *, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> None:
    rb, rn = pair.baseline.record, pair.new.record
    task = rn.task
    try:
        psa, psb, pair.n_baseline, pair.n_new, pair.n_shared = align_per_sample(task, rb, rn)
    except MismatchError as exc:
        psa = psb = {}
        pair.notes.append(f"no paired test: {exc}")
    if pair.n_shared and (pair.n_shared < pair.n_baseline or pair.n_shared < pair.n_new):
        pair.notes.append(f"paired tests use the {pair.n_shared} samples both runs share "
                          f"(baseline {pair.n_baseline}, new {pair.n_new})")
    elif not pair.n_shared and (rb.per_sample or rn.per_sample):
        pair.notes.append("the runs share no samples: no paired tests")
    names = set(rb.metrics) | set(rn.metrics)
    order = _metric_order(task, names)
    tests: dict[str, Any] = {}
    if pair.n_shared and n_resamples > 0:
        both = [m for m in order if _num(rb.metrics.get(m)) is not None and _num(rn.metrics.get(m)) is not None]
        tests = paired_tests(task, both, psa, psb, n_resamples=n_resamples, seed=seed, confidence=confidence)
    for m in order:
        b, n = _num(rb.metrics.get(m)), _num(rn.metrics.get(m))
        row = MetricRow(m, b, n, None if b is None or n is None else n - b, higher_is_better=higher_is_better(rn, m))
        res = tests.get(m)
        if b is None or n is None:
            row.note = _absent(rb.metrics, m, "baseline") if b is None else _absent(rn.metrics, m, "new run")
        elif isinstance(res, str):
            row.note = res
        elif res is not None:
            ci = [float(x) for x in res["ci"]]
            row.ci = ci if all(math.isfinite(x) for x in ci) else None
            row.p_value, row.n = float(res["p_value"]), int(res["n"])
        pair.rows.append(row)


def _absent(metrics: dict, m: str, side: str) -> str:
    """Why a metric is not a number on one side: missing, null, not finite or not a number."""
    if m not in metrics:
        return f"missing in the {side}"
    v = metrics[m]
    if v is None:
        return f"null in the {side} (NaN or no value)"
    if isinstance(v, float):
        return f"not finite in the {side} ({v})"
    return f"not a number in the {side} ({type(v).__name__} {str(v)[:40]!r})"


def paired_tests(task: str, metrics: list[str], psa: dict, psb: dict, *, n_resamples: int, seed: int,
                 confidence: float) -> dict[str, Any]:
    """Paired bootstrap for several metrics: {metric: result dict, or a reason string when untestable}.

    All metrics come from one pass over the same resamples (``paired_bootstrap_many``): calling
    ``paired_bootstrap`` per metric would redo the resampling once per metric (11x for retrieval).
    """
    from mmbench.metrics.bootstrap import all_metric_values, canonical_metric, paired_bootstrap_many

    try:
        recomputable = set(all_metric_values(task, psa)) & set(all_metric_values(task, psb))
    except MMBenchError as exc:
        return {m: f"no paired test: {exc}" for m in metrics}
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        return {m: f"no paired test: per-sample data unusable ({type(exc).__name__}: {exc})" for m in metrics}
    ok = [m for m in metrics if canonical_metric(task, m) in recomputable]
    out: dict[str, Any] = {m: (f"no paired test: {m!r} cannot be recomputed from {task} per-sample data "
                               f"(recomputable: {', '.join(sorted(recomputable))})") for m in metrics if m not in ok}
    if ok:
        try:
            out.update(paired_bootstrap_many(task, ok, psa, psb, n_resamples=n_resamples, seed=seed,
                                             confidence=confidence))
        except MMBenchError as exc:
            out.update({m: f"no paired test: {exc}" for m in ok})
    return out


def compare(baseline: list[LoadedRun], new: list[LoadedRun], rules: list[GateRule] = (), *,
            n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
            pair_by: str = "plugin", newest: bool = False, allow_missing_fingerprint: bool = False) -> Comparison:
    """Align, compare and gate. Raises MismatchError / MMBenchError on input that cannot be compared.

    ``pair_by``: ``"plugin"`` pairs runs by (plugin, dataset, split, protocol); ``"samples"`` by
    (dataset, split, protocol) whatever the plugin (two models on the same samples; see match_runs).
    Every paired record's stored metrics are recomputed from its per-sample outcomes
    (:func:`verify_pairs`): a record that disagrees is refused. ``newest`` / ``allow_missing_fingerprint``:
    see :func:`match_runs` (``--newest``, ``--allow-missing-fingerprint``).
    """
    if not baseline:
        raise MMBenchError("baseline: no run records given")
    if not new:
        raise MMBenchError("new: no run records given")
    notes: list[str] = []
    ok_b = [r for r in baseline if r.record.status == "ok"]
    for r in baseline:
        if r.record.status != "ok":
            notes.append(f"baseline run {r.label} failed ({r.path}); it is not compared")
    ok_n = [r for r in new if r.record.status == "ok"]
    pairs, only_b, only_n = match_runs(ok_b, ok_n, notes, pair_by=pair_by, newest=newest,
                                       allow_missing_fingerprint=allow_missing_fingerprint)
    verify_pairs(pairs)
    same = (lambda k: k[:3]) if pair_by == "plugin" else (lambda k: k[1:3])
    checks: list[GateCheck] = []
    for r in new:  # a failed new run fails the compare when it was meant to reproduce a baseline run
        if r.record.status == "ok":
            continue
        err = (r.record.error or "").strip().splitlines()
        hit = [b for b in only_b if same(b.record.key) == same(r.record.key)]
        if hit:
            only_b.remove(hit[0])
            checks.append(GateCheck("new run succeeds", "run", hit[0].label, "", False,
                                    f"the new run failed ({r.path}): {err[0] if err else 'no error recorded'}"[:500]))
        else:
            notes.append(f"new run {r.label} failed ({r.path}) and has no baseline counterpart")
    if not pairs and not checks:
        have_b = sorted({r.label for r in ok_b})
        have_n = sorted({r.label for r in new})
        how = "(plugin, dataset, split, protocol)" if pair_by == "plugin" else "(dataset, split, protocol)"
        raise MMBenchError(f"no new run matches a baseline run by {how}. "
                           f"baseline: {', '.join(have_b) or '(none ok)'}; new: {', '.join(have_n)}")
    live = []
    for p in pairs:
        compare_pair(p, n_resamples=n_resamples, seed=seed, confidence=confidence)
        live.append(p)
    for r in only_b:
        checks.append(GateCheck("baseline run present in new", "run", r.label, "", False,
                                f"no new run for baseline {r.label} ({r.path})"))
    for r in only_n:
        notes.append(f"new run {r.label} has no baseline ({r.path})")
    # with a failed or missing run the compare fails already; a rule may then match nothing
    checks.extend(check_rules(rules, live, strict=not checks))
    mark_rows(live, checks)
    return Comparison(pairs, checks, only_b, only_n, notes,
                      settings={"n_resamples": n_resamples, "seed": seed, "confidence": confidence,
                                "pair_by": pair_by, "newest": newest,
                                "allow_missing_fingerprint": allow_missing_fingerprint,
                                "rules": [r.describe() for r in rules]})


def verify_pairs(pairs: list[RunPair]) -> None:
    """Recompute the stored metrics of every paired record from its per-sample outcomes
    (:func:`mmbench.reports.verify.verify_record`): per-sample data that cannot be recomputed is a
    DataError, stored metrics that disagree a MismatchError naming file, metric, stored and recomputed
    values; a record with nothing to recompute from gets a note on its pair."""
    from mmbench.errors import DataError
    from mmbench.reports.verify import verify_record

    bad: list[str] = []
    seen: set[int] = set()
    for p in pairs:
        for side, run in (("baseline", p.baseline), ("new", p.new)):
            if id(run) in seen:
                continue
            seen.add(id(run))
            v = verify_record(run.record)
            if v.status == "unusable":
                raise DataError(run.path, f"the per-sample outcomes cannot be recomputed: {v.reason}",
                                field="per_sample", expected=f"the per-sample outcomes of a {run.record.task} run")
            if v.status == "mismatch":
                bad += [f"{run.path}: metric {m!r}: stored {_vtext(s)}, recomputed {r:.10g} from per_sample"
                        for m, s, r in v.mismatches]
            elif v.status == "unverifiable":
                p.notes.append(f"{side} record {run.path}: stored metrics not verified ({v.reason})")
    if bad:
        raise MismatchError("refusing to compare records whose stored metrics disagree with their own per-sample "
                            "outcomes (a forged or hand-edited record?):\n  " + "\n  ".join(bad))


def _vtext(x) -> str:
    return f"{x:.10g}" if isinstance(x, float) else str(x)
