"""Evaluation at scale (issue 15): executors, sharded evaluation, the shard cache, resume after kill -9.

The acceptance: a sharded run's record (metrics, CIs, per-sample outcomes, ids, fingerprint) equals the
single-process run's, for a dual encoder, a cross-attention scorer, a captioner and a classifier, under
``torchrun --nproc-per-node 2`` (gloo), ``--executor ray`` (local, 2 workers) and the local executor with a
cache; a run killed at several points and started again gives the identical record; a corrupted cache entry
is detected and recomputed, never used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench.execution.cache import Cache, Uncacheable, from_bytes, to_bytes, work_key
from mmbench.execution.executors import LocalExecutor, contiguous_share
from mmbench.execution.sharded import Plan, batch_ranges
from mmbench.runner import EvalConfig, run_eval

#: what may differ between two runs of the same job: identity, wall clock, how it was executed
VOLATILE = ("run_id", "created", "timings", "execution", "environment", "config")


def comparable(rec) -> dict:
    d = rec if isinstance(rec, dict) else rec.to_dict()
    out = {k: v for k, v in d.items() if k not in VOLATILE}
    # a cross scorer's score() call count and buffer size depend on how the tiles were cut and cached
    out["details"] = {k: v for k, v in d.get("details", {}).items() if k not in ("score_calls", "score_buffer_mb")}
    out["config"] = {k: v for k, v in d.get("config", {}).items() if k not in ("isolate", "timeout")}
    return out


# --------------------------------------------------------------------------- the cache


def test_tree_codec_round_trips_every_cacheable_type():
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.arange(4, dtype=np.int64),
             "t": torch.tensor([1.5, 2.0, -3.25], dtype=torch.bfloat16), "h": torch.ones(2, 2, dtype=torch.float16),
             "tt": (torch.arange(3, dtype=torch.float64), [1, 2.5, "x", None, True]),
             "s": np.float32(3.25), "z": np.asarray(7), "nan": float("nan"), "b": np.array([True, False])}
    out = from_bytes(to_bytes(value))
    assert out["a"].dtype == np.float32 and np.array_equal(out["a"], value["a"])
    assert out["i"].dtype == np.int64 and out["i"].tolist() == [0, 1, 2, 3]
    assert out["t"].dtype == torch.bfloat16 and torch.equal(out["t"], value["t"])
    assert out["h"].dtype == torch.float16 and torch.equal(out["h"], value["h"])
    assert isinstance(out["tt"], tuple) and torch.equal(out["tt"][0], value["tt"][0])
    assert out["tt"][1] == [1, 2.5, "x", None, True]
    assert out["z"].shape == () and int(out["z"]) == 7
    assert type(out["s"]) is np.float32 and out["s"] == np.float32(3.25)
    assert np.isnan(out["nan"]) and out["b"].tolist() == [True, False]
    for bad in ({"m": object()}, {1: 2}, np.array(["x"], dtype=object)):
        with pytest.raises(Uncacheable):
            to_bytes(bad)


def test_cache_hits_verify_the_checksum_and_corruption_is_recomputed_never_used(tmp_path):
    c = Cache(tmp_path)
    k = work_key(stage="s", unit={"lo": 0, "hi": 8})
    assert c.get(k) == (False, None) and c.stats.misses == 1
    c.put(k, [np.arange(10.0)], {"stage": "s"})
    hit, v = c.get(k)
    assert hit and v[0].tolist() == list(np.arange(10.0))
    npz = next(tmp_path.glob("??/*.npz"))
    # a flipped byte: detected, counted, removed
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    assert c.get(k) == (False, None)
    assert c.stats.corrupt == 1 and not npz.exists() and not npz.with_suffix(".json").exists()
    assert "corrupted" in c.warnings[0]
    # a truncated entry of the same size class, and a description pointing at another key
    c.put(k, [np.arange(10.0)], {"stage": "s"})
    npz.write_bytes(npz.read_bytes()[:40])
    assert c.get(k) == (False, None) and c.stats.corrupt == 2
    c.put(k, [np.arange(10.0)], {"stage": "s"})
    meta = json.loads(npz.with_suffix(".json").read_text())
    npz.with_suffix(".json").write_text(json.dumps({**meta, "key": "0" * 64}))
    assert c.get(k) == (False, None) and c.stats.corrupt == 3


def test_an_interrupted_write_leaves_no_entry_and_prune_removes_the_orphan(tmp_path):
    c = Cache(tmp_path)
    k = work_key(stage="s", unit={"lo": 0, "hi": 8})
    c.put(k, [np.arange(3)], {"stage": "s", "plugin": "p"})
    npz = next(tmp_path.glob("??/*.npz"))
    npz.with_suffix(".json").unlink()  # killed after the data, before its description
    assert c.get(k) == (False, None) and c.stats.corrupt == 0
    assert c.orphans() == [npz]
    c.put(work_key(stage="t"), [1], {"stage": "t", "plugin": "q"})
    removed, freed = c.prune()  # no criterion: only the orphan goes
    assert removed == 0 and freed > 0
    assert not npz.exists() and len(c.entries()) == 1
    assert c.prune(plugin="other")[0] == 0 and c.prune(plugin="q")[0] == 1 and c.entries() == []


def test_every_part_of_the_key_changes_it():
    base = dict(plugin="sgraf", plugin_version="0.1", options={"checkpoint": "a"}, checkpoint_sha256="ab",
                seed=0, fit={}, data_fingerprint="f", split="test", stage="gt", unit={"lo": 0, "hi": 64},
                batch_size=64, task_options={"ties": "pessimistic"})
    keys = {work_key(**base)}
    for k, v in (("checkpoint_sha256", "ac"), ("options", {"checkpoint": "b"}), ("data_fingerprint", "g"),
                 ("split", "val"), ("unit", {"lo": 0, "hi": 32}), ("plugin_version", "0.2"), ("seed", 1),
                 ("batch_size", 32), ("fit", {"train": "x"}), ("stage", "counts")):
        keys.add(work_key(**{**base, k: v}))
    assert len(keys) == 11


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize("n,bs,size", [(103, 8, None), (1000, 64, None), (5, 16, None), (103, 8, 20), (64, 8, 8)])
def test_shards_are_whole_batches_cut_from_the_data_alone(n, bs, size):
    units = batch_ranges(n, bs, size)
    assert units[0]["lo"] == 0 and units[-1]["hi"] == n
    assert all(a["hi"] == b["lo"] for a, b in zip(units, units[1:]))
    assert all(u["lo"] % bs == 0 for u in units)
    assert len(units) <= 16 or size
    if size:
        assert all(u["hi"] - u["lo"] == -(-size // bs) * bs for u in units[:-1])


def test_shards_follow_a_kinds_own_batches():
    """A kind whose evaluate loop batches by something else (grounding: a sentence's phrases stay together) gets
    shards of whole such batches, and each shard calls the model on exactly those batches."""
    from mmbench.execution.sharded import _outputs_unit

    bounds = [(0, 3), (3, 5), (5, 6), (6, 9)]
    units = batch_ranges(9, 1, None, target=2, bounds=bounds)
    assert units == [{"lo": 0, "hi": 5}, {"lo": 5, "hi": 9}]
    assert batch_ranges(9, 1, 3, bounds=bounds) == [{"lo": 0, "hi": 6}, {"lo": 6, "hi": 9}]  # 3 batches each
    calls = []

    class M:
        def predict(self, xs):
            calls.append(list(xs))
            return xs

    ctx = {"items": list(range(9)), "method": "predict", "batch_size": 1, "bounds": bounds}
    assert _outputs_unit(M(), ctx, units[1]) == [[5], [6, 7, 8]]
    assert calls == [[5], [6, 7, 8]]


@pytest.mark.parametrize("n", [0, 1, 7, 16, 33])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_each_rank_takes_a_contiguous_share_and_every_unit_runs_once(n, world):
    shares = [contiguous_share(n, world, r) for r in range(world)]
    covered = [i for lo, hi in shares for i in range(lo, hi)]
    assert covered == list(range(n))
    sizes = [hi - lo for lo, hi in shares]
    assert max(sizes) - min(sizes) <= 1


# --------------------------------------------------------------------------- retrieval: identical ranks, ties included


class _Dual:
    """Embeddings with exact ties (duplicated captions and images) and near-ties."""

    def __init__(self, img, txt):
        self.img, self.txt = img, txt

    def encode_images(self, images):
        return self.img[[int(im.id) for im in images]]

    def encode_texts(self, texts):
        return self.txt[[int(t.split()[-1]) for t in texts]]


class _Cross(_Dual):
    def encode_images(self, images):  # per-item blocks that are not arrays: (ids, features)
        ids = [int(im.id) for im in images]
        return {"ids": ids, "f": torch.from_numpy(self.img[ids])}

    def encode_texts(self, texts):
        ids = [int(t.split()[-1]) for t in texts]
        return (ids, torch.from_numpy(self.txt[ids]))

    def score(self, ib, tb):
        s = (ib["f"] @ tb[1].T).numpy()
        return np.round(s, 1)  # coarse scores: many exact ties


def _retrieval_data(n_img, folds=1, seed=0):
    from mmbench.tasks.base import DatasetMeta, ImageItem
    from mmbench.tasks.retrieval import RetrievalData

    rng = np.random.default_rng(seed)
    img = rng.standard_normal((n_img, 8)).astype(np.float32)
    img[3] = img[2]  # duplicate images
    txt = np.repeat(img, 5, 0) + 0.8 * rng.standard_normal((n_img * 5, 8)).astype(np.float32)
    txt[7] = txt[12]  # duplicate captions of different images
    txt[20:25] = txt[20]  # five identical captions
    data = RetrievalData(images=[ImageItem(id=str(i)) for i in range(n_img)],
                         texts=[f"caption {j}" for j in range(n_img * 5)],
                         text_image=np.arange(n_img * 5) // 5, meta=DatasetMeta(name="synthetic", split="test", task="retrieval"), folds=folds)
    return data, img, txt


@pytest.mark.parametrize("cross", [False, True], ids=["dual", "cross"])
@pytest.mark.parametrize("folds", [1, 2])
@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_sharded_retrieval_ranks_equal_the_single_process_ranks_ties_included(cross, folds, ties, tmp_path):
    from mmbench.tasks import get_kind

    kind = get_kind("retrieval")
    data, img, txt = _retrieval_data(150, folds)
    model = (_Cross if cross else _Dual)(img, txt)
    opts = dict(batch_size=16, show_progress=False, name="m", ties=ties, memory_budget_mb=0.02)
    single = kind.evaluate(model, data, **opts)
    assert single.details["i2t_tied_queries"] + single.details["t2i_tied_queries"] > 0  # the case has ties
    for shard_size, cache in ((None, None), (48, None), (16, Cache(tmp_path)), (16, Cache(tmp_path))):
        ex = LocalExecutor()
        ex.cache = cache
        ex.progress = False
        ex.start(model, None)
        plan = Plan(ex, cache, {"plugin": "m", "shard": shard_size, "ties": ties, "folds": folds}, shard_size)
        sharded = kind.evaluate_sharded(model, data, plan, **opts)
        assert sharded.metrics == single.metrics
        assert sharded.per_sample == single.per_sample and sharded.sample_ids == single.sample_ids
        for k in ("i2t_tied_queries", "t2i_tied_queries", "folds", "scorer"):
            assert sharded.details[k] == single.details[k]
        assert ex.shards["counts"] > 1  # the counting was really cut
    if cross:
        # the repeated run hit every shard: dict/tuple blocks holding tensors are cacheable
        assert cache.stats.misses == 0 and cache.stats.hits > 0 and not cache.stats.uncacheable


def test_dual_retrieval_single_process_cuts_the_same_blocks_as_a_shard():
    """ranks_from_embeddings and the sharded count use one block plan; blocks are <= 1024 rows."""
    from mmbench.metrics.retrieval import EmbeddingBlocks, ranks_from_embeddings, ranks_from_sims

    rng = np.random.default_rng(3)
    img = rng.standard_normal((300, 16)).astype(np.float32)
    txt = rng.standard_normal((1500, 16)).astype(np.float32)
    ti = np.arange(1500) // 5
    plan = EmbeddingBlocks(300, 1500, 16, ti, memory_budget_mb=0.5)
    assert len(plan) > 1 and plan.rows % 64 == 0
    assert EmbeddingBlocks(5000, 25000, 1024, np.arange(25000) // 5).rows == 1024
    got = ranks_from_embeddings(img, txt, ti, memory_budget_mb=0.5)
    want = ranks_from_sims(img @ txt.T, ti)
    assert all(np.array_equal(a, b) for a, b in zip(got[:2], want[:2]))


# --------------------------------------------------------------------------- whole runs, local executor + cache


@pytest.mark.parametrize("plugin,batch,topts", [("cca", 16, {"memory_budget_mb": "0.2"}), ("colour-box", 16, {}),
                                                ("sk-early-fusion", 16, {}), ("nn-caption", 32, {})])
def test_local_sharded_and_cached_runs_give_the_single_process_record(plugin, batch, topts, tmp_path):
    cfg = dict(bootstrap=50, show_progress=False, batch_size=batch, task_options=topts)
    single = run_eval(plugin, "demo", EvalConfig(**cfg))
    first = run_eval(plugin, "demo", EvalConfig(**cfg, cache=str(tmp_path), shard_size=batch * 2))
    again = run_eval(plugin, "demo", EvalConfig(**cfg, cache=str(tmp_path), shard_size=batch * 2))
    assert comparable(first) == comparable(single) == comparable(again)
    assert first.execution["cache"]["hits"] == 0 and first.execution["cache"]["misses"] > 1
    assert again.execution["cache"]["misses"] == 0 and again.execution["cache"]["hits"] == \
        first.execution["cache"]["misses"]
    assert single.execution == {} and first.dataset["fingerprint"] == single.dataset["fingerprint"]


def test_a_changed_option_never_hits_a_stale_entry(tmp_path):
    cfg = dict(bootstrap=0, show_progress=False, batch_size=16, cache=str(tmp_path))
    run_eval("colour-box", "demo", EvalConfig(**cfg))
    other = run_eval("colour-box", "demo", EvalConfig(**cfg, options={"min_area": "80"}))
    assert other.execution["cache"]["hits"] == 0
    assert comparable(other) == comparable(run_eval("colour-box", "demo", EvalConfig(
        bootstrap=0, show_progress=False, batch_size=16, options={"min_area": "80"})))


def test_a_model_that_changed_without_its_key_never_uses_the_old_shards(tmp_path, monkeypatch):
    """The first shard is recomputed and compared before any entry is used (plugin code edited, no version bump)."""
    from mmbench.baselines import colour_box

    cfg = dict(bootstrap=0, show_progress=False, batch_size=16, cache=str(tmp_path))
    run_eval("colour-box", "demo", EvalConfig(**cfg))
    orig = colour_box.ColourBoxGrounder.predict

    def shifted(self, samples):
        return [np.asarray(b, dtype=np.float64) + 7.0 for b in orig(self, samples)]

    monkeypatch.setattr(colour_box.ColourBoxGrounder, "predict", shifted)
    changed = run_eval("colour-box", "demo", EvalConfig(**cfg))
    fresh = run_eval("colour-box", "demo", EvalConfig(bootstrap=0, show_progress=False, batch_size=16))
    assert comparable(changed) == comparable(fresh)
    assert changed.execution["cache"]["hits"] == 0
    assert "differs from the model's output" in changed.execution["cache"]["warnings"][0]
    again = run_eval("colour-box", "demo", EvalConfig(**cfg))  # the rewritten entries now serve the new code
    assert again.execution["cache"]["misses"] == 0 and comparable(again) == comparable(fresh)


# --------------------------------------------------------------------------- torchrun and Ray

#: a dual encoder and a cross-attention scorer (a small budget, so the counting is cut into several blocks),
#: then a captioner and a classifier; --limit keeps the CPU run short (the same limit on both sides)
PLUGINS = (("retrieval", ["cca", "sgraf"], ["-T", "memory_budget_mb=0.05", "--limit", "96"]),
           ("others", ["nn-caption", "sk-early-fusion"], ["--limit", "96"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text())
        out[d["plugin"]["name"]] = d
    return out


def _single(plugins, topts, tmp_path) -> dict:
    out = tmp_path / "single"
    cmd = [sys.executable, "-m", "mmbench.cli", "eval", *sum((["-p", p] for p in plugins), []), "-d", "demo",
           "--batch-size", "16", "--bootstrap", "50", "--no-progress", "--out", str(out), *topts]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return _records(out)


@pytest.mark.slow
@pytest.mark.parametrize("group", [g[0] for g in PLUGINS])
def test_torchrun_two_ranks_gloo_give_the_single_process_records(group, tmp_path):
    _, plugins, topts = next(g for g in PLUGINS if g[0] == group)
    out = tmp_path / "torch"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "mmbench.cli", "eval", *sum((["-p", p] for p in plugins), []), "-d", "demo",
           "--executor", "torch", "--batch-size", "16", "--bootstrap", "50", "--no-progress", "--out", str(out), *topts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = _records(out)
    want = _single(plugins, topts, tmp_path)
    assert sorted(got) == sorted(plugins)  # rank 0 alone wrote them, once each
    for p in plugins:
        assert got[p]["status"] == "ok", got[p]["error"]
        assert comparable(got[p]) == comparable(want[p]), p
        ex = got[p]["execution"]
        assert ex["executor"] == "torch" and ex["world_size"] == 2 and ex["backend"] == "gloo"
        assert max(ex["shards"].values()) > 1


@pytest.mark.slow
def test_ray_two_local_workers_give_the_single_process_records(tmp_path):
    pytest.importorskip("ray")
    plugins = ["cca", "sgraf", "nn-caption", "sk-early-fusion"]  # one Ray start for the four kinds of model
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "mmbench.cli", "eval", *sum((["-p", p] for p in plugins), []), "-d", "demo",
           "--executor", "ray", "--workers", "2", "--batch-size", "16", "--bootstrap", "50", "--no-progress",
           "--no-isolate", "--limit", "96", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = _records(out)
    want = _single(plugins, ["--limit", "96"], tmp_path)
    for p in plugins:
        assert got[p]["status"] == "ok", got[p]["error"]
        assert comparable(got[p]) == comparable(want[p]), p
        ex = got[p]["execution"]
        assert ex["executor"] == "ray" and ex["world_size"] == 2 and max(ex["shards"].values()) > 1


# --------------------------------------------------------------------------- kill -9, then resume

_SLOW_CHILD = """
import sys, time
from mmbench.baselines import cca, colour_box
def slow(fn):
    def wrapped(self, *a, **k):
        time.sleep(0.15)
        return fn(self, *a, **k)
    return wrapped
colour_box.ColourBoxGrounder.predict = slow(colour_box.ColourBoxGrounder.predict)
cca.CCARetrieval.encode_images = slow(cca.CCARetrieval.encode_images)
cca.CCARetrieval.encode_texts = slow(cca.CCARetrieval.encode_texts)
from mmbench.cli import main
sys.argv = ["mmbench"] + sys.argv[1:]
main()
"""


def _entries(cache: Path) -> int:
    return len(list(cache.glob("??/*.json")))


def _run_child(args, cache: Path, out: Path, kill_after: int | None):
    cmd = [sys.executable, "-c", _SLOW_CHILD, "eval", *args, "--cache", str(cache), "--out", str(out),
           "--bootstrap", "50", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    if kill_after is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        return
    deadline = time.time() + 300
    while _entries(cache) < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its isolated child, mid-write if need be
    proc.wait()
    assert not list(out.glob("*.json")), "a killed run must not leave a record"


@pytest.mark.slow
@pytest.mark.parametrize("args,kills", [
    (["-p", "colour-box", "-d", "demo", "--batch-size", "8", "--shard-size", "8"], (1, 9, 20)),
    (["-p", "cca", "-d", "demo", "--batch-size", "16", "--shard-size", "16", "-T", "memory_budget_mb=0.2"],
     (2, 40)),
], ids=["grounding", "retrieval"])
def test_a_run_killed_at_any_point_resumes_to_the_identical_record(args, kills, tmp_path):
    ref_out = tmp_path / "uninterrupted"
    _run_child(args, tmp_path / "ref-cache", ref_out, None)
    reference = _records(ref_out)
    cache = tmp_path / "cache"
    before = 0
    for k in kills:
        _run_child(args, cache, tmp_path / f"killed{k}", k)
        n = _entries(cache)
        assert n >= before  # finished shards are kept
        before = n
    out = tmp_path / "resumed"
    _run_child(args, cache, out, None)
    resumed = _records(out)
    (name, want), = reference.items()
    got = resumed[name]
    assert comparable(got) == comparable(want)
    assert got["execution"]["cache"]["hits"] >= before - 1 > 0  # finished shards were reused, not redone
    assert got["execution"]["cache"]["misses"] + got["execution"]["cache"]["hits"] == \
        want["execution"]["cache"]["misses"]


def test_cache_ls_and_prune_commands(tmp_path):
    from typer.testing import CliRunner

    from mmbench.cli import app

    cache = tmp_path / "cache"
    rec = run_eval("colour-box", "demo", EvalConfig(bootstrap=0, show_progress=False, batch_size=32, cache=str(cache)))
    n = rec.execution["shards"]["outputs"]
    assert n > 1
    runner = CliRunner()
    r = runner.invoke(app, ["cache", "ls", "--cache", str(cache), "--json"])
    assert r.exit_code == 0, r.output
    (group,) = json.loads(r.output)["groups"]
    assert (group["plugin"], group["dataset"], group["split"], group["stage"], group["entries"]) == \
        ("colour-box", "demo", "test", "outputs", n)
    r = runner.invoke(app, ["cache", "ls", "--cache", str(cache)])
    assert r.exit_code == 0 and "colour-box" in r.output
    assert runner.invoke(app, ["cache", "prune", "--cache", str(cache), "--plugin", "other", "--json"]).output \
        .strip().startswith('{\n  "removed": 0')
    r = runner.invoke(app, ["cache", "prune", "--cache", str(cache), "--older-than", "0", "--json"])
    assert json.loads(r.output)["removed"] == n and not list(cache.glob("??/*.npz"))
    r = runner.invoke(app, ["cache", "ls", "--cache", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "is not a folder" in r.output
