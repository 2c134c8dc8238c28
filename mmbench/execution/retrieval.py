"""Sharded retrieval: encodings by shard, ranks as sums of per-block integer counts.

Stages (each a list of shards run by the executor, each shard cached):

1. ``encode_images`` / ``encode_texts``: whole batches of the single-process loop per shard; the
   blocks are gathered (embeddings, or a cross scorer's per-item blocks; never the matrix).
2. ``gt``: each shard computes the ground-truth scores of its images' captions: for dual encoders
   the small products of :class:`~mmbench.metrics.retrieval.EmbeddingBlocks`, for cross scorers the
   score tiles holding a ground-truth pair (:meth:`_TileSweep.gt_part`). They are gathered (one
   float per caption).
3. ``counts``: each shard counts, for its rows of the similarity matrix, how many items are ahead of
   each query's ground truth (:class:`~mmbench.metrics.retrieval._RankCounter`); only these integer
   counts are gathered and summed.

The blocks, tiles and ground-truth products are exactly those of the single-process path, so ranks,
tie counts and metrics are identical to it, ties included.
"""

from __future__ import annotations

import math

import numpy as np

from mmbench.errors import PluginError
from mmbench.execution.sharded import Plan, batch_ranges
from mmbench.metrics.retrieval import EmbeddingBlocks, _RankCounter, _assemble, _embeddings_2d, _check_ties, \
    check_text_image, fold_slices


def _encode_unit(model, ctx: dict, unit: dict) -> list:
    from mmbench.tasks.retrieval import _encode

    fn = getattr(model, ctx["method"])
    return _encode(fn, ctx["items"][unit["lo"]:unit["hi"]], ctx["batch_size"], ctx["desc"], False, ctx["name"],
                   ctx["dual"])


def _parts(n_img: int, ti: np.ndarray, folds: int) -> list[tuple[int, int, np.ndarray | None]]:
    return [(0, n_img, None)] if folds == 1 else list(fold_slices(n_img, ti, folds))


def _block_units(n_blocks_per_part: list[int], shard_blocks: int | None) -> list[dict]:
    total = sum(n_blocks_per_part)
    per = shard_blocks or max(1, math.ceil(total / 16))
    return [{"part": p, "k0": k0, "k1": min(n, k0 + per)}
            for p, n in enumerate(n_blocks_per_part) for k0 in range(0, n, per)]


# --------------------------------------------------------------------------- dual encoders

def _dual_part(ctx: dict, p: int):
    img, txt, ti = ctx["img"], ctx["txt"], ctx["ti"]
    lo, hi, t_idx = ctx["parts"][p]
    if t_idx is None:
        return img, txt, ti
    return img[lo:hi], txt[t_idx], ti[t_idx] - lo


def _dual_plan(ctx: dict, p: int) -> tuple[EmbeddingBlocks, np.ndarray, np.ndarray]:
    img, txt, ti = _dual_part(ctx, p)
    img, txt = _embeddings_2d(img, txt)
    return EmbeddingBlocks(img.shape[0], txt.shape[0], img.shape[1], ti, ctx["budget"]), img, txt


def _dual_gt_unit(model, ctx: dict, unit: dict):
    plan, img, txt = _dual_plan(ctx, unit["part"])
    caps, vals = zip(*(plan.gt_scores(img, txt, k) for k in range(unit["k0"], unit["k1"])))
    return np.concatenate(caps), np.concatenate(vals)


def _dual_count_unit(model, ctx: dict, unit: dict) -> dict:
    plan, img, txt = _dual_plan(ctx, unit["part"])
    counter = _RankCounter(plan.ti, plan.n_img, ctx["gt"][unit["part"]])
    plan.count(counter, img, txt, range(unit["k0"], unit["k1"]))
    return counter.counts()


# --------------------------------------------------------------------------- cross scorers

def _sweep(ctx: dict, p: int):
    from mmbench.tasks.retrieval import _TileSweep

    lo, hi, cols = ctx["parts"][p]
    cols = np.arange(ctx["n_txt"]) if cols is None else cols
    return _TileSweep(lo, hi, cols, ctx["ti"], ctx["i_starts"], ctx["t_starts"], ctx["budget"] * 2**20)


def _score_tile(model, ctx: dict):
    from mmbench.tasks.base import as_numpy, check_shape

    i_starts, t_starts, name = ctx["i_starts"], ctx["t_starts"], ctx["name"]

    def score_tile(k: int, m: int) -> np.ndarray:
        s = as_numpy(model.score(ctx["img_blocks"][k], ctx["txt_blocks"][m]), what="score() output", plugin=name)
        return check_shape(s, (i_starts[k + 1] - i_starts[k], t_starts[m + 1] - t_starts[m]),
                           what="score() output", plugin=name)

    return score_tile


def _cross_gt_unit(model, ctx: dict, unit: dict):
    sweep = _sweep(ctx, unit["part"])
    calls = [0]

    def advance(n=1):
        calls[0] += n

    caps, vals = sweep.gt_part(_score_tile(model, ctx), range(unit["k0"], unit["k1"]), advance)
    return caps, vals, calls[0]


