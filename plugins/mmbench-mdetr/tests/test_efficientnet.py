"""MDETR's timm EfficientNet backbones (EB3/EB5 checkpoints) in plain torch vs timm 0.4.5 + MDETR's replace_bn.

The fixture (tests/fixtures/efficientnet, README.md there) holds timm's key/shape lists and the four feature maps
timm computes for seeded weights and inputs; the weights and inputs are regenerated here from the seed by
:func:`seeded_state` / :func:`seeded_inputs`, which ``make_fixture.py`` also used (so no weights are committed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench_mdetr import efficientnet as E
from mmbench_mdetr import model as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FX = Path(__file__).resolve().parent / "fixtures" / "efficientnet"
ATOL = 1e-4  # measured max |delta| vs timm 0.4.5: 0.0 (bit-identical here; fixtures/efficientnet/meta.json)
INPUT_SHAPES = ((1, 3, 97, 131), (2, 3, 64, 75))  # odd and even sizes at every stride-2 conv (TF "SAME" padding)


# --- the seeded weights and inputs (shared with make_fixture.py) -------------------------------------------------


def seeded_state(items, seed: int) -> dict[str, torch.Tensor]:
    """Weights for every (key, shape), drawn in the given order from one torch.Generator: BN affine terms and
    statistics away from the identity, convs ~ N(0, 1 / fan_in), conv biases (squeeze-excite) ~ N(0, 0.5^2)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in items:
        shape = tuple(int(s) for s in shape)
        module, leaf = key.rsplit(".", 2)[-2:]
        if module.startswith("bn") and leaf == "weight":
            v = 0.5 + torch.rand(shape, generator=g)
        elif module.startswith("bn") and leaf == "bias":
            v = 0.2 * torch.randn(shape, generator=g)
        elif leaf == "running_mean":
            v = 0.2 * torch.randn(shape, generator=g)
        elif leaf == "running_var":
            v = 0.25 + 1.5 * torch.rand(shape, generator=g)
        elif leaf == "bias":
            v = 0.5 * torch.randn(shape, generator=g)
        else:
            v = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        out[key] = v
    return out


def seeded_inputs(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in INPUT_SHAPES]


def key_digest(items) -> str:
    return hashlib.sha256("\n".join(f"{k} {list(s)}" for k, s in items).encode()).hexdigest()


# --- fixture ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meta():
    return json.loads((FX / "meta.json").read_text())


@pytest.fixture(scope="module")
def keys():
    return json.loads((FX / "keys.json").read_text())


@pytest.fixture(scope="module")
def expected():
    with np.load(FX / "features.npz") as z:
        return {k: z[k] for k in z.files}


