"""The fusion networks (torch). Each takes ``xs``: a list with one (B, D_m) tensor per present
modality, in the order (text, image), and returns a dict holding at least ``probs`` (B, C).

With a single modality present (explicit text-only mode) every method degenerates to a
well-defined single-view model, documented per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmbench_fusion.evidential import ds_combine, evidential_loss, opinion


def mlp_encoder(d_in: int, d_out: int, dropout: float) -> nn.Module:
    """The per-modality subnetwork: Linear -> ReLU -> Dropout."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout))


class _CE(nn.Module):
    def loss(self, out: dict, y: torch.Tensor, epoch: int) -> torch.Tensor:
        return F.cross_entropy(out["logits"], y)


class Unimodal(_CE):
    """An MLP head on one modality (the like-for-like unimodal reference)."""

    def __init__(self, dims: list[int], n_classes: int, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        if len(dims) != 1:
            raise ValueError("Unimodal takes exactly one modality")
        self.net = nn.Sequential(mlp_encoder(dims[0], hidden, dropout), nn.Linear(hidden, n_classes))

    def forward(self, xs):
        logits = self.net(xs[0])
        return {"logits": logits, "probs": logits.softmax(1)}


class EarlyFusion(_CE):
    """Feature-level fusion: concatenate the modalities' features, one MLP on top.
    Text-only: an MLP on the text features."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2):
        super().__init__()
        self.net = nn.Sequential(mlp_encoder(sum(dims), hidden, dropout), nn.Linear(hidden, n_classes))

    def forward(self, xs):
        logits = self.net(torch.cat(xs, 1))
        return {"logits": logits, "probs": logits.softmax(1)}


class LateFusion(nn.Module):
    """Decision-level fusion: one classifier per modality, each trained on its own loss, their
    scores combined by weighted log-linear pooling, p ∝ ∏_m p_m^{w_m} (sum of log-probabilities;
    the product rule of classifier combination, Kittler et al. 1998), with ``weights`` chosen
    on the validation split (equal without one). A product, unlike a mean of probabilities,
    can output a class that no single modality ranks first (text says positive-or-neutral,
    image says negative-or-neutral: neutral).
    Text-only: the text classifier alone."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(mlp_encoder(d, hidden, dropout), nn.Linear(hidden, n_classes))
                                   for d in dims)
        self.register_buffer("weights", torch.full((len(dims),), 1.0 / len(dims)))

    @staticmethod
    def pool(view_log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(M, B, C) log-probabilities, (M,) weights -> (B, C) pooled probabilities."""
        return (weights[:, None, None] * view_log_probs).sum(0).softmax(1)

    def forward(self, xs):
        logits = [h(x) for h, x in zip(self.heads, xs)]
        per = torch.stack([lg.log_softmax(1) for lg in logits])  # (M, B, C)
        return {"view_logits": logits, "view_log_probs": per, "probs": self.pool(per, self.weights)}

    def loss(self, out, y, epoch):
        return sum(F.cross_entropy(lg, y) for lg in out["view_logits"])


def append_one(h: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device), h], 1)


def tensor_fusion(zs: list[torch.Tensor]) -> torch.Tensor:
    """TFN's fused tensor (Zadeh et al. 2017): the outer product of the modality vectors each
    with a 1 appended, z = [1, h_1] ⊗ [1, h_2] ⊗ ..., shape (B, d_1+1, d_2+1, ...). The 1s keep
    every unimodal term and every lower-order interaction inside the tensor."""
    out = append_one(zs[0])
    for h in zs[1:]:
        z = append_one(h)
        out = out.unsqueeze(-1) * z.view(z.shape[0], *([1] * (out.dim() - 1)), z.shape[1])
    return out


class TFN(_CE):
    """Tensor Fusion Network: per-modality subnetworks to ``fusion_dim``, the fused tensor,
    flattened into a linear layer (``fusion``) and an MLP head.
    Text-only: the tensor is [1, h_text], i.e. an MLP on the text subnetwork."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, fusion_dim=16):
        super().__init__()
        self.subnets = nn.ModuleList(mlp_encoder(d, fusion_dim, dropout) for d in dims)
        n_fused = (fusion_dim + 1) ** len(dims)
        self.fusion = nn.Linear(n_fused, hidden)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, xs):
        zs = [s(x) for s, x in zip(self.subnets, xs)]
        fused = tensor_fusion(zs)
        logits = self.head(self.fusion(fused.flatten(1)))
        return {"fused": fused, "logits": logits, "probs": logits.softmax(1)}


