"""Each method's distinctive mechanism, checked on hand-built tensors (no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmbench_fusion.calibration import expected_calibration_error
from mmbench_fusion.evidential import ds_combine, ds_combine_two, evidential_loss, kl_to_uniform, opinion
from mmbench_fusion.nets import CMML, LMF, TFN, TMC, EarlyFusion, LateFusion, huber, tensor_fusion


# ----------------------------------------------------------------------------- TFN

def test_tfn_fused_tensor_is_outer_product_with_appended_ones():
    torch.manual_seed(0)
    h_t, h_i = torch.randn(5, 3), torch.randn(5, 4)
    fused = tensor_fusion([h_t, h_i])
    assert fused.shape == (5, 4, 5)  # (d_t + 1, d_i + 1)
    assert torch.all(fused[:, 0, 0] == 1)  # the constant term
    assert torch.allclose(fused[:, 1:, 0], h_t)  # unimodal text terms survive
    assert torch.allclose(fused[:, 0, 1:], h_i)  # unimodal image terms survive
    assert torch.allclose(fused[:, 1:, 1:], h_t[:, :, None] * h_i[:, None, :])  # bimodal interactions
    tri = tensor_fusion([h_t, h_i, torch.randn(5, 2)])
    assert tri.shape == (5, 4, 5, 3)
    assert torch.allclose(tri[:, :, :, 0], fused)


def test_tfn_network_shapes():
    net = TFN([7, 9], n_classes=3, hidden=8, fusion_dim=4).eval()
    out = net([torch.randn(6, 7), torch.randn(6, 9)])
    assert out["fused"].shape == (6, 5, 5)
    assert net.fusion.in_features == 25
    assert out["probs"].shape == (6, 3)
    assert torch.allclose(out["probs"].sum(1), torch.ones(6))
    single = TFN([7], n_classes=3, hidden=8, fusion_dim=4).eval()  # text-only: [1, h_text]
    assert single([torch.randn(6, 7)])["fused"].shape == (6, 5)


# ----------------------------------------------------------------------------- LMF

def _lmf_from_tfn(tfn: TFN, rank: int) -> LMF:
    """LMF whose factors come from a per-output-unit SVD of TFN's fusion weight."""
    hidden = tfn.fusion.out_features
    fd = tfn.subnets[0][0].out_features
    lmf = LMF([7, 9], n_classes=3, hidden=hidden, fusion_dim=fd, rank=rank).eval()
    lmf.subnets.load_state_dict(tfn.subnets.state_dict())
    lmf.head.load_state_dict(tfn.head.state_dict())
    W = tfn.fusion.weight.detach().view(hidden, fd + 1, fd + 1)  # per output k: a bilinear form
    with torch.no_grad():
        lmf.rank_weights.fill_(1.0)
        lmf.bias.copy_(tfn.fusion.bias)
        for k in range(hidden):
            U, S, Vh = torch.linalg.svd(W[k])
            r = min(rank, len(S))
            lmf.factors[0][:, :, k] = 0
            lmf.factors[1][:, :, k] = 0
            lmf.factors[0][:r, :, k] = (U[:, :r] * S[:r].sqrt()).T
            lmf.factors[1][:r, :, k] = (Vh[:r].T * S[:r].sqrt()).T
    return lmf


def test_lmf_with_full_rank_equals_tfn():
    torch.manual_seed(1)
    tfn = TFN([7, 9], n_classes=3, hidden=6, fusion_dim=4).eval()
    xs = [torch.randn(10, 7), torch.randn(10, 9)]
    full = _lmf_from_tfn(tfn, rank=5)  # min(d_t + 1, d_i + 1) = 5
    assert torch.allclose(full(xs)["logits"], tfn(xs)["logits"], atol=1e-5)
    # the equivalent weight tensor is TFN's weight, exactly
    W = tfn.fusion.weight.detach().view(6, 5, 5)
    assert torch.allclose(full.bilinear_weights().detach(), W, atol=1e-5)


def test_lmf_rank_limits_the_bilinear_forms_and_error_shrinks_with_rank():
    torch.manual_seed(2)
    for rank in (1, 2, 3):
        lmf = LMF([7, 9], n_classes=3, hidden=6, fusion_dim=4, rank=rank)
        ranks = torch.linalg.matrix_rank(lmf.bilinear_weights().detach())
        assert int(ranks.max()) == rank  # every output unit's form has rank <= r (generic: = r)
    tfn = TFN([7, 9], n_classes=3, hidden=6, fusion_dim=4).eval()
    xs = [torch.randn(50, 7), torch.randn(50, 9)]
    target = tfn.fusion(tensor_fusion([s(x) for s, x in zip(tfn.subnets, xs)]).flatten(1))
    errs = []
    for rank in (1, 2, 3, 4, 5):
        lmf = _lmf_from_tfn(tfn, rank)
        got = lmf.fuse([s(x) for s, x in zip(lmf.subnets, xs)])
        errs.append(float((got - target).abs().max().detach()))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs  # strictly better with every extra rank
    assert errs[0] > 1e-2 and errs[-1] < 1e-5


