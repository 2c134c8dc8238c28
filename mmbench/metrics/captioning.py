"""Captioning metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D as pycocoevalcap 1.2 computes them.

This first version calls pycocoevalcap's scorers directly (salaniz/pycocoevalcap).
SPICE needs a CoreNLP download and cannot run offline: it is reported unavailable
with the reason, never as 0 (the stock COCOEvalCap.evaluate() would raise instead).
"""

from __future__ import annotations

import shutil
from typing import Mapping, Sequence

UNAVAILABLE = "unavailable"


def java_available() -> bool:
    return shutil.which("java") is not None


def tokenize(captions: Mapping[str, Sequence[str]], tokenizer: str = "ptb") -> dict[str, list[str]]:
    """Tokenise {id: [captions]} to {id: [space-joined tokens]} like pycocoevalcap's PTBTokenizer."""
    if tokenizer == "whitespace":
        return {k: [" ".join(c.split()) for c in v] for k, v in captions.items()}
    if tokenizer == "ptb":
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    raise ValueError(f"unknown tokenizer {tokenizer!r}; choose 'ptb' or 'whitespace'")


def caption_scores(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str], *,
                   tokenizer: str = "ptb", metrics: Sequence[str] = ("bleu", "meteor", "rouge", "cider"),
                   ) -> dict:
    """Corpus scores and per-image scores.

    Returns ``{"metrics": {Bleu_1.., METEOR, ROUGE_L, CIDEr}, "per_image": {name: [..]},
    "ids": [...], "unavailable": {metric: reason}}`` (pycocoevalcap names, 0..1 scale
    except CIDEr which is on its own x10 scale).
    """
    ids = sorted(candidates)
    missing = [i for i in ids if i not in references]
    if missing:
        raise KeyError(f"{len(missing)} candidate image id(s) have no references: {missing[:5]}")
    gts = tokenize({i: list(references[i]) for i in ids}, tokenizer)
    res = tokenize({i: [candidates[i]] for i in ids}, tokenizer)
    out: dict = {"metrics": {}, "per_image": {}, "ids": ids, "unavailable": {}}
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        score, scores = Bleu(4).compute_score(gts, res, verbose=0)
        for n in range(4):
            out["metrics"][f"Bleu_{n + 1}"] = float(score[n])
            out["per_image"][f"Bleu_{n + 1}"] = [float(x) for x in scores[n]]
    if "meteor" in metrics:
        if java_available():
            from pycocoevalcap.meteor.meteor import Meteor

            m = Meteor()
            try:
                score, scores = m.compute_score(gts, res)
            finally:
                m.close() if hasattr(m, "close") else None
            out["metrics"]["METEOR"] = float(score)
            out["per_image"]["METEOR"] = [float(x) for x in scores]
        else:
            out["unavailable"]["METEOR"] = "Java runtime not found (METEOR 1.5 is a Java program)"
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
    out["unavailable"]["SPICE"] = ("SPICE needs Stanford CoreNLP models downloaded at first use and "
                                   "Java 8; not run offline")
    return out