class LMF(_CE):
    """Low-rank Multimodal Fusion (Liu et al. 2018): the TFN fusion layer W·vec(⊗_m [1, h_m])
    with W restricted to rank ``rank``: h = sum_r λ_r ∏_m ([1, h_m] W_m^(r)) + b, computed
    without forming the tensor. Per output unit k the bilinear form of two modalities is
    sum_r λ_r w_1^(r)[:, k] w_2^(r)[:, k]^T, a matrix of rank <= rank, so rank >= min_m(d_m + 1)
    spans TFN's whole function class (``tests`` check the construction).
    Text-only: a sum of ``rank`` linear maps of [1, h_text], i.e. linear in h_text."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, fusion_dim=16, rank=4):
        super().__init__()
        self.rank = int(rank)
        self.subnets = nn.ModuleList(mlp_encoder(d, fusion_dim, dropout) for d in dims)
        self.factors = nn.ParameterList(
            nn.Parameter(torch.empty(self.rank, fusion_dim + 1, hidden)) for _ in dims)
        for f in self.factors:
            nn.init.xavier_normal_(f)
        self.rank_weights = nn.Parameter(torch.empty(1, self.rank))
        nn.init.xavier_normal_(self.rank_weights)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def fuse(self, zs: list[torch.Tensor]) -> torch.Tensor:
        prod = None
        for h, W in zip(zs, self.factors):
            proj = torch.einsum("bd,rdh->rbh", append_one(h), W)  # (rank, B, hidden)
            prod = proj if prod is None else prod * proj
        return torch.einsum("r,rbh->bh", self.rank_weights[0], prod) + self.bias

    def bilinear_weights(self) -> torch.Tensor:
        """For two modalities: the equivalent TFN weight tensor, (hidden, d_1+1, d_2+1)."""
        W1, W2 = self.factors
        return torch.einsum("r,rih,rjh->hij", self.rank_weights[0], W1, W2)

    def forward(self, xs):
        zs = [s(x) for s, x in zip(self.subnets, xs)]
        logits = self.head(self.fuse(zs))
        return {"logits": logits, "probs": logits.softmax(1)}


class TMC(nn.Module):
    """Trusted Multi-View Classification: per-modality evidence (softplus of a classifier),
    Dirichlet opinions combined by Dempster's rule; predicted probabilities are the combined
    Dirichlet's mean alpha / S, and ``uncertainty`` is its u = K / S.
    Each view's head is ``Sequential(encoder, Linear, Softplus)``: ``heads[m][0]`` encodes the
    view (``mlp_encoder``), ``heads[m][1:]`` turns the encoding into evidence.
    Text-only: one opinion, nothing to combine (the loss counts it once)."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, annealing_epochs=10):
        super().__init__()
        self.annealing_epochs = int(annealing_epochs)
        self.heads = nn.ModuleList(nn.Sequential(mlp_encoder(d, hidden, dropout), nn.Linear(hidden, n_classes),
                                                 nn.Softplus()) for d in dims)

    def encode(self, xs) -> list[torch.Tensor]:
        """The per-view encodings h_m (B, hidden)."""
        return [head[0](x) for head, x in zip(self.heads, xs)]

    def view_alphas(self, hs) -> list[torch.Tensor]:
        """Each view's Dirichlet alpha = softplus evidence + 1, from its encoding."""
        return [head[1:](h) + 1 for head, h in zip(self.heads, hs)]

    @staticmethod
    def _output(alphas, alpha) -> dict:
        _, u = opinion(alpha)
        return {"view_alphas": alphas, "alpha": alpha, "uncertainty": u[:, 0],
                "probs": alpha / alpha.sum(1, keepdim=True)}

    def forward(self, xs):
        alphas = self.view_alphas(self.encode(xs))
        return self._output(alphas, ds_combine(alphas))

    def loss(self, out, y, epoch):
        alphas = out["view_alphas"]
        terms = [evidential_loss(a, y, epoch, self.annealing_epochs) for a in alphas]
        if len(alphas) > 1:
            terms.append(evidential_loss(out["alpha"], y, epoch, self.annealing_epochs))
        return torch.stack(terms).sum(0).mean()


