"""METEOR 1.5 (the official jar shipped inside pycocoevalcap) over parallel JVMs.

The jar's ``-stdio`` protocol (salaniz/pycocoevalcap:meteor/meteor.py shows it):

- ``SCORE ||| ref 1 ||| ... ||| ref k ||| hypothesis`` answers one line: that segment's
  sufficient statistics (match counts per stage, chunks, lengths) as numbers separated by spaces;
- ``EVAL ||| stats 1 ||| ... ||| stats n`` answers n lines (each segment's score) and one more
  line: the corpus score computed from the *aggregated* statistics.

A segment's statistics depend on that segment only, so the SCORE lines (the slow part:
stemming, synonym and paraphrase matching) are split over several JVMs, one per core, and
the statistics strings, in image order, go to one EVAL line: the corpus and per-image scores
are then the single-JVM numbers exactly (same strings in, same program). The JVMs start
when the pool is made, so their start-up (~5 s: the paraphrase table) overlaps the
tokenisation and the other metrics; a pool can score several corpora (``score`` many times)
and is closed once.

Text is sanitised for the line protocol: the hypothesis as pycocoevalcap does it
(``'|||'`` removed, then double spaces made single); in hypothesis and references, line
breaks become spaces and lone surrogates (unencodable in UTF-8) are dropped; ``'|||'`` is
removed from references too (pycocoevalcap sends it through, which silently splits one
reference into several). Tokenised captions contain none of these, so for them the lines are
exactly the reference's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import Mapping, Sequence

from mmbench.errors import MMBenchError

METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")  # pycocoevalcap/meteor/meteor.py meteor_cmd
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEWLINE = re.compile(r"[\r\n\u2028\u2029\x85\x0b\x0c]")


def meteor_jar() -> str:
    import pycocoevalcap.meteor.meteor as m

    return os.path.join(os.path.dirname(os.path.abspath(m.__file__)), m.METEOR_JAR)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """Cores not busy (cores minus the 1-minute load average), at least 1."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        load = 0.0
    return max(1, int(default_jobs() - load + 0.5))


