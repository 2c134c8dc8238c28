"""mmbench's own BLEU / ROUGE-L / CIDEr-D against pycocoevalcap 1.2, to the last bit.

Real data: all 25,014 COCO val2017 captions (5,000 images; the candidate of an image is one
of its captions, the references the others, and also a caption of the neighbouring image),
the nlg-eval example vectors. Synthetic: adversarial inputs (empty candidate, one-word
references, repeated n-grams, a single image, long captions for the LCS word boundary,
double spaces and non-breaking spaces where ``split()`` and ``split(" ")`` differ) and a
seeded random corpus.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from mmbench.metrics import caption_ngrams as cn
from mmbench.metrics import captioning as cap
from mmbench.metrics.bootstrap import all_metric_values, bleu_from_stats, bootstrap_cis


def reference(gts: dict, res: dict) -> dict:
    """pycocoevalcap's scorers on tokenised ``gts`` / ``res``: corpus and per-image values."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    out = {}
    b, bs = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"Bleu_{n + 1}"] = (b[n], list(bs[n]))
    r, rs = Rouge().compute_score(gts, res)
    out["ROUGE_L"] = (float(r), [float(x) for x in rs])
    c, cs = Cider().compute_score(gts, res)
    out["CIDEr"] = (float(c), [float(x) for x in cs])
    return out


def fast(gts: dict, res: dict) -> dict:
    ids = list(gts)
    cands, refs = [res[i][0] for i in ids], [gts[i] for i in ids]
    corpus = cn.encode(cands, refs)
    stats = cn.bleu_stats(corpus)
    b, bs = cn.bleu_compute(stats), cn.bleu_per_image(stats)
    out = {f"Bleu_{n + 1}": (b[n], bs[n]) for n in range(4)}
    r = cn.rouge_l(cands, refs)
    out["ROUGE_L"] = (cn.mean_compute(r), r.tolist())
    c = cn.cider_d(corpus)
    out["CIDEr"] = (cn.mean_compute(c), c.tolist())
    return out


def assert_identical(gts: dict, res: dict) -> dict:
    want, got = reference(gts, res), fast(gts, res)
    for k, (score, per) in want.items():
        assert got[k][0] == score, (k, got[k][0], score)
        assert len(got[k][1]) == len(per)
        bad = [i for i, (a, b) in enumerate(zip(got[k][1], per)) if a != b]
        assert not bad, (k, bad[:5], [(got[k][1][i], per[i]) for i in bad[:3]])
    return got


# ---------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coco_val2017(shared_data):
    anns = json.loads((shared_data / "coco_captions_val2017" / "captions_val2017.json").read_text())["annotations"]
    assert len(anns) == 25014
    refs: dict = {}
    for a in anns:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    return refs


@pytest.fixture(scope="module")
def coco_tokens(coco_val2017):
    return cap.tokenize(coco_val2017, "python")


def test_identical_on_all_coco_val2017_leave_one_out(coco_tokens):
    ids = sorted(coco_tokens)
    assert len(ids) == 5000
    gts = {i: coco_tokens[i][1:] for i in ids}
    res = {i: [coco_tokens[i][0]] for i in ids}
    got = assert_identical(gts, res)
    # realistic magnitudes (a human caption against the other humans)
    assert 0.6 < got["Bleu_1"][0] < 0.7 and 0.8 < got["CIDEr"][0] < 1.0


def test_identical_on_coco_val2017_neighbour_captions(coco_tokens):
    ids = sorted(coco_tokens)[:1500]
    gts = {i: coco_tokens[i] for i in ids}
    # candidate: a caption of the next image (low overlap, varied lengths; 5 to 7 references)
    res = {i: [coco_tokens[ids[(k + 1) % len(ids)]][k % 5]] for k, i in enumerate(ids)}
    assert_identical(gts, res)


