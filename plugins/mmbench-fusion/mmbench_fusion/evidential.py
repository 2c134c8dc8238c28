"""Subjective-logic opinions from Dirichlet evidence, Dempster's rule, and the TMC loss.

Formulation of Han et al., "Trusted Multi-View Classification" (ICLR 2021); facts checked
against the authors' code (hanmenghan/TMC:TMC/model.py): evidence e >= 0 (softplus),
alpha = e + 1, S = sum(alpha), belief b = e / S, uncertainty u = K / S; two opinions
combine as
    C   = sum_{i != j} b1_i b2_j                      (conflict)
    b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - C)
    u   = u1 u2 / (1 - C)
and back to a Dirichlet with S = K / u, e = b S, alpha = e + 1; more than two views
combine left to right. The loss per opinion is the expected cross-entropy under the
Dirichlet, sum_k y_k (digamma(S) - digamma(alpha_k)), plus an annealed
KL(Dir(alpha~) || Dir(1)) where alpha~ removes the true class's evidence; the annealing
coefficient is min(1, epoch / annealing_epochs) with epochs counted from 1.
"""

from __future__ import annotations

import math

import torch


def opinion(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(belief (B, K), uncertainty (B, 1)) of Dirichlet parameters ``alpha`` (B, K)."""
    S = alpha.sum(1, keepdim=True)
    return (alpha - 1) / S, alpha.shape[1] / S


def ds_combine_two(alpha1: torch.Tensor, alpha2: torch.Tensor) -> torch.Tensor:
    K = alpha1.shape[1]
    b1, u1 = opinion(alpha1)
    b2, u2 = opinion(alpha2)
    agree = (b1 * b2).sum(1, keepdim=True)
    conflict = b1.sum(1, keepdim=True) * b2.sum(1, keepdim=True) - agree
    scale = 1.0 / (1.0 - conflict)
    b = (b1 * b2 + b1 * u2 + b2 * u1) * scale
    u = u1 * u2 * scale
    S = K / u
    return b * S + 1


def ds_combine(alphas: list[torch.Tensor]) -> torch.Tensor:
    """Dempster's combination of one or more opinions (one view: returned unchanged)."""
    out = alphas[0]
    for a in alphas[1:]:
        out = ds_combine_two(out, a)
    return out


def kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Dir(alpha) || Dir(1, ..., 1)) per row, (B,)."""
    K = alpha.shape[1]
    S = alpha.sum(1)
    return (torch.lgamma(S) - torch.lgamma(alpha).sum(1) - math.lgamma(K)
            + ((alpha - 1) * (torch.digamma(alpha) - torch.digamma(S)[:, None])).sum(1))


def evidential_loss(alpha: torch.Tensor, y: torch.Tensor, epoch: int, annealing_epochs: int) -> torch.Tensor:
    """Per-sample TMC loss (B,): Dirichlet expected cross-entropy + annealed KL regulariser."""
    K = alpha.shape[1]
    onehot = torch.nn.functional.one_hot(y, K).to(alpha.dtype)
    S = alpha.sum(1, keepdim=True)
    ce = (onehot * (torch.digamma(S) - torch.digamma(alpha))).sum(1)
    coef = min(1.0, epoch / max(1, annealing_epochs))
    alpha_tilde = (alpha - 1) * (1 - onehot) + 1
    return ce + coef * kl_to_uniform(alpha_tilde)
