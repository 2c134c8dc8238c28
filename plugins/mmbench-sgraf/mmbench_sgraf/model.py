"""SGRAF (Diao et al., AAAI 2021) rebuilt from its checkpoint's ``opt``: SGR and SAF similarity modules.

Written from the description of the official forward pass (Paranioar/SGRAF:model.py,
python3.6 branch; facts only, summarised in ../shared/parity/sgraf_*/README.md). Module
and parameter names equal the official ones so that the official ``state_dict`` lists
load with ``strict=True``:
``model[0]`` image encoder (``fc``), ``model[1]`` text encoder (``embed``, ``cap_rnn``),
``model[2]`` similarity encoder (``v_global_w``, ``t_global_w``, ``sim_tranloc_w``,
``sim_tranglo_w``, ``sim_eval_w``, ``SGR_module`` / ``SAF_module``).

Scoring is vectorised over a tile of (images x captions) pairs, with padded words masked,
instead of the official loop over captions; it gives the same numbers to float32 rounding.
The image / text encoders and the eps-norms are SCAN's (:mod:`mmbench_vse.layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench_vse.layers import EPS, EncoderImagePrecomp, l1norm, l2norm, word_mask
from mmbench_vse.layers import EncoderText as _ScanEncoderText

#: SGRAF's attention temperature is a constant in the official code (SCAN_attention(..., smooth=9.0)).
SMOOTH = 9.0
#: Bottom-up features have 36 regions; VisualSA's BatchNorm1d runs over the region axis.
N_REGIONS = 36

__all__ = ["EPS", "N_REGIONS", "SGRAF", "SMOOTH", "AttentionFiltration", "EncoderImage", "EncoderSimilarity",
           "EncoderText", "GraphReasoning", "TextSA", "VisualSA", "l2norm"]

#: ``fc`` on every region, then l2norm (SCAN's precomp image encoder without weight norm)
EncoderImage = EncoderImagePrecomp


class EncoderText(_ScanEncoderText):
    """SCAN's text encoder with dropout 0.4 on the word embeddings and the GRU named ``cap_rnn``."""

    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 bi_gru: bool = True, no_txtnorm: bool = False):
        super().__init__(vocab_size, word_dim, embed_size, num_layers, bi_gru, no_txtnorm, rnn_name="cap_rnn",
                         dropout=0.4)


class VisualSA(nn.Module):
    """Image global vector: region weights from local x global gating (BatchNorm over the 36 regions)."""

    def __init__(self, embed_dim: int, dropout_rate: float = 0.4, num_region: int = N_REGIONS):
        super().__init__()
        self.embedding_local = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.BatchNorm1d(num_region),
                                             nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_global = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.BatchNorm1d(embed_dim),
                                              nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_common = nn.Sequential(nn.Linear(embed_dim, 1))

    def forward(self, local: torch.Tensor, raw_global: torch.Tensor) -> torch.Tensor:
        l_emb = self.embedding_local(local)
        g_emb = self.embedding_global(raw_global)
        w = torch.softmax(self.embedding_common(l_emb * g_emb.unsqueeze(1)).squeeze(2), dim=1)
        return l2norm((w.unsqueeze(2) * local).sum(1), -1)


