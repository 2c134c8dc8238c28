"""`mmbench score` end to end through the CLI (typer's CliRunner): ``--json`` prints the run record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench.cli import app
from mmbench.metrics.retrieval import retrieval_metrics

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the records go to the default --out runs/, inside the test's folder


def _run(*args, code=0):
    r = runner.invoke(app, list(map(str, args)))
    assert r.exit_code == code, r.output
    return r


def _emb(n, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((n, 16)).astype(np.float32)
    txt = (np.repeat(img, 5, 0) + 1.2 * rng.standard_normal((5 * n, 16))).astype(np.float32)
    return img, txt


def test_retrieval_from_sims_and_embeddings(tmp_path):
    img, txt = _emb(40)
    sims = img @ txt.T
    np.save(tmp_path / "S.npy", sims)
    np.save(tmp_path / "I.npy", img)
    np.save(tmp_path / "T.npy", txt)
    want = retrieval_metrics(sims, np.arange(200) // 5)["metrics"]
    out = json.loads(_run("score", "retrieval", "--sims", tmp_path / "S.npy", "--json").stdout)
    assert set(out["metrics"]) == {f"{d}.{k}" for d in ("i2t", "t2i") for k in ("R@1", "R@5", "R@10", "medr",
                                                                               "meanr")} | {"rsum"}
    assert out["metrics"] == want and out["metrics"]["i2t.R@1"] == want["i2t.R@1"]
    assert out["details"]["ties"] == "pessimistic" and out["task"] == "retrieval" and out["status"] == "ok"
    assert json.loads((tmp_path / out["path"]).read_text())["metrics"] == want  # written to runs/
    out2 = json.loads(_run("score", "retrieval", "--image-emb", tmp_path / "I.npy", "--text-emb",
                           tmp_path / "T.npy", "--json", "--bootstrap", "50").stdout)
    assert out2["metrics"] == out["metrics"]
    lo, hi = out2["ci"]["i2t.R@1"]
    assert lo <= out2["metrics"]["i2t.R@1"] <= hi
    table = _run("score", "retrieval", "--sims", tmp_path / "S.npy").stdout
    assert "rsum" in table and "i2t.R@1" in table and f"{want['rsum']:.4f}" in table


def test_retrieval_caption_index_and_protocols(tmp_path):
    rng = np.random.default_rng(0)
    ti = np.array([0, 0, 1, 2, 2, 2])
    sims = rng.standard_normal((3, 6))
    np.save(tmp_path / "S.npy", sims)
    (tmp_path / "idx.txt").write_text("\n".join(map(str, ti)))
    out = json.loads(_run("score", "retrieval", "--sims", tmp_path / "S.npy", "--caption-index",
                          tmp_path / "idx.txt", "--json").stdout)
    assert out["metrics"] == retrieval_metrics(sims, ti)["metrics"]
    assert out["per_sample"]["t2i_image"] == ti.tolist() and out["details"]["caption_layout"] == "caption index file"
    r = _run("score", "retrieval", "--sims", tmp_path / "S.npy", "--json", code=2)
    assert "not 5 captions per image" in r.output
    r = _run("score", "retrieval", "--sims", tmp_path / "S.npy", "--caption-index", tmp_path / "idx.txt",
             "--protocol", "coco-5k", code=2)
    assert "needs 5000 images" in r.output
    r = _run("score", "retrieval", "--sims", tmp_path / "S.npy", "--protocol", "coco-2k", code=2)
    assert "unknown protocol 'coco-2k'" in r.output and "coco-1k-5fold" in r.output
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = _run("score", "retrieval", "--sims", tmp_path / "obj.npy", code=2)
    assert "unpickling" in r.output


def test_coco_1k_5fold_protocol(tmp_path):
    img, txt = _emb(5000 // 50, seed=1)  # shape check only needs 5000 images: build them cheaply
    img = np.tile(img, (50, 1))
    txt = np.tile(txt, (50, 1))
    np.save(tmp_path / "I.npy", img)
    np.save(tmp_path / "T.npy", txt)
    out = json.loads(_run("score", "retrieval", "--image-emb", tmp_path / "I.npy", "--text-emb", tmp_path / "T.npy",
                          "--protocol", "coco-1k-5fold", "--json").stdout)
    assert out["details"]["folds"] == 5 and out["details"]["n_images"] == 5000
    assert out["dataset"]["protocol"] == "coco-1k-5fold" and out["dataset"]["name"] == "coco"
    assert len(out["per_sample"]["image_fold"]) == 5000 and max(out["per_sample"]["image_fold"]) == 4
    # every fold holds 10 copies of each image: the copies tie, pessimistic ties count them
    # (a GEMM may round identical dot products differently by position, so allow a few escapes)
    assert out["details"]["t2i_tied_queries"] > 24000 and out["metrics"]["i2t.R@1"] < 1.0


def test_captions_coco_and_karpathy_refs(tmp_path, shared_data):
    refs = json.loads((shared_data / "coco_captions_val2017" / "captions_val2017.json").read_text())
    by_img: dict = {}
    for a in refs["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(by_img)[:30]
    preds = [{"image_id": i, "caption": by_img[ids[(k + 1) % 30]][0]} for k, i in enumerate(ids)]
    preds[0]["caption"] = by_img[ids[0]][0]  # one perfect hit
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    out = json.loads(_run("score", "captions", "--refs", shared_data / "coco_captions_val2017" / "captions_val2017.json",
                          "--preds", tmp_path / "preds.json", "--no-meteor", "--json").stdout)
    from mmbench.metrics.captioning import caption_scores

    want = caption_scores({str(i): by_img[i] for i in ids}, {str(p["image_id"]): p["caption"] for p in preds},
                          metrics=("bleu", "rouge", "cider"))["metrics"]
    assert want and out["metrics"] == want
    assert "SPICE" not in out["metrics"] and "CoreNLP" in out["details"]["unavailable"]["SPICE"]
    assert out["details"]["n_images"] == 30 and out["sample_ids"]["image"] == [str(i) for i in ids]
    assert out["dataset"]["name"] == "coco_captions" and out["dataset"]["split"] == "val"
    # the same references as a Karpathy json
    kar = {"dataset": "coco", "images": [{"cocoid": i, "imgid": k, "split": "test", "filename": f"{i}.jpg",
                                          "sentences": [{"raw": c, "tokens": []} for c in by_img[i]]}
                                         for k, i in enumerate(ids)]}
    (tmp_path / "kar.json").write_text(json.dumps(kar))
    out2 = json.loads(_run("score", "captions", "--refs", tmp_path / "kar.json", "--preds", tmp_path / "preds.json",
                           "--no-meteor", "--json").stdout)
    assert out2["metrics"] == out["metrics"] and out2["sample_ids"] == out["sample_ids"]
    assert out2["dataset"]["name"] == "coco" and out2["dataset"]["split"] == "test"


def test_captions_bad_inputs(tmp_path):
    (tmp_path / "refs.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg"}],
                                                    "annotations": [{"image_id": 1, "caption": "a dog"}]}))
    (tmp_path / "p.json").write_text(json.dumps([{"image_id": 2, "caption": "a cat"}]))
    r = _run("score", "captions", "--refs", tmp_path / "refs.json", "--preds", tmp_path / "p.json", code=2)
    assert "no references" in r.output and "p.json" in r.output
    (tmp_path / "p.json").write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]))
    r = _run("score", "captions", "--refs", tmp_path / "refs.json", "--preds", tmp_path / "p.json", code=2)
    assert "more than one caption" in r.output
    (tmp_path / "p.json").write_text("{not json")
    r = _run("score", "captions", "--refs", tmp_path / "refs.json", "--preds", tmp_path / "p.json", code=2)
    assert "not valid JSON" in r.output
    # references are read by the COCO captions parser of mmbench eval: its rules, its messages
    (tmp_path / "p.json").write_text(json.dumps([{"image_id": 1, "caption": "a"}]))
    (tmp_path / "refs.json").write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "a dog"}]}))
    r = _run("score", "captions", "--refs", tmp_path / "refs.json", "--preds", tmp_path / "p.json", code=2)
    assert "refs.json" in r.output and "'images'" in r.output
    (tmp_path / "refs.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg"}],
                                                    "annotations": [{"image_id": "1", "caption": "a dog"}]}))
    r = _run("score", "captions", "--refs", tmp_path / "refs.json", "--preds", tmp_path / "p.json", code=2)
    assert "annotations[0]" in r.output and "'image_id'" in r.output and "int" in r.output


def test_grounding_formats_and_invalid_boxes(tmp_path):
    gts = [{"id": "a", "boxes": [[10, 10, 50, 50]], "width": 100, "height": 100},
           {"id": "b", "boxes": [[0, 0, 20, 20]], "width": 100, "height": 100},
           {"id": "c", "boxes": [[60, 60, 90, 90]], "width": 100, "height": 100}]
    preds = [{"id": "a", "boxes": [[10, 10, 40, 40]]},            # xywh == gt: hit
             {"id": "b", "boxes": [[50, 50, 10, 10], [0, 0, 20, 20]]},  # miss, then hit at rank 2
             {"id": "c", "boxes": [[95, 95, -30, 10]]}]           # negative width: invalid
    (tmp_path / "g.json").write_text(json.dumps(gts))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    out = json.loads(_run("score", "grounding", "--gts", tmp_path / "g.json", "--preds", tmp_path / "p.json",
                          "--box-format", "xywh", "--json").stdout)
    assert out["metrics"]["acc@0.5"] == pytest.approx(100 / 3) and out["metrics"]["P@5"] == pytest.approx(200 / 3)
    assert out["details"]["invalid_boxes"] == 1 and "negative width or height" in out["details"]["invalid_reasons"]
    assert out["per_sample"] == {"hit": [1, 0, 0], "hit_rank": [1, 2, 0]} and out["sample_ids"] == {"sample": ["a", "b", "c"]}
    norm = [{"id": "a", "boxes": [[0.3, 0.3, 0.4, 0.4]]}, {"id": "b", "boxes": [[0.1, 0.1, 0.2, 0.2]]},
            {"id": "c", "boxes": [[0.75, 0.75, 0.3, 0.3]]}]
    (tmp_path / "n.json").write_text(json.dumps(norm))
    out = json.loads(_run("score", "grounding", "--gts", tmp_path / "g.json", "--preds", tmp_path / "n.json",
                          "--box-format", "cxcywh", "--normalized", "--json").stdout)
    assert out["metrics"]["acc@0.5"] == 100.0 and out["details"]["invalid_boxes"] == 0


def test_classification_csv(tmp_path):
    from sklearn.metrics import f1_score

    y = ["pos", "neu", "neg", "pos", "neg", "neu", "pos"]
    p = ["pos", "neg", "neg", "pos", "pos", "neu", "neu"]
    (tmp_path / "p.csv").write_text("id,label,pred\n" + "\n".join(f"{i},{a},{b}" for i, (a, b) in enumerate(zip(y, p))))
    out = json.loads(_run("score", "classification", "--preds", tmp_path / "p.csv", "--classes", "pos,neu,neg",
                          "--json").stdout)
    assert out["metrics"]["accuracy"] == pytest.approx(100 * 4 / 7)
    assert out["metrics"]["f1_macro"] == pytest.approx(100 * f1_score(y, p, average="macro"))
    assert out["metrics"]["f1_weighted"] == pytest.approx(100 * f1_score(y, p, average="weighted"))
    assert out["details"]["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]
    r = _run("score", "classification", "--preds", tmp_path / "p.csv", "--classes", "pos,neu", code=2)
    assert "not a known class" in r.output
