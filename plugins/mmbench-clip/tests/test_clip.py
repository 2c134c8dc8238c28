"""mmbench-clip against transformers itself, on tiny random CLIP/FLAVA checkpoints built here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmbench.errors import MMBenchError
from mmbench.plugins import Registry
from mmbench.tasks import ClassificationData, ClassificationSample, DatasetMeta, ImageItem
from mmbench.testing import check_model, check_plugin
from mmbench_clip import models, plugin
from mmbench_clip.tiny import image_processor, tiny_clip_config, train_tokenizer, wordpiece_vocab

TEXTS = ["a red square on the left", "two blue circles", "a big green triangle at the right",
         "a small yellow diamond, in the middle!", "purple", "an orange box and a red ball next to each other"]


def _images(n=5):
    rng = np.random.default_rng(0)
    return [ImageItem(id=f"im{i}", pil=Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)),
                      size=(56, 40 + 8 * i)) for i in range(n)]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    tok = train_tokenizer(TEXTS * 3, vocab_size=300)
    from transformers import CLIPModel

    CLIPModel(tiny_clip_config(len(tok.get_vocab()), width=32, proj=24, image_size=32)).save_pretrained(d)
    tok.save_pretrained(d)
    image_processor(32).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def flava_dir(tmp_path_factory):
    from transformers import BertTokenizer, FlavaConfig, FlavaImageProcessor, FlavaModel

    d = tmp_path_factory.mktemp("tiny_flava")
    words = sorted({w for t in TEXTS for w in t.replace(",", " ").replace("!", " ").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "!"] + words
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(d / "vocab.txt"))
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    cfg = FlavaConfig(image_config=dict(small, image_size=32, patch_size=8),
                      text_config=dict(small, vocab_size=len(vocab), max_position_embeddings=32),
                      multimodal_config=dict(small), hidden_size=32, projection_dim=24)
    torch.manual_seed(1)
    FlavaModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    FlavaImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    return d


def _unit(x):
    x = x.detach().float().numpy().astype(np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _feat(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _reference_clip(d, images, texts):
    """transformers directly, one item at a time (no padding at all)."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    m = CLIPModel.from_pretrained(str(d), local_files_only=True).float().eval()
    tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    proc = AutoImageProcessor.from_pretrained(str(d), local_files_only=True)
    with torch.no_grad():
        im = np.concatenate([_unit(_feat(m.get_image_features(pixel_values=proc(images=[x.pil], return_tensors="pt")[
            "pixel_values"]))) for x in images]) if images else None
        tx = np.concatenate([_unit(_feat(m.get_text_features(**tok([t], return_tensors="pt")))) for t in texts]) \
            if texts else None
        return im, tx, float(m.logit_scale.exp())


def test_clip_similarities_match_transformers(clip_dir):
    ims = _images()
    enc = models.build_clip(model=str(clip_dir), batch_size="3")
    assert enc.batch_size == 3 and enc.device == "cpu" and enc.checkpoint_path.name == "model.safetensors"
    im, tx, scale = _reference_clip(clip_dir, ims, TEXTS)
    got_im, got_tx = enc.encode_images(ims), enc.encode_texts(TEXTS)
    assert got_im.dtype == np.float32 and got_im.shape == (5, 24) and got_tx.shape == (6, 24)
    np.testing.assert_allclose(np.linalg.norm(got_im, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got_im.astype(np.float64) @ got_tx.T, im @ tx.T, atol=2e-6)
    assert enc.logit_scale == pytest.approx(scale) and scale == pytest.approx(np.exp(2.6592), rel=1e-4)


def test_clip_batch_size_independent_and_passes_the_kit(clip_dir):
    ims = _images()
    enc = models.build_clip(model=str(clip_dir))
    whole = enc.encode_images(ims) @ enc.encode_texts(TEXTS).T
    ones = np.concatenate([enc.encode_images([x]) for x in ims]) @ np.concatenate(
        [enc.encode_texts([t]) for t in TEXTS]).T
    np.testing.assert_allclose(whole, ones, atol=1e-6)
    reg = Registry(entry_points=False, extra_modules=(plugin,))
    rep = check_plugin("clip", options={"model": str(clip_dir)}, registry=reg, limit=6)
    assert rep.ok and "batch-invariant" in rep.passed and "wrong-input-form" in rep.passed


def test_flava_similarities_match_transformers(flava_dir):
    from transformers import AutoImageProcessor, AutoTokenizer, FlavaModel

    ims = _images(4)
    enc = models.build_flava(model=str(flava_dir))
    m = FlavaModel.from_pretrained(str(flava_dir), local_files_only=True).float().eval()
    tok = AutoTokenizer.from_pretrained(str(flava_dir), local_files_only=True)
    proc = AutoImageProcessor.from_pretrained(str(flava_dir), local_files_only=True)
    with torch.no_grad():  # the CLS token of the projected sequence, as FlavaForPreTraining's contrastive loss
        ref_im = np.concatenate([_unit(_feat(m.get_image_features(
            pixel_values=proc(images=[x.pil], return_tensors="pt")["pixel_values"]))[:, 0, :]) for x in ims])
        ref_tx = np.concatenate([_unit(_feat(m.get_text_features(**tok([t], return_tensors="pt")))[:, 0, :])
                                 for t in TEXTS])
    got = enc.encode_images(ims).astype(np.float64) @ enc.encode_texts(TEXTS).T
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, ref_im @ ref_tx.T, atol=2e-6)
    one = np.concatenate([enc.encode_images([x]) for x in ims]) @ np.concatenate(
        [enc.encode_texts([t]) for t in TEXTS]).T
    np.testing.assert_allclose(got, one, atol=1e-6)


