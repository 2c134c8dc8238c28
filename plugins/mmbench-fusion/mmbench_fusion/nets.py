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


# ----------------------------------------------------------------------------- PTP

#: the constant the official PTP block puts in front of the concatenated node
#: (jiajiatang0000/HPFN:MOSI/model.py, ``self.const_bias = 0.5``; the paper writes it as a 1)
PTP_CONST = 0.5
#: the largest polynomial order accepted: (w·z)^P leaves float32's comfortable range quickly
PTP_MAX_ORDER = 8


def polynomial_pool(z: torch.Tensor, factors: torch.Tensor, rank_weights: torch.Tensor, bias: torch.Tensor,
                    order: int, poly_norm: int = 0, euclid_norm: bool = False) -> torch.Tensor:
    """Polynomial tensor pooling (Hou et al., NeurIPS 2019, "Deep Multimodal Multilinear Fusion with
    High-order Polynomial Pooling", the PTP block), as the official ``ptp_layer`` computes it
    (jiajiatang0000/HPFN:MOSI/model.py):

    the order-P tensor Z = z ⊗ ... ⊗ z of the node z (B, n) is contracted with a weight tensor
    held in symmetric CP form W = Σ_r λ_r w_r ⊗ ... ⊗ w_r, one factor per rank shared by all P
    modes, so  h = Σ_r λ_r (z·w_r)^P + b  with no tensor formed. ``factors`` (rank, n, out),
    ``rank_weights`` (1, rank), ``bias`` (1, out). Then, as the official code does (both
    default-on/off as in its train_mosi.py: poly_norm=1, euclid_norm=0):

    - ``poly_norm`` times the signed square root sign(x)·sqrt(|x|) of every (z·w_r)^P (its
      "polynomial normalization"), before the rank weights;
    - ``euclid_norm``: each rank's (B, out) slice divided by its L2 norm over the output units.

    Quirk: the official ``poly_order`` argument counts the extra multiplications (the node is
    multiplied into itself ``poly_order`` times, so its default 2 is P = 3); ``order`` here is P.
    """
    basic = torch.einsum("bn,rno->rbo", z, factors)  # official: torch.matmul(node, win_factor)
    poly = basic
    for _ in range(order - 1):
        poly = poly * basic
    for _ in range(poly_norm):
        poly = torch.sign(poly) * torch.sqrt(torch.abs(poly))
    if euclid_norm:
        poly = poly / poly.norm(dim=2, keepdim=True)
    return torch.einsum("r,rbo->bo", rank_weights[0], poly) + bias[0]


