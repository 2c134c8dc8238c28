"""MDETR plugin: parity with the official refexp evaluation, args-driven rebuild, safe loading, demo, plugin kit."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.metrics.grounding import grounding_metrics
from mmbench.tasks.base import ImageItem
from mmbench.tasks.grounding import GroundingInput, GroundingSample, evaluate
from mmbench_mdetr import model as M
from mmbench_mdetr.grounding import MDETRGrounder, build, rank_official
from mmbench_mdetr.preprocess import image_tensor, resized_hw
from mmbench_mdetr.resnet import RESNETS, ResNetBody

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIELDS = ("pred_logits", "pred_boxes", "scores", "boxes_xyxy")
ATOL = {"pred_logits": 5e-5, "pred_boxes": 1e-5, "scores": 1e-5, "boxes_xyxy": 1e-2}  # measured: 7e-6/2e-6/1e-6/9e-4


# --- the shared parity fixture (official main.py --eval outputs) -------------------------------------


@pytest.fixture(scope="module")
def fixture_samples(fx):
    ann = json.loads((fx / "mdetr_annotations" / "finetune_refcoco_val.json").read_text())
    gt = {a["image_id"]: a["bbox"] for a in ann["annotations"]}
    out = []
    for im in ann["images"]:
        x, y, w, h = gt[im["id"]]
        out.append(GroundingSample(id=str(im["id"]), expression=im["caption"], boxes=np.array([[x, y, x + w, y + h]]),
                                   image=ImageItem(id=str(im["id"]), path=fx / "coco" / "train2014" / im["file_name"],
                                                   size=(im["width"], im["height"]))))
    return out


@pytest.fixture(scope="module")
def fx_model(fx):
    return build(checkpoint=str(fx / "checkpoint.pth"), text_encoder=str(fx / "tiny_roberta"), device="cpu")


def _expected(fx, sub):
    return {k: np.load(fx / sub / f"{k}.npy") for k in FIELDS}, json.loads((fx / sub / "per_expression.json").read_text())


def _check_rows(raw, exp, per, rows):
    for k in FIELDS:
        err = np.abs(raw[k] - exp[k][rows]).max()
        assert err <= ATOL[k], (k, err)
    for j, i in enumerate(rows):
        order, _ = rank_official(raw["scores"][j], raw["boxes_xyxy"][j])
        assert order.tolist() == per[i]["sorted_query_order"], i


@pytest.mark.shared
def test_preprocessing_matches_official_input_tensor(fx, fixture_samples):
    _, per = _expected(fx, "expected")
    for i in (0, 13, 15):  # a landscape image, the max-size clamp case, a square image
        im = fixture_samples[i].image.load()
        x = image_tensor(im)
        info = per[i]["input_tensor"]
        assert list(resized_hw(*im.size)) == per[i]["size_hw"]
        assert list(x.shape) == list(info["shape"])[-3:]
        assert np.allclose(x.double().mean((1, 2)).numpy(), info["channel_mean"], atol=1e-5)
        assert np.allclose(x.double().std((1, 2)).numpy(), info["channel_std"], atol=1e-4)
        probes = np.array([x[:, yy, xx].numpy() for yy, xx in info["probe_yx"]])
        assert np.array_equal(probes, np.array(info["probe_values"], dtype=np.float32))  # bit-exact pixels


@pytest.mark.shared
def test_intermediates_match_official(fx, fx_model, fixture_samples):
    """Backbone layer4, sine position embedding, RoBERTa and FeatureResizer outputs, decoder layer 0 of expression 0."""
    s = fixture_samples[0]
    out = fx_model._forward([s.input_view()], debug=True)
    inter = fx / "intermediate"
    n = int(np.load(inter / "text_lengths.npy")[0])
    assert np.abs(out["layer4"][0] - np.load(inter / "layer4_expr0.npy")).max() < 1e-3
    assert np.abs(out["pos"][0] - np.load(inter / "pos_embed_expr0.npy")).max() < 1e-5
    assert np.abs(out["text_last_hidden_state"][0, :n] - np.load(inter / "text_last_hidden_state.npy")[0, :n]).max() < 1e-5
    assert np.abs(out["text_resized"][:n, 0] - np.load(inter / "text_memory_resized.npy")[0, :n]).max() < 1e-5
    assert np.abs(out["aux_pred_logits"][0, 0] - np.load(inter / "aux_pred_logits.npy")[0, 0]).max() < 5e-5
    assert np.abs(out["aux_pred_boxes"][0, 0] - np.load(inter / "aux_pred_boxes.npy")[0, 0]).max() < 1e-5


@pytest.mark.shared
def test_parity_batch_size_1(fx, fx_model, fixture_samples):
    exp, per = _expected(fx, "expected")
    rows = [9, 13]  # GIoU-vs-IoU case; max-size clamp image
    fx_model.batch_size = 1
    _check_rows(fx_model.raw_outputs([fixture_samples[i].input_view() for i in rows]), exp, per, rows)


@pytest.mark.shared
def test_parity_batched_padding(fx, fx_model, fixture_samples):
    """Official --batch_size 2: items 12 and 13 share a batch; 13 (750x1333) is zero-padded to 1066x1333."""
    exp, per = _expected(fx, "expected_batched")
    assert per[13]["padded_batch_hw"] == [1066, 1333]
    fx_model.batch_size = 2
    try:
        raw = fx_model.raw_outputs([fixture_samples[12].input_view(), fixture_samples[13].input_view()])
    finally:
        fx_model.batch_size = 1
    _check_rows(raw, exp, per, [12, 13])
    unpadded = np.load(fx / "expected" / "pred_logits.npy")[13]
    assert np.abs(raw["pred_logits"][1] - unpadded).max() > 0.1  # padding really changes it (and we follow)


@pytest.mark.shared
def test_official_precision_from_official_outputs(fx):
    """The harness's giou convention + RefExpEvaluator ranking give the official P@1/5/10 (plain IoU does not)."""
    for sub in ("expected", "expected_batched"):
        exp, per = _expected(fx, sub)
        official = json.loads((fx / sub / "metrics.json").read_text())["refexp_results_official"]["refcoco"]
        preds = [rank_official(exp["scores"][i], exp["boxes_xyxy"][i])[1] for i in range(len(per))]
        gts = [np.array([p["gt_bbox_xyxy"]]) for p in per]
        r = grounding_metrics(preds, gts, convention="giou")
        assert [r["metrics"][f"P@{k}"] for k in (1, 5, 10)] == pytest.approx([100 * v for v in official], abs=1e-9)
        assert r["hit_rank"] == [p["first_hit_rank"] if (p["first_hit_rank"] or 99) <= 10 else 0 for p in per]
        plain = grounding_metrics(preds, gts, convention="continuous")
        assert plain["metrics"]["P@10"] != r["metrics"]["P@10"]


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MMBENCH_FULL_PARITY"), reason="opt-in (MMBENCH_FULL_PARITY=1): 42 ResNet-18 "
                    "passes at 800 px, minutes on 2 cores; the default run checks 5 of them (rows 0, 9, 12, 13)")
