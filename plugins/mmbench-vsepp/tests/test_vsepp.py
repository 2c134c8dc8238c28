"""VSE++ plugin: parity with the official evaluation, safe loading, demo run, plugin kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmbench.errors import DataError, UnsafeFileError
from mmbench.tasks.base import ImageItem
from mmbench.tasks.retrieval import compute_sims, evaluate
from mmbench.vse import write_unsafe_checkpoint
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
