"""The plugins end to end: training, text-only mode, unlabelled data, cache, options, registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmbench.errors import DataError, MismatchError, MMBenchError
from mmbench_fusion.classifier import FusionClassifier
from mmbench_fusion.features import BuiltinEncoder, FeatureStore, PrecomputedEncoder

sys.path.insert(0, str(Path(__file__).parent))
from fusion_synth import make_data  # noqa: E402

FUSED = ["early-fusion", "late-fusion", "tfn", "lmf", "tmc", "etmc", "cmml"]
ALL = ["text-only", "image-only", *FUSED]
FAST = {"epochs": "15", "hidden": "32"}


@pytest.fixture(scope="module", autouse=True)
def feature_cache(fusion_feature_cache):
    """The session's feature cache (tests/conftest.py): each split is encoded once."""
    return fusion_feature_cache


@pytest.fixture(scope="module")
def synth():
    return (make_data(200, 0, "train", n_unlabelled=100), make_data(80, 1, "val"), make_data(200, 2, "test"))


def _acc(model, data):
    return float((model.predict_proba(data.samples).argmax(1) == data.labels).mean())


def test_every_fused_method_beats_both_unimodal_references(synth):
    train, val, test = synth
    acc = {m: _acc(FusionClassifier(m, **FAST).fit(train, val), test) for m in ALL}
    best_uni = max(acc["text-only"], acc["image-only"])
    assert best_uni < 0.72, acc  # each view alone lacks the cue half the time
    for m in FUSED:
        assert acc[m] > best_uni, (m, acc)


def test_deterministic_with_seed(synth):
    train, val, test = synth
    a = FusionClassifier("tmc", epochs="4").fit(train, val).predict_proba(test.samples[:20])
    b = FusionClassifier("tmc", epochs="4").fit(train, val).predict_proba(test.samples[:20])
    c = FusionClassifier("tmc", epochs="4", seed="1").fit(train, val).predict_proba(test.samples[:20])
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.allclose(a.sum(1), 1)


def test_text_only_mode_every_method_runs_on_text_alone():
    train, val, test = make_data(60, 0, "train", text_only=True, n_unlabelled=30), \
        make_data(30, 1, "val", text_only=True), make_data(30, 2, "test", text_only=True)
    for m in FUSED + ["text-only"]:
        model = FusionClassifier(m, epochs="3").fit(train, val)
        assert model.modalities == ["text"]
        assert model.details["text_only"] is (m != "text-only")
        probs = model.predict_proba(test.samples)
        assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    cm = FusionClassifier("cmml", epochs="2").fit(train, val)
    assert cm.details["n_unlabelled_available"] == 30 and cm.details["n_unlabelled_used"] == 0
    with pytest.raises(MismatchError, match="image-only.*text-only"):
        FusionClassifier("image-only", cache="false").fit(train, val)


def test_mixed_image_presence_is_a_data_error(synth):
    train = make_data(20, 0, "train")
    train.samples[3].image = None
    with pytest.raises(DataError, match="1 of 20 samples have no image"):
        FusionClassifier("early-fusion", cache="false").fit(train, None)


def test_cmml_uses_the_unlabelled_pool(synth):
    train, val, test = synth
    used = FusionClassifier("cmml", epochs="3").fit(train, val)
    assert used.details["n_unlabelled_used"] == len(train.unlabelled) == 100
    off = FusionClassifier("cmml", epochs="3", lambda_u="0").fit(train, val)
    # same seed, same labelled batches: only the unlabelled consistency term differs
    w_on = used.net.encoders[1][0].weight.detach()
    w_off = off.net.encoders[1][0].weight.detach()
    assert not np.allclose(w_on.numpy(), w_off.numpy())