@pytest.mark.filterwarnings("ignore:.*numbers are not comparable")  # the fixture is 21 of RefCOCO val's 10834
@pytest.mark.parametrize("bs,sub", [(1, "expected"), (2, "expected_batched")])
def test_full_parity_through_dataset_adapter(fx, fx_model, bs, sub):
    """All 21 expressions via the mdetr_refexp adapter and the harness evaluate loop."""
    from mmbench.datasets.mdetr import load

    data = load("grounding", "val", data_root=str(fx), dataset="refcoco")
    exp, per = _expected(fx, sub)
    assert [s.expression for s in data.samples] == [p["caption"] for p in per]
    fx_model.batch_size = bs
    try:
        raw = fx_model.raw_outputs([s.input_view() for s in data.samples])
        res = evaluate(fx_model, data, batch_size=bs * 4, show_progress=False, name="mdetr", convention="giou")
    finally:
        fx_model.batch_size = 1
    _check_rows(raw, exp, per, list(range(len(per))))
    official = json.loads((fx / sub / "metrics.json").read_text())["refexp_results_official"]["refcoco"]
    assert [res.metrics[f"P@{k}"] for k in (1, 5, 10)] == pytest.approx([100 * v for v in official], abs=1e-9)


@pytest.mark.shared
def test_every_args_field_is_accounted_for(fx):
    from mmbench.checkpoints import load_checkpoint

    ck = load_checkpoint(fx / "checkpoint.pth")
    assert isinstance(ck["args"], argparse.Namespace) and ck["model_ema"] is None
    args = vars(ck["args"])
    assert not [k for k in args if k not in M.ARG_NOTES]
    # the builder really reads the architecture fields: change one and the official weights no longer fit
    for field, value in (("num_queries", 13), ("dim_feedforward", 32), ("contrastive_align_loss", False),
                         ("contrastive_loss", True), ("backbone", "resnet34")):
        model = M.build_from_args({**args, field: value}, fx / "tiny_roberta")
        with pytest.raises(M.ArgsError):
            M.load_state(model, dict(ck["model"]))
    with pytest.raises(M.ArgsError, match="surprise"):
        M.build_from_args({**args, "surprise": 1}, fx / "tiny_roberta")