def test_caption_scores_fast_equals_reference_impl(coco_val2017):
    ids = sorted(coco_val2017)[:600]
    refs = {i: coco_val2017[i][1:] for i in ids}
    cands = {i: coco_val2017[i][0] for i in ids}
    kw = dict(tokenizer="python", metrics=("bleu", "rouge", "cider", "spice"))
    a = cap.caption_scores(refs, cands, metrics_impl="fast", **kw)
    b = cap.caption_scores(refs, cands, metrics_impl="reference", **kw)
    assert a["metrics"] == b["metrics"]
    assert a["per_image"] == b["per_image"]
    assert a["unavailable"] == b["unavailable"] and a["metrics_impl"] == "fast"
    # BLEU statistics computed once: the bootstrap's point value is the corpus BLEU, bit for bit
    vals = all_metric_values("captioning", a["per_image"])
    for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert vals[k] == a["metrics"][k], k


def _nlgeval(shared_data):
    d = shared_data / "nlgeval_examples"
    exp = json.loads((d / "expected_scores.json").read_text())["corpus_example"]
    hyp = (d / "hyp.txt").read_text().strip("\n").split("\n")
    r1 = (d / "ref1.txt").read_text().strip("\n").split("\n")
    r2 = (d / "ref2.txt").read_text().strip("\n").split("\n")
    refs = {str(i): [a, b] for i, (a, b) in enumerate(zip(r1, r2))}
    cands = {str(i): h for i, h in enumerate(hyp)}
    return exp, refs, cands


def test_nlgeval_vectors(shared_data):
    exp, refs, cands = _nlgeval(shared_data)
    got = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("bleu", "rouge", "cider"))
    for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert got["metrics"][k] == pytest.approx(exp[k], abs=5e-6), k
    # and on the raw lines (no whitespace normalisation), identical to pycocoevalcap
    assert_identical({k: v for k, v in refs.items()}, {k: [v] for k, v in cands.items()})


# ---------------------------------------------------------------------------------------------
# adversarial and random inputs (no ../shared needed)
# ---------------------------------------------------------------------------------------------

LONG = " ".join(f"w{i % 37}" for i in range(150))

ADVERSARIAL = {
    "empty": (["a dog runs on the grass", "the dog is running"], ""),
    "one-word refs": (["dog", "cat", "dog"], "dog"),
    "one-word cand": (["a dog on a couch", "the dog sleeps"], "dog"),
    "repeated": (["a a a a a", "a a b a a"], "a a a a a a a a a"),
    "repeated-bigram": (["the dog the dog the dog", "a dog"], "the dog the dog"),
    "exact": (["a man riding a horse"], "a man riding a horse"),
    "double space": (["a  man riding", "a man  riding a horse"], "a man  riding"),
    "nbsp": (["a 22\xa03/4 inch pipe", "a pipe"], "a 22\xa03/4 pipe"),
    "long": ([LONG, "w1 w2 w3"], LONG[: len(LONG) // 2]),
    "64 tokens": ([" ".join(f"t{i}" for i in range(64))], " ".join(f"t{i}" for i in range(0, 128, 2))),
    "65 tokens": ([" ".join(f"t{i % 9}" for i in range(65))], " ".join(f"t{i % 7}" for i in range(66))),
    "unicode": (["un café très naïve", "über café"], "café naïve"),
    "seven refs": ([f"a dog number {i}" for i in range(7)], "a dog number"),
}


def test_adversarial_inputs_identical():
    gts = {k: v[0] for k, v in ADVERSARIAL.items()}
    res = {k: [v[1]] for k, v in ADVERSARIAL.items()}
    got = assert_identical(gts, res)
    names = list(ADVERSARIAL)
    assert got["CIDEr"][1][names.index("empty")] == 0.0
    assert got["ROUGE_L"][1][names.index("exact")] == 1.0


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_single_image_identical(name):
    # one image: CIDEr's idf is log(1) - log(1) = 0 for every n-gram, all vectors vanish
    refs, cand = ADVERSARIAL[name]
    got = assert_identical({"x": refs}, {"x": [cand]})
    assert got["CIDEr"][0] == 0.0


def test_random_corpus_identical():
    rng = random.Random(17)
    vocab = [f"w{i}" for i in range(12)] + ["a", "the", ""]
    gts, res = {}, {}
    for i in range(400):
        def sent(lo, hi):
            return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi)))
        gts[i] = [sent(1, 20) for _ in range(rng.randint(1, 7))]
        res[i] = [sent(0, 25) if i % 50 else sent(70, 90)]
    assert_identical(gts, res)