def _cls_data(classes=("red", "blue", "green")):
    ims = _images(4)
    return ClassificationData([ClassificationSample(f"s{i}", "text", im, i % len(classes)) for i, im in enumerate(ims)],
                              list(classes), DatasetMeta("tiny", "test", "classification"))


def test_zeroshot_matches_manual_computation(clip_dir):
    data = _cls_data()
    zs = models.build_clip_zeroshot(model=str(clip_dir), templates="a photo of a {}.|a {} thing")
    assert zs.class_embeddings is None and hasattr(zs, "fit")
    zs.fit(data, None)
    assert zs.classes == ["red", "blue", "green"]
    im, _, scale = _reference_clip(clip_dir, [s.image for s in data.samples], [])
    _, tx, _ = _reference_clip(clip_dir, [], [t.format(c) for c in data.classes for t in ("a photo of a {}.", "a {} thing")])
    cls = tx.reshape(3, 2, -1).mean(1)
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    logits = scale * im @ cls.T
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    got = zs.predict_proba(data.samples)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0)
    fixed = models.build_clip_zeroshot(model=str(clip_dir), classes="red|blue|green",
                                       templates="a photo of a {}.|a {} thing")
    assert not hasattr(fixed, "fit")
    np.testing.assert_allclose(fixed.predict_proba(data.samples), got, atol=1e-6)
    assert check_model(zs, "classification", data, train=data, name="clip-zeroshot").ok


def test_flava_zeroshot_runs(flava_dir):
    data = _cls_data()
    zs = models.build_flava_zeroshot(model=str(flava_dir), classes="red|blue|green")
    p = zs.predict_proba(data.samples)
    assert p.shape == (4, 3) and np.allclose(p.sum(1), 1.0)


def test_clear_errors(clip_dir, flava_dir, tmp_path):
    with pytest.raises(MMBenchError, match="is not a local folder. mmbench never downloads"):
        models.build_clip(model="openai/clip-vit-base-patch32")
    with pytest.raises(MMBenchError, match="config.json: missing"):
        models.build_clip(model=str(tmp_path))
    with pytest.raises(MMBenchError, match="model_type is 'flava'.*use --plugin flava"):
        models.build_clip(model=str(flava_dir))
    with pytest.raises(MMBenchError, match="precision=fp16 needs a CUDA device"):
        models.build_clip(model=str(clip_dir), precision="fp16", device="cpu")
    with pytest.raises(MMBenchError, match="precision='fp8' is not one of fp32, fp16, bf16"):
        models.build_clip(model=str(clip_dir), precision="fp8")
    with pytest.raises(MMBenchError, match="templates='a photo'.*needs '\\{\\}'"):
        models.build_clip_zeroshot(model=str(clip_dir), templates="a photo")
    with pytest.raises(MMBenchError, match=r"unknown option\(s\) \['colour'\]"):
        models.build_clip(model=str(clip_dir), colour="red")
    with pytest.raises(MMBenchError, match="batch_size='x' is not an integer"):
        models.build_clip(model=str(clip_dir), batch_size="x")
    enc = models.build_clip(model=str(clip_dir))
    with pytest.raises(MMBenchError, match="offers \\['regions'\\]"):
        enc.encode_images([ImageItem(id="r", regions=np.zeros((36, 8), np.float32))])
    with pytest.raises(MMBenchError, match="no class names"):
        models.build_clip_zeroshot(model=str(clip_dir)).predict_proba(_cls_data().samples)


def test_specs_are_cheap_and_sane():
    specs = {s.name: s for s in plugin.mmbench_models()}
    assert sorted(specs) == ["clip", "clip-zeroshot", "flava", "flava-zeroshot"]
    assert specs["clip"].task == "retrieval" and specs["clip-zeroshot"].task == "classification"
    assert all(s.accepts == ("image",) and "model" in s.options for s in specs.values())


# --------------------------------------------------------------------------- the shipped demo checkpoint

