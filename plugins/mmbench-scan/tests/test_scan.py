"""SCAN plugin: parity with the official evaluation (t2i and i2t, every eval-time option), safe loading, demo, kit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.tasks.retrieval import compute_sims, evaluate
from mmbench_vse.checkpoints import write_unsafe_checkpoint
from mmbench_vse.testing import assert_official_metrics, parity_case  # noqa: F401  (pytest fixtures)
from mmbench_scan.retrieval import build

CKPTS = ("model_best.pth.tar", "model_best_legacy_cudatag.pth.tar")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.shared
@pytest.mark.parametrize("name", ["t2i", "i2t"])
@pytest.mark.parametrize("ckpt", CKPTS)
def test_parity_with_official_evaluation(parity_case, name, ckpt, assert_official_metrics):
    d, data = parity_case(f"scan_{name}")
    model = build(checkpoint=str(d / ckpt), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    assert model.opt["cross_attn"] == name and model.opt["agg_func"] == "Mean"
    assert data.images[0].regions.shape[0] == 6  # nothing may assume 36 regions
    res = evaluate(model, data, batch_size=3, show_progress=False, name="scan")
    sims = compute_sims(model, data, batch_size=3, show_progress=False, name="scan")
    expected = np.load(d / "expected_sims.npy")
    assert np.allclose(sims, expected, rtol=0, atol=1e-5), np.abs(sims - expected).max()
    assert_official_metrics(res, d)


@pytest.mark.shared
@pytest.mark.parametrize("name", ["t2i", "i2t"])
def test_eval_time_options_match_official(parity_case, name):
    d, data = parity_case(f"scan_{name}")
    entries = json.loads((d / "extra_sims" / "index.json").read_text())
    assert len(entries) >= 7
    for e in entries:
        model = build(checkpoint=str(d / CKPTS[0]), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu",
                      raw_feature_norm=e["raw_feature_norm"], agg_func=e["agg_func"],
                      lambda_lse=str(e["lambda_lse"]), lambda_softmax=str(e["lambda_softmax"]),
                      cross_attn=e["cross_attn"])
        sims = model.score(model.encode_images(data.images), model.encode_texts(data.texts))
        expected = np.load(d / "extra_sims" / e["file"])
        assert np.allclose(sims, expected, rtol=0, atol=1e-5), (e["file"], np.abs(sims - expected).max())


@pytest.mark.shared
def test_tokens_and_embeddings_match_official(parity_case):
    d, data = parity_case("scan_t2i")
    model = build(checkpoint=str(d / CKPTS[1]), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    for e in json.loads((d / "expected_tokens.json").read_text()):
        assert model.vocab.encode(e["caption"]) == e["ids_with_start_end"]
    img = model.encode_images(data.images).numpy()
    assert np.allclose(img, np.load(d / "intermediate" / "img_embs.npy"), atol=1e-6)
    txt = model.encode_texts(data.texts)
    cap = np.load(d / "intermediate" / "cap_embs.npy")
    assert np.allclose(txt["c"].numpy(), cap[:, :txt["c"].shape[1]], atol=1e-6)


def test_weight_norm_image_encoder_loads_legacy_names():
    from mmbench_scan.model import SCAN

    opt = {"img_dim": 8, "word_dim": 4, "embed_size": 6, "vocab_size": 10, "precomp_enc_type": "weight_norm"}
    legacy = torch.nn.utils.weight_norm(torch.nn.Linear(8, 6), dim=None)  # what SCAN's encoder saves
    with torch.no_grad():
        legacy.weight_g.fill_(2.5)
    states = [legacy.state_dict(), SCAN({**opt, "precomp_enc_type": "basic"}).txt_enc.state_dict()]
    assert "fc.weight_g" not in states[0] and "weight_g" in states[0]
    states[0] = {f"fc.{k}": v for k, v in states[0].items()}
    model = SCAN(opt)
    model.load_official(states)
    x = torch.randn(3, 8)
    want = legacy(x)
    want = want / (want.pow(2).sum(-1, keepdim=True).sqrt() + 1e-8)
    assert torch.allclose(model.img_enc(x), want, atol=1e-6)


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = write_unsafe_checkpoint(tmp_path / "model_best.pth.tar", marker, field="best_rsum", legacy=True)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3}}))
    with pytest.raises(UnsafeFileError, match="system"):
        build(checkpoint=str(path), vocab=str(vocab), device="cpu")
    assert not marker.exists()


def test_bad_option_values():
    with pytest.raises(DataError, match="agg_func"):
        build(device="cpu", agg_func="Median")
    with pytest.raises(PluginError, match="lambda_lse"):
        build(device="cpu", lambda_lse="hot")
    with pytest.raises(PluginError, match="precision"):
        build(device="cpu", precision="half")


def test_demo_run_above_chance():
    # the shipped demo checkpoint through the harness on the first 100 demo test images (500 captions);
    # `mmbench eval -p scan -d demo` runs all 200
    from mmbench.datasets.demo import load
    from mmbench.testing import limit_data

    data = limit_data(load("retrieval", "test"), 100)
    model = build(device="cpu")
    res = evaluate(model, data, batch_size=50, show_progress=False, name="scan")
    # chance: i2t R@K about K, t2i R@K about K (percent) -> rsum about 32 on 100 images
    assert res.metrics["rsum"] > 300, res.metrics
    assert res.metrics["i2t.R@1"] > 20 and res.metrics["t2i.R@1"] > 10


def test_plugin_kit():
    from mmbench.testing import check_plugin

    assert check_plugin("scan", options={"device": "cpu"}, limit=12) is not None
