"""IMRAM plugin: parity with the official evaluation (every model_mode / eval-time option), loading, demo, kit.

The fixtures (tests/fixtures/imram, README there) were made by running HuiChen24/IMRAM's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.tasks import DatasetMeta, ImageItem, RetrievalData
from mmbench.tasks.retrieval import compute_sims, evaluate
from mmbench_vse.checkpoints import write_unsafe_checkpoint
from mmbench_imram.retrieval import build

FIX = Path(__file__).resolve().parent / "fixtures" / "imram"
VOCAB = str(FIX / "f30k_precomp_vocab.json")
CKPTS = ("model_best.pth.tar", "model_best_legacy_cudatag.pth.tar")
CASES = ("full_t3", "wn_image_t2")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data() -> RetrievalData:
    ims = np.load(FIX / "data" / "test_feat.npy")
    caps = (FIX / "data" / "test_caps.txt").read_text(encoding="utf-8").splitlines()
    return RetrievalData(images=[ImageItem(id=str(i), regions=ims[i]) for i in range(len(ims))], texts=caps,
                         text_image=np.arange(len(caps)) // 5, meta=DatasetMeta("parity", "test", "retrieval"))


def _model(case: str, ckpt: str = CKPTS[0], **kw):
    return build(checkpoint=str(FIX / case / ckpt), vocab=VOCAB, device="cpu", **kw)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ckpt", CKPTS)
def test_parity_with_official_evaluation(data, case, ckpt):
    model = _model(case, ckpt)
    assert data.images[0].regions.shape[0] == 6  # nothing may assume 36 regions
    sims = compute_sims(model, data, batch_size=3, show_progress=False, name="imram")
    expected = np.load(FIX / case / "expected_sims.npy")
    assert np.allclose(sims, expected, rtol=0, atol=1e-5), np.abs(sims - expected).max()
    res = evaluate(model, data, batch_size=3, show_progress=False, name="imram")
    exp = json.loads((FIX / case / "expected_metrics.json").read_text())
    for direction in ("i2t", "t2i"):
        for key, metric in (("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10"), ("medr", "medr"), ("meanr", "meanr")):
            assert res.metrics[f"{direction}.{metric}"] == pytest.approx(exp[direction][key], abs=1e-12)
    assert res.metrics["rsum"] == pytest.approx(exp["rsum"], abs=1e-9)
    assert res.per_sample["i2t_rank"] == exp["i2t_ranks_0based"]
    assert res.per_sample["t2i_rank"] == exp["t2i_ranks_0based"]


@pytest.mark.parametrize("case", CASES)
def test_eval_time_options_match_official(data, case):
    index = json.loads((FIX / case / "extra_sims" / "index.json").read_text())
    assert len(index["variants"]) >= 12
    modes = set()
    for v in index["variants"]:
        opts = {k: str(v[k]) for k in ("model_mode", "iteration_step", "no_IMRAM_norm", "raw_feature_norm",
                                       "lambda_softmax")}
        model = _model(case, **opts)
        modes.add(model.model.model_mode)
        sims = model.score(model.encode_images(data.images), model.encode_texts(data.texts))
        expected = np.load(FIX / case / "extra_sims" / v["file"])
        assert np.allclose(sims, expected, rtol=0, atol=1e-5), (v, np.abs(sims - expected).max())
    assert modes == {"full_IMRAM", "text_IMRAM", "image_IMRAM"}


def test_full_is_sum_of_text_and_image(data):
    blocks = {}
    for mode in ("full_IMRAM", "text_IMRAM", "image_IMRAM"):
        m = _model("full_t3", model_mode=mode)
        blocks[mode] = m.score(m.encode_images(data.images), m.encode_texts(data.texts))
    assert np.allclose(blocks["full_IMRAM"], blocks["text_IMRAM"] + blocks["image_IMRAM"], atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_embeddings_match_official(data, case):
    model = _model(case, CKPTS[1])
    img = model.encode_images(data.images).numpy()
    assert np.allclose(img, np.load(FIX / case / "intermediate" / "img_embs.npy"), atol=1e-6)
    txt = model.encode_texts(data.texts)
    cap = np.load(FIX / case / "intermediate" / "cap_embs.npy")
    assert np.allclose(txt["c"].numpy(), cap[:, :txt["c"].shape[1]], atol=1e-6)
    assert txt["mask"].sum(1).tolist() == np.load(FIX / case / "intermediate" / "cap_lens.npy").tolist()


def test_padding_does_not_change_a_score(data):
    # padded words must not enter the query normalisation of later steps (the official loop has no padding)
    for kw in ({}, {"no_IMRAM_norm": "false", "raw_feature_norm": "softmax"}, {"raw_feature_norm": "l2norm"}):
        m = _model("full_t3", iteration_step="3", **kw)
        img = m.encode_images(data.images)
        together = m.score(img, m.encode_texts(data.texts))
        alone = np.concatenate([m.score(img, m.encode_texts([t])) for t in data.texts], 1)
        assert np.allclose(together, alone, rtol=0, atol=1e-6), (kw, np.abs(together - alone).max())


def test_checkpoint_layout_round_trip():
    from mmbench.checkpoints import load_checkpoint

    ck = load_checkpoint(FIX / "wn_image_t2" / CKPTS[1])
    assert sorted(ck) == ["best_rsum", "epoch", "model", "opt"]  # train_gpus.py: no Eiters
    assert all(k.startswith("module.") for k in ck["model"]) and "module.img_enc.fc_local.weight_g" in ck["model"]
    model = _model("wn_image_t2")
    state = model.model.official_state()
    assert list(state) == list(ck["model"])
    assert all(torch.equal(state[k], ck["model"][k]) for k in state)


def test_refusals(tmp_path):
    from mmbench.checkpoints import load_checkpoint

    with pytest.raises(PluginError, match="NameError"):
        _model("full_t3", raw_feature_norm="l1norm")
    with pytest.raises(PluginError, match="model_mode"):
        _model("full_t3", model_mode="vse")
    with pytest.raises(PluginError, match="iteration_step"):
        _model("full_t3", iteration_step="0")
    with pytest.raises(PluginError, match="known: checkpoint"):
        _model("full_t3", agg_func="Max")  # not read by IMRAM's scoring: not an option
    ck = load_checkpoint(FIX / "full_t3" / CKPTS[0])
    for change, field in ((dict(model_mode="vse"), "opt.model_mode"), (dict(bi_gru=False), "opt.bi_gru"),
                          (dict(raw_feature_norm="clipped_l1norm"), "opt.raw_feature_norm")):
        bad = dict(ck, opt=__import__("argparse").Namespace(**{**vars(ck["opt"]), **change}))
        torch.save(bad, tmp_path / "bad.pth.tar")
        with pytest.raises(DataError, match=field):
            build(checkpoint=str(tmp_path / "bad.pth.tar"), vocab=VOCAB, device="cpu")
    torch.save(dict(ck, model=[ck["model"]]), tmp_path / "list.pth.tar")
    with pytest.raises(DataError, match="SCAN/VSE"):
        build(checkpoint=str(tmp_path / "list.pth.tar"), vocab=VOCAB, device="cpu")
    missing = {k: v for k, v in ck["model"].items() if "gate_i2t" not in k}
    torch.save(dict(ck, model=missing), tmp_path / "missing.pth.tar")
    with pytest.raises(DataError, match="gate_i2t"):
        build(checkpoint=str(tmp_path / "missing.pth.tar"), vocab=VOCAB, device="cpu")


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = write_unsafe_checkpoint(tmp_path / "model_best.pth.tar", marker, n_modules=1, legacy=True)
    with pytest.raises(UnsafeFileError, match="system"):
        build(checkpoint=str(path), vocab=VOCAB, device="cpu")
    assert not marker.exists()


def test_demo_run_above_chance():
    # the shipped demo checkpoint on the first 100 demo test images (500 captions);
    # `mmbench eval -p imram -d demo` runs all 200
    from mmbench.datasets.demo import load
    from mmbench.testing import limit_data

    data = limit_data(load("retrieval", "test"), 100)
    res = evaluate(build(device="cpu"), data, batch_size=100, show_progress=False, name="imram")
    # chance: R@K about K percent in both directions -> rsum about 32 on 100 images
    assert res.metrics["rsum"] > 250, res.metrics
    assert res.metrics["i2t.R@1"] > 15 and res.metrics["t2i.R@1"] > 10


def test_plugin_kit():
    from mmbench.testing import check_plugin

    assert check_plugin("imram", options={"device": "cpu"}, limit=12) is not None


def test_shared_attention_keeps_each_models_norm_set():
    from mmbench_imram.model import attend as imram_attend
    from mmbench_vse.layers import attend

    q, ctx = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    kw = dict(smooth=9.0, query_mask=None, context_mask=None)
    assert attend(q, ctx, raw_feature_norm="clipped_l1norm", **kw).shape == (2, 3, 4)  # SCAN has the l1 norms
    with pytest.raises(ValueError, match="unknown raw_feature_norm 'clipped_l1norm'"):  # IMRAM's official one raises
        imram_attend(q, ctx, raw_feature_norm="clipped_l1norm", **kw)
    # zero-padded context rows (words, i2t) are masked before the norm: finite gradients in training
    ctx = torch.cat([ctx, torch.zeros(2, 2, 4)], 1).requires_grad_()
    cm = torch.arange(7).unsqueeze(0).expand(2, 7) < 5
    out = attend(q, ctx, raw_feature_norm="clipped_l2norm", smooth=9.0, query_mask=None, context_mask=cm)
    out.sum().backward()
    assert torch.isfinite(ctx.grad).all()
