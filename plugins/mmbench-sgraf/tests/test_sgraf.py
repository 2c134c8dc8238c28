"""SGRAF plugin: parity with the official evaluation, tokenisation, safe loading, demo run, plugin kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.tasks.base import ImageItem
from mmbench.tasks.retrieval import compute_sims, evaluate
from mmbench_vse.checkpoints import write_unsafe_checkpoint
from mmbench_vse.testing import assert_official_metrics, parity_case  # noqa: F401  (pytest fixtures)
from mmbench_sgraf.retrieval import SGRAFRetrieval, build

CKPTS = ("model_best.pth.tar", "model_best_legacy_cudatag.pth.tar")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.shared
@pytest.mark.parametrize("module", ["sgr", "saf"])
@pytest.mark.parametrize("ckpt", CKPTS)
def test_parity_with_official_evaluation(parity_case, module, ckpt, assert_official_metrics):
    d, data = parity_case(f"sgraf_{module}")
    model = build(checkpoint=str(d / ckpt), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    assert model.opt["module_name"] == module.upper()
    # batch_size 3: the harness tiles 3 image blocks x 14 caption blocks through score()
    res = evaluate(model, data, batch_size=3, show_progress=False, name="sgraf")
    sims = compute_sims(model, data, batch_size=3, show_progress=False, name="sgraf")
    expected = np.load(d / "expected_sims.npy")
    assert np.allclose(sims, expected, rtol=0, atol=1e-5), np.abs(sims - expected).max()
    assert_official_metrics(res, d)


@pytest.mark.shared
def test_precomp_dataset_end_to_end_with_published_deltas(parity_dir, tmp_path):
    import shutil
    import warnings

    from mmbench.runner import EvalConfig, run_eval

    d = parity_dir / "sgraf_sgr"
    shutil.copytree(d / "data", tmp_path / "f30k_precomp")  # the official precomp layout
    cfg = EvalConfig(data_root=str(tmp_path), bootstrap=0, show_progress=False,
                     options={"checkpoint": str(d / CKPTS[1]), "vocab": str(d / "f30k_precomp_vocab.json"),
                              "device": "cpu"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 8-image copy is flagged as not comparable
        rec = run_eval("sgraf", "f30k_precomp", cfg)
    exp = json.loads((d / "expected_metrics.json").read_text())
    assert rec.metrics["rsum"] == pytest.approx(exp["rsum"]) and rec.metrics["i2t.meanr"] == exp["i2t"]["meanr"]
    assert rec.dataset["protocol"] == "flickr30k-1k"
    pub = {p["metric"]: p for p in rec.published}
    assert pub["i2t.R@1"]["published"] == 78.4 and pub["t2i.R@10"]["published"] == 89.1
    assert pub["i2t.R@1"]["source"] == "Paranioar/SGRAF README" and len(pub) == 6


@pytest.mark.shared
def test_intermediate_embeddings_match(parity_case):
    d, data = parity_case("sgraf_sgr")
    model = build(checkpoint=str(d / CKPTS[1]), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    img = model.encode_images(data.images)[0]["v"].numpy()
    txt = model.encode_texts(data.texts)[0]
    assert np.allclose(img, np.load(d / "intermediate" / "img_embs.npy"), atol=1e-6)
    lens = np.load(d / "intermediate" / "cap_lens.npy")
    assert txt["mask"].sum(1).numpy().tolist() == lens.tolist()
    cap = np.load(d / "intermediate" / "cap_embs.npy")
    assert np.allclose(txt["c"].numpy(), cap[:, :txt["c"].shape[1]], atol=1e-6)


@pytest.mark.shared
def test_ensemble_is_mean_of_both_modules(parity_case, parity_dir):
    d_sgr, data = parity_case("sgraf_sgr")
    d_saf = parity_dir / "sgraf_saf"
    vocab = str(d_sgr / "f30k_precomp_vocab.json")  # both fixtures share the vocabulary
    both = build(checkpoint=str(d_sgr / CKPTS[0]), checkpoint2=str(d_saf / CKPTS[0]), vocab=vocab, device="cpu")
    saf = build(checkpoint=str(d_saf / CKPTS[0]), vocab=vocab, device="cpu")
    sims = both.score(both.encode_images(data.images), both.encode_texts(data.texts))
    saf_sims = saf.score(saf.encode_images(data.images), saf.encode_texts(data.texts))
    expected = (np.load(d_sgr / "expected_sims.npy") + saf_sims) / 2
    assert np.allclose(sims, expected, rtol=0, atol=1e-5)
    assert not np.allclose(sims, np.load(d_sgr / "expected_sims.npy"), atol=1e-3)


@pytest.mark.shared
def test_tokens_match_official(parity_dir):
    d = parity_dir / "sgraf_sgr"
    model = build(checkpoint=str(d / CKPTS[0]), vocab=str(d / "f30k_precomp_vocab.json"), device="cpu")
    entries = json.loads((d / "expected_tokens.json").read_text())
    from mmbench_vse.vocab import scan_tokens

    for e in entries:
        assert scan_tokens(e["caption"]) == e["tokens"]
        assert model.vocab.encode(e["caption"]) == e["ids_with_start_end"]
    assert any(3 in e["ids_with_start_end"] for e in entries)  # the fixture has <unk> words


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = write_unsafe_checkpoint(tmp_path / "model_best.pth.tar", marker, n_modules=3)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3}, "idx": 4}))
    with pytest.raises(UnsafeFileError, match=r"system.*allow_unsafe_pickle=true"):
        build(checkpoint=str(path), vocab=str(vocab), device="cpu")
    assert not marker.exists()


def test_bad_options_and_files(tmp_path):
    with pytest.raises(PluginError, match="unknown option"):
        build(checkpont="x")
    with pytest.raises(PluginError, match="both checkpoint"):
        build(checkpoint="x")
    with pytest.raises(DataError, match="not found"):
        build(checkpoint=str(tmp_path / "missing.pth.tar"), vocab=str(tmp_path / "v.json"), device="cpu")
    with pytest.raises(PluginError, match="batch_size"):
        build(batch_size="many", device="cpu")


def test_demo_model_rejects_wrong_region_count():
    model = SGRAFRetrieval(device="cpu")
    with pytest.raises(DataError, match="36 regions"):
        model.encode_images([ImageItem(id="x", regions=np.zeros((10, 64), np.float32))])
    with pytest.raises(PluginError, match="regions"):
        model.encode_images([ImageItem(id="x", pil=object())])


def test_shipped_demo_checkpoint_is_official_format():
    from mmbench.checkpoints import load_checkpoint
    from mmbench_sgraf.retrieval import DEMO_CHECKPOINT

    ck = load_checkpoint(DEMO_CHECKPOINT)
    assert sorted(ck) == ["Eiters", "best_rsum", "epoch", "model", "opt"]
    assert type(ck["opt"]).__name__ == "Namespace" and len(ck["model"]) == 3
    assert DEMO_CHECKPOINT.stat().st_size < 5 * 2**20


def test_demo_run_above_chance():
    # the shipped demo checkpoint through the harness on the first 100 demo test images (500 captions);
    # `mmbench eval -p sgraf -d demo` runs all 200
    from mmbench.datasets.demo import load
    from mmbench.testing import limit_data

    data = limit_data(load("retrieval", "test"), 100)
    model = build(device="cpu")
    res = evaluate(model, data, batch_size=50, show_progress=False, name="sgraf")
    # chance: i2t R@K about K, t2i R@K about K (percent) -> rsum about 32 on 100 images
    assert res.metrics["rsum"] > 300, res.metrics
    assert res.metrics["i2t.R@1"] > 20 and res.metrics["t2i.R@1"] > 10


def test_plugin_kit():
    from mmbench.testing import check_plugin

    report = check_plugin("sgraf", options={"device": "cpu"}, limit=12)
    assert report is not None