class ETMC(TMC):
    """Enhanced TMC (Han, Zhang, Fu, Zhou, "Trusted Multi-View Classification with Dynamic
    Evidential Fusion", TPAMI 2022, the enhanced-TMC section): TMC plus a *pseudo-view*, the
    concatenation of the views' encodings [h_text, h_image], with its own evidence head
    (``pseudo_head``: an MLP like a view head). All opinions -- text, image, pseudo-view --
    are combined with the same reduced Dempster rule, left to right
    ((text ⊕ image) ⊕ pseudo, as hanmenghan/TMC:ETMC TPAMI/models/TMC.py does), and the loss
    is the TMC loss summed over every view, the pseudo-view and the combined opinion (the
    paper's overall loss over V + 1 views; hanmenghan/TMC:ETMC TPAMI/train_ETMC_nyud2.py sums
    the same four terms). The pseudo-view head sees both modalities at once, so it can express
    interactions (label = f(text cue, image mood)) that Dempster's rule over single-view
    opinions cannot; the encoders are shared with the view heads, as in the reference, where
    the pseudo-view concatenates the per-view encoder outputs.
    Text-only: one view, no pseudo-view (it would be a second head on the same single
    encoding), so it is exactly TMC's single-view model."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, annealing_epochs=10):
        super().__init__(dims, n_classes, hidden=hidden, dropout=dropout, annealing_epochs=annealing_epochs)
        self.pseudo_head = None
        if len(dims) > 1:
            self.pseudo_head = nn.Sequential(mlp_encoder(hidden * len(dims), hidden, dropout),
                                             nn.Linear(hidden, n_classes), nn.Softplus())

    def forward(self, xs):
        hs = self.encode(xs)
        alphas = self.view_alphas(hs)
        if self.pseudo_head is None:
            return {**self._output(alphas, alphas[0]), "pseudo_alpha": None}
        pseudo = self.pseudo_head(torch.cat(hs, 1)) + 1
        out = self._output(alphas, ds_combine([*alphas, pseudo]))
        out["pseudo_alpha"] = pseudo
        return out

    def loss(self, out, y, epoch):
        alphas = list(out["view_alphas"])
        if out["pseudo_alpha"] is not None:
            alphas.append(out["pseudo_alpha"])
        terms = [evidential_loss(a, y, epoch, self.annealing_epochs) for a in alphas]
        if len(alphas) > 1:
            terms.append(evidential_loss(out["alpha"], y, epoch, self.annealing_epochs))
        return torch.stack(terms).sum(0).mean()


def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a < delta, 0.5 * x * x, delta * (a - 0.5 * delta))


class CMML(nn.Module):
    """Comprehensive Multi-Modal Learning (Yang et al., KDD 2019).

    Per-modality hidden vectors h_m and predictors p_m; an attention MLP shared by the
    modalities scores each h_m, a softmax over modalities gives a_m, and the fused predictor
    reads sum_m a_m h_m. Labelled loss: 3·CE(fused) + sum_m CE(p_m) + λ_div · mean cos(p_1, p_2)
    (the diversity term, penalising agreement on labelled data). Unlabelled loss:
    λ_u · sum_i Huber_δ(2 − cos(p_1, p_2)) / N_u, the robust consistency term, which grows with
    the modalities' disagreement but only linearly beyond δ. Weights 3, λ_div = 0.01, δ = 1.003,
    λ_u = 1 follow the reference implementation (PaddleMM's CMML model, torch and paddle
    versions); it is multi-label (sigmoid + BCE), we use softmax + CE for single-label classes.
    That implementation scores text attention from the image side and vice versa (its
    attention columns are swapped); we follow the paper: a modality's weight comes from its
    own hidden vector.
    Text-only: one modality, attention weight 1, no diversity or consistency term, so the
    unlabelled pool cannot be used (``fit`` reports 0 unlabelled samples used)."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, lambda_div=0.01, lambda_u=1.0,
                 delta=1.003, fused_weight=3.0):
        super().__init__()
        self.lambda_div, self.lambda_u, self.delta, self.fused_weight = lambda_div, lambda_u, delta, fused_weight
        self.encoders = nn.ModuleList(mlp_encoder(d, hidden, dropout) for d in dims)
        self.predictors = nn.ModuleList(nn.Linear(hidden, n_classes) for _ in dims)
        self.attention = nn.Sequential(nn.Linear(hidden, max(1, hidden // 2)), nn.ReLU(),
                                       nn.Linear(max(1, hidden // 2), 1))
        self.fused_predictor = nn.Linear(hidden, n_classes)

    def forward(self, xs):
        hs = [e(x) for e, x in zip(self.encoders, xs)]
        view_logits = [p(h) for p, h in zip(self.predictors, hs)]
        attn = torch.cat([self.attention(h) for h in hs], 1).softmax(1)  # (B, M)
        fused_h = sum(attn[:, m:m + 1] * h for m, h in enumerate(hs))
        logits = self.fused_predictor(fused_h)
        return {"logits": logits, "probs": logits.softmax(1), "attention": attn, "view_logits": view_logits,
                "view_probs": [lg.softmax(1) for lg in view_logits]}

    def diversity(self, out) -> torch.Tensor:
        if len(out["view_probs"]) < 2:
            return torch.zeros(())
        p1, p2 = out["view_probs"][:2]
        return F.cosine_similarity(p1, p2, dim=1).mean()

    def loss(self, out, y, epoch):
        sup = self.fused_weight * F.cross_entropy(out["logits"], y)
        sup = sup + sum(F.cross_entropy(lg, y) for lg in out["view_logits"])
        return sup + self.lambda_div * self.diversity(out)

    def consistency_from_probs(self, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        dis = 2 - F.cosine_similarity(p1, p2, dim=1)
        return huber(dis, self.delta).sum() / p1.shape[0]

    def unlabelled_loss(self, xs_u) -> torch.Tensor:
        if len(xs_u) < 2:
            return torch.zeros(())
        out = self.forward(xs_u)
        p1, p2 = out["view_probs"][:2]
        return self.lambda_u * self.consistency_from_probs(p1, p2)


METHODS = {
    "text-only": Unimodal, "image-only": Unimodal, "early-fusion": EarlyFusion, "late-fusion": LateFusion,
    "tfn": TFN, "lmf": LMF, "tmc": TMC, "etmc": ETMC, "cmml": CMML,
}