def test_tmc_extra_metrics_and_late_fusion_weights(synth):
    train, val, test = synth
    tmc = FusionClassifier("tmc", **FAST).fit(train, val)
    probs = tmc.predict_proba(test.samples)
    extra = tmc.extra_metrics(test.samples, probs)
    assert set(extra) == {"ECE", "uncertainty.mean", "uncertainty.correct", "uncertainty.wrong"}
    assert 0 < extra["uncertainty.mean"] < 1 and 0 <= extra["ECE"] <= 100
    assert extra["uncertainty.wrong"] > extra["uncertainty.correct"]  # uncertainty flags errors
    late = FusionClassifier("late-fusion", **FAST).fit(train, val)
    w = late.details["late_fusion_weights"]
    assert len(w) == 2 and w[0] + w[1] == pytest.approx(1)


def test_feature_cache_roundtrip(tmp_path, synth):
    train, val, _ = synth
    store = FeatureStore(BuiltinEncoder(), tmp_path)
    a = store.get(train.samples[:10], "text", dataset="synth", split="train")
    b = store.get(train.samples[:10], "text", dataset="synth", split="train")
    assert (store.misses, store.hits) == (1, 1)
    assert (a != b).nnz == 0 and a.shape == (10, 2 ** 18)
    img = store.get(train.samples[:10], "image", dataset="synth", split="train")
    assert img.shape == (10, 91) and np.array_equal(img, store.get(train.samples[:10], "image", dataset="synth",
                                                                   split="train"))
    entries = store.cache.entries()  # mmbench's content-addressed cache: `mmbench cache ls` lists them
    assert len(entries) == 2 and {(e["dataset"], e["split"], e["modality"]) for e in entries} == \
        {("synth", "train", "text"), ("synth", "train", "image")}
    changed = make_data(200, 0, "train").samples[:10]
    changed[0].text = "something else"
    assert store.key_for(changed, "text", "synth", "train") != store.key_for(train.samples[:10], "text",
                                                                             "synth", "train")
    # a damaged entry is detected by its checksum and recomputed, never used
    npz = next(p for p in tmp_path.rglob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:-7] + b"garbage")
    store2 = FeatureStore(BuiltinEncoder(), tmp_path)
    again = [store2.get(train.samples[:10], m, dataset="synth", split="train") for m in ("text", "image")]
    assert (again[0] != a).nnz == 0 and np.array_equal(again[1], img)
    assert store2.cache.stats.corrupt == 1 and (store2.misses, store2.hits) == (1, 1)
    m = FusionClassifier("early-fusion", epochs="1", cache_dir=str(tmp_path)).fit(train, val)
    m2 = FusionClassifier("early-fusion", epochs="1", cache_dir=str(tmp_path)).fit(train, val)
    assert m.details["feature_cache"]["misses"] > 0
    assert m2.details["feature_cache"] == {"hits": m.details["feature_cache"]["misses"], "misses": 0}


def test_precomputed_encoder(tmp_path, synth):
    train, val, test = synth
    rng = np.random.default_rng(0)
    ids = np.array([s.id for s in train.samples + val.samples + test.samples + train.unlabelled])
    path = tmp_path / "feats.npz"
    np.savez(path, ids=ids, text=rng.normal(size=(len(ids), 6)).astype(np.float32),
             image=rng.normal(size=(len(ids), 5)).astype(np.float32))
    model = FusionClassifier("tfn", encoder="precomputed", features=str(path), epochs="2", cache="false")
    model.fit(train, val)
    assert model.details["feature_dims"] == [6, 5]
    enc = PrecomputedEncoder(str(path))
    with pytest.raises(DataError, match="field 'ids'.*not found"):
        enc.encode(make_data(3, 9, "other").samples, "text")
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="without pickle"):
        PrecomputedEncoder(str(bad))
    with pytest.raises(MMBenchError, match="features=PATH"):
        FusionClassifier("tfn", encoder="precomputed", cache="false").store


