"""Captioning metrics against pycocoevalcap 1.2 on real data, and the Java-free PTB tokenizer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmbench.errors import DataError, MMBenchError
from mmbench.metrics import captioning as cap
from mmbench.metrics.bootstrap import all_metric_values, bleu_from_stats
from mmbench.metrics.ptb import PUNCTUATIONS, tokenize_caption, tokenize_lines

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime")

ADVERSARIAL = [
    "", " ", "It's (very) nice!", 'He said "hello" to me.', "She said 'no' twice.", "a dogs' bone",
    "don't can't won't cannot", "I'm we're they've you'll he'd", "a t-shirt -- and a well-known x-ray",
    "a pre- and post-war", "3.5 inches, 1,000 people", "the 1990s and '90s", "$5.00 and 50% off",
    "A.M. and p.m.", "the U.S. flag.", "Mr. Smith and Dr. Who", "e.g. this", "an ellipsis... here",
    "dashes \u2013 and \u2014 here", "curly \u201cquotes\u201d and \u2018single\u2019", "caf\u00e9 na\u00efve \u00fcber",
    "emoji \U0001F600 here", "tab\there", "3/4 of a pie", "10:30pm at 5:54 am", "[brackets] {braces}",
    "a/b and/or c", "AT&T and b&w", "#hashtag @user #41", "what?! no!!", "semi;colon: colon",
    "http://example.com is a url", "x*y = z", "5-6 dogs", "a 2x4 board", "well-", "-minus", "'quoted'",
    "`backtick`", "O'Neil's hat", "ma'am", "y'all", "ain't", "gonna wanna", "12th St. Apt. 4", "no. 5",
    "Fig. 3", "etc.", "i.e. that", "U.S.A.", "ok.", "a \u00bd cup", "100\u00b0F", "2 1/2 cups", "22 3/4 st.",
    "Line one\nline two", "A person I. A hood", "reads K.", "A. clear vase", "at 5:54pm.", "ends D.",
    "The next line", "reads K.", "the next line", "the last K.", "reads K.", "Small dog", "reads K.", "THE dog",
    "see Fig.", "The end", "see Fig.", "Two dogs", "reads K.", "However it", "reads K.", "Which one",
    "reads K.", "A. clear", "the last K.",
]


def java_ptb(lines):
    out = cap._ptb_java([s.replace("\n", " ") for s in lines])
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in out[:len(lines)]]


def test_pinned_tokens_without_java():
    # the -lrb- quirk: the filter is case-sensitive and runs after lower-casing
    assert tokenize_caption("It's (very) nice!") == "it 's -lrb- very -rrb- nice"
    assert tokenize_caption("A man's T-shirt, 1,000 dogs; St. Patrick's day.") == \
        "a man 's t-shirt 1,000 dogs st. patrick 's day"
    assert tokenize_caption("don't cannot gonna") == "do n't can not gon na"
    assert tokenize_caption('"Quoted" -- and ... done') == "quoted and done"
    assert tokenize_caption("22 3/4 st.") == "22\xa03/4 st."
    assert tokenize_caption("") == ""
    # a single-letter initial ending the line before a capitalised line loses its period
    # only before a line starting with a sentence-starting word (probed from CoreNLP 3.4.1)
    assert tokenize_lines(["reads K.", "The dog", "reads K.", "the dog", "reads K.", "Small dog", "reads K."]) == \
        ["reads k", "the dog", "reads k.", "the dog", "reads k.", "small dog", "reads k."]


@pytest.mark.java
@needs_java
def test_python_tokenizer_equals_java_on_all_coco_val2017(shared_data):
    anns = json.loads((shared_data / "coco_captions_val2017" / "captions_val2017.json").read_text())["annotations"]
    caps = [a["caption"] for a in anns]
    assert len(caps) == 25014
    ref = java_ptb(caps)
    got = tokenize_lines(caps)
    diff = [(c, r, g) for c, r, g in zip(caps, ref, got) if r != g]
    assert not diff, f"{len(diff)} captions differ, first: {diff[:3]}"
    # grouped by image, as the scorers feed them (a line's tokens may depend on the next line)
    grouped: dict = {}
    for a in anns:
        grouped.setdefault(a["image_id"], []).append(a["caption"])
    assert cap.tokenize(grouped, "python") == cap.tokenize(grouped, "ptb")


@pytest.mark.java
@needs_java
def test_python_tokenizer_equals_java_on_adversarial_strings():
    ref = java_ptb(ADVERSARIAL)
    got = tokenize_lines(ADVERSARIAL)
    diff = [(c, r, g) for c, r, g in zip(ADVERSARIAL, ref, got) if r != g]
    assert not diff, diff


@pytest.mark.java
@needs_java
def test_java_ptb_path_matches_pycocoevalcap_wrapper():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    caps = {"1": ["It's (very) nice!", "A man."], "2": ['He said "hi"']}
    stock = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in caps.items()})
    assert cap.tokenize(caps, "ptb") == stock
    assert cap.tokenize(caps, "python") == stock


def _overlap_inputs(shared_data):
    """COCO val2014 references (4800-image subset) and the fakecap results for the images both hold."""
    demo = shared_data / "coco_caption_demo"
    sub = json.loads((demo / "captions_val2014_subset4800_elsa1024.json").read_text())
    refs: dict = {}
    for a in sub["annotations"]:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    results = json.loads((demo / "captions_val2014_fakecap_results.json").read_text())
    cands = {r["image_id"]: r["caption"] for r in results if r["image_id"] in refs}
    assert len(cands) == 134
    return refs, cands


@pytest.mark.java
@needs_java
def test_scores_equal_stock_pycocoevalcap_on_real_coco(shared_data):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs, cands = _overlap_inputs(shared_data)
    gts = PTBTokenizer().tokenize({i: [{"caption": c} for c in refs[i]] for i in cands})
    res = PTBTokenizer().tokenize({i: [{"caption": cands[i]}] for i in cands})
    want = {}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    want.update({f"Bleu_{n + 1}": b[n] for n in range(4)})
    want["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    want["CIDEr"] = Cider().compute_score(gts, res)[0]
    got = cap.caption_scores(refs, cands, tokenizer="python", metrics=("bleu", "rouge", "cider", "spice"))
    for k, v in want.items():
        assert got["metrics"][k] == v, k
    assert 0.1 < got["metrics"]["Bleu_1"] < 1 and got["metrics"]["CIDEr"] > 0.1
    assert "SPICE" not in got["metrics"] and "CoreNLP" in got["unavailable"]["SPICE"]
    # BLEU recomputed from per-image sufficient statistics equals pycocoevalcap bit for bit
    assert bleu_from_stats(np.array(got["per_image"]["bleu_stats"])) == [want[f"Bleu_{n}"] for n in range(1, 5)]
    vals = all_metric_values("captioning", got["per_image"])
    for k in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert vals[k] == pytest.approx(got["metrics"][k], abs=1e-12)


def test_bleu_stats_equal_pycocoevalcap_cook_test_on_val2017(shared_data):
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    anns = json.loads((shared_data / "coco_captions_val2017" / "captions_val2017.json").read_text())["annotations"]
    refs: dict = {}
    for a in anns:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(refs)[:1500]
    gts = cap.tokenize({i: refs[i] for i in ids}, "python")
    # candidate: a reference of the neighbouring image (varied lengths, partial overlaps)
    res = {i: [gts[ids[(k + 1) % len(ids)]][k % 5]] for k, i in enumerate(ids)}
    scorer = BleuScorer(n=4)
    for i in ids:
        scorer += (res[i][0], gts[i])
    want, _ = scorer.compute_score(option="closest")
    stats = np.array([cap.bleu_stats(res[i][0], gts[i]) for i in ids])
    assert bleu_from_stats(stats) == want
    assert stats[:, 1].sum() == scorer._reflen and stats[:, 0].sum() == scorer._testlen


def test_closest_reference_length_ties_to_shorter():
    # candidate of 4 words, references of 3 and 5 words: both 1 away -> the shorter (3) is used
    assert cap.bleu_stats("a b c d", ["x y z", "a b c d e"])[:2] == [4, 3]
    assert cap.bleu_stats("a b c d", ["a b c d e", "x y z"])[:2] == [4, 3]


def _nlgeval(shared_data):
    d = shared_data / "nlgeval_examples"
    exp = json.loads((d / "expected_scores.json").read_text())["corpus_example"]
    hyp = (d / "hyp.txt").read_text().strip("\n").split("\n")
    r1 = (d / "ref1.txt").read_text().strip("\n").split("\n")
    r2 = (d / "ref2.txt").read_text().strip("\n").split("\n")
    refs = {str(i): [a, b] for i, (a, b) in enumerate(zip(r1, r2))}
    cands = {str(i): h for i, h in enumerate(hyp)}
    return exp, refs, cands


def test_nlgeval_reference_values(shared_data):
    exp, refs, cands = _nlgeval(shared_data)
    got = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("bleu", "rouge", "cider"))["metrics"]
    for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert got[k] == pytest.approx(exp[k], abs=5e-6), k


@pytest.mark.java
@pytest.mark.slow
@needs_java
def test_nlgeval_meteor(shared_data):
    exp, refs, cands = _nlgeval(shared_data)
    got = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("meteor",))
    assert got["metrics"]["METEOR"] == pytest.approx(exp["METEOR"], abs=5e-6)
    assert len(got["per_image"]["METEOR"]) == len(cands)


def test_bad_inputs():
    with pytest.raises(DataError, match="no references"):
        cap.caption_scores({"1": ["a"]}, {"2": "a"}, tokenizer="whitespace")
    with pytest.raises(MMBenchError, match="unknown tokenizer"):
        cap.tokenize({"1": ["a"]}, "nltk")
    with pytest.raises(MMBenchError, match="unknown captioning metric"):
        cap.caption_scores({"1": ["a"]}, {"1": "a"}, metrics=("bert",))


def test_cider_document_frequencies_come_from_the_evaluated_set_only():
    refs = {"1": ["a dog runs on grass", "a brown dog running"], "2": ["a cat sleeps on a sofa", "a cat on a couch"],
            "3": ["a dog and a cat", "two pets together"]}
    cands = {"1": "a dog running on grass", "2": "a cat on a sofa", "3": "a dog with a cat"}
    full = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("cider",))
    sub = cap.caption_scores({k: refs[k] for k in "12"}, {k: cands[k] for k in "12"}, tokenizer="whitespace",
                             metrics=("cider",))
    # image 1's score depends on which other images are evaluated with it
    assert full["per_image"]["CIDEr"][0] != pytest.approx(sub["per_image"]["CIDEr"][0], abs=1e-6)
