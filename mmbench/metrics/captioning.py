"""Captioning metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D with pycocoevalcap 1.2's numbers.

``caption_scores(..., metrics_impl=)``:

- ``"fast"`` (default): mmbench's vectorised BLEU / ROUGE-L / CIDEr-D
  (:mod:`mmbench.metrics.caption_ngrams`, equal to pycocoevalcap's per-image and corpus scores
  to the last bit) and the official METEOR 1.5 jar over parallel JVMs
  (:mod:`mmbench.metrics.meteor`, the single-JVM numbers exactly);
- ``"reference"``: salaniz/pycocoevalcap's own scorers, called one by one.

Neither goes through ``COCOEvalCap.evaluate()``: the stock evaluate builds ``Spice()`` in its
scorer list, which needs a CoreNLP download, so offline it raises right after tokenisation and
returns no metric at all. Here SPICE is reported unavailable with the reason, never as 0.

Per image we keep BLEU's sufficient statistics (test length, closest reference length with
ties to the shorter, n-gram guesses and clipped matches; salaniz/pycocoevalcap:
bleu/bleu_scorer.py cook_test): the corpus BLEU is computed from them, and the bootstrap
resamples the same statistics.

CIDEr (really CIDEr-D) takes its document frequencies only from the reference sets being
evaluated (cider/cider_scorer.py compute_doc_freq), so a subset's CIDEr is not comparable
with the full set's.

Tokenizers (``tokenize(..., tokenizer=)``):
- ``"python"``: :mod:`mmbench.metrics.ptb`, Java-free, token-identical to the Java PTB step
  on all 25,014 COCO val2017 captions (the default of the captioning task);
- ``"ptb"``: the reference, Stanford CoreNLP 3.4.1 through Java, run in a private temporary
  folder (pycocoevalcap's own wrapper writes into its installed package folder and fails on a
  read-only site-packages);
- ``"whitespace"``: no tokenisation (nlg-eval style inputs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from typing import Mapping, Sequence

from mmbench.errors import DataError, MMBenchError

UNAVAILABLE = "unavailable"
TOKENIZERS = ("python", "ptb", "whitespace")
METRICS = ("bleu", "meteor", "rouge", "cider", "spice")
SPICE_REASON = ("SPICE needs Stanford CoreNLP models downloaded at first use and Java 8; "
                "mmbench runs offline, so it is not computed")


def java_available() -> bool:
    return shutil.which("java") is not None


def _ptb_java(lines: list[str]) -> list[str]:
    """Run the Java PTB tokenizer as pycocoevalcap does, from a private temporary folder."""
    if not java_available():
        raise MMBenchError("tokenizer 'ptb' needs a Java runtime (not found on PATH); use tokenizer=python, "
                           "the Java-free equivalent")
    import pycocoevalcap.tokenizer.ptbtokenizer as ptbmod

    jar = os.path.join(os.path.dirname(os.path.abspath(ptbmod.__file__)), ptbmod.STANFORD_CORENLP_3_4_1_JAR)
    sentences = "\n".join(lines)
    with tempfile.TemporaryDirectory(prefix="mmbench-ptb-") as tmp:
        path = os.path.join(tmp, "captions.txt")
        with open(path, "wb") as fh:
            fh.write(sentences.encode())
        proc = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                               "-lowerCase", path], capture_output=True, cwd=tmp)
    if proc.returncode != 0:
        raise MMBenchError(f"the Java PTB tokenizer failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-500:]}")
    out = proc.stdout.decode().split("\n")
    return out


def tokenize(captions: Mapping[str, Sequence[str]], tokenizer: str = "python") -> dict[str, list[str]]:
    """Tokenise ``{id: [captions]}`` to ``{id: [space-joined tokens]}`` like pycocoevalcap's PTB step."""
    if tokenizer == "whitespace":
        return {k: [" ".join(c.split()) for c in v] for k, v in captions.items()}
    if tokenizer == "python":
        from mmbench.metrics.ptb import tokenize_lines

        # one input in the reference's order: the tokens of a line can depend on the next line
        flat = tokenize_lines([c for v in captions.values() for c in v])
        out_py: dict[str, list[str]] = {}
        pos = 0
        for k, v in captions.items():
            out_py[k] = flat[pos:pos + len(v)]
            pos += len(v)
        return out_py
    if tokenizer == "ptb":
        from mmbench.metrics.ptb import PUNCTUATIONS

        keys = [k for k, v in captions.items() for _ in range(len(v))]
        lines = _ptb_java([c.replace("\n", " ") for v in captions.values() for c in v])
        out: dict[str, list[str]] = {k: [] for k in captions}
        # zip as the reference does (salaniz/pycocoevalcap:tokenizer/ptbtokenizer.py)
        for k, line in zip(keys, lines):
            out[k].append(" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS))
        return out
    raise MMBenchError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")


def _ngrams(words: list[str], n: int = 4) -> Counter:
    c: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            c[tuple(words[i:i + k])] += 1
    return c


def bleu_stats(candidate: str, references: Sequence[str], n: int = 4) -> list[int]:
    """[testlen, reflen, guess_1..n, correct_1..n] for one image, as bleu_scorer.cook_test makes them."""
    max_counts: dict = {}
    ref_lens = []
    for ref in references:
        words = ref.split()
        ref_lens.append(len(words))
        for g, c in _ngrams(words, n).items():
            if c > max_counts.get(g, 0):
                max_counts[g] = c
    words = candidate.split()
    testlen = len(words)
    reflen = min((abs(length - testlen), length) for length in ref_lens)[1]  # closest, ties to shorter
    guess = [max(0, testlen - k + 1) for k in range(1, n + 1)]
    correct = [0] * n
    for g, c in _ngrams(words, n).items():
        correct[len(g) - 1] += min(max_counts.get(g, 0), c)
    return [testlen, reflen, *guess, *correct]


def check_inputs(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str], *,
                 source: str | None = None) -> list[str]:
    ids = list(candidates)
    missing = [i for i in ids if i not in references]
    if missing:
        raise DataError(source, f"{len(missing)} candidate image id(s) have no references "
                                f"(first: {missing[:5]})", field="image_id")
    empty = [i for i in ids if not references[i]]
    if empty:
        raise DataError(source, f"{len(empty)} image(s) have no reference caption (first: {empty[:5]})",
                        field="references")
    bad = [i for i in ids if not isinstance(candidates[i], str)]
    if bad:
        raise DataError(source, f"candidate caption for image {bad[0]!r} is {type(candidates[bad[0]]).__name__}",
                        field="caption", expected="a string")
    for what, texts in (("candidate", ((i, [candidates[i]]) for i in ids)), ("reference", ((i, references[i])
                                                                                         for i in ids))):
        for i, caps in texts:
            for c in caps:
                if not isinstance(c, str):
                    raise DataError(source, f"a {what} caption of image {i!r} is {type(c).__name__}",
                                    field="caption", expected="a string")
                if len(c) > MAX_CAPTION_CHARS or c.count(" ") >= MAX_CAPTION_WORDS:
                    raise DataError(source, f"the {what} caption of image {i!r} has {len(c.split())} words / "
                                            f"{len(c)} characters", field="caption",
                                    expected=f"at most {MAX_CAPTION_WORDS} words and {MAX_CAPTION_CHARS} characters "
                                             f"(METEOR's aligner and CIDEr are quadratic in the caption length)")
    return ids