def test_lmf_parameter_count_is_linear_in_rank():
    n = [sum(p.numel() for p in LMF([7, 9], 3, hidden=6, fusion_dim=4, rank=r).factors.parameters())
         for r in (1, 2, 4)]
    assert n == [2 * 5 * 6, 4 * 5 * 6, 8 * 5 * 6]


# ----------------------------------------------------------------------------- TMC

def test_opinion_from_evidence():
    alpha = torch.tensor([[3.0, 1.0, 1.0]])  # evidence (2, 0, 0), S = 5
    b, u = opinion(alpha)
    assert torch.allclose(b, torch.tensor([[0.4, 0.0, 0.0]]))
    assert torch.allclose(u, torch.tensor([[0.6]]))
    assert torch.allclose(b.sum(1) + u[:, 0], torch.ones(1))


def test_dempster_combination_hand_computed():
    # view 1: evidence (2, 0, 0) -> b1 = (0.4, 0, 0), u1 = 0.6 ; view 2: evidence (1, 1, 0) ->
    # S = 5, b2 = (0.2, 0.2, 0), u2 = 0.6. Conflict C = b1_0 * b2_1 = 0.08.
    # b_0 = (0.4*0.2 + 0.4*0.6 + 0.2*0.6) / 0.92 = 0.44 / 0.92 ; b_1 = (0.2*0.6) / 0.92 ;
    # u = 0.36 / 0.92 ; S = 3 / u ; alpha = b * S + 1.
    a1 = torch.tensor([[3.0, 1.0, 1.0]], dtype=torch.float64)
    a2 = torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64)
    got = ds_combine_two(a1, a2)
    u = 0.36 / 0.92
    S = 3 / u
    want = torch.tensor([[0.44 / 0.92 * S + 1, 0.12 / 0.92 * S + 1, 1.0]], dtype=torch.float64)
    assert torch.allclose(got, want, atol=1e-12)
    b, uu = opinion(got)
    assert abs(float(uu) - u) < 1e-12
    assert abs(float(b.sum() + uu) - 1) < 1e-12
    # agreeing evidence lowers uncertainty below either view's
    agree = ds_combine_two(a1, a1)
    assert float(opinion(agree)[1]) < 0.6
    # a vacuous opinion (no evidence, u = 1) is the identity
    assert torch.allclose(ds_combine_two(a1, torch.ones_like(a1)), a1)
    # more views combine left to right; one view is returned unchanged
    assert torch.allclose(ds_combine([a1, a2, a1]), ds_combine_two(ds_combine_two(a1, a2), a1))
    assert ds_combine([a1]) is a1


def test_evidential_loss_hand_computed():
    alpha = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0])
    # expected CE: digamma(6) - digamma(3) = (1/3 + 1/4 + 1/5)
    ce = 1 / 3 + 1 / 4 + 1 / 5
    assert abs(float(evidential_loss(alpha, y, epoch=0, annealing_epochs=10)) - ce) < 1e-12
    # KL term with the true class's evidence removed: alpha~ = (1, 1, 2)
    at = torch.tensor([[1.0, 1.0, 2.0]], dtype=torch.float64)
    kl = float(kl_to_uniform(at))
    # closed form: ln Γ(4) − ln Γ(3) [K = 3] + (2 − 1)(ψ(2) − ψ(4)) = ln 6 − ln 2 − (1/2 + 1/3)
    assert abs(kl - (math.log(6) - math.log(2) - (1 / 2 + 1 / 3))) < 1e-12
    half = float(evidential_loss(alpha, y, epoch=5, annealing_epochs=10))
    full = float(evidential_loss(alpha, y, epoch=20, annealing_epochs=10))
    assert abs(half - (ce + 0.5 * kl)) < 1e-12
    assert abs(full - (ce + kl)) < 1e-12  # coefficient capped at 1
    assert float(kl_to_uniform(torch.ones(1, 3))) == pytest.approx(0.0, abs=1e-12)


def test_tmc_network_outputs_combined_dirichlet():
    torch.manual_seed(3)
    net = TMC([5, 4], n_classes=3, hidden=8).eval()
    out = net([torch.randn(4, 5), torch.randn(4, 4)])
    assert torch.allclose(out["alpha"], ds_combine_two(*out["view_alphas"]))
    assert torch.all(out["view_alphas"][0] >= 1)  # softplus evidence is non-negative
    assert torch.allclose(out["probs"], out["alpha"] / out["alpha"].sum(1, keepdim=True))
    assert torch.allclose(out["uncertainty"], 3 / out["alpha"].sum(1))
    single = TMC([5], n_classes=3, hidden=8).eval()
    o1 = single([torch.randn(4, 5)])
    assert torch.equal(o1["alpha"], o1["view_alphas"][0])


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins (15): 0.9 -> bin 13 (acc 0.5, conf 0.9), 0.6 -> bin 8 (acc 1, conf .6), 0.7 -> bin 10 (acc 1, conf .7)
    want = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(probs, labels) == pytest.approx(want, abs=1e-12)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