def test_shipped_checkpoint_is_small_and_complete():
    d = models.DEMO_CHECKPOINT
    files = {p.name: p.stat().st_size for p in d.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json", "training.json"} <= set(files)
    assert sum(files.values()) < 5 * 2 ** 20, files
    info = json.loads((d / "training.json").read_text())
    assert info["seed"] == 0 and info["train_images"] == 400 and info["train_captions"] == 2000


def test_shipped_clip_beats_chance_on_demo_retrieval():
    from mmbench.runner import EvalConfig, run_eval

    reg = Registry(entry_points=False, extra_modules=(plugin,))
    rec = run_eval("clip", "demo", EvalConfig(bootstrap=0, show_progress=False), registry=reg)
    m = rec.metrics
    # chance on 200 images / 1000 captions: R@1/5/10 ~ 0.5/2.5/5 both ways, rsum ~ 16
    assert m["rsum"] > 150, m
    assert m["t2i.R@10"] > 30 and m["i2t.R@10"] > 40, m
    assert rec.plugin["checkpoint"].endswith("model.safetensors") and len(rec.plugin["checkpoint_sha256"]) == 64


# --------------------------------------------------------------------------- the shipped demo FLAVA

def test_wordpiece_vocab_covers_ascii_and_the_caption_words():
    vocab = wordpiece_vocab(["A red box, on the LEFT: 2 shapes!"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == len(set(vocab))
    assert {"red", "box", "left", "shapes", ",", ":", "!", "2", "z", "##z", "##7"} <= set(vocab)
    assert "LEFT" not in vocab and "##," not in vocab


def test_shipped_flava_checkpoint_is_small_complete_and_the_default():
    d = models.DEMO_FLAVA_CHECKPOINT
    files = {p.name: p.stat().st_size for p in d.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json", "training.json"} <= set(files)
    assert sum(files.values()) < 1 * 2 ** 20, files  # ~0.47 MB (float16), issue limit 5 MB
    info = json.loads((d / "training.json").read_text())
    assert info["model"] == "flava" and info["seed"] == 0 and info["epochs"] == 60
    assert info["train_images"] == 400 and info["train_captions"] == 2000 and info["parameters"] < 300_000
    enc = models.build_flava()
    assert enc.kind == "flava" and enc.checkpoint_path == d / "model.safetensors"
    assert type(enc.model).__name__ == "FlavaModel" and next(enc.model.parameters()).dtype == torch.float32
    assert enc.model.config.image_config.image_size == 48 and enc.model.config.text_config.hidden_size == 64
    # the demo captions never hit [UNK]; an unseen ASCII word falls back to single characters
    test = Registry(entry_points=False).dataset("demo").load("retrieval", "test")
    unk = enc.tokenizer.convert_tokens_to_ids("[UNK]")
    assert not any(unk in ids for ids in enc.tokenizer(test.texts)["input_ids"])
    assert enc.tokenizer.tokenize("A Zebra") == ["a", "z", "##e", "##b", "##r", "##a"]
    assert models.build_flava_zeroshot(classes="red|blue").encoder.path == d


def test_shipped_flava_beats_chance_on_demo_retrieval():
    from mmbench.runner import EvalConfig, run_eval

    reg = Registry(entry_points=False, extra_modules=(plugin,))
    rec = run_eval("flava", "demo", EvalConfig(bootstrap=0, show_progress=False), registry=reg)
    m = rec.metrics
    # chance rsum ~16 (200 images / 1000 captions); measured 215.5 (i2t R@1/5/10 13.5/39.5/55.0,
    # t2i 12.4/38.4/56.7) with the shipped weights; the range allows other BLAS/CPU rounding only
    assert 200 < m["rsum"] < 230, m
    assert m["i2t.R@10"] > 45 and m["t2i.R@10"] > 45 and m["i2t.R@1"] > 8 and m["t2i.R@1"] > 8, m
    assert rec.plugin["checkpoint"].endswith("demo_flava/model.safetensors")
    assert len(rec.plugin["checkpoint_sha256"]) == 64


def test_flava_demo_training_is_reproducible_and_loadable(tmp_path):
    from mmbench_clip.train_demo import train_flava

    infos = [train_flava(tmp_path / f"run{i}", epochs=1, log=lambda *_: None) for i in range(2)]
    assert infos[0]["steps"] == 8 and infos[0]["final_loss"] == infos[1]["final_loss"]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json"):
        assert (tmp_path / "run0" / name).read_bytes() == (tmp_path / "run1" / name).read_bytes(), name
    enc = models.build_flava(model=str(tmp_path / "run0"))
    assert enc.encode_images(_images(2)).shape == (2, 64) and enc.encode_texts(["a red box"]).shape == (1, 64)
    # the shipped config and tokenizer say what the script writes (only the weights need 60 epochs);
    # compared as content: the writer's own version stamp (transformers_version) is not part of it
    from mmbench.testing import json_content

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        assert json_content(tmp_path / "run0" / name) == json_content(models.DEMO_FLAVA_CHECKPOINT / name), name
