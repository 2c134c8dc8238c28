"""BLEU-1..4, CIDEr-D and ROUGE-L, vectorised, giving pycocoevalcap 1.2's numbers.

Every metric is split in two steps, torchmetrics-style: per-image *sufficient statistics*
computed once from the tokenised captions, and ``compute(stats, weights=None)`` that turns
them into the corpus score. ``weights`` (non-negative integers, one per image: how often
the image was drawn) is how the bootstrap resamples the very statistics the corpus score
came from; ``weights=None`` is the corpus score itself.

Identity with the reference (salaniz/pycocoevalcap, PyPI 1.2), cited per step below:

- the n-grams of a caption are those of ``caption.split()`` (bleu/bleu_scorer.py and
  cider/cider_scorer.py ``precook``); ROUGE-L's tokens are ``caption.split(" ")``
  (rouge/rouge.py ``calc_score``), so an empty caption is one empty token there;
- every float operation of the reference is done in the same order on the same values:
  sums run sequentially in the reference's iteration order (``np.bincount`` accumulates
  in input order), the per-image BLEU and the length penalty of CIDEr use Python's own
  ``pow``/``math.exp`` as the reference does, and corpus means use ``np.mean`` on the
  same float64 array. Per-image and corpus scores are therefore equal to the last bit
  (the tests check ``==`` on all COCO val2017 captions).

N-grams are integer ids: words get ids, an n-gram's id is the compressed pair
(id of its (n-1)-gram prefix, id of its last word), so all counting is numpy sorting and
searching over integer arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np

N = 4  # n-gram orders 1..4 in BLEU and CIDEr
SIGMA = 6.0  # CIDEr-D length-penalty width (cider/cider.py default)
BETA = 1.2  # ROUGE-L (rouge/rouge.py: "updated ... based on discussion with Hovey")


# ---------------------------------------------------------------------------------------------
# integer n-grams
# ---------------------------------------------------------------------------------------------

@dataclass
class NgramTable:
    """The distinct n-grams of each sentence, for one order n.

    Rows are sorted by (sentence, code); ``first`` is the position (in the flat token array)
    of the n-gram's first occurrence in its sentence, i.e. the reference's dict insertion order.
    """

    sent: np.ndarray  # int64, sentence index
    code: np.ndarray  # int64, n-gram id (dense, 0..n_codes-1, shared by all sentences)
    count: np.ndarray  # int64, occurrences in the sentence
    first: np.ndarray  # int64, first position
    n_codes: int


def _unique(x: np.ndarray) -> np.ndarray:
    s = np.sort(x)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


def _unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x, kind="stable")
    s = x[order]
    new = np.concatenate(([True], s[1:] != s[:-1])) if len(s) else np.zeros(0, bool)
    inv = np.empty(len(x), dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return s[new], inv


def _word_ids(token_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = list(chain.from_iterable(token_lists))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(flat))}
    ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
    return ids, lens


def ngram_tables(sentences: Sequence[str], n: int = N) -> tuple[list[NgramTable], np.ndarray]:
    """Per-order n-gram tables of ``s.split()`` for every sentence, and the sentence lengths."""
    ids, lens = _word_ids([s.split() for s in sentences])
    n_sent = len(lens)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])) if n_sent else np.zeros(0, np.int64)
    sent_of = np.repeat(np.arange(n_sent, dtype=np.int64), lens)
    remaining = np.repeat(starts + lens, lens) - np.arange(len(ids), dtype=np.int64)  # tokens from here on
    tables = []
    prev = ids
    n_words = int(ids.max()) + 1 if len(ids) else 0
    for k in range(1, n + 1):
        pos = np.nonzero(remaining >= k)[0]
        if k == 1:
            codes_at = ids
            n_codes = n_words
        else:
            key = prev[pos] * max(n_words, 1) + ids[pos + k - 1]
            uniq, inv = _unique_inverse(key)
            codes_at = np.full(len(ids), -1, dtype=np.int64)
            codes_at[pos] = inv
            n_codes = len(uniq)
        s = sent_of[pos]
        c = codes_at[pos]
        pair = s * max(n_codes, 1) + c
        _, first_i, counts = np.unique(pair, return_index=True, return_counts=True)
        # np.unique's return_index gives the first occurrence; pos ascends, so it is the first position
        tables.append(NgramTable(sent=s[first_i], code=c[first_i], count=counts.astype(np.int64),
                                 first=pos[first_i], n_codes=n_codes))
        prev = codes_at
    return tables, lens


@dataclass
class Corpus:
    """Candidates (sentence i = image i) and references (sentences N.., grouped by image)."""

    n_images: int
    ref_image: np.ndarray  # image of each reference sentence
    ref_start: np.ndarray  # first reference sentence of each image (relative to the references)
    tables: list[NgramTable]
    lens: np.ndarray  # lengths of all sentences: candidates first, then references


def encode(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = N) -> Corpus:
    """Tokenised candidates (one per image) and reference lists, as integer n-gram tables."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    nrefs = np.fromiter(map(len, references), dtype=np.int64, count=len(references))
    if (nrefs < 1).any():
        raise ValueError("every image needs at least one reference")
    tables, lens = ngram_tables(list(candidates) + list(chain.from_iterable(references)), n)
    ref_image = np.repeat(np.arange(len(references), dtype=np.int64), nrefs)
    ref_start = np.concatenate(([0], np.cumsum(nrefs)[:-1])).astype(np.int64)
    return Corpus(len(candidates), ref_image, ref_start, tables, lens)