#: bounds on one caption: a 50,000-word "caption" would hold METEOR's JVM for hours
MAX_CAPTION_WORDS = 1000
MAX_CAPTION_CHARS = 20000


IMPLS = ("fast", "reference")


def caption_scores(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str], *,
                   tokenizer: str = "python", metrics: Sequence[str] = ("bleu", "meteor", "rouge", "cider", "spice"),
                   metrics_impl: str = "fast", meteor_jobs: int | None = None, meteor_pool=None) -> dict:
    """Corpus scores and per-image scores.

    Returns ``{"metrics": {Bleu_1.., METEOR, ROUGE_L, CIDEr}, "per_image": {name: [..],
    "bleu_stats": [[..], ..]}, "ids": [...], "unavailable": {metric: reason}, "tokenizer",
    "metrics_impl"}`` (pycocoevalcap names and scale: 0..1, CIDEr on its own x10 scale).
    Images are scored in the order of ``candidates``.

    ``metrics_impl``: ``"fast"`` (default; mmbench's vectorised BLEU / ROUGE-L / CIDEr-D,
    equal to pycocoevalcap's to the last bit, and METEOR 1.5 over ``meteor_jobs`` parallel
    JVMs, default one per idle core with at least 1000 images per JVM) or ``"reference"``
    (pycocoevalcap's own scorers, one JVM).
    ``meteor_pool``: an open :class:`mmbench.metrics.meteor.MeteorPool` to reuse (left open).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise MMBenchError(f"unknown captioning metric(s) {unknown}; known: {', '.join(METRICS)}")
    if metrics_impl not in IMPLS:
        raise MMBenchError(f"unknown metrics implementation {metrics_impl!r}; choose one of {', '.join(IMPLS)}")
    ids = check_inputs(references, candidates)
    out: dict = {"metrics": {}, "per_image": {}, "ids": ids, "unavailable": {}, "tokenizer": tokenizer,
                 "metrics_impl": metrics_impl}
    want_meteor = "meteor" in metrics and bool(ids)
    if want_meteor and not java_available():
        out["unavailable"]["METEOR"] = "Java runtime not found (METEOR 1.5 is a Java program)"
        want_meteor = False
    pool, own_pool = None, False
    if want_meteor and metrics_impl == "fast":
        from mmbench.metrics.meteor import MeteorPool, jobs_for

        # started before tokenising, so the JVMs load while the other metrics are computed
        pool, own_pool = ((meteor_pool, False) if meteor_pool is not None
                          else (MeteorPool(jobs_for(len(ids), meteor_jobs)), True))
    try:
        gts = tokenize({i: list(references[i]) for i in ids}, tokenizer)
        res = tokenize({i: [candidates[i]] for i in ids}, tokenizer)
        if ids:
            if metrics_impl == "fast":
                _fast_scores(gts, res, ids, metrics, out)
                if want_meteor:
                    score, scores = pool.score(gts, res)
                    out["metrics"]["METEOR"] = float(score)
                    out["per_image"]["METEOR"] = [float(x) for x in scores]
            else:
                _reference_scores(gts, res, ids, metrics, want_meteor, out)
    finally:
        if own_pool:
            pool.close()
    if "spice" in metrics:
        out["unavailable"]["SPICE"] = SPICE_REASON
    _order(out)
    return out


_NAMES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def _order(out: dict) -> None:
    out["metrics"] = {k: out["metrics"][k] for k in _NAMES if k in out["metrics"]}


def _fast_scores(gts: dict, res: dict, ids: list, metrics: Sequence[str], out: dict) -> None:
    from mmbench.metrics import caption_ngrams as cn

    cands = [res[i][0] for i in ids]
    refs = [gts[i] for i in ids]
    if "bleu" in metrics or "cider" in metrics:
        corpus = cn.encode(cands, refs)
    if "bleu" in metrics:
        stats = cn.bleu_stats(corpus)
        corpus_bleu = cn.bleu_compute(stats)
        per = cn.bleu_per_image(stats)
        for n in range(4):
            out["metrics"][f"Bleu_{n + 1}"] = float(corpus_bleu[n])
            out["per_image"][f"Bleu_{n + 1}"] = per[n]
        out["per_image"]["bleu_stats"] = stats.tolist()
    if "rouge" in metrics:
        r = cn.rouge_l(cands, refs)
        out["metrics"]["ROUGE_L"] = cn.mean_compute(r)
        out["per_image"]["ROUGE_L"] = r.tolist()
    if "cider" in metrics:
        c = cn.cider_d(corpus)
        out["metrics"]["CIDEr"] = cn.mean_compute(c)
        out["per_image"]["CIDEr"] = c.tolist()


def _reference_scores(gts: dict, res: dict, ids: list, metrics: Sequence[str], want_meteor: bool,
                      out: dict) -> None:
    """pycocoevalcap 1.2's own scorers, one by one (never COCOEvalCap.evaluate(): see the module doc)."""
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        score, scores = Bleu(4).compute_score(gts, res, verbose=0)
        for n in range(4):
            out["metrics"][f"Bleu_{n + 1}"] = float(score[n])
            out["per_image"][f"Bleu_{n + 1}"] = [float(x) for x in scores[n]]
        out["per_image"]["bleu_stats"] = [bleu_stats(res[i][0], gts[i]) for i in ids]
    if want_meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        m = Meteor()
        try:
            score, scores = m.compute_score(gts, res)
        finally:
            _close_meteor(m)
        out["metrics"]["METEOR"] = float(score)
        out["per_image"]["METEOR"] = [float(x) for x in scores]
    if "rouge" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        score, scores = Rouge().compute_score(gts, res)
        out["metrics"]["ROUGE_L"] = float(score)
        out["per_image"]["ROUGE_L"] = [float(x) for x in scores]
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        score, scores = Cider().compute_score(gts, res)
        out["metrics"]["CIDEr"] = float(score)
        out["per_image"]["CIDEr"] = [float(x) for x in scores]