class TextSA(nn.Module):
    """Caption global vector: the same gating over words, without BatchNorm; padded words masked."""

    def __init__(self, embed_dim: int, dropout_rate: float = 0.4):
        super().__init__()
        self.embedding_local = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_global = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.Tanh(),
                                              nn.Dropout(dropout_rate))
        self.embedding_common = nn.Sequential(nn.Linear(embed_dim, 1))

    def forward(self, local: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """local (B, L, E) zero-padded, mask (B, L) bool of real words."""
        n = mask.sum(1, keepdim=True).to(local.dtype)
        raw_global = local.sum(1) / n  # mean over the caption's own words
        l_emb = self.embedding_local(local)
        g_emb = self.embedding_global(raw_global)
        logits = self.embedding_common(l_emb * g_emb.unsqueeze(1)).squeeze(2)
        w = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        return l2norm((w.unsqueeze(2) * local).sum(1), -1)


class GraphReasoning(nn.Module):
    def __init__(self, sim_dim: int):
        super().__init__()
        self.graph_query_w = nn.Linear(sim_dim, sim_dim)
        self.graph_key_w = nn.Linear(sim_dim, sim_dim)
        self.sim_graph_w = nn.Linear(sim_dim, sim_dim)

    def forward(self, nodes: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """nodes (P, N, S); key_mask (P, N) bool: nodes that exist (padded words excluded)."""
        edges = torch.bmm(self.graph_query_w(nodes), self.graph_key_w(nodes).transpose(1, 2))
        edges = torch.softmax(edges.masked_fill(~key_mask.unsqueeze(1), float("-inf")), dim=-1)
        return torch.relu(self.sim_graph_w(torch.bmm(edges, nodes)))


class AttentionFiltration(nn.Module):
    def __init__(self, sim_dim: int):
        super().__init__()
        self.attn_sim_w = nn.Linear(sim_dim, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.bn(self.attn_sim_w(nodes).permute(0, 2, 1)))  # (P, 1, N)
        a = a * mask.unsqueeze(1).to(a.dtype)
        a = l1norm(a, -1)  # SGRAF's l1norm: eps added to the sum
        return l2norm(torch.matmul(a, nodes).squeeze(1), -1)


class EncoderSimilarity(nn.Module):
    def __init__(self, embed_size: int, sim_dim: int, module_name: str = "SGR", sgr_step: int = 3):
        super().__init__()
        self.module_name = module_name
        self.v_global_w = VisualSA(embed_size, 0.4, N_REGIONS)
        self.t_global_w = TextSA(embed_size, 0.4)
        self.sim_tranloc_w = nn.Linear(embed_size, sim_dim)
        self.sim_tranglo_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        if module_name == "SGR":
            self.SGR_module = nn.ModuleList([GraphReasoning(sim_dim) for _ in range(sgr_step)])
        elif module_name == "SAF":
            self.SAF_module = AttentionFiltration(sim_dim)
        else:
            raise ValueError(f"module_name must be SGR or SAF, got {module_name!r}")

    def pair_scores(self, v: torch.Tensor, v_glo: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor,
                    c_glo: torch.Tensor) -> torch.Tensor:
        """Scores of every (image, caption) pair of a tile.

        v (Bi, R, E) region embeddings, v_glo (Bi, E); c (Bt, L, E) zero-padded word
        embeddings, c_mask (Bt, L), c_glo (Bt, E). Returns (Bi, Bt).
        """
        bi, bt, n_words = v.size(0), c.size(0), c.size(1)
        # word-to-region attention (SCAN t2i style): LeakyReLU, l2norm over words, softmax over regions
        attn = torch.nn.functional.leaky_relu(torch.einsum("ire,tle->itrl", v, c), 0.1)
        attn = l2norm(attn, -1)  # padded words are exact zeros and do not change the norm
        attn = torch.softmax(attn.transpose(2, 3) * SMOOTH, dim=-1)  # (Bi, Bt, L, R)
        ctx = l2norm(torch.einsum("itlr,ire->itle", attn, v), -1)
        sim_loc = l2norm(self.sim_tranloc_w((ctx - c.unsqueeze(0)).pow(2)), -1)  # (Bi, Bt, L, S)
        sim_glo = l2norm(self.sim_tranglo_w((v_glo.unsqueeze(1) - c_glo.unsqueeze(0)).pow(2)), -1)
        nodes = torch.cat([sim_glo.unsqueeze(2), sim_loc], 2).reshape(bi * bt, n_words + 1, -1)
        mask = torch.cat([torch.ones_like(c_mask[:, :1]), c_mask], 1)  # (Bt, L+1)
        mask = mask.unsqueeze(0).expand(bi, bt, n_words + 1).reshape(bi * bt, n_words + 1)
        if self.module_name == "SGR":
            for layer in self.SGR_module:
                nodes = layer(nodes, mask)
            vec = nodes[:, 0, :]
        else:
            vec = self.SAF_module(nodes, mask)
        return torch.sigmoid(self.sim_eval_w(vec)).view(bi, bt)


    def score_tile(self, v: torch.Tensor, v_glo: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor,
                   c_glo: torch.Tensor, *, max_elements: int = 1 << 24, max_captions: int = 4) -> torch.Tensor:
        """(Bi, Bt) scores with bounded memory: captions sorted by length, scored in small chunks
        trimmed to their own longest caption (little padding), results put back in order."""
        bi, bt = v.size(0), c.size(0)
        lengths = c_mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        per_caption = bi * c.size(1) * max(v.size(2), v.size(1))
        step = max(1, min(max_captions, max_elements // max(1, per_caption)))
        out = torch.empty(bi, bt, dtype=v.dtype, device=v.device)
        for s0 in range(0, bt, step):
            idx = order[s0:s0 + step]
            n = int(lengths[idx].max())
            out[:, idx] = self.pair_scores(v, v_glo, c[idx, :n], c_mask[idx, :n], c_glo[idx])
        return out


class SGRAF(nn.Module):
    """The three official sub-modules, in checkpoint order."""

    def __init__(self, opt: dict):
        super().__init__()
        self.img_enc = EncoderImage(opt["img_dim"], opt["embed_size"], bool(opt.get("no_imgnorm", False)))
        self.txt_enc = EncoderText(opt["vocab_size"], opt["word_dim"], opt["embed_size"],
                                   int(opt.get("num_layers", 1)), bool(opt.get("bi_gru", True)),
                                   bool(opt.get("no_txtnorm", False)))
        self.sim_enc = EncoderSimilarity(opt["embed_size"], opt["sim_dim"], opt.get("module_name", "SGR"),
                                         int(opt.get("sgr_step", 3)))

    def load_official(self, states: list[dict]) -> None:
        for module, sd in zip((self.img_enc, self.txt_enc, self.sim_enc), states):
            module.load_state_dict(sd, strict=True)

    def official_states(self) -> list[dict]:
        return [m.state_dict() for m in (self.img_enc, self.txt_enc, self.sim_enc)]

    def encode_images(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.img_enc(feats)
        return v, self.sim_enc.v_global_w(v, v.mean(1))

    def encode_texts(self, ids: torch.Tensor, lengths: torch.Tensor):
        c = self.txt_enc(ids, lengths)
        mask = word_mask(c, lengths)
        return c, mask, self.sim_enc.t_global_w(c, mask)