def _lookup(keys_sorted: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in a sorted unique key array, and whether it is there."""
    if len(keys_sorted) == 0:
        return np.zeros(len(queries), np.int64), np.zeros(len(queries), bool)
    at = np.searchsorted(keys_sorted, queries)
    at_c = np.minimum(at, len(keys_sorted) - 1)
    return at_c, keys_sorted[at_c] == queries


# ---------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------

def bleu_stats(corpus: Corpus, n: int = N) -> np.ndarray:
    """Per-image ``[testlen, reflen, guess_1..n, correct_1..n]`` (int64, shape (images, 2 + 2n)).

    As bleu/bleu_scorer.py ``cook_refs`` / ``cook_test`` make them: ``reflen`` is the
    closest reference length, ties to the shorter (``min((abs(l - testlen), l))``);
    ``guess_k = max(0, testlen - k + 1)``; ``correct_k`` sums the candidate's k-gram
    counts clipped by their maximum count in any one reference.
    """
    ni = corpus.n_images
    out = np.zeros((ni, 2 + 2 * n), dtype=np.int64)
    if ni == 0:
        return out
    test = corpus.lens[:ni]
    ref_lens = corpus.lens[ni:]
    dist = np.abs(ref_lens - test[corpus.ref_image])
    big = int(ref_lens.max(initial=0)) + 1
    closest = np.minimum.reduceat(dist * big + ref_lens, corpus.ref_start) % big
    out[:, 0] = test
    out[:, 1] = closest
    for k in range(1, n + 1):
        out[:, 1 + k] = np.maximum(0, test - k + 1)
    for k, t in enumerate(corpus.tables[:n]):
        g = max(t.n_codes, 1)
        is_ref = t.sent >= ni
        # maximum count of each n-gram over the references of an image
        rkey = corpus.ref_image[t.sent[is_ref] - ni] * g + t.code[is_ref]
        ukey, inv = _unique_inverse(rkey)
        rmax = np.zeros(len(ukey), dtype=np.int64)
        np.maximum.at(rmax, inv, t.count[is_ref])
        cs, cc, cn = t.sent[~is_ref], t.code[~is_ref], t.count[~is_ref]
        at, found = _lookup(ukey, cs * g + cc)
        clipped = np.where(found, np.minimum(cn, rmax[at]), 0)
        out[:, 2 + n + k] = np.bincount(cs, weights=clipped, minlength=ni).astype(np.int64)
    return out


_SMALL, _TINY = 1e-9, 1e-15  # bleu/bleu_scorer.py compute_score


def bleu_compute(stats: np.ndarray, weights: np.ndarray | None = None, n: int = N) -> list[float]:
    """Corpus BLEU-1..n from per-image statistics (``weights``: per-image multiplicities).

    Integer sums are exact, so the result equals BleuScorer.compute_score bit for bit.
    """
    s = np.asarray(stats, dtype=np.int64)
    if s.ndim == 2:
        s = s.sum(0) if weights is None else (s * np.asarray(weights, dtype=np.int64)[:, None]).sum(0)
    testlen, reflen = int(s[0]), int(s[1])
    bleus = []
    bleu = 1.0
    for k in range(n):
        bleu *= float(int(s[2 + n + k]) + _TINY) / (int(s[2 + k]) + _SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


def bleu_per_image(stats: np.ndarray, n: int = N) -> list[list[float]]:
    """Per-image BLEU-1..n (``[[bleu_1 of every image], ...]``) as BleuScorer's ``bleu_list``."""
    out: list[list[float]] = [[] for _ in range(n)]
    for row in np.asarray(stats, dtype=np.int64).tolist():
        testlen, reflen = row[0], row[1]
        guess, correct = row[2:2 + n], row[2 + n:2 + 2 * n]
        bleu = 1.0
        vals = []
        for k in range(n):
            bleu *= (float(correct[k]) + _TINY) / (float(guess[k]) + _SMALL)
            vals.append(bleu ** (1.0 / (k + 1)))
        ratio = (testlen + _TINY) / (reflen + _SMALL)
        if ratio < 1:
            bp = math.exp(1 - 1 / ratio)
            vals = [v * bp for v in vals]
        for k in range(n):
            out[k].append(vals[k])
    return out


# ---------------------------------------------------------------------------------------------
# CIDEr-D
# ---------------------------------------------------------------------------------------------

def cider_d(corpus: Corpus, n: int = N, sigma: float = SIGMA) -> np.ndarray:
    """Per-image CIDEr-D (float64, the reference's x10 scale), as cider/cider_scorer.py computes it.

    - document frequency of an n-gram = number of images whose reference set contains it,
      over the images being evaluated only (``compute_doc_freq``); idf uses
      ``log(number of images) - log(max(1, df))``;
    - tf-idf vectors per order, norms summed in the n-grams' first-occurrence order;
    - similarity: sum over the candidate's n-grams of ``min(v_cand, v_ref) * v_ref``
      ("vrama91: added clipping"), divided by the norms when both are non-zero, times
      ``e ** (-(delta ** 2) / (2 sigma ** 2))`` where delta is the difference of the two
      sentences' *bigram counts* (``counts2vec`` adds up ``term_freq`` when ``n == 1``,
      i.e. for 2-grams: the code's own length measure);
    - per image: sum over references of each order's similarity, mean over orders,
      divided by the number of references, times 10.
    """
    ni = corpus.n_images
    if ni == 0:
        return np.zeros(0)
    n_ref = len(corpus.ref_image)
    ref_len = np.log(float(ni))  # "compute log reference length": log of the number of images
    lens = corpus.lens
    bigrams = np.maximum(lens - 1, 0)  # counts2vec's ``length``
    delta = (bigrams[:ni][corpus.ref_image] - bigrams[ni:]).astype(np.float64)
    pen_of = {d: np.e ** (-(d ** 2) / (2 * sigma ** 2)) for d in set(delta.tolist())}
    pen = np.array([pen_of[d] for d in delta.tolist()], dtype=np.float64)
    n_imgs_refs = np.bincount(corpus.ref_image, minlength=ni)
    score = np.zeros((n, ni))
    for k, t in enumerate(corpus.tables[:n]):
        g = max(t.n_codes, 1)
        is_ref = t.sent >= ni
        rs = t.sent[is_ref] - ni
        # document frequency: distinct (image, n-gram) pairs among the references
        pairs = _unique(corpus.ref_image[rs] * g + t.code[is_ref])
        df = np.bincount(pairs % g, minlength=g).astype(np.float64)
        idf = ref_len - np.log(np.maximum(1.0, df))
        vec = t.count.astype(np.float64) * idf[t.code]
        # norms, summed in first-occurrence order within each sentence
        order = np.argsort(t.first, kind="stable")
        norm = np.sqrt(np.bincount(t.sent[order], weights=(vec * vec)[order], minlength=ni + n_ref))
        # candidate n-gram matching each reference n-gram of the same image
        cand_key = t.sent[~is_ref] * g + t.code[~is_ref]  # sorted: rows are sorted by (sentence, code)
        cvec, cfirst = vec[~is_ref], t.first[~is_ref]
        at, found = _lookup(cand_key, corpus.ref_image[rs] * g + t.code[is_ref])
        r_m = rs[found]
        vr = vec[is_ref][found]
        vh = cvec[at[found]]
        prod = np.minimum(vh, vr) * vr
        o = np.lexsort((cfirst[at[found]], r_m))  # per reference, in the candidate's n-gram order
        val = np.bincount(r_m[o], weights=prod[o], minlength=n_ref)
        nh = norm[:ni][corpus.ref_image]
        nr = norm[ni:]
        ok = (nh != 0) & (nr != 0)
        val = np.where(ok, val / np.where(ok, nh * nr, 1.0), val)
        val = val * pen
        score[k] = np.bincount(corpus.ref_image, weights=val, minlength=ni)  # references in order
    acc = score[0]
    for k in range(1, n):
        acc = acc + score[k]
    per_image = acc / n  # np.mean of the n per-order scores (sequential for n < 8)
    per_image = per_image / n_imgs_refs
    return per_image * 10.0


# ---------------------------------------------------------------------------------------------
# ROUGE-L
# ---------------------------------------------------------------------------------------------

def _popcount64(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    return table[x.view(np.uint8).reshape(-1, 8)].sum(1)


def _lcs_bigint(a: list[int], b: list[int]) -> int:
    """LCS length by the bit-parallel recurrence on Python integers (any length)."""
    masks: dict[int, int] = {}
    for i, t in enumerate(a):
        masks[t] = masks.get(t, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for t in b:
        u = v & masks.get(t, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def lcs_lengths(a_ids: list[np.ndarray], b_ids: list[np.ndarray], chunk: int = 4096) -> np.ndarray:
    """Longest-common-subsequence length of each pair (a_i, b_i) of integer token arrays.

    Bit-parallel (Allison-Dix / Hyyro): the shorter sequence's positions are bits of a
    uint64, updated once per token of the other one, for all pairs at once. Same integers as
    rouge/rouge.py ``my_lcs``'s dynamic programme; pairs with both sides over 64 tokens go
    through the same recurrence on Python integers.
    """
    p = len(a_ids)
    out = np.zeros(p, dtype=np.int64)
    la = np.fromiter(map(len, a_ids), np.int64, p)
    lb = np.fromiter(map(len, b_ids), np.int64, p)
    swap = la > lb
    short = [b if s else a for a, b, s in zip(a_ids, b_ids, swap)]
    long_ = [a if s else b for a, b, s in zip(a_ids, b_ids, swap)]
    ls, ll = np.minimum(la, lb), np.maximum(la, lb)
    big = np.nonzero(ls > 64)[0]
    for i in big:
        out[i] = _lcs_bigint(short[i].tolist(), long_[i].tolist())
    small = np.nonzero(ls <= 64)[0]
    small = small[np.argsort(ll[small], kind="stable")]
    bits = (np.uint64(1) << np.arange(64, dtype=np.uint64))
    budget = 1 << 22  # elements of the (pairs, short, long) comparison block
    c0 = 0
    while c0 < len(small):
        idx = small[c0:c0 + chunk]
        wl_last = max(int(ll[idx[-1]]), 1)
        fit = max(1, budget // (min(64, wl_last) * wl_last))
        idx = idx[:fit]
        c0 += len(idx)
        ws, wl = int(ls[idx].max(initial=0)), int(ll[idx].max(initial=0))
        if ws == 0:
            continue
        A = np.full((len(idx), ws), -1, dtype=np.int64)
        B = np.full((len(idx), wl), -2, dtype=np.int64)
        for r, i in enumerate(idx):
            A[r, :ls[i]] = short[i]
            B[r, :ll[i]] = long_[i]
        eq = A[:, :, None] == B[:, None, :]  # (pairs, ws, wl)
        masks = np.bitwise_or.reduce(np.where(eq, bits[:ws, None], np.uint64(0)), axis=1)  # (pairs, wl)
        v = np.full(len(idx), np.uint64(0xFFFFFFFFFFFFFFFF))
        with np.errstate(over="ignore"):
            for j in range(wl):
                u = v & masks[:, j]
                v = (v + u) | (v - u)
        low = np.where(ls[idx] >= 64, np.uint64(0xFFFFFFFFFFFFFFFF),
                       (np.uint64(1) << ls[idx].astype(np.uint64)) - np.uint64(1))
        out[idx] = ls[idx] - _popcount64(v & low)
    return out


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = BETA) -> np.ndarray:
    """Per-image ROUGE-L as rouge/rouge.py ``calc_score``: tokens ``split(" ")``, precision and
    recall maximised separately over the references, F with ``beta`` (1.2)."""
    ni = len(candidates)
    if ni == 0:
        return np.zeros(0)
    nrefs = [len(r) for r in references]
    toks = [c.split(" ") for c in candidates] + [r.split(" ") for rs in references for r in rs]
    ids, lens = _word_ids(toks)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    seqs = [ids[s:s + ln] for s, ln in zip(starts.tolist(), lens.tolist())]
    ref_image = np.repeat(np.arange(ni), nrefs)
    cand_seqs = [seqs[i] for i in ref_image.tolist()]
    lcs = lcs_lengths(seqs[ni:], cand_seqs).astype(np.float64)
    len_c = lens[:ni][ref_image].astype(np.float64)
    len_r = lens[ni:].astype(np.float64)
    ref_start = np.concatenate(([0], np.cumsum(nrefs)[:-1])).astype(np.int64)
    prec = np.maximum.reduceat(lcs / len_c, ref_start)
    rec = np.maximum.reduceat(lcs / len_r, ref_start)
    ok = (prec != 0) & (rec != 0)
    b2 = beta ** 2
    num = ((1 + b2) * prec) * rec
    den = rec + b2 * prec
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


# ---------------------------------------------------------------------------------------------
# compute() for the per-image-mean metrics
# ---------------------------------------------------------------------------------------------

def mean_compute(per_image: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Corpus ROUGE-L / CIDEr-D: the mean of per-image scores (``np.mean`` as the reference)."""
    v = np.asarray(per_image, dtype=np.float64)
    if weights is None:
        return float(np.mean(v)) if len(v) else math.nan
    w = np.asarray(weights, dtype=np.float64)
    tot = w.sum()
    return float((v * w).sum() / tot) if tot else math.nan