def _close_meteor(m) -> None:
    # pycocoevalcap 1.2's Meteor has no close(); end its JVM so no process is left behind
    proc = getattr(m, "meteor_p", None)
    if proc is None:
        return
    try:
        with m.lock:
            proc.stdin.close()
            proc.kill()
            proc.wait()
    except Exception:  # noqa: BLE001 - best effort at shutdown
        pass


# ---------------------------------------------------------------------------------------------
# per-image statistics and compute(): what the bootstrap and paired tests recompute
# ---------------------------------------------------------------------------------------------

#: metrics whose corpus value is the mean of per-image scores (METEOR's corpus value comes from the
#: jar's aggregated statistics instead, so its resampled value is that of the per-image mean)
MEAN_METRICS = ("METEOR", "ROUGE_L", "CIDEr", "SPICE")


def unit_stats(per_sample) -> tuple[int, dict]:
    """(images, statistics) from per-image lists: ``bleu_stats`` rows (the sufficient statistics the
    corpus BLEU is computed from) and the per-image METEOR / ROUGE_L / CIDEr / SPICE scores."""
    import numpy as np

    means = {k: np.asarray(v, dtype=np.float64) for k, v in per_sample.items() if k in MEAN_METRICS}
    stats = np.asarray(per_sample["bleu_stats"], dtype=np.int64) if "bleu_stats" in per_sample else None
    lens = {len(v) for v in means.values()} | ({len(stats)} if stats is not None else set())
    if len(lens) > 1:
        raise MMBenchError(f"captioning per-sample lists have different lengths {sorted(lens)}")
    return (lens.pop() if lens else 0), {"bleu_stats": stats, "means": means}


def compute(stats: dict, weights=None) -> dict[str, float]:
    """Corpus BLEU-1..4 from the summed statistics and the per-image means, image i counted
    ``weights[i]`` times (None: once; integer weights keep BLEU's sums exact, so weights of 1
    reproduce the corpus BLEU bit for bit). CIDEr's document frequencies stay those of the full
    evaluated reference set (recomputing them on a resample would count repeated images' references
    several times)."""
    from mmbench.metrics.caption_ngrams import bleu_compute, mean_compute

    out: dict[str, float] = {}
    if stats["bleu_stats"] is not None:
        for i, b in enumerate(bleu_compute(stats["bleu_stats"], weights)):
            out[f"Bleu_{i + 1}"] = b
    for k, v in stats["means"].items():
        out[k] = mean_compute(v, weights)
    return out
