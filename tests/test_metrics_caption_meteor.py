"""METEOR 1.5 over parallel JVMs equals pycocoevalcap's single-JVM METEOR exactly."""

from __future__ import annotations

import json
import shutil

import pytest

from mmbench.errors import MMBenchError
from mmbench.metrics import captioning as cap
from mmbench.metrics import meteor as mt

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime")


def test_score_line_is_the_reference_protocol():
    # the line pycocoevalcap's Meteor._stat writes, for ordinary tokenised text
    assert mt.score_line("a dog  on ||| grass", ["a dog", "the dog runs"]) == \
        "SCORE ||| a dog ||| the dog runs ||| a dog on grass"
    # line breaks, lone surrogates and '|||' in references cannot break the line protocol
    line = mt.score_line("a\ndog\ud800", ["ref ||| one\r\nx", "b\u2028c"])
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.count("|||") == 3
    line.encode()  # encodable


@pytest.fixture(scope="module")
def pool():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    p = mt.MeteorPool(jobs=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def reference_meteor():
    """pycocoevalcap's own Meteor (one JVM, started once for the module)."""
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    from pycocoevalcap.meteor.meteor import Meteor

    m = Meteor()
    yield m.compute_score
    cap._close_meteor(m)


@pytest.mark.java
@pytest.mark.slow
@needs_java
def test_parallel_equals_single_jvm_on_real_coco(shared_data, pool, reference_meteor):
    anns = json.loads((shared_data / "coco_captions_val2017" / "captions_val2017.json").read_text())["annotations"]
    refs: dict = {}
    for a in anns:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(refs)[:400]
    tok = cap.tokenize({i: refs[i] for i in ids}, "python")
    gts = {i: tok[i][1:] for i in ids}
    res = {i: [tok[i][0]] for i in ids}
    # adversarial segments on top: empty candidate, one-word reference, repeated words
    gts["empty"], res["empty"] = ["a dog on a couch"], [""]
    gts["one"], res["one"] = ["dog"], ["a dog"]
    gts["rep"], res["rep"] = ["the the the dog", "a dog"], ["the the the the"]
    want, want_per = reference_meteor(gts, res)
    got, got_per = pool.score(gts, res)
    assert got == want and got_per == want_per
    assert 0.15 < got < 0.4
    # the pool is reused (JVMs started once): a second corpus, and a split into uneven parts
    sub = ids[:7]
    w2, p2 = reference_meteor({i: gts[i] for i in sub}, {i: res[i] for i in sub})
    assert pool.score({i: gts[i] for i in sub}, {i: res[i] for i in sub}) == (w2, p2)
    # a single segment (fewer segments than JVMs)
    one = {ids[0]: gts[ids[0]]}, {ids[0]: res[ids[0]]}
    assert pool.score(*one) == reference_meteor(*one)


@pytest.mark.java
@needs_java
def test_unsafe_text_is_scored(pool):
    gts = {"1": ["a dog\non a couch ||| x", "a dog"], "2": ["caf\u00e9 \ud800 au lait"]}
    res = {"1": ["a dog\r\non ||| a couch"], "2": ["caf\u00e9 au lait\ud83d"]}
    score, per = pool.score(gts, res)
    clean_g = {"1": ["a dog on a couch  x", "a dog"], "2": ["caf\u00e9  au lait"]}
    clean_r = {"1": ["a dog  on  a couch"], "2": ["caf\u00e9 au lait"]}
    assert (score, per) == pool.score(clean_g, clean_r)
    assert len(per) == 2 and 0 < score <= 1


@pytest.mark.java
@pytest.mark.slow
@needs_java
def test_caption_scores_meteor_fast_equals_reference(shared_data, pool, reference_meteor):
    d = shared_data / "nlgeval_examples"
    exp = json.loads((d / "expected_scores.json").read_text())["corpus_example"]
    hyp = (d / "hyp.txt").read_text().strip("\n").split("\n")
    r1 = (d / "ref1.txt").read_text().strip("\n").split("\n")
    r2 = (d / "ref2.txt").read_text().strip("\n").split("\n")
    refs = {str(i): [a, b] for i, (a, b) in enumerate(zip(r1, r2))}
    cands = {str(i): h for i, h in enumerate(hyp)}
    got = cap.caption_scores(refs, cands, tokenizer="whitespace", metrics=("meteor",), meteor_pool=pool)
    assert got["metrics"]["METEOR"] == pytest.approx(exp["METEOR"], abs=5e-6)
    gts = cap.tokenize(refs, "whitespace")
    res = cap.tokenize({k: [v] for k, v in cands.items()}, "whitespace")
    assert (got["metrics"]["METEOR"], got["per_image"]["METEOR"]) == reference_meteor(gts, res)


def test_bad_jobs():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    with pytest.raises(MMBenchError, match="jobs"):
        mt.MeteorPool(jobs=0)


def test_closed_pool_refuses(pool):
    p = mt.MeteorPool.__new__(mt.MeteorPool)
    p._jvms, p.jobs = [], 0
    import threading

    p._lock = threading.Lock()
    with pytest.raises(MMBenchError, match="closed"):
        p.stats(["a"], [["a"]])