def _cross_count_unit(model, ctx: dict, unit: dict) -> dict:
    sweep = _sweep(ctx, unit["part"])
    calls = [0]

    def advance(n=1):
        calls[0] += n

    counter = sweep.count_part(_score_tile(model, ctx), ctx["gt"][unit["part"]], range(unit["k0"], unit["k1"]),
                               advance)
    return {**counter.counts(), "score_calls": np.asarray(calls[0])}


# --------------------------------------------------------------------------- the sharded evaluate

def evaluate_retrieval(model, data, plan: Plan, *, batch_size: int, show_progress: bool = True, name: str = "",
                       ties: str = "pessimistic", memory_budget_mb: float = 512):
    from mmbench.tasks.retrieval import _block_starts, retrieval_result

    _check_ties(ties)
    dual = not hasattr(model, "score")
    budget = float(memory_budget_mb)
    blocks = {}
    for what, items in (("images", data.images), ("texts", data.texts)):
        ctx = {"items": items, "method": f"encode_{what}", "batch_size": batch_size, "desc": f"encode {what}",
               "name": name, "dual": dual}
        units = batch_ranges(len(items), batch_size, plan.shard_size)
        blocks[what] = [b for part in plan.run(plan.stage(f"encode_{what}", _encode_unit, units, ctx)) for b in part]
    n_img, n_txt = len(data.images), len(data.texts)
    ti = check_text_image(data.text_image, n_img, n_txt)
    parts = _parts(n_img, ti, data.folds)
    shard_blocks = None
    if dual:
        img = np.concatenate(blocks["images"]) if blocks["images"] else np.zeros((0, 0), np.float32)
        txt = np.concatenate(blocks["texts"]) if blocks["texts"] else np.zeros((0, 0), np.float32)
        if img.shape[1] != txt.shape[1]:
            raise PluginError(f"{name}: image embeddings have dimension {img.shape[1]} but text "
                              f"embeddings {txt.shape[1]}; a dual encoder needs one shared space")
        ctx = {"img": img, "txt": txt, "ti": ti, "parts": parts, "budget": budget}
        n_blocks = [len(_dual_plan(ctx, p)[0]) for p in range(len(parts))]
        gt_fn, count_fn = _dual_gt_unit, _dual_count_unit
    else:
        i_starts, t_starts = _block_starts(n_img, batch_size), _block_starts(n_txt, batch_size)
        if len(blocks["images"]) != len(i_starts) - 1 or len(blocks["texts"]) != len(t_starts) - 1:
            raise PluginError(f"{name}: the encoders returned a different number of blocks than batches")
        ctx = {"img_blocks": blocks["images"], "txt_blocks": blocks["texts"], "ti": ti, "parts": parts,
               "i_starts": i_starts, "t_starts": t_starts, "n_txt": n_txt, "budget": budget, "name": name}
        n_blocks = [len(_sweep(ctx, p).iblocks) for p in range(len(parts))]
        gt_fn, count_fn = _cross_gt_unit, _cross_count_unit
    if plan.shard_size:  # rows per shard -> whole blocks (cross: one image batch; dual: EmbeddingBlocks.rows)
        rows = _dual_plan(ctx, 0)[0].rows if dual else batch_size
        shard_blocks = max(1, math.ceil(plan.shard_size / max(1, rows)))
    units = _block_units(n_blocks, shard_blocks)
    gt_parts = plan.run(plan.stage("gt", gt_fn, units, ctx))
    score_calls = sum(int(g[2]) for g in gt_parts) if not dual else 0
    gts = []
    for p, (lo, hi, cols) in enumerate(parts):
        width = n_txt if cols is None else len(cols)
        gt = np.empty(width, np.float32)
        seen = np.zeros(width, bool)
        for unit, g in zip(units, gt_parts):
            if unit["part"] == p:
                gt[g[0]] = g[1]
                seen[g[0]] = True
        if not seen.all():
            raise PluginError(f"{name}: sharded run lost the ground-truth scores of {int((~seen).sum())} captions")
        gts.append(gt)
    ctx = {**ctx, "gt": gts}
    counts = plan.run(plan.stage("counts", count_fn, units, ctx))
    if not plan.executor.is_main:
        return None
    results = []
    for p, (lo, hi, cols) in enumerate(parts):
        lti = ti if cols is None else ti[cols] - lo
        counter = _RankCounter(lti, hi - lo, gts[p])
        for unit, c in zip(units, counts):
            if unit["part"] == p:
                c = dict(c)
                score_calls += int(c.pop("score_calls", 0))
                counter.add_counts(c)
        results.append(counter.result(ties))
    it = iter(results)
    res = _assemble(n_img, n_txt, ti, data.folds, lambda lo, hi, t_idx: next(it))
    if not dual:
        res["score_calls"] = score_calls
        res["working_bytes"] = max((_sweep(ctx, p).peak_bytes for p in range(len(parts))), default=0)
    timings = {k.replace("shards.", ""): v for k, v in plan.timings.items()}
    return retrieval_result(data, res, dual, timings, ties)