@pytest.mark.shared
def test_hub_id_text_encoder_names_the_option(fx, tmp_path):
    from mmbench.checkpoints import load_checkpoint

    ck = load_checkpoint(fx / "checkpoint.pth")
    ck["args"].text_encoder_type = "roberta-base"
    torch.save(ck, tmp_path / "ck.pth")
    with pytest.raises(PluginError, match="text_encoder=PATH"):
        build(checkpoint=str(tmp_path / "ck.pth"), device="cpu")
    with pytest.raises(DataError, match="without --ema"):
        build(checkpoint=str(tmp_path / "ck.pth"), text_encoder=str(fx / "tiny_roberta"), ema="true", device="cpu")


# --- tiny random MDETRs with other args: build, save in the official layout, load back ---------------


VARIANTS = [
    dict(hidden_dim=16, nheads=4, enc_layers=1, dec_layers=3, dim_feedforward=24, num_queries=5,
         contrastive_loss=True, contrastive_align_loss=False, position_embedding="learned"),
    dict(hidden_dim=8, nheads=2, enc_layers=2, dec_layers=1, dim_feedforward=8, num_queries=7, dilation=True,
         mmbench_resnet={"block": "bottleneck", "layers": [1, 1, 1, 1], "width": 4}, predict_final=True,
         do_qa=True, split_qa_heads=True, combine_datasets=["gqa"]),
    dict(hidden_dim=12, nheads=3, enc_layers=1, dec_layers=2, dim_feedforward=16, num_queries=4, do_qa=True,
         split_qa_heads=False, combine_datasets=["gqa"], contrastive_align_loss=True, contrastive_loss_hdim=8),
]


def _args(**over):
    base = dict(backbone="mmbench_resnet", mmbench_resnet={"block": "basic", "layers": [1, 1, 1, 1], "width": 4},
                dilation=False, position_embedding="sine", pre_norm=False, pass_pos_and_query=True,
                text_encoder_type="text_encoder", masks=False, mask_model="none", lr_backbone=1e-5, ema=True,
                aux_loss=True, contrastive_loss_hdim=64)
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_tiny_random_mdetr_round_trip(tmp_path, tiny_text, variant):
    import shutil

    text = Path(shutil.copytree(tiny_text, tmp_path / "text_encoder"))
    args = _args(**VARIANTS[variant])
    torch.manual_seed(variant)
    model = M.build_from_args(vars(args), text).eval()
    ema = M.build_from_args(vars(args), text).eval()
    for p in list(model.parameters()) + list(ema.parameters()):
        p.data.normal_(0, 0.3)
    sd = dict(model.state_dict())
    sd["transformer.text_encoder.embeddings.position_ids"] = torch.arange(40)[None]  # transformers 4.x checkpoints
    torch.save({"model": sd, "model_ema": ema.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "epoch": 0, "args": args}, tmp_path / "checkpoint.pth")
    from PIL import Image

    rng = np.random.default_rng(variant)
    pil = Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8))  # resized to 800 x 1120
    s = GroundingInput(id="0", image=ImageItem(id="0", pil=pil, size=(28, 20)), expression="the big blue square")
    for which, ref in (("false", model), ("true", ema)):
        g = build(checkpoint=str(tmp_path / "checkpoint.pth"), ema=which, device="cpu")  # text encoder found beside it
        raw = g.raw_outputs([s])
        x = image_tensor(pil)[None]
        ids = g.tokenizer([s.expression], return_tensors="pt")
        with torch.no_grad():
            want = ref(x, torch.zeros(1, *x.shape[-2:], dtype=torch.bool), ids["input_ids"], ids["attention_mask"])
        assert raw["pred_logits"].shape == (1, args.num_queries, 256)
        assert np.array_equal(raw["pred_logits"][0], want["pred_logits"][0].numpy())
        assert np.array_equal(raw["pred_boxes"][0], want["pred_boxes"][0].numpy())
        assert g.predict([s])[0].shape == (args.num_queries, 4)


