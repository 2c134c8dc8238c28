"""Captioning metrics: mmbench against pycocoevalcap 1.2, one process, same inputs. Prints JSON.

    python benchmarks/bench_captioning.py [--refs captions_val2017.json] [--no-meteor] [--jobs N]

Inputs: the 5000 COCO val2017 images; an image's candidate is its first caption, its
references the others (4 to 6), so the scores are those of a human against the other humans.

1. tokenizer: all 25,014 captions (grouped by image), the Java PTB tokenizer as pycocoevalcap
   runs it (JVM start included) against mmbench's Java-free tokenizer; token-identical?
2. suite without METEOR: pycocoevalcap's PTBTokenizer (Java, references and candidates) +
   Bleu(4) + Rouge + Cider, against ``caption_scores(..., metrics_impl="fast")`` (Java-free
   tokenizer + vectorised scorers); corpus and per-image scores identical?
3. with METEOR: the same plus pycocoevalcap's Meteor (one JVM) against mmbench's METEOR over
   parallel JVMs (``--jobs``; default: one per idle core, see mmbench.metrics.meteor.jobs_for),
   end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmbench.metrics.captioning import _close_meteor, caption_scores, tokenize  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_captions_val2017" / "captions_val2017.json"


def reference_suite(refs: dict, cands: dict, meteor: bool) -> tuple[dict, dict]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = PTBTokenizer().tokenize({i: [{"caption": c} for c in refs[i]] for i in cands})
    res = PTBTokenizer().tokenize({i: [{"caption": cands[i]}] for i in cands})
    metrics, per = {}, {}
    b, bs = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        metrics[f"Bleu_{n + 1}"], per[f"Bleu_{n + 1}"] = float(b[n]), [float(x) for x in bs[n]]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        m = Meteor()
        s, ss = m.compute_score(gts, res)
        _close_meteor(m)
        metrics["METEOR"], per["METEOR"] = float(s), [float(x) for x in ss]
    r, rs = Rouge().compute_score(gts, res)
    metrics["ROUGE_L"], per["ROUGE_L"] = float(r), [float(x) for x in rs]
    c, cs = Cider().compute_score(gts, res)
    metrics["CIDEr"], per["CIDEr"] = float(c), [float(x) for x in cs]
    return metrics, per


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refs", type=Path, default=DEFAULT)
    ap.add_argument("--no-meteor", action="store_true")
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    anns = json.loads(args.refs.read_text())["annotations"]
    grouped: dict = {}
    for a in anns:
        grouped.setdefault(str(a["image_id"]), []).append(a["caption"])
    refs = {i: v[1:] for i, v in grouped.items()}
    cands = {i: v[0] for i, v in grouped.items()}
    report: dict = {"inputs": f"{len(anns)} COCO val2017 captions, {len(cands)} images "
                              "(candidate: an image's first caption; references: the others)",
                    "load_average_1min": os.getloadavg()[0], "cpus": len(os.sched_getaffinity(0))}

    t_java, java = timed(tokenize, grouped, "ptb")
    t_py, py = timed(tokenize, grouped, "python")
    report["tokenizer"] = {"java_ptb_s": t_java, "mmbench_s": t_py, "speedup": t_java / t_py,
                           "identical": java == py}

    names = ("bleu", "rouge", "cider")
    t_ref, (m_ref, p_ref) = timed(reference_suite, refs, cands, False)
    t_fast, fast = timed(caption_scores, refs, cands, tokenizer="python", metrics=names)
    same = fast["metrics"] == m_ref and all(fast["per_image"][k] == v for k, v in p_ref.items())
    report["suite_without_meteor"] = {"pycocoevalcap_s": t_ref, "mmbench_s": t_fast, "speedup": t_ref / t_fast,
                                      "identical": same, "scores": fast["metrics"]}
    if not args.no_meteor:
        from mmbench.metrics.meteor import jobs_for

        t_ref, (m_ref, p_ref) = timed(reference_suite, refs, cands, True)
        jobs = jobs_for(len(cands), args.jobs)  # the default policy looks at the load now
        t_fast, fast = timed(caption_scores, refs, cands, tokenizer="python", metrics=names + ("meteor",),
                             meteor_jobs=jobs)
        same = fast["metrics"] == m_ref and all(fast["per_image"][k] == v for k, v in p_ref.items())
        report["suite_with_meteor"] = {"pycocoevalcap_s": t_ref, "mmbench_s": t_fast, "speedup": t_ref / t_fast,
                                       "identical": same, "meteor_jobs": jobs,
                                       "METEOR": fast["metrics"]["METEOR"]}
    report["load_average_1min_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
