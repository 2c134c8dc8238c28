"""Show-Attend-Tell plugin: parity with the official caption.py (../shared/parity/sat), safe loading, kit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.tasks.base import ImageItem
from mmbench_sat.captioner import build, preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CK = "BEST_checkpoint_coco_5_cap_per_img_5_min_word_freq.pth.tar"
WM = "WORDMAP_coco_5_cap_per_img_5_min_word_freq.json"


@pytest.fixture(scope="module")
def official(parity_dir):
    d = parity_dir / "sat"
    if not d.is_dir():
        pytest.skip("no sat parity fixture")
    model = build(checkpoint=str(d / CK), word_map=str(d / WM), device="cpu")
    pre = np.load(d / "intermediate" / "preprocessed.npz")
    items = [ImageItem(id=str(f), path=d / "images" / str(f)) for f in pre["files"]]
    return d, model, pre, items


@pytest.mark.shared
def test_rebuilt_from_the_pickle_and_encoder_output(official):
    d, model, pre, items = official
    # everything is read from the checkpoint: ResNet-18 layout, 512 channels, decoder dims
    assert model.details["encoder"] == {"blocks": [2, 2, 2, 2], "block": "BasicBlock", "channels": 512,
                                        "enc_image_size": 14}
    assert model.details["decoder"] == {"attention_dim": 16, "embed_dim": 16, "decoder_dim": 32, "vocab_size": 247}
    from PIL import Image

    img256 = np.stack([np.asarray(it.load().resize((256, 256), Image.BILINEAR)) for it in items])
    if (img256 == pre["img256"]).all():  # same Pillow resampling as the fixture's
        enc = model.encode(items).numpy()
    else:
        import torch

        x = np.stack([preprocess(Image.fromarray(a)) for a in pre["img256"]])
        enc = model.encoder(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(enc, pre["encoder_out"], rtol=0, atol=1e-4)


@pytest.mark.shared
@pytest.mark.parametrize("beam", [1, 3])
def test_beam_search_equals_official(official, beam):
    d, model, pre, items = official
    exp = json.loads((d / "expected" / f"caption_beam{beam}.json").read_text())
    alphas = np.load(d / "expected" / "alphas.npz")
    model.beam_size = beam
    res = model.caption(items)
    for r, e, f in zip(res, exp["images"], pre["files"]):
        assert r["seq"] == e["seq"] and model.words(r["seq"]) == e["caption"]
        assert r["score"] == pytest.approx(e["score"], abs=1e-4)
        assert r["complete_seqs"] == [c["seq"] for c in e["complete_seqs"]]
        np.testing.assert_allclose(r["complete_scores"], [c["score"] for c in e["complete_seqs"]], atol=1e-4)
        assert len(r["steps"]) == e["n_steps"]
        for a, b in zip(r["steps"], e["steps"]):
            assert (a["k"], a["prev_beam"], a["words"]) == (b["k"], b["prev_beam"], b["words"])
            np.testing.assert_allclose(a["top_k_scores"], b["top_k_scores"], atol=1e-4)
        np.testing.assert_allclose(r["alphas"], alphas[f"alphas_b{beam}_{f}"], atol=1e-5)
    model.beam_size = 3


@pytest.mark.shared
def test_unsafe_globals_refused_by_name(official, tmp_path):
    import zipfile

    d = official[0]
    src = zipfile.ZipFile(d / CK)
    out = tmp_path / "evil.pth.tar"
    with zipfile.ZipFile(out, "w") as zf:
        for n in src.namelist():
            data = src.read(n)
            if n.endswith("data.pkl"):
                data = data.replace(b"models\nEncoder", b"os\nsystem\n\x00\x00"[: len(b"models\nEncoder")])
            zf.writestr(n, data)
    with pytest.raises((UnsafeFileError, DataError)):
        build(checkpoint=str(out), word_map=str(d / WM), device="cpu")


def test_whole_module_pickle_with_unknown_class_is_refused(tmp_path):
    import torch

    torch.save({"encoder": torch.nn.GRU(2, 2), "decoder": None}, tmp_path / "x.pth.tar")
    with pytest.raises(UnsafeFileError, match="torch.nn.modules.rnn.GRU.*allow_unsafe_pickle"):
        from mmbench_sat.loading import load_whole_checkpoint

        load_whole_checkpoint(tmp_path / "x.pth.tar")


def test_bad_options_and_inputs(tmp_path):
    with pytest.raises(PluginError, match="unknown option"):
        build(beam="3")
    with pytest.raises(PluginError, match="both checkpoint"):
        build(checkpoint="x")
    with pytest.raises(DataError, match="not found"):
        build(checkpoint=str(tmp_path / "none.pth.tar"), word_map=str(tmp_path / "w.json"))
    for bad, match in ((dict(precision="bf16"), "CUDA"), (dict(precision="half"), "precision")):
        with pytest.raises(PluginError, match=match):
            build(device="cpu", **bad)
    m = build(device="cpu")
    assert m.details["precision"] == "fp32"
    with pytest.raises(PluginError, match="no pixels"):
        m.generate([ImageItem(id="r", regions=np.zeros((36, 64), np.float32))])


def test_shipped_demo_checkpoint_is_tutorial_format():
    from mmbench_sat.captioner import DEMO_CHECKPOINT, DEMO_DIR
    from mmbench_sat.loading import flatten, load_whole_checkpoint
    from mmbench_sat.train_demo import (BN_CALIBRATION, DECODER_LR, DROPOUT, ENCODER_LR, EPOCHS, FINE_TUNE_FROM,
                                        WIDTHS)

    assert DEMO_CHECKPOINT.stat().st_size < 2**20  # the bound for shipped demo checkpoints: 1 MB
    ck = load_whole_checkpoint(DEMO_CHECKPOINT)
    assert set(ck) == {"epoch", "epochs_since_improvement", "bleu-4", "encoder", "decoder", "encoder_optimizer",
                       "decoder_optimizer"}  # utils.save_checkpoint's keys
    assert ck["encoder"].qualname == "models.Encoder" and ck["decoder"].qualname == "models.DecoderWithAttention"
    # the encoder is fine-tuned, but only the decoder's Adam is pickled (the encoder's is dropped to fit in 1 MB;
    # None is what utils.save_checkpoint stores without fine-tuning): one Adam state per decoder parameter
    assert ck["encoder_optimizer"] is None and ck["decoder_optimizer"].qualname == "torch.optim.adam.Adam"
    dec_sd = flatten(ck["decoder"])[0]
    adam = ck["decoder_optimizer"]["state"]
    assert len(adam) == len(dec_sd) == 19
    assert sorted(tuple(v["exp_avg"].shape) for v in adam.values()) == sorted(tuple(t.shape) for t in dec_sd.values())
    assert {float(v["step"]) for v in adam.values()} == {50.0 * (ck["epoch"] + 1)}  # 400 images / batch 8 per epoch
    enc_sd = flatten(ck["encoder"])[0]
    trained = [k for k in enc_sd if int(k.split(".")[1]) >= FINE_TUNE_FROM and "running" not in k and "batches" not in k]
    info = json.loads((DEMO_DIR / "TRAINING_demo.json").read_text())
    assert info["fine_tune_encoder"] is True and info["seed"] == 0 and info["train_images"] == 400
    assert info["saved_optimizers"] == ["decoder_optimizer"]
    assert info["parameters"]["encoder_trained"] == sum(enc_sd[k].numel() for k in trained) == 32312
    assert (info["epochs"], info["encoder_lr"], info["decoder_lr"], info["widths"]) == (EPOCHS, ENCODER_LR, DECODER_LR,
                                                                                          list(WIDTHS))
    assert info["decoder"]["dropout"] == DROPOUT and info["fine_tuned"] == f"resnet.children()[{FINE_TUNE_FROM}:]"
    assert (info["bn_calibration"] is not None) == BN_CALIBRATION
    assert info["best_epoch"] == ck["epoch"] and info["best_val"]["Bleu_4"] == pytest.approx(ck["bleu-4"], abs=1e-4)
    assert info["checkpoint_bytes"] == DEMO_CHECKPOINT.stat().st_size


def test_demo_beats_nn_caption_on_the_demo_test_split():
    """The shipped demo model against the nn-caption baseline (fitted on the demo train split) on the whole demo
    test split, 200 images, as `mmbench eval -p sat -p nn-caption -d demo` scores them (README)."""
    from mmbench.baselines.nn_caption import build as nn_caption
    from mmbench.datasets.demo import load
    from mmbench.metrics.captioning import caption_scores

    data = load("captioning", "test")
    ids = [im.id for im in data.images]
    refs = dict(zip(ids, data.references))
    ours = build(device="cpu", batch_size="50").generate(data.images)
    nn = nn_caption().fit(load("captioning", "train")).generate(data.images)
    m = ("bleu", "rouge", "cider")
    sat = caption_scores(refs, dict(zip(ids, ours)), metrics=m)["metrics"]
    base = caption_scores(refs, dict(zip(ids, nn)), metrics=m)["metrics"]
    assert len(ids) == 200 and len(set(ours)) > 50, "the demo model ignores the image"
    assert sat["CIDEr"] > 1.3 * base["CIDEr"], (sat, base)
    assert all(sat[k] > base[k] for k in ("Bleu_1", "Bleu_4", "ROUGE_L")), (sat, base)


def test_batchnorm_calibration_is_the_plain_average():
    import torch

    from mmbench_sat.train_demo import Encoder, calibrate_batchnorm

    torch.manual_seed(0)
    enc = Encoder()
    x = torch.randn(6, 3, 64, 64)
    calibrate_batchnorm(enc, x, 4)  # batches of 4 and 2: momentum None averages the batch statistics
    bn = enc.resnet[1]
    with torch.no_grad():
        y = enc.resnet[0](x)
    want = (y[:4].mean((0, 2, 3)) + y[4:].mean((0, 2, 3))) / 2
    torch.testing.assert_close(bn.running_mean, want, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 2 and not enc.training


def test_demo_training_is_reproducible(tmp_path):
    """train_demo on 32 images / 8 val images for 1 epoch, twice: the same bytes (single thread, seeded). Both
    runs pickle the encoder's Adam as well (--save-encoder-optimizer, train.py's fine-tuning checkpoint), which the
    shipped file leaves out, so that the loader is checked on it too."""
    from mmbench_sat.loading import flatten, load_whole_checkpoint
    from mmbench_sat.train_demo import train

    infos = [train(1, 0, tmp_path / f"run{i}", n_images=32, n_val_images=8, save_encoder_optimizer=True,
                   log=lambda *_: None) for i in range(2)]
    a, b = (tmp_path / f"run{i}" / "BEST_checkpoint_demo.pth.tar" for i in range(2))
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "run0" / "WORDMAP_demo.json").read_bytes() == (tmp_path / "run1" / "WORDMAP_demo.json").read_bytes()
    assert infos[0]["final_loss"] == infos[1]["final_loss"] and infos[0]["steps"] == 4  # 32 images, batch 8
    ck = load_whole_checkpoint(a)
    assert ck["encoder_optimizer"].qualname == "torch.optim.adam.Adam" and ck["epoch"] == 0
    assert infos[0]["saved_optimizers"] == ["decoder_optimizer", "encoder_optimizer"]
    enc_sd = flatten(ck["encoder"])[0]
    weights = [k for k in enc_sd if "running" not in k and "batches" not in k]  # all of it is fine-tuned (from 0)
    enc_adam = ck["encoder_optimizer"]["state"]
    assert len(enc_adam) == len(weights) == 36 and {float(v["step"]) for v in enc_adam.values()} == {4.0}
    wm = tmp_path / "run0" / "WORDMAP_demo.json"
    from mmbench.datasets.demo import load

    m = build(checkpoint=str(a), word_map=str(wm), device="cpu")  # a 4-step model need not reach <end>: encode only
    assert m.details["checkpoint_epoch"] == 0 and tuple(m.encode(load("captioning", "test").images[:2]).shape) == (
        2, 14, 14, 32)


def test_demo_run_above_constant_caption():
    from mmbench.datasets.demo import load
    from mmbench.metrics.captioning import caption_scores
    from mmbench.testing import limit_data

    data = limit_data(load("captioning", "test"), 40)
    preds = build(device="cpu").generate(data.images)
    ids = [im.id for im in data.images]
    refs = dict(zip(ids, data.references))
    ours = caption_scores(refs, dict(zip(ids, preds)), metrics=("bleu", "cider"))
    const = caption_scores(refs, {i: "a red circle on the left" for i in ids}, metrics=("bleu", "cider"))
    assert ours["metrics"]["CIDEr"] > 2 * const["metrics"]["CIDEr"]
    assert ours["metrics"]["Bleu_4"] > const["metrics"]["Bleu_4"]


def test_plugin_kit():
    from mmbench.testing import check_plugin

    assert check_plugin("sat", options={"device": "cpu"}, limit=4, batch=4).ok


def _legacy_copy(path, out):
    """The demo checkpoint re-saved in torch's legacy (pre-1.6, non-zip) format, whole modules and Adam."""
    import torch

    from mmbench_sat.train_demo import tutorial_names

    with tutorial_names():
        ck = torch.load(path, map_location="cpu", weights_only=False)
        torch.save(ck, out, _use_new_zipfile_serialization=False)
    return out