def test_all_empty_references_do_not_raise():
    # pycocoevalcap's CIDEr raises here (max() of no document frequencies); mmbench scores 0
    c = cn.cider_d(cn.encode(["a b", ""], [[""], [""]]))
    assert c.tolist() == [0.0, 0.0]


def test_bleu_stats_agree_with_the_per_image_reference_function():
    gts = {k: v[0] for k, v in ADVERSARIAL.items()}
    res = {k: v[1] for k, v in ADVERSARIAL.items()}
    stats = cn.bleu_stats(cn.encode([res[k] for k in gts], [gts[k] for k in gts]))
    assert stats.tolist() == [cap.bleu_stats(res[k], gts[k]) for k in gts]
    assert bleu_from_stats(stats) == cn.bleu_compute(stats)


def test_compute_with_weights_equals_the_expanded_corpus():
    rng = random.Random(3)
    vocab = "a the dog cat runs sits on mat grass red".split()
    gts = {i: [" ".join(rng.choices(vocab, k=rng.randint(2, 9))) for _ in range(3)] for i in range(30)}
    res = {i: " ".join(rng.choices(vocab, k=rng.randint(1, 9))) for i in range(30)}
    ids = list(gts)
    stats = cn.bleu_stats(cn.encode([res[i] for i in ids], [gts[i] for i in ids]))
    w = np.array([rng.randint(0, 3) for _ in ids])
    expanded = np.repeat(stats, w, axis=0)
    assert cn.bleu_compute(stats, w) == cn.bleu_compute(expanded)
    r = cn.rouge_l([res[i] for i in ids], [gts[i] for i in ids])
    assert cn.mean_compute(r, w) == pytest.approx(float(np.repeat(r, w).mean()), abs=1e-12)
    assert cn.mean_compute(r) == float(np.mean(r))


def test_bootstrap_resamples_the_same_statistics():
    refs = {str(i): ["a dog runs on grass", "a brown dog running"] for i in range(20)}
    cands = {str(i): ["a dog running", "a cat", "dog on grass", "a brown dog"][i % 4] for i in range(20)}
    sc = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("bleu", "rouge", "cider"))
    cis = bootstrap_cis("captioning", sc["per_image"], n_resamples=50, seed=0)
    for k in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr"):
        lo, hi = cis[k]
        assert lo <= sc["metrics"][k] + 1e-12 and sc["metrics"][k] <= hi + 1e-12, k


def test_lcs_matches_dynamic_programme():
    from pycocoevalcap.rouge.rouge import my_lcs

    rng = random.Random(5)
    a_l, b_l, want = [], [], []
    for _ in range(300):
        a = [rng.randint(0, 4) for _ in range(rng.randint(0, 70))]
        b = [rng.randint(0, 4) for _ in range(rng.randint(0, 70))]
        a_l.append(np.array(a, dtype=np.int64))
        b_l.append(np.array(b, dtype=np.int64))
        want.append(my_lcs(a, b))
    assert cn.lcs_lengths(a_l, b_l).tolist() == want


def test_unknown_impl():
    from mmbench.errors import MMBenchError

    with pytest.raises(MMBenchError, match="metrics implementation"):
        cap.caption_scores({"1": ["a"]}, {"1": "a"}, tokenizer="whitespace", metrics_impl="turbo")


@pytest.mark.java
def test_eval_task_options_metrics_impl_fast_and_reference_record_identical_numbers():
    """``-T metrics_impl=reference`` runs pycocoevalcap's scorers inside ``mmbench eval``; the default fast path
    records the same metrics and per-image scores (nn-caption on the demo test split)."""
    from mmbench.runner import EvalConfig, run_eval

    if shutil.which("java") is None:
        pytest.skip("needs Java (METEOR)")
    fast = run_eval("nn-caption", "demo", EvalConfig(bootstrap=0, show_progress=False))
    ref = run_eval("nn-caption", "demo", EvalConfig(bootstrap=0, show_progress=False,
                                                     task_options={"metrics_impl": "reference", "meteor_jobs": "1"}))
    assert ref.details["metrics_impl"] == "reference" and fast.details["metrics_impl"] == "fast"
    assert ref.config["task_options"] == {"metrics_impl": "reference", "meteor_jobs": 1}
    assert set(fast.metrics) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    assert fast.metrics == ref.metrics
    assert fast.per_sample == ref.per_sample