def test_option_errors():
    with pytest.raises(MMBenchError, match="unknown option 'rank'.*Known options"):
        FusionClassifier("tfn", rank="3")
    with pytest.raises(MMBenchError, match="epochs='x' is not an integer"):
        FusionClassifier("lmf", epochs="x")
    with pytest.raises(MMBenchError, match="dropout"):
        FusionClassifier("lmf", dropout="1.5")
    with pytest.raises(MMBenchError, match="before fit"):
        FusionClassifier("lmf").predict_proba([])
    assert FusionClassifier("lmf", rank="8").opts["rank"] == 8


def test_registered_through_entry_point_without_importing_torch():
    from mmbench.plugins import Registry

    reg = Registry()
    for name in ALL:
        spec = reg.models[name]
        assert spec.task == "classification" and spec.plugin == "mmbench-fusion"
    assert "text_only" not in reg.models["image-only"].accepts
    assert "rank" in reg.models["lmf"].options and "rank" not in reg.models["tfn"].options
    code = ("import sys, mmbench_fusion.plugin as p; specs = p.mmbench_models(); "
            "assert len(specs) == 12; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("name", ["tmc", "cmml"])
def test_conformance_kit_on_demo(name):
    testing = pytest.importorskip("mmbench.testing")
    report = testing.check_plugin(name, options={"epochs": "2"}, limit=30)
    assert report.ok


def test_run_eval_on_demo_records_extra_metrics():
    from mmbench.runner import EvalConfig, run_eval

    rec = run_eval("tmc", "demo", EvalConfig(options={"epochs": "3"}, bootstrap=0,
                                              show_progress=False))
    assert {"accuracy", "f1_weighted", "ECE", "uncertainty.mean"} <= set(rec.metrics)
    assert rec.details["model"]["modalities"] == ["text", "image"]
    rec = run_eval("cmml", "demo", EvalConfig(options={"epochs": "2"}, bootstrap=0,
                                               show_progress=False))
    assert rec.details["model"]["n_unlabelled_used"] == rec.details["model"]["n_unlabelled_available"] > 0


class _ToyDualEncoder:
    """A retrieval dual encoder: text -> (length, vowels), image -> mean colour."""

    batch_size = 7

    def encode_texts(self, texts):
        return np.array([[len(t), sum(c in "aeiou" for c in t)] for t in texts], dtype=np.float32)

    def encode_images(self, items):
        return np.stack([np.asarray(it.load(), dtype=np.float32).mean((0, 1)) for it in items])


def _toy_registry():
    import types

    from mmbench import hookimpl
    from mmbench.plugins import Registry
    from mmbench.specs import ModelSpec

    mod = types.ModuleType("toy_retrieval_plugin")
    mod.mmbench_models = hookimpl(lambda: [ModelSpec(name="toy-dual", task="retrieval",
                                                     factory=lambda **o: _ToyDualEncoder())])
    return Registry(entry_points=False, extra_modules=(mod,))


def test_retrieval_plugin_as_encoder(synth, tmp_path):
    from mmbench_fusion.features import PluginEncoder

    train = synth[0]
    enc = PluginEncoder("toy-dual", registry=_toy_registry())
    txt = enc.encode(train.samples[:10], "text")  # 10 samples in batches of 7
    assert txt.shape == (10, 2) and txt[0, 0] == len(train.samples[0].text)
    img = enc.encode(train.samples[:10], "image")
    assert img.shape == (10, 3)
    assert np.allclose(img[0], np.asarray(train.samples[0].image.pil, dtype=np.float32).mean((0, 1)))
    assert enc.identity.startswith("plugin-toy-dual-")
    store = FeatureStore(enc, tmp_path)
    store.get(train.samples[:10], "image", dataset="synth", split="train")
    (entry,) = store.cache.entries()
    assert entry["encoder"] == enc.identity and entry["stage"] == "fusion-features"
    with pytest.raises(MismatchError, match="needs a retrieval dual encoder"):
        from mmbench.plugins import Registry
        PluginEncoder("sk-text-only", registry=Registry(entry_points=False))