def test_legacy_format_checkpoint_is_read_safely(tmp_path):
    import zipfile

    import torch

    from mmbench_sat.captioner import DEMO_CHECKPOINT, DEMO_WORDMAP
    from mmbench_sat.loading import flatten, load_whole_checkpoint

    legacy = _legacy_copy(DEMO_CHECKPOINT, tmp_path / "BEST_checkpoint_legacy.pth.tar")
    assert not zipfile.is_zipfile(legacy)
    ck, ref = load_whole_checkpoint(legacy), load_whole_checkpoint(DEMO_CHECKPOINT)
    assert ck["decoder"].qualname == "models.DecoderWithAttention" and ck["epoch"] == ref["epoch"]
    for part in ("encoder", "decoder"):
        a, b = flatten(ck[part])[0], flatten(ref[part])[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ck["encoder_optimizer"] is ref["encoder_optimizer"] is None  # dropped from the shipped file (1 MB)
    for opt in ("decoder_optimizer",):
        adam = ck[opt]["state"]
        assert len(adam) == len(ref[opt]["state"]) > 0
        for i, (x, y) in enumerate(zip(adam.values(), ref[opt]["state"].values())):  # keyed by parameter objects
            assert all(torch.equal(x[n], y[n]) for n in ("step", "exp_avg", "exp_avg_sq")), (opt, i)
    from mmbench.datasets.demo import load

    images = load("captioning", "test").images[:4]
    ours = build(checkpoint=str(legacy), word_map=str(DEMO_WORDMAP), device="cpu").generate(images)
    assert ours == build(device="cpu").generate(images)
    # a legacy file naming code is refused by name, before anything runs; a truncated one is a DataError
    raw = legacy.read_bytes()
    evil = raw.replace(b"models\nEncoder\n", b"posix\nsystem\n\n\n", 1)
    assert evil != raw
    (tmp_path / "evil.pth.tar").write_bytes(evil)
    with pytest.raises(UnsafeFileError, match="posix.system"):
        load_whole_checkpoint(tmp_path / "evil.pth.tar")
    (tmp_path / "cut.pth.tar").write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated|elements"):
        load_whole_checkpoint(tmp_path / "cut.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="neither a torch zip archive nor a legacy"):
        load_whole_checkpoint(tmp_path / "junk.pth.tar")


def test_tensor_records_outside_their_storage_are_refused():
    from mmbench_sat.loading import _rebuild_tensor_v2

    arr = np.arange(6, dtype=np.float32)
    assert _rebuild_tensor_v2(arr, 1, (2, 2), (2, 1)).tolist() == [[1, 2], [3, 4]]
    for off, size, stride in ((3, (2, 2), (2, 1)), (0, (7,), (1,)), (6, (), ())):
        with pytest.raises(DataError, match="does not fit"):
            _rebuild_tensor_v2(arr, off, size, stride)