def test_standard_resnets_have_torchvision_shapes():
    """Parameter counts of torchvision's models without fc (BN weight/bias are FrozenBN buffers here)."""
    fc = {"basic": 512 * 1000 + 1000, "bottleneck": 2048 * 1000 + 1000}
    torchvision_total = {"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032, "resnet101": 44549160,
                         "resnet152": 60192808, "resnext50_32x4d": 25028904, "wide_resnet50_2": 68883240}
    for name, total in torchvision_total.items():
        block, layers, groups, wpg = RESNETS[name]
        with torch.device("meta"):
            body = ResNetBody(block, layers, groups, wpg)
        n = sum(v.numel() for k, v in body.state_dict().items() if not k.endswith(("running_mean", "running_var")))
        assert n == total - fc[block], name
        assert body.num_channels == (512 if name in ("resnet18", "resnet34") else 2048)
    with torch.device("meta"):
        sd = ResNetBody(*RESNETS["resnet50"]).state_dict()
    assert "layer1.0.downsample.1.running_var" in sd and "layer4.2.conv3.weight" in sd and "fc.weight" not in sd
    with pytest.raises(NotImplementedError):
        ResNetBody(*RESNETS["resnet18"], dilation=True)


def test_refusals_name_the_problem():
    for over, match in ((dict(backbone="timm_resnet50"), "only the TF EfficientNets"),
                        (dict(pre_norm=True), "pre_norm"),
                        (dict(pass_pos_and_query=False), "pass_pos_and_query"),
                        (dict(masks=True, mask_model="smallconv"), "segmentation")):
        with pytest.raises(M.ArgsError, match=match):
            M.build_from_args({**vars(_args(hidden_dim=8, nheads=2, enc_layers=1, dec_layers=1, dim_feedforward=8,
                                            num_queries=2)), **over}, "unused")
    with pytest.raises(PluginError, match="valid options"):
        build(colour="red")
    with pytest.raises(PluginError, match="precision"):
        build(precision="int8")


def test_refuses_unsafe_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    torch.save({"model": {}, "model_ema": None, "args": Boom(), "epoch": 0, "optimizer": None}, tmp_path / "bad.pth")
    with pytest.raises(UnsafeFileError, match="system"):
        build(checkpoint=str(tmp_path / "bad.pth"), device="cpu")
    assert not marker.exists()


def test_resize_rule_quirks():
    assert resized_hw(640, 428) == (800, 1196)
    assert resized_hw(640, 360) == (750, 1333)  # max-size clamp: short side round(1333 * 360 / 640)
    assert resized_hw(800, 600) == (800, 1066)
    assert resized_hw(1066, 800) == (800, 1066)  # short side already 800: size kept
    assert resized_hw(96, 96) == (800, 800)


# --- the shipped demo model, its training script and the conformance kit ------------------------------


@pytest.fixture(scope="module")
def demo_model():
    return build(device="cpu", batch_size="8", batching="by-size")


def test_plugin_conforms():
    from mmbench.testing import check_plugin

    report = check_plugin("mdetr", options={"device": "cpu", "batch_size": "4"}, limit=8, batch=4)
    assert report.ok


