"""VSE++ plugin: parity with the official evaluation, safe loading, demo run, plugin kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmbench.errors import DataError, UnsafeFileError
from mmbench.tasks.base import ImageItem
from mmbench.tasks.retrieval import compute_sims, evaluate
from mmbench_vse.checkpoints import write_unsafe_checkpoint
from mmbench_vse.testing import assert_official_metrics, parity_case  # noqa: F401  (pytest fixtures)
from mmbench_vsepp.retrieval import build

CKPTS = ("model_best.pth.tar", "model_best_legacy_cudatag.pth.tar")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.shared
@pytest.mark.parametrize("ckpt", CKPTS)
def test_parity_with_official_evaluation(parity_case, ckpt, assert_official_metrics):
    d, data = parity_case("vsepp")
    model = build(checkpoint=str(d / ckpt), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    assert not hasattr(model, "score")  # a dual encoder: the harness forms the dot products
    res = evaluate(model, data, batch_size=3, show_progress=False, name="vsepp")
    sims = compute_sims(model, data, batch_size=3, show_progress=False, name="vsepp")
    expected = np.load(d / "expected_sims.npy")
    assert np.allclose(sims, expected, rtol=0, atol=1e-5)
    assert_official_metrics(res, d)


@pytest.mark.shared
def test_embeddings_tokens_and_vector_inputs(parity_case):
    d, data = parity_case("vsepp", as_rows=False)  # (D,) vectors are accepted as well as (1, D)
    model = build(checkpoint=str(d / CKPTS[1]), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    assert np.allclose(model.encode_images(data.images), np.load(d / "intermediate" / "img_embs.npy"), atol=1e-6)
    assert np.allclose(model.encode_texts(data.texts), np.load(d / "intermediate" / "cap_embs.npy"), atol=1e-6)
    for e in json.loads((d / "expected_tokens.json").read_text()):
        assert model.vocab.encode(e["caption"]) == e["ids_with_start_end"]


def test_region_rows_are_mean_pooled_or_refused():
    model = build(device="cpu")
    rows = np.random.default_rng(0).random((36, 64), dtype=np.float32)
    pooled = model.encode_images([ImageItem(id="a", regions=rows)])
    direct = model.encode_images([ImageItem(id="b", regions=rows.mean(0))])
    assert np.allclose(pooled, direct, atol=1e-6)
    strict = build(device="cpu", region_pool="none")
    with pytest.raises(DataError, match="region_pool=mean"):
        strict.encode_images([ImageItem(id="a", regions=rows)])


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = write_unsafe_checkpoint(tmp_path / "model_best.pth.tar", marker)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3}}))
    with pytest.raises(UnsafeFileError, match="system"):
        build(checkpoint=str(path), vocab=str(vocab), device="cpu")
    assert not marker.exists()


def test_demo_run_above_chance():
    from mmbench.runner import EvalConfig, run_eval

    rec = run_eval("vsepp", "demo", EvalConfig(bootstrap=0, show_progress=False, options={"device": "cpu"}))
    assert rec.metrics["rsum"] > 300, rec.metrics  # chance is about 16


def test_plugin_kit():
    from mmbench.testing import check_plugin

    assert check_plugin("vsepp", options={"device": "cpu"}, limit=12) is not None


@pytest.mark.shared
def test_official_pickled_vocab_gives_same_sims(parity_case, tmp_path):
    """VSE++ ships vocab/<data_name>_vocab.pkl (a pickled vocab.Vocabulary); it is read without running code."""
    import pickle
    import sys
    import types

    d, data = parity_case("vsepp")
    words = json.loads((d / "f30k_precomp_vocab.json").read_text())["word2idx"]
    mod = types.ModuleType("vocab")

    class Vocabulary:
        pass

    Vocabulary.__module__, Vocabulary.__qualname__ = "vocab", "Vocabulary"
    mod.Vocabulary = Vocabulary
    v = Vocabulary()
    v.word2idx, v.idx2word, v.idx = dict(words), {i: w for w, i in words.items()}, len(words)
    sys.modules["vocab"] = mod
    try:
        (tmp_path / "f30k_precomp_vocab.pkl").write_bytes(pickle.dumps(v, protocol=2))
    finally:
        del sys.modules["vocab"]
    model = build(checkpoint=str(d / CKPTS[1]), vocab=str(tmp_path / "f30k_precomp_vocab.pkl"), device="cpu")
    sims = compute_sims(model, data, batch_size=8, show_progress=False, name="vsepp")
    assert np.allclose(sims, np.load(d / "expected_sims.npy"), rtol=0, atol=1e-5)


# --- order embeddings (README rows Order0 = use_abs, Order++ = no abs): fixtures in tests/fixtures/vsepp_order

ORDER = __import__("pathlib").Path(__file__).resolve().parent / "fixtures" / "vsepp_order"


def _order_data():
    from mmbench.tasks import DatasetMeta, RetrievalData

    ims = np.load(ORDER / "data" / "test_ims.npy")
    caps = (ORDER / "data" / "test_caps.txt").read_text(encoding="utf-8").splitlines()
    return RetrievalData(images=[ImageItem(id=str(i), regions=ims[i][None]) for i in range(len(ims))], texts=caps,
                         text_image=np.arange(len(caps)) // 5, meta=DatasetMeta("parity", "test", "retrieval"))


@pytest.mark.parametrize("case,use_abs", [("order0", True), ("orderpp", False)])
@pytest.mark.parametrize("ckpt", CKPTS)
def test_order_embeddings_match_official(case, use_abs, ckpt):
    d, data = ORDER / case, _order_data()
    model = build(checkpoint=str(d / ckpt), vocab=str(ORDER / "f30k_precomp_vocab.json"), device="cpu")
    assert model.opt["measure"] == "order" and model.opt["use_abs"] is use_abs
    assert hasattr(model, "score")  # not a dot product: the pairwise scorer path
    sims = compute_sims(model, data, batch_size=3, show_progress=False, name="vsepp")
    expected = np.load(d / "expected_sims.npy")
    assert sims.dtype == np.float32 and expected.dtype == np.float32
    assert np.allclose(sims, expected, rtol=0, atol=1e-6), np.abs(sims - expected).max()
    res = evaluate(model, data, batch_size=3, show_progress=False, name="vsepp")
    assert res.details["scorer"] == "cross-attention"
    exp = json.loads((d / "expected_metrics.json").read_text())
    for direction in ("i2t", "t2i"):
        for key, metric in (("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10"), ("medr", "medr"), ("meanr", "meanr")):
            assert res.metrics[f"{direction}.{metric}"] == pytest.approx(exp[direction][key], abs=1e-12)
    assert res.metrics["rsum"] == pytest.approx(exp["rsum"], abs=1e-9)
    assert res.per_sample["i2t_rank"] == exp["i2t_ranks_0based"]
    assert res.per_sample["t2i_rank"] == exp["t2i_ranks_0based"]


@pytest.mark.parametrize("case", ["order0", "orderpp"])
def test_order_embeddings_and_abs(case):
    d, data = ORDER / case, _order_data()
    model = build(checkpoint=str(d / CKPTS[0]), vocab=str(ORDER / "f30k_precomp_vocab.json"), device="cpu")
    img, cap = model.encode_images(data.images), model.encode_texts(data.texts)
    assert np.allclose(img, np.load(d / "intermediate" / "img_embs.npy"), atol=1e-6)
    assert np.allclose(cap, np.load(d / "intermediate" / "cap_embs.npy"), atol=1e-6)
    assert bool(img.min() >= 0 and cap.min() >= 0) is model.opt["use_abs"]
    # the score equals -||max(0, c - i)||_2 for every pair, tiles of any size
    want = -np.sqrt((np.clip(cap[None].astype(np.float64) - img[:, None], 0, None) ** 2).sum(-1))
    assert np.allclose(model.score(img, cap), want, atol=1e-6)
    assert np.allclose(model.score(img[2:3], cap[5:6]), want[2:3, 5:6], atol=1e-6)
    with pytest.raises(Exception, match="empty batch"):
        model.encode_texts([])


def test_unknown_measure_is_refused(tmp_path):
    import torch

    ck = torch.load(ORDER / "order0" / CKPTS[0], weights_only=False)
    ck["opt"].measure = "hyperbolic"
    torch.save(ck, tmp_path / "model_best.pth.tar")
    with pytest.raises(DataError, match="opt.measure"):
        build(checkpoint=str(tmp_path / "model_best.pth.tar"), vocab=str(ORDER / "f30k_precomp_vocab.json"),
              device="cpu")