def _items(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _seeded(name, meta, keys):
    with torch.device("meta"):
        items = _items(E.efficientnet_features(name))
    assert items == [(k, s) for k, s in keys["full"][name]]
    m = E.efficientnet_features(name).eval()
    m.load_state_dict(seeded_state(items, meta["seed"]), strict=True)
    return m


def _max_err(model, meta, expected, arch):
    err = 0.0
    with torch.no_grad():
        for i, x in enumerate(seeded_inputs(meta["seed"] + 1)):
            feats = model.features(x)
            assert len(feats) == 4
            for j, f in enumerate(feats):
                want = expected[f"{arch}/input{i}/feature{j}"]
                assert tuple(f.shape) == want.shape, (arch, i, j)
                err = max(err, float(np.abs(f.numpy() - want).max()))
    return err


# --- tests --------------------------------------------------------------------------------------------------------


def test_keys_and_shapes_equal_timm_features_only(keys):
    """state_dict keys (in order) and shapes of timm 0.4.5 create_model(name, features_only=True,
    out_indices=(1, 2, 3, 4)) after MDETR's replace_bn, for b3/b5 in full and every other variant by digest."""
    assert set(keys["full"]) == {"tf_efficientnet_b3_ns", "tf_efficientnet_b5_ns"}
    assert set(keys["digest"]) == set(E.EFFICIENTNETS)
    for name in E.EFFICIENTNETS:
        with torch.device("meta"):
            m = E.efficientnet_features(name)
        items = _items(m)
        ref = keys["digest"][name]
        assert (len(items), key_digest(items)) == (ref["n"], ref["sha256"]), name
        assert list(m.feature_channels) == ref["channels"] and m.num_channels == ref["channels"][-1], name
        if name in keys["full"]:
            assert items == [(k, s) for k, s in keys["full"][name]]
    assert not [k for k, _ in keys["full"]["tf_efficientnet_b3_ns"] if "num_batches_tracked" in k or "head" in k]


def test_seeded_generators_reproduce_the_fixture(meta, keys):
    """Guards the comparison below: the weights and inputs regenerated here are the ones timm was run on."""
    for name, want in meta["weights_abs_sum"].items():
        sd = seeded_state(keys["full"][name], meta["seed"])
        assert sum(float(v.double().abs().sum()) for v in sd.values()) == pytest.approx(want, rel=1e-9)
    sums = [float(x.double().sum()) for x in seeded_inputs(meta["seed"] + 1)]
    assert sums == pytest.approx(meta["inputs_sum"], rel=1e-9)


@pytest.mark.parametrize("name,arch", [("tf_efficientnet_b3_ns", "b3"), ("tf_efficientnet_b5_ns", "b5")])
def test_features_match_timm(meta, keys, expected, name, arch):
    """All four feature maps (strides 4..32) of both inputs, seeded weights and BN statistics."""
    err = _max_err(_seeded(name, meta, keys), meta, expected, arch)
    assert err <= ATOL, err


def test_the_comparison_catches_wrong_layers(meta, keys, expected, monkeypatch):
    """Each plausible mistake moves the b3 features far beyond ATOL: symmetric instead of TF SAME padding,
    the tf_ BN eps 1e-3 instead of FrozenBatchNorm2d's 1e-5, no squeeze-excite, and timm >= 0.6's replace_bn
    (BatchNormAct2d replaced whole, so no SiLU after any BN)."""
    from mmbench_mdetr import resnet

    model = _seeded("tf_efficientnet_b3_ns", meta, keys)

    def err_with(target, attr, value):
        with monkeypatch.context() as mp:
            mp.setattr(target, attr, value)
            return _max_err(model, meta, expected, "b3")

    def symmetric(self, x):
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.kernel_size[0] // 2, 1,
                                          self.groups)

    def eps_1e3(self, x):
        scale = self.weight[:, None, None] * (self.running_var[:, None, None] + 1e-3).rsqrt()
        return x * scale + (self.bias - self.running_mean * scale.flatten())[:, None, None]

    errors = {
        "symmetric padding": err_with(E.Conv2dSame, "forward", symmetric),
        "bn eps 1e-3": err_with(resnet.FrozenBatchNorm2d, "forward", eps_1e3),
        "no squeeze-excite": err_with(E.SqueezeExcite, "forward", lambda self, x: x),
        "no SiLU (timm >= 0.6 replace_bn)": err_with(torch.nn.SiLU, "forward", lambda self, x: x),
    }
    assert min(errors.values()) > 10 * ATOL, errors  # measured: 1.34 / 0.012 / 77.3 / 3.2e3
    assert _max_err(model, meta, expected, "b3") <= ATOL  # and nothing leaked from the patches


