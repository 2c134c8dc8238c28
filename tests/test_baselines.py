"""Built-in baselines: feature functions against naive references, and every baseline end to end on demo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmbench.baselines import colour_box, features
from mmbench.baselines.nn_caption import consensus_caption
from mmbench.datasets import demo
from mmbench.errors import DataError, MMBenchError
from mmbench.plugins import Registry
from mmbench.runner import EvalConfig, run_eval
from mmbench.tasks import ImageItem

BASELINES = ("cca", "nn-caption", "colour-box", "sk-early-fusion", "sk-late-fusion", "sk-text-only",
             "sk-image-only")


@pytest.fixture(scope="module")
def reg():
    return Registry(entry_points=False)


def cfg(**kw):
    kw.setdefault("bootstrap", 0)
    kw.setdefault("show_progress", False)
    return EvalConfig(**kw)


# ---------------------------------------------------------------------------------------------- features


def test_colour_histogram_matches_a_naive_count():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    ref = np.zeros(4 ** 3)
    for r, g, b in arr.reshape(-1, 3).astype(int):
        ref[(r // 64) * 16 + (g // 64) * 4 + b // 64] += 1
    np.testing.assert_allclose(features.colour_histogram(arr, 4), ref / 35, rtol=0, atol=1e-7)


def test_colour_features_batch_equals_per_image_and_mixed_sizes():
    rng = np.random.default_rng(1)
    arrs = [rng.integers(0, 256, size=(12, 9, 3), dtype=np.uint8) for _ in range(3)]
    arrs.insert(1, rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8))
    got = features.colour_features([Image.fromarray(a) for a in arrs], bins=2, grid=2, grid_bins=2)
    assert got.shape == (4, 8 + 4 * 8 + 6) and got.dtype == np.float32
    for a, row in zip(arrs, got):
        x = a.reshape(-1, 3) / 255.0
        h, w = a.shape[:2]
        cells = [a[:h // 2, :w // 2], a[:h // 2, w // 2:], a[h // 2:, :w // 2], a[h // 2:, w // 2:]]
        ref = np.concatenate([features.colour_histogram(a, 2)] + [features.colour_histogram(c, 2) for c in cells]
                             + [x.mean(0), x.std(0)])
        np.testing.assert_allclose(row, ref, rtol=0, atol=1e-5)
    item = ImageItem(id="x", pil=Image.fromarray(arrs[0]))
    np.testing.assert_allclose(features.colour_features([item], bins=2, grid=2, grid_bins=2)[0], got[0], atol=1e-6)
    assert features.colour_features([], bins=2, grid=1, grid_bins=2).shape == (0, 8 + 8 + 6)


def test_colour_components_find_exact_boxes_names_and_fill():
    arr = np.full((40, 60, 3), 150, np.uint8)  # grey background is not a region
    arr[5:15, 4:24] = (220, 40, 40)  # red rectangle: box (4, 5, 24, 15)
    arr[20:38, 40:50] = (40, 80, 220)  # blue rectangle
    arr[30, 2] = (220, 40, 40)  # a lone pixel is below min_area
    comps = features.colour_components(Image.fromarray(arr))
    assert [(c.colour, c.box, c.area) for c in comps] == [
        ("red", (4.0, 5.0, 24.0, 15.0), 200), ("blue", (40.0, 20.0, 50.0, 38.0), 180)]
    assert comps[0].fill == 1.0


def test_tokenize_and_text_vectorizer():
    assert features.tokenize("Love THIS, look at the red #Art @friend it's") == [
        "love", "this", "look", "at", "the", "red", "#art", "@friend", "it's"]
    vec = features.TextVectorizer(ngram_range=(1, 2)).fit(["a red ball", "a blue ball"])
    assert "red ball" in vec.vocabulary and "a" in vec.vocabulary
    x = vec.transform(["a red ball", "green"])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), [1.0, 0.0], atol=1e-6)
    with pytest.raises(RuntimeError, match="not fitted"):
        features.TextVectorizer().transform(["x"])


def test_consensus_caption_is_the_most_central_one():
    vec = features.TextVectorizer().fit(["a red ball", "a red ball on the left", "red ball", "two blue boxes"])
    caps = ["two blue boxes", "a red ball on the left", "a red ball", "red ball"]
    assert consensus_caption(caps, vec) == "a red ball"
    assert consensus_caption(["only one"], vec) == "only one"


# ------------------------------------------------------------------------------------------- colour-box


def test_parse_expression_and_ranking_on_a_drawn_scene():
    assert colour_box.parse_expression("the huge red rhombus in the centre") == {
        "size": "big", "colour": "red", "shape": "diamond", "position": "middle"}
    assert colour_box.parse_expression("the thing") == {}
    arr = np.full((96, 96, 3), 150, np.uint8)
    arr[10:20, 8:18] = (40, 170, 60)  # small green square on the left
    arr[40:66, 60:86] = (40, 170, 60)  # big green square on the right
    arr[70:80, 40:50] = (220, 40, 40)  # small red square in the middle
    item = ImageItem(id="s", pil=Image.fromarray(arr), size=(96, 96))
    model = colour_box.build()
    assert model.box_format == "xyxy" and model.box_normalized is False
    ranked = model.rank(item, "the small green block")
    assert ranked[0].tolist() == [8.0, 10.0, 18.0, 20.0] and ranked.shape == (3, 4)
    assert model.rank(item, "the green one on the right")[0].tolist() == [60.0, 40.0, 86.0, 66.0]
    assert model.rank(item, "the red one")[0].tolist() == [40.0, 70.0, 50.0, 80.0]
    blank = ImageItem(id="b", pil=Image.fromarray(np.full((30, 40, 3), 150, np.uint8)))
    assert model.rank(blank, "the red one").tolist() == [[0.0, 0.0, 40.0, 30.0]]  # whole image fallback


# ------------------------------------------------------------------------------------- registration / errors


def test_registered_specs(reg):
    specs = {name: reg.model(name) for name in BASELINES}
    assert {n: s.task for n, s in specs.items()} == {
        "cca": "retrieval", "nn-caption": "captioning", "colour-box": "grounding",
        "sk-early-fusion": "classification", "sk-late-fusion": "classification",
        "sk-text-only": "classification", "sk-image-only": "classification"}
    assert "text_only" in specs["sk-text-only"].accepts and specs["cca"].accepts == ("image",)
    assert all(isinstance(s.factory, str) for s in specs.values())  # lazily imported


def test_bad_options_and_unfitted_models():
    from mmbench.baselines import cca, nn_caption, sk_classify

    with pytest.raises(MMBenchError, match="dim"):
        cca.build(dim="many")
    with pytest.raises(MMBenchError, match="k="):
        nn_caption.build(k="0")
    with pytest.raises(MMBenchError, match="C="):
        sk_classify.early_fusion(C="strong")
    with pytest.raises(MMBenchError, match="not fitted"):
        cca.build().encode_texts(["a red ball"])
    with pytest.raises(MMBenchError, match="not fitted"):
        sk_classify.text_only().predict_proba([])


# ---------------------------------------------------------------------------------------- end to end on demo


def test_cca_end_to_end(reg):
    rec = run_eval("cca", "demo", cfg(), registry=reg)
    m = rec.metrics
    # chance on 200 images / 1000 captions: R@1 = 0.5, R@10 = 5
    assert 5 < m["i2t.R@1"] < 60 and 5 < m["t2i.R@1"] < 60
    assert 25 < m["i2t.R@10"] < 95 and 25 < m["t2i.R@10"] < 95
    assert 100 < m["rsum"] < 500
    assert rec.dataset["protocol"] == "5-per-image" and rec.details["scorer"] == "dual-encoder"
    assert rec.timings["fit"] > 0


def test_nn_caption_end_to_end(reg, monkeypatch):
    # METEOR and the PTB tokenizer are Java programs (seconds of JVM start): this unit test keeps to
    # the pure-Python metrics; the CLI run in docs/demo.md reports all of them
    import mmbench.metrics.captioning as cap

    monkeypatch.setattr(cap, "java_available", lambda: False)
    rec = run_eval("nn-caption", "demo", cfg(task_options={"tokenizer": "whitespace"}), registry=reg)
    m = rec.metrics
    assert 0.4 < m["Bleu_1"] < 0.95 and 0.1 < m["Bleu_4"] < 0.7
    assert 0.2 < m["CIDEr"] < 3.0 and 0.25 < m["ROUGE_L"] < 0.9
    preds = rec.details["predictions"]
    train_caps = {c for s in demo.scenes("train", 1, 0) for c in s.captions}
    assert len(preds) == 200 and all(p["caption"] in train_caps for p in preds)


def test_colour_box_end_to_end(reg):
    rec = run_eval("colour-box", "demo", cfg(), registry=reg)
    assert 60 < rec.metrics["acc@0.5"] < 99
    assert rec.metrics["P@5"] >= rec.metrics["acc@0.5"]
    assert rec.details["invalid_boxes"] == 0


def test_classifiers_end_to_end_fusion_beats_unimodal(reg):
    acc = {}
    for name in ("sk-early-fusion", "sk-late-fusion", "sk-text-only", "sk-image-only"):
        rec = run_eval(name, "demo", cfg(), registry=reg)
        acc[name] = rec.metrics["accuracy"]
        assert 36 < acc[name] < 90, (name, acc[name])  # chance is 33.3 (balanced-ish classes)
    assert acc["sk-early-fusion"] > max(acc["sk-text-only"], acc["sk-image-only"]) + 10
    assert acc["sk-late-fusion"] > max(acc["sk-text-only"], acc["sk-image-only"])


def test_text_only_mode(reg):
    opts = {"text_only": "true"}
    rec = run_eval("sk-text-only", "demo", cfg(dataset_options=opts), registry=reg)
    with_images = run_eval("sk-text-only", "demo", cfg(), registry=reg)
    assert rec.metrics["accuracy"] == with_images.metrics["accuracy"]  # it never looks at images
    assert rec.dataset["forms"] == ["text_only"]
    with pytest.raises(DataError, match="sk-early-fusion needs images"):
        run_eval("sk-early-fusion", "demo", cfg(dataset_options=opts), registry=reg)


@pytest.mark.parametrize("name", BASELINES)
def test_conformance_kit_passes(reg, name):
    from mmbench.testing import check_plugin

    report = check_plugin(name, registry=reg, limit=16)  # raises AssertionError naming a failed check
    assert report.ok and report.task == reg.model(name).task