class PTP(_CE):
    """Polynomial Tensor Pooling fusion (Hou et al., NeurIPS 2019): per-modality subnetworks to
    ``fusion_dim`` (the package's shared ``mlp_encoder``; the official code runs LSTMs over time
    steps, our features have none), the node z = [0.5, h_text, h_image] (the modalities
    concatenated behind the official constant), one PTP block of order ``order`` and rank
    ``rank`` to ``hidden`` units (``polynomial_pool``), then ReLU -> dropout -> linear as ``lmf``.
    One block with the window over every modality and the single time step is the paper's PTP
    block; HPFN stacks such blocks over time/modality windows, which needs time steps.

    Order 2 without normalisations is a quadratic form z^T Q_k z per output unit with
    Q_k = Σ_r λ_r w_rk w_rk^T: rank R can express LMF's bilinear form of rank R' whenever
    R >= 2R' (polarisation, tested by construction), and rank >= n (= dim z) spans every
    quadratic form (eigendecomposition), i.e. all terms of degree <= 2 of the concatenated
    features including TFN's. Text-only: z = [0.5, h_text], a polynomial of order P in h_text."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, fusion_dim=16, rank=4, order=3, poly_norm=1,
                 euclid_norm=False):
        super().__init__()
        if int(rank) < 1:
            raise ValueError(f"PTP rank must be >= 1, got {rank}")
        if not 2 <= int(order) <= PTP_MAX_ORDER:
            raise ValueError(f"PTP order must be in [2, {PTP_MAX_ORDER}], got {order}")
        if int(poly_norm) < 0:
            raise ValueError(f"PTP poly_norm must be >= 0, got {poly_norm}")
        self.rank, self.order, self.poly_norm, self.euclid_norm = int(rank), int(order), int(poly_norm), bool(euclid_norm)
        self.subnets = nn.ModuleList(mlp_encoder(d, fusion_dim, dropout) for d in dims)
        n = len(dims) * fusion_dim + 1
        # init as jiajiatang0000/HPFN:MOSI/model.py init_window_params: xavier-normal factor and
        # rank weights, zero bias
        self.factors = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.rank, n, hidden)))
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, self.rank)))
        self.bias = nn.Parameter(torch.zeros(1, hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    @staticmethod
    def node(zs: list[torch.Tensor]) -> torch.Tensor:
        """[0.5, h_1, h_2, ...] (B, n): the constant first, as the official code concatenates it."""
        const = torch.full((zs[0].shape[0], 1), PTP_CONST, dtype=zs[0].dtype, device=zs[0].device)
        return torch.cat([const, *zs], 1)

    def fuse(self, zs: list[torch.Tensor]) -> torch.Tensor:
        return polynomial_pool(self.node(zs), self.factors, self.rank_weights, self.bias, self.order,
                               self.poly_norm, self.euclid_norm)

    def weight_tensor(self) -> torch.Tensor:
        """The full weight tensor W (hidden, n, ..., n) (P modes) the CP factors stand for (tests, small n)."""
        letters = "abcdefgh"[:self.order]
        spec = ",".join(f"r{c}k" for c in letters)
        W = torch.einsum(f"{spec}->rk{letters}", *([self.factors] * self.order))
        return torch.einsum(f"r,rk{letters}->k{letters}", self.rank_weights[0], W)

    def forward(self, xs):
        zs = [s(x) for s, x in zip(self.subnets, xs)]
        logits = self.head(self.fuse(zs))
        return {"logits": logits, "probs": logits.softmax(1)}


# ----------------------------------------------------------------------------- Modal attention

class ModalAttention(_CE):
    """Modality attention (Moon, Neves, Carvalho, "Multimodal Named Entity Recognition for Short
    Social Media Posts", NAACL 2018, section 3.3; no official code was released): each modality is
    encoded to the same size ``hidden`` (h_m), a linear layer on the concatenation scores every
    modality, a_m = σ(W_m [h_1; ...; h_M] + b_m), the importance distribution is
    α = softmax(a) over modalities, and the classifier (an MLP like the unimodal references)
    reads the reweighted sum Σ_m α_m h_m. Quirk of the paper's formula kept: the scores pass a
    sigmoid before the softmax, so with two modalities α_m stays within
    [1/(1+e), e/(1+e)] ≈ [0.27, 0.73].

    ``mask`` (B, M) bool, True = present: a masked modality gets α_m = 0 (its score is -inf
    before the softmax) and its encoding is zeroed in the scorer's input, so the output no longer
    depends on it. Text-only: one modality, α = 1, an MLP on the text encoding."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2):
        super().__init__()
        self.encoders = nn.ModuleList(mlp_encoder(d, hidden, dropout) for d in dims)
        self.scorer = nn.Linear(hidden * len(dims), len(dims))
        self.head = nn.Sequential(mlp_encoder(hidden, hidden, dropout), nn.Linear(hidden, n_classes))

    def attention(self, hs: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, M) importance weights, each row summing to one."""
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool)
            if mask.shape != (hs[0].shape[0], len(hs)):
                raise ValueError(f"mask must be (batch, modalities) = {(hs[0].shape[0], len(hs))}, got {tuple(mask.shape)}")
            if not bool(mask.any(1).all()):
                raise ValueError("every sample needs at least one unmasked modality")
            hs = [h * mask[:, m:m + 1].to(h.dtype) for m, h in enumerate(hs)]
        scores = torch.sigmoid(self.scorer(torch.cat(hs, 1)))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.softmax(1)

    def forward(self, xs, mask=None):
        hs = [e(x) for e, x in zip(self.encoders, xs)]
        alpha = self.attention(hs, mask)
        fused = sum(alpha[:, m:m + 1] * h for m, h in enumerate(hs))
        logits = self.head(fused)
        return {"logits": logits, "probs": logits.softmax(1), "attention": alpha}


# ----------------------------------------------------------------------------- MBT

class MBTBlock(nn.Module):
    """The pre-LayerNorm transformer block of google-research/scenic:scenic/projects/mbt/model.py
    ``EncoderBlock``: x + Dropout(MHA(LN(x))), then + MLP(LN(...)) with scenic's ``MlpBlock``
    (Dense -> GELU -> Dropout -> Dense -> Dropout). Flax defaults kept: LayerNorm eps 1e-6, the
    tanh-approximate GELU (``flax.linen.gelu``), xavier-uniform kernels, MLP biases ~ N(0, 1e-6²),
    zero attention biases, dropout on the attention weights."""

    def __init__(self, d: int, heads: int, mlp_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = nn.MultiheadAttention(d, heads, dropout=attention_dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_dim), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, d), nn.Dropout(dropout))
        with torch.no_grad():
            for i in range(3):  # q, k, v kernels are separate Dense layers in flax
                nn.init.xavier_uniform_(self.attn.in_proj_weight[i * d:(i + 1) * d])
            nn.init.zeros_(self.attn.in_proj_bias)
            nn.init.xavier_uniform_(self.attn.out_proj.weight)
            nn.init.zeros_(self.attn.out_proj.bias)
            for lin in (self.mlp[0], self.mlp[3]):
                nn.init.xavier_uniform_(lin.weight)
                nn.init.normal_(lin.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln1(x)
        y = self.attn(y, y, y, need_weights=False)[0]
        x = x + self.drop(y)
        return x + self.mlp(self.ln2(x))


class MBT(nn.Module):
    """Multimodal Bottleneck Transformer (Nagrani et al., "Attention Bottlenecks for Multimodal
    Fusion", NeurIPS 2021), following google-research/scenic:scenic/projects/mbt/model.py
    (``MBT`` and ``Encoder`` with ``use_bottleneck=True``, ``share_encoder=False``):

    - tokens: each modality's feature vector is mapped linearly to ``tokens`` tokens of width
      ``hidden`` (the official stem embeds RGB / spectrogram patches with a linear patch
      embedding; our feature stage gives one vector per modality, so its tokens are a learned
      linear split of it). With ``classifier=token`` a zero-initialised CLS token is put in front
      of each modality's tokens; then a learned positional embedding per modality (N(0, 0.02²)).
    - ``layers`` blocks per modality (separate weights). Below ``fusion_layer`` the streams run
      alone; from it on, each modality's block reads [its tokens, the shared bottleneck tokens],
      keeps its own tokens, and the new bottleneck is the mean over modalities of their updated
      copies -- the streams exchange information ONLY through the bottleneck. The bottleneck
      tokens are learned, N(0, 0.02²); quirk kept: with ``classifier=token`` the official code
      adds one extra bottleneck token (``n_bottlenecks += 1``).
    - the modalities' tokens (not the bottleneck) concatenated, LayerNorm (``encoder_norm``);
      ``gap``: mean over all tokens -> linear; ``token``: each modality's CLS -> the same linear,
      the logits averaged at eval, and in training the loss is the mean of the per-modality
      cross-entropies (``MBTClassificationModel.loss_function``). The output layer is
      zero-initialised as in the official code. Softmax cross-entropy (the official n-way model).

    ``bottlenecks=0`` (with ``gap``) or ``fusion_layer=layers`` gives two independent streams.
    Not carried over: stochastic depth (official default rate 0), ``test_with_bottlenecks``
    (default True), shared encoders, the representation layer (default None).
    Text-only: one stream, no bottleneck (the official code fuses only with > 1 modality)."""

    def __init__(self, dims, n_classes, hidden=64, dropout=0.2, tokens=4, layers=2, fusion_layer=1, bottlenecks=4,
                 heads=4, mlp_dim=0, attention_dropout=0.1, classifier="gap"):
        super().__init__()
        tokens, layers, fusion_layer, bottlenecks, heads = map(int, (tokens, layers, fusion_layer, bottlenecks, heads))
        mlp_dim = int(mlp_dim) or 4 * hidden
        if classifier not in ("gap", "token"):
            raise ValueError(f"MBT classifier must be gap or token, got {classifier!r}")
        if not 0 <= fusion_layer <= layers:
            raise ValueError(f"MBT fusion_layer must be in [0, layers={layers}], got {fusion_layer}")
        if bottlenecks < 0 or tokens < 1 or layers < 1 or heads < 1 or hidden % heads:
            raise ValueError(f"MBT needs bottlenecks >= 0, tokens >= 1, layers >= 1 and heads dividing hidden "
                             f"(got {bottlenecks}, {tokens}, {layers}, heads={heads}, hidden={hidden})")
        self.tokens, self.fusion_layer, self.classifier, self.hidden = tokens, fusion_layer, classifier, hidden
        self.embed = nn.ModuleList(nn.Linear(d, tokens * hidden) for d in dims)
        extra = 1 if classifier == "token" else 0
        self.cls = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, hidden)) for _ in dims) if extra else None
        self.pos = nn.ParameterList(nn.Parameter(torch.randn(1, tokens + extra, hidden) * 0.02) for _ in dims)
        self.n_bottlenecks = bottlenecks + extra  # scenic mbt/model.py: n_bottlenecks += 1 for 'token'
        self.bottleneck = nn.Parameter(torch.randn(1, self.n_bottlenecks, hidden) * 0.02)
        self.blocks = nn.ModuleList(
            nn.ModuleList(MBTBlock(hidden, heads, mlp_dim, dropout, attention_dropout) for _ in dims)
            for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.output = nn.Linear(hidden, n_classes)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def encode(self, xs) -> dict:
        """Per-modality token outputs after the final LayerNorm, and the last bottleneck."""
        B = xs[0].shape[0]
        x = []
        for m, (emb, v) in enumerate(zip(self.embed, xs)):
            t = emb(v).view(B, self.tokens, self.hidden)
            if self.cls is not None:
                t = torch.cat([self.cls[m].expand(B, -1, -1), t], 1)
            x.append(t + self.pos[m])
        b = self.bottleneck.expand(B, -1, -1)
        for lyr, blocks in enumerate(self.blocks):
            if lyr < self.fusion_layer or len(x) == 1:
                x = [blk(t) for blk, t in zip(blocks, x)]
            else:
                outs = [blk(torch.cat([t, b], 1)) for blk, t in zip(blocks, x)]
                b = torch.stack([o[:, t.shape[1]:] for o, t in zip(outs, x)], -1).mean(-1)
                x = [o[:, :t.shape[1]] for o, t in zip(outs, x)]
        return {"tokens": [self.norm(t) for t in x], "bottleneck": b}

    def forward(self, xs):
        enc = self.encode(xs)
        if self.classifier == "gap":
            view_logits = None
            logits = self.output(torch.cat(enc["tokens"], 1).mean(1))
        else:
            view_logits = [self.output(t[:, 0]) for t in enc["tokens"]]
            logits = torch.stack(view_logits).mean(0)
        return {**enc, "logits": logits, "view_logits": view_logits, "probs": logits.softmax(1)}

    def loss(self, out, y, epoch):
        if out["view_logits"] is not None:
            return torch.stack([F.cross_entropy(lg, y) for lg in out["view_logits"]]).mean()
        return F.cross_entropy(out["logits"], y)


METHODS = {
    "text-only": Unimodal, "image-only": Unimodal, "early-fusion": EarlyFusion, "late-fusion": LateFusion,
    "tfn": TFN, "lmf": LMF, "tmc": TMC, "etmc": ETMC, "cmml": CMML,
    "ptp": PTP, "modal-attention": ModalAttention, "mbt": MBT,
}