# ----------------------------------------------------------------------------- CMML

def test_cmml_huber_and_consistency_hand_computed():
    assert float(huber(torch.tensor(0.5), 1.003)) == pytest.approx(0.125)
    assert float(huber(torch.tensor(2.0), 1.003)) == pytest.approx(1.003 * (2 - 0.5015))
    net = CMML([3, 3], n_classes=3, hidden=4)
    same = torch.tensor([[1.0, 0.0, 0.0]])
    # identical predictions: cos = 1, distance 2 - 1 = 1 < delta -> 0.5 * 1^2
    assert float(net.consistency_from_probs(same, same)) == pytest.approx(0.5)
    # orthogonal predictions: cos = 0, distance 2 >= delta -> linear branch
    other = torch.tensor([[0.0, 1.0, 0.0]])
    assert float(net.consistency_from_probs(same, other)) == pytest.approx(1.003 * (2 - 0.5015))
    # partial disagreement lies in between, and the loss grows with disagreement
    mid = torch.tensor([[0.6, 0.4, 0.0]])
    vals = [float(net.consistency_from_probs(same, p)) for p in (same, mid, other)]
    assert vals[0] < vals[1] < vals[2]


def test_cmml_unlabelled_loss_reacts_to_disagreement_and_has_gradient():
    torch.manual_seed(4)
    net = CMML([4, 4], n_classes=3, hidden=8, dropout=0.0)
    x = torch.randn(16, 4)
    with torch.no_grad():  # make both modality branches identical -> identical predictions
        net.encoders[1].load_state_dict(net.encoders[0].state_dict())
        net.predictors[1].load_state_dict(net.predictors[0].state_dict())
    agree = net.unlabelled_loss([x, x]).detach()
    disagree = net.unlabelled_loss([x, -3 * x])
    assert float(agree) == pytest.approx(0.5, abs=1e-6)  # Huber(2 - 1) = 0.5 per sample
    assert float(disagree.detach()) > float(agree)
    disagree.backward()
    assert net.encoders[1][0].weight.grad.abs().sum() > 0  # the unlabelled term trains the encoders
    assert float(net.unlabelled_loss([x])) == 0.0  # one modality: no consistency term


def test_cmml_attention_and_diversity():
    torch.manual_seed(5)
    net = CMML([4, 6], n_classes=3, hidden=8).eval()
    out = net([torch.randn(5, 4), torch.randn(5, 6)])
    assert out["attention"].shape == (5, 2)
    assert torch.allclose(out["attention"].sum(1), torch.ones(5))
    p1, p2 = out["view_probs"]
    cos = (p1 * p2).sum(1) / (p1.norm(dim=1) * p2.norm(dim=1))
    assert torch.allclose(net.diversity(out), cos.mean())
    y = torch.tensor([0, 1, 2, 0, 1])
    ce = torch.nn.functional.cross_entropy
    want = 3 * ce(out["logits"], y) + ce(out["view_logits"][0], y) + ce(out["view_logits"][1], y) + 0.01 * cos.mean()
    assert torch.allclose(net.loss(out, y, 1), want)


# ----------------------------------------------------------------------------- early / late

def test_early_fusion_concatenates_inputs():
    net = EarlyFusion([3, 5], n_classes=2, hidden=4)
    assert net.net[0][0].in_features == 8


def test_late_fusion_is_weighted_log_linear_pooling():
    torch.manual_seed(6)
    net = LateFusion([3, 5], n_classes=3, hidden=4).eval()
    net.weights.copy_(torch.tensor([0.7, 0.3]))
    xs = [torch.randn(4, 3), torch.randn(4, 5)]
    out = net(xs)
    lp = [h(x).log_softmax(1) for h, x in zip(net.heads, xs)]
    want = (0.7 * lp[0] + 0.3 * lp[1]).softmax(1)
    assert torch.allclose(out["probs"], want, atol=1e-6)
    # the product rule can pick a class neither view ranks first
    p_text = torch.tensor([[0.5, 0.45, 0.05]]).log()
    p_image = torch.tensor([[0.05, 0.45, 0.5]]).log()
    pooled = LateFusion.pool(torch.stack([p_text, p_image]), torch.tensor([0.5, 0.5]))
    assert int(pooled.argmax()) == 1