def test_same_padding_rule():
    """TF SAME: output ceil(n / s); the odd padding pixel on the bottom / right."""
    conv = E.conv_same(1, 1, 3, stride=2)
    assert isinstance(conv, E.Conv2dSame) and not isinstance(E.conv_same(1, 1, 5, 1), E.Conv2dSame)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap: with padding (0 top, 1 bottom) that is x[0, 0]
        x = torch.arange(16.0).reshape(1, 1, 4, 4)
        assert conv(x)[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
        x5 = torch.arange(25.0).reshape(1, 1, 5, 5)  # padding 1 / 1: top-left tap is the pad for the first row
        assert conv(x5)[0, 0].tolist() == [[0.0, 0.0, 0.0], [0.0, 6.0, 8.0], [0.0, 16.0, 18.0]]
    assert [E._same_pad(n, 5, 2) for n in (64, 65, 66)] == [3, 4, 3]


# --- a whole MDETR with the EB3 backbone, from a state_dict in the official layout ------------------------------


def test_mdetr_eb3_checkpoint_loads_strictly_and_runs(tmp_path, keys, meta, tiny_text):
    """args.backbone='timm_tf_efficientnet_b3_ns' (tiny transformer): the backbone keys are exactly
    'backbone.0.body.' + timm's keys (TimmBackbone.body = the timm model), input_proj reads 384 channels, a
    checkpoint saved in main.py's layout loads strictly through the plugin and gives the model's own outputs."""
    from PIL import Image

    from mmbench.tasks.base import ImageItem
    from mmbench.tasks.grounding import GroundingInput
    from mmbench_mdetr.grounding import build
    from mmbench_mdetr.preprocess import image_tensor

    import shutil

    text = Path(shutil.copytree(tiny_text, tmp_path / "text_encoder"))  # found next to the checkpoint
    args = argparse.Namespace(
        backbone="timm_tf_efficientnet_b3_ns", dilation=False, position_embedding="sine", hidden_dim=8, nheads=2,
        enc_layers=1, dec_layers=1, dim_feedforward=8, num_queries=3, pre_norm=False, pass_pos_and_query=True,
        text_encoder_type="text_encoder", masks=False, mask_model="none", lr_backbone=1e-5, ema=True,
        aux_loss=True, contrastive_loss_hdim=64, contrastive_align_loss=True)
    model = M.build_from_args(vars(args), text).eval()
    own = model.state_dict()
    timm_keys = [("backbone.0.body." + k, s) for k, s in keys["full"]["tf_efficientnet_b3_ns"]]
    assert [(k, list(v.shape)) for k, v in own.items() if k.startswith("backbone.")] == timm_keys
    assert model.input_proj.in_channels == 384 and model.backbone.num_channels == 384
    state = seeded_state([(k, list(v.shape)) for k, v in own.items() if k.startswith("backbone.")], meta["seed"])
    torch.manual_seed(0)
    for k, v in own.items():
        if not k.startswith("backbone."):
            state[k] = torch.randn(v.shape) * 0.3 if v.is_floating_point() else v.clone()
    torch.save({"model": state, "model_ema": None, "optimizer": {"state": {}, "param_groups": []}, "epoch": 0,
                "args": args}, tmp_path / "checkpoint.pth")
    M.load_state(model, state)

    pil = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 27, 3), dtype=np.uint8))
    s = GroundingInput(id="0", image=ImageItem(id="0", pil=pil, size=(27, 20)), expression="the big blue square")
    g = build(checkpoint=str(tmp_path / "checkpoint.pth"), device="cpu")
    raw = g.raw_outputs([s])
    x = image_tensor(pil)[None]  # 800 x 1080: 25 x 34 feature cells at stride 32 (TF SAME rounds up)
    ids = g.tokenizer([s.expression], return_tensors="pt")
    with torch.no_grad():
        assert model.backbone[0].body(x).shape == (1, 384, 25, 34)
        want = model(x, torch.zeros(1, *x.shape[-2:], dtype=torch.bool), ids["input_ids"], ids["attention_mask"])
    assert np.array_equal(raw["pred_logits"][0], want["pred_logits"][0].numpy())
    assert np.array_equal(raw["pred_boxes"][0], want["pred_boxes"][0].numpy())
    assert np.isfinite(raw["pred_logits"]).all() and raw["pred_logits"].std() > 0.1


def test_backbone_names():
    with torch.device("meta"):
        b5 = M.build_backbone_body({"backbone": "timm_tf_efficientnet_b5_ns"})
    assert isinstance(b5, E.EfficientNetFeatures) and b5.num_channels == 512
    for name in ("timm_resnet50", "timm_efficientnet_b3", "timm_tf_efficientnetv2_s"):
        with pytest.raises(M.ArgsError, match="only the TF EfficientNets"):
            M.build_backbone_body({"backbone": name})
