"""`mmbench score` writes run records through the task kinds: `mmbench leaderboard` and `mmbench compare`
read them, and reference files are parsed by the dataset parsers `mmbench eval` uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench import records
from mmbench.cli import app
from mmbench.metrics.bootstrap import all_metric_values, bootstrap_cis
from mmbench.metrics.captioning import caption_scores
from mmbench.metrics.retrieval import retrieval_metrics
from mmbench.tasks import get_kind

runner = CliRunner()


def _run(*args, code=0):
    r = runner.invoke(app, list(map(str, args)))
    assert r.exit_code == code, r.output
    return r


def _record(*args) -> dict:
    return json.loads(_run(*args, "--json").stdout)


# ----------------------------------------------------------------------------------- captions


@pytest.fixture(scope="module")
def coco(shared_data):
    """The real COCO val2017 captions file and two prediction files (model A, model B) on 40 of its images."""
    path = shared_data / "coco_captions_val2017" / "captions_val2017.json"
    data = json.loads(path.read_text())
    by_img: dict = {}
    for a in data["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(by_img)[:40]
    # A: the right caption for the first 20 images, a neighbour's for the rest; B: right for the first 10
    a = [{"image_id": i, "caption": by_img[i][0] if k < 20 else by_img[ids[(k + 1) % 40]][0]}
         for k, i in enumerate(ids)]
    b = [{"image_id": i, "caption": by_img[i][1] if k < 10 else by_img[ids[(k + 3) % 40]][1]}
         for k, i in enumerate(ids)]
    return path, by_img, ids, a, b


def test_caption_record_is_the_kinds(tmp_path, coco):
    path, by_img, ids, a, _ = coco
    (tmp_path / "model_a.json").write_text(json.dumps(a))
    rec = _record("score", "captions", "--refs", path, "--preds", tmp_path / "model_a.json", "--no-meteor",
                  "--bootstrap", "100", "--seed", "3", "--out", tmp_path / "runs")
    want = caption_scores({str(i): by_img[i] for i in ids}, {str(p["image_id"]): p["caption"] for p in a},
                          metrics=("bleu", "rouge", "cider", "spice"))
    assert rec["metrics"] == want["metrics"] and rec["per_sample"] == want["per_image"]
    assert rec["task"] == "captioning" and rec["status"] == "ok" and rec["schema"] == records.SCHEMA
    assert rec["plugin"] == {"name": "model_a", "package": "", "version": "", "options": {}}
    ds = rec["dataset"]
    assert (ds["name"], ds["split"], ds["protocol"], ds["n_samples"]) == ("coco_captions", "val", "all-captions", 40)
    assert ds["data_fingerprint"] == records.sha256_file(path) and ds["fingerprint"]
    assert rec["sample_ids"] == {"image": [str(i) for i in ids]}
    assert rec["per_sample_units"] == {k: "image" for k in want["per_image"]}
    assert rec["details"]["tokenizer"] == "python" and rec["details"]["metrics_impl"] == "fast"
    assert rec["config"]["task_options"] == {"tokenizer": "python", "metrics_impl": "fast", "meteor_jobs": 0}
    assert rec["config"]["inputs"]["preds"]["sha256"] == records.sha256_file(tmp_path / "model_a.json")
    assert (rec["config"]["seed"], rec["config"]["bootstrap"]) == (3, 100)
    # CIs are the kind's bootstrap of the record's per-sample data
    kind = get_kind("captioning")
    cis = bootstrap_cis(kind, rec["per_sample"], n_resamples=100, seed=3)
    assert rec["ci"] == {m: cis[m] for m in rec["metrics"]}
    assert all_metric_values(kind, rec["per_sample"])["CIDEr"] == pytest.approx(rec["metrics"]["CIDEr"])
    # the file on disk is that record, written atomically (no temporary file left)
    saved = records.load(rec["path"])
    assert saved.metrics == rec["metrics"] and saved.ci == rec["ci"] and saved.run_id == rec["run_id"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [Path(rec["path"]).name]


def test_leaderboard_and_compare_read_scored_captions(tmp_path, coco):
    path, _, _, a, b = coco
    (tmp_path / "model_a.json").write_text(json.dumps(a))
    (tmp_path / "model_b.json").write_text(json.dumps(b))
    ra = _record("score", "captions", "--refs", path, "--preds", tmp_path / "model_a.json", "--no-meteor",
                 "--bootstrap", "50", "--out", tmp_path / "A")
    rb = _record("score", "captions", "--refs", path, "--preds", tmp_path / "model_b.json", "--no-meteor",
                 "--bootstrap", "50", "--out", tmp_path / "B")
    assert ra["metrics"]["CIDEr"] > rb["metrics"]["CIDEr"]
    assert ra["dataset"]["data_fingerprint"] == rb["dataset"]["data_fingerprint"]
    # leaderboard: one table, both models, their numbers
    lb = json.loads(_run("leaderboard", tmp_path / "A", tmp_path / "B", "--json").stdout)
    assert len(lb) == 1
    rows = {r["plugin"]: r for r in lb[0]["rows"]}
    assert set(rows) == {"model_a", "model_b"}
    assert rows["model_a"]["CIDEr"] == ra["metrics"]["CIDEr"] and rows["model_b"]["Bleu_4"] == rb["metrics"]["Bleu_4"]
    table = _run("leaderboard", tmp_path / "A", tmp_path / "B").stdout
    assert "model_a" in table and "coco_captions" in table
    # compare two models on the same references: paired over the 40 images, the gate sees B's drop
    r = _run("compare", ra["path"], rb["path"], "--pair-by", "samples", "--gate", "CIDEr drop<=100",
             "--bootstrap", "200", "--json")
    rep = json.loads(r.stdout)
    cider = next(m for p in rep["runs"] for m in p["metrics"] if m["metric"] == "CIDEr")
    assert cider["baseline"] == ra["metrics"]["CIDEr"] and cider["new"] == rb["metrics"]["CIDEr"]
    assert cider["delta"] == pytest.approx(rb["metrics"]["CIDEr"] - ra["metrics"]["CIDEr"])
    assert cider["n"] == 40 and rep["runs"][0]["n_shared"] == 40 and cider["p_value"] is not None
    r = _run("compare", ra["path"], rb["path"], "--pair-by", "samples", "--gate", "CIDEr drop<=0.01",
             "--bootstrap", "100", code=1)
    assert "CIDEr" in r.output
    # a regression check of one model (same --name): new outputs on the same references pair by plugin
    _record("score", "captions", "--refs", path, "--preds", tmp_path / "model_a.json", "--no-meteor",
            "--name", "mine", "--out", tmp_path / "base")
    _record("score", "captions", "--refs", path, "--preds", tmp_path / "model_b.json", "--no-meteor",
            "--name", "mine", "--out", tmp_path / "new")
    _run("compare", tmp_path / "base", tmp_path / "new", "--gate", "CIDEr drop<=0.01", "--bootstrap", "0", code=1)
    _run("compare", tmp_path / "base", tmp_path / "base", "--gate", "CIDEr drop<=0.01", "--bootstrap", "0")


def test_compare_refuses_mismatched_caption_conventions(tmp_path, coco):
    path, _, _, a, _ = coco
    (tmp_path / "m.json").write_text(json.dumps(a))
    _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--no-meteor", "--out", tmp_path / "py")
    _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--no-meteor", "--tokenizer",
            "whitespace", "--out", tmp_path / "ws")
    r = _run("compare", tmp_path / "py", tmp_path / "ws", "--bootstrap", "0", code=2)
    assert "details.tokenizer" in r.output


def test_metrics_impl(tmp_path, coco):
    path, _, _, a, _ = coco
    (tmp_path / "m.json").write_text(json.dumps(a[15:27]))  # 5 right captions, 7 wrong ones
    fast = _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--no-meteor",
                   "--out", tmp_path / "runs")
    ref = _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--metrics-impl", "reference",
                  "--no-meteor", "--out", tmp_path / "runs")
    assert fast["details"]["metrics_impl"] == "fast" and ref["details"]["metrics_impl"] == "reference"
    assert ref["config"]["task_options"]["metrics_impl"] == "reference"
    assert fast["metrics"] == ref["metrics"] and set(fast["metrics"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4",
                                                                           "ROUGE_L", "CIDEr"}
    r = _run("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--metrics-impl", "turbo",
             "--out", tmp_path / "runs", code=2)
    assert "metrics_impl" in r.output and "fast" in r.output


def test_meteor_jobs_reach_caption_scores(tmp_path, coco, monkeypatch):
    import mmbench.metrics.captioning as mc
    from mmbench.commands.score import score_captions

    path, _, _, a, _ = coco
    (tmp_path / "m.json").write_text(json.dumps(a[:5]))
    seen = {}
    real = mc.caption_scores

    def spy(refs, cands, **kw):
        seen.update(kw)
        return real(refs, cands, **dict(kw, metrics=("bleu",)))

    monkeypatch.setattr(mc, "caption_scores", spy)
    rec = score_captions(path, tmp_path / "m.json", metrics_impl="reference", meteor_jobs=3)
    assert seen["metrics_impl"] == "reference" and seen["meteor_jobs"] == 3 and seen["tokenizer"] == "python"
    assert rec.details["meteor_jobs"] == 3 and rec.details["metrics_impl"] == "reference"


@pytest.mark.java
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime")
def test_meteor_jobs(tmp_path, coco):
    path, _, _, a, _ = coco
    (tmp_path / "m.json").write_text(json.dumps(a[15:27]))
    fast = _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--no-meteor",
                   "--out", tmp_path / "runs")
    # METEOR over one JVM (--meteor-jobs 1), recorded with its settings
    met = _record("score", "captions", "--refs", path, "--preds", tmp_path / "m.json", "--meteor-jobs", "1",
                  "--out", tmp_path / "runs")
    assert met["details"]["meteor_jobs"] == 1 and met["config"]["task_options"]["meteor_jobs"] == 1
    assert "METEOR" not in met["details"]["unavailable"]
    assert 0 < met["metrics"]["METEOR"] < 1 and len(met["per_sample"]["METEOR"]) == 12
    assert {k: v for k, v in met["metrics"].items() if k != "METEOR"} == fast["metrics"]


# ----------------------------------------------------------------------------------- Karpathy references


def _karpathy(tmp_path, name="dataset_flickr30k.json"):
    images = [{"filename": f"{1000 + k}.jpg", "imgid": k, "split": "test" if k < 4 else "train",
               "sentences": [{"raw": f"a photo number {k} of a dog ", "tokens": []},
                             {"raw": f"a dog in picture {k}", "tokens": []}]} for k in range(6)]
    images.append({"filename": "tok.jpg", "imgid": 6, "split": "val",
                   "sentences": [{"tokens": ["only", "tokens", "here"]}]})
    p = tmp_path / name
    p.write_text(json.dumps({"dataset": "flickr30k", "images": images}))
    return p


def test_karpathy_refs_use_the_eval_parser_and_its_ids(tmp_path):
    from mmbench.datasets.karpathy import parse_karpathy

    refs = _karpathy(tmp_path)
    # results files name Flickr images by file name, its stem or the Karpathy imgid: all resolve to eval's id
    preds = [{"image_id": "1000.jpg", "caption": "a photo number 0 of a dog"},
             {"image_id": 1001, "caption": "a dog in picture 1"},
             {"image_id": 2, "caption": "a cat"}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    rec = _record("score", "captions", "--refs", refs, "--preds", tmp_path / "p.json", "--no-meteor",
                  "--out", tmp_path / "runs")
    eval_ids = {e["id"] for e in parse_karpathy(refs, dataset="flickr30k", layout="")}
    assert rec["sample_ids"]["image"] == ["1000.jpg", "1001.jpg", "1002.jpg"] and set(rec["sample_ids"]["image"]) <= eval_ids
    assert (rec["dataset"]["name"], rec["dataset"]["split"]) == ("flickr30k", "test")
    want = caption_scores({"1000.jpg": ["a photo number 0 of a dog", "a dog in picture 0"],
                           "1001.jpg": ["a photo number 1 of a dog", "a dog in picture 1"],
                           "1002.jpg": ["a photo number 2 of a dog", "a dog in picture 2"]},
                          {"1000.jpg": preds[0]["caption"], "1001.jpg": preds[1]["caption"], "1002.jpg": "a cat"},
                          metrics=("bleu", "rouge", "cider"))
    assert rec["metrics"] == want["metrics"]
    # --split selects the images; a caption given only as tokens is read as eval reads it
    (tmp_path / "v.json").write_text(json.dumps([{"image_id": "tok", "caption": "only tokens here"}]))
    rec = _record("score", "captions", "--refs", refs, "--preds", tmp_path / "v.json", "--split", "val",
                  "--no-meteor", "--out", tmp_path / "runs")
    assert rec["metrics"]["Bleu_1"] == pytest.approx(1.0) and rec["dataset"]["split"] == "val"
    # an image of another split is not a reference of this one
    r = _run("score", "captions", "--refs", refs, "--preds", tmp_path / "v.json", "--no-meteor",
             "--out", tmp_path / "runs", code=2)
    assert "no references" in r.output and "'tok'" in r.output
    r = _run("score", "captions", "--refs", refs, "--preds", tmp_path / "v.json", "--split", "restval",
             "--out", tmp_path / "runs", code=2)
    assert "split" in r.output and "restval" in r.output and "'test'" in r.output
    # one image named twice (by file name and by stem) is a duplicate prediction
    (tmp_path / "d.json").write_text(json.dumps([{"image_id": "1000.jpg", "caption": "a"},
                                                 {"image_id": 1000, "caption": "b"}]))
    r = _run("score", "captions", "--refs", refs, "--preds", tmp_path / "d.json", "--out", tmp_path / "runs", code=2)
    assert "more than one caption" in r.output


def test_karpathy_bad_entries_name_file_and_field(tmp_path):
    p = tmp_path / "dataset_coco.json"
    p.write_text(json.dumps({"images": [{"filename": "a.jpg", "cocoid": 5, "sentences": [{"raw": "x"}]}]}))
    (tmp_path / "p.json").write_text(json.dumps([{"image_id": 5, "caption": "x"}]))
    r = _run("score", "captions", "--refs", p, "--preds", tmp_path / "p.json", "--out", tmp_path / "runs", code=2)
    assert "dataset_coco.json" in r.output and "'split'" in r.output
    p.write_text(json.dumps({"images": [{"filename": "a.jpg", "cocoid": 5, "split": "test", "sentences": [{}]}]}))
    r = _run("score", "captions", "--refs", p, "--preds", tmp_path / "p.json", "--out", tmp_path / "runs", code=2)
    assert "sentences[0]" in r.output and "raw" in r.output
    p.write_text(json.dumps({"something": []}))
    r = _run("score", "captions", "--refs", p, "--preds", tmp_path / "p.json", "--out", tmp_path / "runs", code=2)
    assert "unrecognised references file" in r.output


# ----------------------------------------------------------------------------------- retrieval, grounding, classification


def test_retrieval_records_compare_by_samples(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((30, 8)).astype(np.float32)
    txt = (np.repeat(img, 5, 0) + rng.standard_normal((150, 8))).astype(np.float32)
    good, bad = img @ txt.T, img @ txt.T + 3 * rng.standard_normal((30, 150)).astype(np.float32)
    np.save(tmp_path / "good.npy", good)
    np.save(tmp_path / "bad.npy", bad)
    rg = _record("score", "retrieval", "--sims", tmp_path / "good.npy", "--bootstrap", "50", "--out", tmp_path / "g")
    rb = _record("score", "retrieval", "--sims", tmp_path / "bad.npy", "--bootstrap", "50", "--out", tmp_path / "b")
    ti = np.arange(150) // 5
    assert rg["metrics"] == retrieval_metrics(good, ti)["metrics"]
    assert rg["sample_ids"]["image"] == [str(i) for i in range(30)] and len(rg["sample_ids"]["caption"]) == 150
    assert rg["per_sample_units"] == {"i2t_rank": "image", "t2i_rank": "caption", "t2i_image": "caption"}
    assert rg["dataset"]["data_fingerprint"] == rb["dataset"]["data_fingerprint"]
    assert (rg["dataset"]["name"], rg["dataset"]["protocol"]) == ("custom", "custom") and rg["plugin"]["name"] == "good"
    assert rg["config"]["task_options"] == {"ties": "pessimistic", "memory_budget_mb": 512.0}
    lb = json.loads(_run("leaderboard", tmp_path / "g", tmp_path / "b", "--json").stdout)
    assert {r["plugin"]: r["rsum"] for r in lb[0]["rows"]} == {"good": rg["metrics"]["rsum"],
                                                                "bad": rb["metrics"]["rsum"]}
    r = _run("compare", rg["path"], rb["path"], "--pair-by", "samples", "--gate", "rsum no-sig-drop p<0.05",
             "--bootstrap", "200", code=1)
    assert "rsum" in r.output
    _run("compare", rg["path"], rb["path"], "--pair-by", "samples", "--gate", "rsum drop<=1000", "--bootstrap", "100")
    # another caption layout is other reference data: refused
    (tmp_path / "idx.txt").write_text("\n".join(str(min(j // 5 + (j % 5 == 4), 29)) for j in range(150)))
    ro = _record("score", "retrieval", "--sims", tmp_path / "bad.npy", "--caption-index", tmp_path / "idx.txt",
                 "--out", tmp_path / "o")
    assert ro["dataset"]["data_fingerprint"] != rg["dataset"]["data_fingerprint"]
    r = _run("compare", rg["path"], ro["path"], "--pair-by", "samples", "--bootstrap", "0", code=2)
    assert "data_fingerprint" in r.output
    # ties is a convention: optimistic vs pessimistic records are not compared
    ropt = _record("score", "retrieval", "--sims", tmp_path / "good.npy", "--ties", "optimistic", "--out", tmp_path / "t")
    assert ropt["details"]["ties"] == "optimistic"
    r = _run("compare", rg["path"], ropt["path"], "--bootstrap", "0", code=2)
    assert "details.ties" in r.output
    r = _run("score", "retrieval", "--sims", tmp_path / "good.npy", "--ties", "random", "--out", tmp_path / "t", code=2)
    assert "ties" in r.output and "pessimistic" in r.output


def test_retrieval_protocol_record_joins_the_eval_table(tmp_path):
    img = np.random.default_rng(1).standard_normal((1000, 8)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)  # cosine: every caption's own image scores highest
    np.save(tmp_path / "I.npy", img)
    np.save(tmp_path / "T.npy", np.repeat(img, 5, 0))
    rec = _record("score", "retrieval", "--image-emb", tmp_path / "I.npy", "--text-emb", tmp_path / "T.npy",
                  "--protocol", "flickr30k-1k", "--name", "ideal", "--out", tmp_path / "runs")
    # the key mmbench eval gives Karpathy Flickr30k test retrieval
    assert (rec["dataset"]["name"], rec["dataset"]["split"], rec["dataset"]["protocol"]) == \
        ("flickr30k", "test", "flickr30k-1k")
    assert rec["metrics"]["i2t.R@1"] == 100.0 and rec["details"]["scored_from"] == "embeddings"
    assert set(rec["config"]["inputs"]) == {"image_emb", "text_emb"}


def test_grounding_and_classification_records(tmp_path):
    gts = [{"id": f"s{k}", "boxes": [[0, 0, 10 + k, 10 + k]], "width": 50, "height": 50} for k in range(6)]
    pa = [{"id": f"s{k}", "boxes": [[0, 0, 10 + k, 10 + k]] if k % 2 == 0 else [[30, 30, 40, 40]]} for k in range(6)]
    pb = [{"id": f"s{k}", "boxes": [[0, 0, 10 + k, 10 + k]]} for k in reversed(range(6))]  # other order, all hits
    (tmp_path / "gts.json").write_text(json.dumps(gts))
    (tmp_path / "a.json").write_text(json.dumps(pa))
    (tmp_path / "b.json").write_text(json.dumps(pb))
    ga = _record("score", "grounding", "--gts", tmp_path / "gts.json", "--preds", tmp_path / "a.json",
                 "--out", tmp_path / "ga")
    gb = _record("score", "grounding", "--gts", tmp_path / "gts.json", "--preds", tmp_path / "b.json",
                 "--out", tmp_path / "gb")
    assert ga["metrics"]["acc@0.5"] == 50.0 and gb["metrics"]["acc@0.5"] == 100.0
    assert ga["dataset"]["name"] == "gts" and ga["dataset"]["data_fingerprint"] == records.sha256_file(tmp_path / "gts.json")
    assert ga["details"]["iou_convention"] == "continuous" and ga["details"]["threshold"] == 0.5
    rep = json.loads(_run("compare", ga["path"], gb["path"], "--pair-by", "samples", "--bootstrap", "100",
                          "--json").stdout)
    acc = next(m for p in rep["runs"] for m in p["metrics"] if m["metric"] == "acc@0.5")
    assert acc["delta"] == 50.0 and acc["n"] == 6
    gi = _record("score", "grounding", "--gts", tmp_path / "gts.json", "--preds", tmp_path / "a.json",
                 "--convention", "inclusive", "--out", tmp_path / "gi")
    r = _run("compare", ga["path"], gi["path"], "--pair-by", "samples", "--bootstrap", "0", code=2)
    assert "details.iou_convention" in r.output
    (tmp_path / "dup.json").write_text(json.dumps(pa + pa[:1]))
    r = _run("score", "grounding", "--gts", tmp_path / "gts.json", "--preds", tmp_path / "dup.json",
             "--out", tmp_path / "x", code=2)
    assert "dup.json" in r.output and "occurs twice" in r.output
    # classification: the labels are the reference data, the predictions the outputs
    (tmp_path / "c1.csv").write_text("id,label,pred\n" + "\n".join(f"x{k},{k % 3},{k % 3}" for k in range(9)))
    (tmp_path / "c2.csv").write_text("id,label,pred\n" + "\n".join(f"x{k},{k % 3},{(k * 2) % 3}" for k in range(9)))
    c1 = _record("score", "classification", "--preds", tmp_path / "c1.csv", "--out", tmp_path / "cls")
    c2 = _record("score", "classification", "--preds", tmp_path / "c2.csv", "--out", tmp_path / "cls2")
    assert c1["metrics"]["accuracy"] == 100.0 and c2["metrics"]["accuracy"] == pytest.approx(100 / 3)
    assert c1["dataset"]["data_fingerprint"] == c2["dataset"]["data_fingerprint"]
    assert c1["sample_ids"] == {"sample": [f"x{k}" for k in range(9)]}
    rep = json.loads(_run("compare", c1["path"], c2["path"], "--pair-by", "samples", "--bootstrap", "100",
                          "--json").stdout)
    accm = next(m for p in rep["runs"] for m in p["metrics"] if m["metric"] == "accuracy")
    assert accm["delta"] == pytest.approx(100 / 3 - 100)
    lb = json.loads(_run("leaderboard", tmp_path / "cls", tmp_path / "ga", "--json").stdout)
    assert sorted(t["task"] for t in lb) == ["classification", "grounding"]
