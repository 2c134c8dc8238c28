"""Greedy decoding, (diverse) beam search and ``decode_sequence`` exactly as the official AoANet eval.

Re-implemented from husthuaan/AoANet:models/AttModel.py (``_sample``, ``_sample_beam``),
models/CaptionModel.py (``beam_search``, ``beam_step``, ``add_diversity``) and misc/utils.py
(``decode_sequence``, ``penalty_builder``). The official control flow is kept step for step
(including its quirks, each marked), because the captions must be token-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
import torch
import torch.nn.functional as F

#: husthuaan/AoANet:models/AttModel.py bad_endings: END is forbidden right after these words
MODEL_BAD_ENDINGS = ['a', 'an', 'the', 'in', 'for', 'at', 'of', 'with', 'before', 'after', 'on', 'upon', 'near',
                     'to', 'is', 'are', 'am', 'the']
#: husthuaan/AoANet:misc/utils.py bad_endings: trailing words decode_sequence strips (a different list)
TEXT_BAD_ENDINGS = ['with', 'in', 'on', 'of', 'a', 'at', 'to', 'for', 'an', 'this', 'his', 'her', 'that', 'the']


@dataclass(frozen=True)
class DecodeSettings:
    """The eval options of husthuaan/AoANet:opts.py add_eval_options that decoding reads (eval defaults)."""

    beam_size: int = 2
    max_length: int = 20
    sample_method: str = "greedy"
    length_penalty: str = ""
    group_size: int = 1
    diversity_lambda: float = 0.5
    temperature: float = 1.0
    decoding_constraint: int = 0
    block_trigrams: int = 0
    remove_bad_endings: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def penalty_builder(config: str):
    """misc/utils.py penalty_builder: '' (none), 'wu_X' or 'avg_X'."""
    if config == "":
        return lambda length, lp: lp
    pen_type, alpha = config.split("_")
    alpha = float(alpha)
    if pen_type == "wu":
        return lambda length, lp: lp / (((5 + length) ** alpha) / ((5 + 1) ** alpha))
    if pen_type == "avg":
        return lambda length, lp: lp / length
    raise ValueError(config)


def bad_endings_ix(vocab: dict) -> list[int]:
    # AttModel.__init__: [int(k) for k, v in vocab.items() if v in bad_endings]
    return [int(k) for k, v in vocab.items() if v in MODEL_BAD_ENDINGS]


def parse_sample_method(method: str):
    """The ``--sample_method`` values ``CaptionModel.sample_next_word`` distinguishes: ('greedy',),
    ('gumbel',), ('sample',) (plain ``Categorical`` sampling), ('topk', k) or ('topp', p). Raises
    ValueError for anything else (the official code would treat any other string as 'sample')."""
    if method in ("greedy", "gumbel", "sample"):
        return (method,)
    if method.startswith("top"):
        top_num = float(method[3:])  # ValueError when not a number, as the official float()
        if 0 < top_num < 1:
            return ("topp", top_num)
        if top_num >= 1 and top_num == int(top_num):
            return ("topk", int(top_num))
    raise ValueError(method)


def sample_next_word(logprobs, method: str, temperature: float, generator: torch.Generator | None):
    """``CaptionModel.sample_next_word`` (husthuaan/AoANet:models/CaptionModel.py), literally, with one
    change: the random draws come from ``generator`` (a CPU ``torch.Generator`` seeded from the run's
    seed) instead of torch's global RNG. The draws are the ones the official code makes, on the same
    tensors in the same order: gumbel ``torch.rand(logprobs.size())`` (on the CPU, as the official does
    before ``.cuda()``); the other methods ``Categorical(logits=...).sample()``, i.e.
    ``torch.multinomial(softmax(logits), 1, True)`` (made on a CPU copy here, so one seed gives the same
    draws on every device). On the CPU this equals the official code run after ``torch.manual_seed(seed)``."""
    kind = parse_sample_method(method)
    if kind[0] == "greedy":
        sample_lp, it = torch.max(logprobs.data, 1)
        return it.view(-1).long(), sample_lp
    if kind[0] == "gumbel":
        eps = 1e-20
        u = torch.rand(logprobs.size(), generator=generator).to(logprobs.device)
        g = -torch.log(-torch.log(u + eps) + eps)
        _logprobs = F.log_softmax((logprobs + g) / temperature, dim=-1)
        _, it = torch.max(_logprobs.data, 1)
        return it, logprobs.gather(1, it.unsqueeze(1))
    logprobs = logprobs / temperature
    if kind[0] == "topp":  # nucleus sampling
        probs = F.softmax(logprobs, dim=1)
        sorted_probs, sorted_indices = torch.sort(probs, descending=True, dim=1)
        _cumsum = sorted_probs.cumsum(1)
        mask = _cumsum < kind[1]
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, :-1]], 1)
        sorted_probs = sorted_probs * mask.float()
        sorted_probs = sorted_probs / sorted_probs.sum(1, keepdim=True)
        logprobs.scatter_(1, sorted_indices, sorted_probs.log())
    elif kind[0] == "topk":
        tmp = torch.empty_like(logprobs).fill_(float("-inf"))
        topk, indices = torch.topk(logprobs, kind[1], dim=1)
        logprobs = tmp.scatter(1, indices, topk)
    # torch.distributions.Categorical(logits=logprobs.detach()).sample(), with an explicit generator
    probs = torch.distributions.Categorical(logits=logprobs.detach()).probs
    probs_2d = probs.reshape(-1, probs.size(-1)).cpu()
    it = torch.multinomial(probs_2d, 1, True, generator=generator).T.reshape(probs.shape[:-1])
    it = it.to(logprobs.device)
    return it, logprobs.gather(1, it.unsqueeze(1))


def greedy(model, feats, s: DecodeSettings, bad_ix: list[int], generator: torch.Generator | None = None):
    """``AttModel._sample`` (beam_size 1): (seq (B, L) int64, seqLogprobs (B, L)); ``sample_method``
    greedy, or one of the sampling methods drawing from ``generator``."""
    mean_feats = feats[0]
    b = mean_feats.size(0)
    state = model.init_hidden(b)
    L = s.max_length
    seq = mean_feats.new_zeros((b, L), dtype=torch.long)
    seq_lp = mean_feats.new_zeros(b, L)
    trigrams: list[dict] = []
    unfinished = None
    it = mean_feats.new_zeros(b, dtype=torch.long)
    for t in range(L + 1):
        logprobs, state = model.get_logprobs_state(it, *feats, state)
        if s.decoding_constraint and t > 0:
            tmp = logprobs.new_zeros(logprobs.size())
            tmp.scatter_(1, seq[:, t - 1].unsqueeze(1), float("-inf"))
            logprobs = logprobs + tmp
        if s.remove_bad_endings and t > 0:
            tmp = logprobs.new_zeros(logprobs.size())
            prev_bad = np.isin(seq[:, t - 1].cpu().numpy(), bad_ix)
            # the official uint8 index mask is a boolean mask (torch 1.0 semantics)
            tmp[torch.from_numpy(prev_bad.astype(bool)), 0] = float("-inf")
            logprobs = logprobs + tmp
        if s.block_trigrams and t >= 3:
            prev_two_batch = seq[:, t - 3:t - 1]
            for i in range(b):
                prev_two = (prev_two_batch[i][0].item(), prev_two_batch[i][1].item())
                current = seq[i][t - 1]
                if t == 3:
                    trigrams.append({prev_two: [current]})
                elif prev_two in trigrams[i]:
                    trigrams[i][prev_two].append(current)
                else:
                    trigrams[i][prev_two] = [current]
            prev_two_batch = seq[:, t - 2:t]
            mask = torch.zeros(logprobs.size(), device=logprobs.device)
            for i in range(b):
                prev_two = (prev_two_batch[i][0].item(), prev_two_batch[i][1].item())
                if prev_two in trigrams[i]:
                    for j in trigrams[i][prev_two]:
                        mask[i, j] += 1
            logprobs = logprobs + (mask * -0.693 * 2.0)  # ln(1/2) * alpha, alpha = 2.0 as in the official code
        if t == L:
            break
        it, sample_lp = sample_next_word(logprobs, s.sample_method, s.temperature, generator)
        unfinished = (it > 0) if t == 0 else unfinished * (it > 0)
        it = it * unfinished.type_as(it)
        seq[:, t] = it
        seq_lp[:, t] = sample_lp.view(-1)
        if unfinished.sum() == 0:
            break
    return seq, seq_lp


def _beam_step(logprobsf, unaug_logprobsf, beam_size, t, beam_seq, beam_seq_logprobs, beam_logprobs_sum, state):
    """CaptionModel.beam_search.beam_step, literally (float32 sums, stable sort of the candidates)."""
    ys, ix = torch.sort(logprobsf, 1, True)
    candidates = []
    cols = min(beam_size, ys.size(1))
    rows = 1 if t == 0 else beam_size
    for c in range(cols):
        for q in range(rows):
            local_logprob = ys[q, c].item()
            candidates.append({"c": ix[q, c], "q": q, "p": beam_logprobs_sum[q] + local_logprob,
                               "r": unaug_logprobsf[q, ix[q, c]]})
    candidates = sorted(candidates, key=lambda x: -x["p"])
    new_state = [_.clone() for _ in state]
    if t >= 1:
        beam_seq_prev = beam_seq[:t].clone()
        beam_seq_logprobs_prev = beam_seq_logprobs[:t].clone()
    for vix in range(beam_size):
        v = candidates[vix]
        if t >= 1:
            beam_seq[:t, vix] = beam_seq_prev[:, v["q"]]
            beam_seq_logprobs[:t, vix] = beam_seq_logprobs_prev[:, v["q"]]
        for si in range(len(new_state)):
            new_state[si][:, vix] = state[si][:, v["q"]]
        beam_seq[t, vix] = v["c"]
        beam_seq_logprobs[t, vix] = v["r"]
        beam_logprobs_sum[vix] = v["p"]
    return beam_seq, beam_seq_logprobs, beam_logprobs_sum, new_state


def beam_search_one(model, feats_k, s: DecodeSettings, bad_ix: list[int]) -> list[dict]:
    """``_sample_beam`` for one image (features already expanded to ``beam_size`` rows) followed by
    ``CaptionModel.beam_search``; returns ``done_beams`` (group 0 first, each cut to beam_size // group_size)."""
    beam_size, group_size, L = s.beam_size, s.group_size, s.max_length
    state = model.init_hidden(beam_size)
    it = feats_k[0].new_zeros([beam_size], dtype=torch.long)
    logprobs, state = model.get_logprobs_state(it, *feats_k, state)
    length_penalty = penalty_builder(s.length_penalty)
    bdash = beam_size // group_size
    beam_seq_table = [torch.LongTensor(L, bdash).zero_() for _ in range(group_size)]
    beam_seq_logprobs_table = [torch.FloatTensor(L, bdash).zero_() for _ in range(group_size)]
    beam_logprobs_sum_table = [torch.zeros(bdash) for _ in range(group_size)]
    done_beams_table: list[list[dict]] = [[] for _ in range(group_size)]
    state_table = [list(x) for x in zip(*[_.chunk(group_size, 1) for _ in state])]
    logprobs_table = list(logprobs.chunk(group_size, 0))
    args = [_.chunk(group_size) if _ is not None else [None] * group_size for _ in feats_k]
    args = [[args[i][j] for i in range(len(args))] for j in range(group_size)]
    for t in range(L + group_size - 1):
        for divm in range(group_size):
            if not (t >= divm and t <= L + divm - 1):
                continue
            logprobsf = logprobs_table[divm].data.float().cpu()
            if s.decoding_constraint and t - divm > 0:
                logprobsf.scatter_(1, beam_seq_table[divm][t - divm - 1].unsqueeze(1), float("-inf"))
            if s.remove_bad_endings and t - divm > 0:
                bad = np.isin(beam_seq_table[divm][t - divm - 1].numpy(), bad_ix)
                logprobsf[torch.from_numpy(bad.astype(bool)), 0] = float("-inf")
            # CaptionModel.beam_search: suppress UNK (the last index) by -1000
            logprobsf[:, logprobsf.size(1) - 1] = logprobsf[:, logprobsf.size(1) - 1] - 1000
            unaug_logprobsf = logprobsf.clone()
            local_time = t - divm
            for prev_choice in range(divm):  # add_diversity
                prev_decisions = beam_seq_table[prev_choice][local_time]
                for sub_beam in range(bdash):
                    for prev_labels in range(bdash):
                        logprobsf[sub_beam][prev_decisions[prev_labels]] = \
                            logprobsf[sub_beam][prev_decisions[prev_labels]] - s.diversity_lambda
            (beam_seq_table[divm], beam_seq_logprobs_table[divm], beam_logprobs_sum_table[divm],
             state_table[divm]) = _beam_step(logprobsf, unaug_logprobsf, bdash, t - divm, beam_seq_table[divm],
                                             beam_seq_logprobs_table[divm], beam_logprobs_sum_table[divm],
                                             state_table[divm])
            for vix in range(bdash):
                if beam_seq_table[divm][t - divm, vix] == 0 or t == L + divm - 1:
                    final = {"seq": beam_seq_table[divm][:, vix].clone(),
                             "logps": beam_seq_logprobs_table[divm][:, vix].clone(),
                             "unaug_p": beam_seq_logprobs_table[divm][:, vix].sum().item(),
                             "p": beam_logprobs_sum_table[divm][vix].item()}
                    final["p"] = length_penalty(t - divm + 1, final["p"])
                    done_beams_table[divm].append(final)
                    beam_logprobs_sum_table[divm][vix] = -1000  # finished beams never compete again
            if t == L + divm - 1:
                continue  # the official computes one more step here whose result is never read
            it = beam_seq_table[divm][t - divm].to(logprobs.device)
            lp, st = model.get_logprobs_state(it, *(args[divm] + [tuple(state_table[divm])]))
            state_table[divm] = list(st)
            logprobs_table[divm] = F.log_softmax(lp / s.temperature, dim=-1)
    done_beams_table = [sorted(done_beams_table[i], key=lambda x: -x["p"])[:bdash] for i in range(group_size)]
    return reduce(lambda a, b: a + b, done_beams_table)


def beam_search(model, feats, s: DecodeSettings, bad_ix: list[int]):
    """``_sample_beam``: every image on its own; the output is ``done_beams[k][0]`` (group 0's best)."""
    mean, att, p_att, masks = feats
    b = mean.size(0)
    seq = torch.LongTensor(s.max_length, b).zero_()
    seq_lp = torch.FloatTensor(s.max_length, b).zero_()
    done = []
    k_ = s.beam_size
    for k in range(b):
        fk = (mean[k:k + 1].expand(k_, mean.size(1)),
              att[k:k + 1].expand(*((k_,) + att.size()[1:])).contiguous(),
              p_att[k:k + 1].expand(*((k_,) + p_att.size()[1:])).contiguous(),
              masks[k:k + 1].expand(*((k_,) + masks.size()[1:])).contiguous() if masks is not None else None)
        beams = beam_search_one(model, fk, s, bad_ix)
        done.append(beams)
        seq[:, k] = beams[0]["seq"]
        seq_lp[:, k] = beams[0]["logps"]
    return seq.transpose(0, 1), seq_lp.transpose(0, 1), done


def decode_sequence(ix_to_word: dict, seq, remove_bad_endings: int = 0) -> list[str]:
    """misc/utils.py decode_sequence: words up to the first 0, optional bad-ending trim, '@@ ' removed."""
    out = []
    for row in seq.tolist():
        words = []
        for ix in row:
            if ix > 0:
                words.append(ix_to_word[str(ix)])
            else:
                break
        txt = " ".join(words)
        if remove_bad_endings:
            ws = txt.split(" ")
            flag = 0
            for j in range(len(ws)):
                if ws[-j - 1] not in TEXT_BAD_ENDINGS:
                    flag = -j
                    break
            # quirk kept: a caption made only of bad-ending words is left whole (flag stays 0)
            txt = " ".join(ws[0:len(ws) + flag])
        out.append(txt.replace("@@ ", ""))
    return out