def jobs_for(n_segments: int, jobs: int | None = None) -> int:
    """JVMs for a corpus: ``jobs`` if given; else one per idle core, with >= 1000 segments each.

    Measured on a 2-core machine (5000 COCO images): one JVM spends ~17 s of CPU (about 8 s of it
    loading the paraphrase table), two spend ~28 s. An extra JVM only pays where a core is idle
    for it and the corpus is large enough to amortise its start-up; on a busy machine it makes
    the run slower, so the default counts idle cores, not cores.
    """
    if jobs is not None:
        return int(jobs)
    return max(1, min(default_jobs(), idle_cores(), n_segments // 1000))


def _clean(s: str) -> str:
    if "\n" in s or "\r" in s or not s.isprintable():
        s = _NEWLINE.sub(" ", s)
    if not s.isascii():
        s = _SURROGATE.sub("", s)
    return s


def sanitize_hypothesis(s: str) -> str:
    return _clean(s).replace("|||", "").replace("  ", " ")  # as Meteor._stat


def sanitize_reference(s: str) -> str:
    return _clean(s).replace("|||", "")


def score_line(hypothesis: str, references: Sequence[str]) -> str:
    """The SCORE line pycocoevalcap's ``Meteor._stat`` writes (after sanitising)."""
    return " ||| ".join(("SCORE", " ||| ".join(sanitize_reference(r) for r in references),
                         sanitize_hypothesis(hypothesis)))


_PROBE = "SCORE ||| a ||| a"  # answered once the JVM has loaded its resources


class _JVM:
    def __init__(self, java: str, jar: str, memory: str, options: Sequence[str] = ()):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([java, *options, "-jar", f"-Xmx{memory}", jar, *METEOR_ARGS],
                                     cwd=os.path.dirname(jar), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        threading.Thread(target=self._probe, daemon=True).start()

    def _probe(self) -> None:
        try:
            self.proc.stdin.write(_PROBE.encode() + b"\n")
            self.proc.stdin.flush()
            self.readline("starting")
        except BaseException as exc:  # noqa: BLE001 - reported when the JVM is used
            self.failed = exc
        finally:
            self.ready.set()

    def wait_ready(self) -> None:
        self.ready.wait()
        if self.failed is not None:
            raise self.failed

    def fail(self, what: str) -> MMBenchError:
        try:
            self.err.seek(0)
            tail = self.err.read().decode(errors="replace")[-800:]
        except Exception:  # noqa: BLE001
            tail = ""
        code = self.proc.poll()
        return MMBenchError(f"METEOR (Java) failed while {what}"
                            + (f" (exit code {code})" if code is not None else "")
                            + (f": {tail.strip()}" if tail.strip() else ""))

    def readline(self, what: str) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise self.fail(what)
        return line.decode().strip()

    def roundtrip(self, lines: list[str], n_answers: int, what: str) -> list[str]:
        """Write ``lines`` from a thread while reading ``n_answers`` lines (no pipe deadlock)."""
        errors: list[BaseException] = []

        def write():
            try:
                for ln in lines:
                    self.proc.stdin.write(ln.encode() + b"\n")
                self.proc.stdin.flush()
            except BaseException as exc:  # noqa: BLE001 - reported by the reader
                errors.append(exc)

        t = threading.Thread(target=write, daemon=True)
        t.start()
        try:
            out = [self.readline(what) for _ in range(n_answers)]
        finally:
            t.join()
        if errors:
            raise self.fail(what) from errors[0]
        return out

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        for f in (self.proc.stdout, self.err):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass


class MeteorPool:
    """``jobs`` METEOR 1.5 JVMs (default: one per core), started now, closed by :meth:`close`."""

    def __init__(self, jobs: int | None = None, *, memory: str = "2G", java: str = "java",
                 jvm_options: Sequence[str] = ()):
        if shutil.which(java) is None:
            raise MMBenchError("METEOR 1.5 needs a Java runtime (java not found on PATH)")
        jobs = default_jobs() if jobs is None else int(jobs)
        if jobs < 1:
            raise MMBenchError(f"METEOR jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        jar = meteor_jar()
        self._jvms = [_JVM(java, jar, memory, tuple(jvm_options)) for _ in range(jobs)]
        self._lock = threading.Lock()

    def __enter__(self) -> "MeteorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for j in getattr(self, "_jvms", []):
            j.close()
        self._jvms = []

    def __del__(self) -> None:  # a pool left open ends its JVMs when collected
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def stats(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]],
              batch: int = 100) -> list[str]:
        """The jar's statistics line of every segment, in order, computed over the JVMs in parallel.

        Batches of segments go to whichever JVM is free; a JVM takes work only once it has
        started (answered a probe line), so one that starts late never holds the others up.
        """
        if not self._jvms:
            raise MMBenchError("the METEOR pool is closed")
        lines = [score_line(h, r) for h, r in zip(hypotheses, references)]
        parts = [lines[i:i + batch] for i in range(0, len(lines), batch)]
        results: list[list[str] | None] = [None] * len(parts)
        todo = list(range(len(parts)))[::-1]
        take = threading.Lock()
        errors: list[BaseException] = []
        failures: list[BaseException] = []

        def work(jvm: _JVM) -> None:
            try:
                while not jvm.ready.wait(0.05):
                    with take:
                        if not todo:
                            return
                if jvm.failed is not None:  # the others may still do the work
                    failures.append(jvm.failed)
                    return
                while True:
                    with take:
                        if not todo or errors:
                            return
                        k = todo.pop()
                    results[k] = jvm.roundtrip(parts[k], len(parts[k]), "computing segment statistics")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        with self._lock:
            threads = [threading.Thread(target=work, args=(j,), daemon=True) for j in self._jvms]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise errors[0]
        if any(r is None for r in results):
            raise failures[0] if failures else MMBenchError("METEOR: no JVM computed the segment statistics")
        return [s for part in results for s in part]  # type: ignore[union-attr]

    def evaluate(self, stats: Sequence[str]) -> tuple[float, list[float]]:
        """Corpus score (from the aggregated statistics) and per-segment scores: one EVAL line."""
        if not stats:
            return float("nan"), []
        with self._lock:
            jvm = next((j for j in self._jvms if j.ready.is_set() and j.failed is None), self._jvms[0])
            jvm.wait_ready()
            out = jvm.roundtrip(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1, "evaluating")
        return float(out[-1]), [float(x) for x in out[:-1]]

    def score(self, gts: Mapping, res: Mapping) -> tuple[float, list[float]]:
        """Same inputs and outputs as pycocoevalcap's ``Meteor().compute_score(gts, res)``."""
        if gts.keys() != res.keys():
            raise MMBenchError("METEOR: references and candidates must have the same image ids")
        keys = list(gts.keys())
        for k in keys:
            if len(res[k]) != 1:
                raise MMBenchError(f"METEOR: image {k!r} must have exactly one candidate caption")
        return self.evaluate(self.stats([res[k][0] for k in keys], [gts[k] for k in keys]))


def meteor_score(gts: Mapping, res: Mapping, jobs: int | None = None) -> tuple[float, list[float]]:
    """pycocoevalcap's METEOR over ``jobs`` parallel JVMs (started and closed here)."""
    with MeteorPool(jobs) as pool:
        return pool.score(gts, res)