def test_demo_model_beats_chance(demo_model):
    """Random boxes score ~0 here (the old DETR-recipe demo model: 1.9 % val P@1), a colour-box baseline ~93
    acc@0.5; the shipped model (TRAINING.json; the whole test split is in the README) scores well above chance
    on the first 60 demo test expressions (measured P@1 35.0, P@5 56.7)."""
    from mmbench.datasets.demo import load

    data = load("grounding", "test")
    data.samples = data.samples[:60]
    res = evaluate(demo_model, data, batch_size=16, show_progress=False, name="mdetr", convention="giou")
    assert res.metrics["P@1"] >= 20.0, res.metrics
    assert res.metrics["P@5"] >= res.metrics["P@1"] + 10.0, res.metrics


def test_demo_queries_start_as_anchors():
    """train_demo.init_local_queries: at initialisation, head 0 of the first decoder cross-attention of query k
    puts its largest weight on feature cell k (and most of its mass on k and its 4 neighbours)."""
    from mmbench_mdetr import train_demo as T
    from mmbench_mdetr.grounding import DEMO_CHECKPOINT

    torch.manual_seed(0)
    args = T.demo_args()
    model = M.build_from_args(vars(args), DEMO_CHECKPOINT.parent / "text_encoder")
    T.init_local_queries(model)
    g = T.GRID
    memory = torch.randn(g * g + 5, 1, args.hidden_dim)
    for layer in model.transformer.encoder.layers:  # as the encoder's last LayerNorm leaves them
        memory = layer.norm2(memory)
    pos = model.backbone[1](torch.zeros(1, 1, g, g), torch.zeros(1, g, g, dtype=torch.bool)).flatten(2).permute(2, 0, 1)
    pos = torch.cat([pos, torch.zeros(5, 1, args.hidden_dim)])  # text tokens: no position
    query = model.query_embed.weight[:, None]
    attn = model.transformer.decoder.layers[0].cross_attn_image
    _, w = attn(query, memory + pos, memory, average_attn_weights=False)
    w0 = w[0, 0]  # (queries, memory)
    assert torch.equal(w0.argmax(1), torch.arange(g * g))
    k = 6 * g + 6
    near = [k, k - 1, k + 1, k - g, k + g]
    assert w0[k, near].sum() > 0.8 and w0[k, k] > 0.4, w0[k, near]
    assert int((w[0, 1].argmax(1) == torch.arange(g * g)).sum()) < g * g // 4  # head 1 is left free


def test_demo_checkpoint_is_the_official_layout():
    from mmbench.checkpoints import load_checkpoint

    from mmbench_mdetr.grounding import DEMO_CHECKPOINT

    ck = load_checkpoint(DEMO_CHECKPOINT)
    assert sorted(ck) == ["args", "epoch", "model", "model_ema", "optimizer"]
    args = vars(ck["args"])
    assert not [k for k in args if k not in M.ARG_NOTES]
    assert args["backbone"] == "mmbench_resnet" and args["mmbench_resnet"]["coords"] is True
    assert args["num_queries"] == 169 and args["position_embedding"] == "learned"
    assert DEMO_CHECKPOINT.stat().st_size <= 1_000_000
    assert all(torch.isfinite(v.float()).all() for v in ck["model"].values())
    info = json.loads((DEMO_CHECKPOINT.parent / "TRAINING.json").read_text())
    assert info["seed"] == args["seed"] and info["train_cpu_seconds"] < 900


def test_training_script_is_reproducible(tmp_path):
    """Two runs of the training script with one seed (2 steps on 6 expressions) give bit-identical weights,
    which the plugin then loads; another seed gives other weights."""
    from mmbench.checkpoints import load_checkpoint

    from mmbench_mdetr import train_demo

    paths = [train_demo.train(tmp_path / name, steps=2, seed=seed, batch=4, limit=6, log=lambda *a: None)
             for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    assert all((p.parent / "text_encoder" / "config.json").is_file() for p in paths)
    a, b, c = (load_checkpoint(p)["model"] for p in paths)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    g = build(checkpoint=str(paths[0]), device="cpu")
    assert g.args["num_queries"] == 169
