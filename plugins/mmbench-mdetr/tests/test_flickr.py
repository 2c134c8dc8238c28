"""MDETR phrase grounding on Flickr30k Entities: parity with the official main.py --eval flickr path.

The fixture (tests/fixtures/flickr_entities, README there) holds a tiny dataset in the Flickr30k Entities layout,
MDETR's own converter output for it and the official evaluation's outputs for the shared MDETR checkpoint
(../shared/parity/mdetr_refexp), unbatched and batched, ANY-box and MERGED-box, val and test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmbench.datasets import flickr30k_entities as F
from mmbench.tasks.base import ImageItem
from mmbench.tasks.grounding import KIND, GroundingInput, evaluate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FX = Path(__file__).parent / "fixtures" / "flickr_entities"
IMAGE_IDS = (78499, 54718, 433998, 535506, 484641, 252639, 211891, 159269)
#: (expected folder, split, protocol, MDETR batch_size)
RUNS = (("separate_bs1", "val", "any", 1), ("separate_bs2", "val", "any", 2), ("merged_bs1", "val", "merged", 1),
        ("separate_test_bs1", "test", "any", 1))


def _root(tmp: Path, images: Path | None) -> Path:
    root = tmp / "flickr30k_entities"
    root.mkdir()
    for p in (FX / "data").iterdir():
        (root / p.name).symlink_to(p)
    (root / "flickr30k-images").mkdir()
    if images is not None:
        for i in IMAGE_IDS:
            (root / "flickr30k-images" / f"{i}.jpg").symlink_to(images / f"{i:012d}.jpg")
    return root


def test_context_and_spans_equal_mdetrs_converter(tmp_path):
    """The adapter's sentence and phrase spans are MDETR's caption and tokens_positive_eval
    (scripts/pre-training/flickr_combined.py output), phrase by phrase, and its phrases are the evaluator's."""
    root = _root(tmp_path, None)
    for split in ("val", "test"):
        data = F.load("grounding", split, root, protocol="any", images=None, missing="keep")
        conv = json.loads((FX / "mdetr_annotations" / f"final_flickr_separateGT_{split}.json").read_text())
        want = [(str(im["original_img_id"]), im["sentence_id"], im["caption"], [tuple(s) for sp in
                 im["tokens_positive_eval"] for s in sp]) for im in conv["images"] if im["tokens_positive_eval"]]
        got: dict[tuple[str, int], list] = {}
        for s in data.samples:
            img, sent, _ = s.id.split(":")
            entry = got.setdefault((img, int(sent)), [s.context, []])
            assert entry[0] == s.context
            assert s.context[s.spans[0][0]:s.spans[0][1]] == s.expression
            entry[1] += list(s.spans)
        assert [(k[0], k[1], v[0], v[1]) for k, v in got.items()] == want
        # the sentence without a boxed phrase (test: 159269, sentence 2) has no sample
        assert ("159269", 2) not in got or split == "val"
    merged = F.load("grounding", "val", root, protocol="merged", images=None, missing="keep")
    assert merged.meta.protocol == "merged-box" and all(len(s.boxes) == 1 for s in merged.samples)


def test_batch_bounds_keep_a_sentences_phrases_together():
    im = [ImageItem(id=str(k)) for k in range(3)]
    xs = [GroundingInput("0", im[0], "a", "a b", ((0, 1),)), GroundingInput("1", im[0], "b", "a b", ((2, 3),)),
          GroundingInput("2", im[0], "c", "c", ((0, 1),)), GroundingInput("3", im[1], "x"),
          GroundingInput("4", im[1], "y"), GroundingInput("5", im[2], "a", "a b", ((0, 1),)),
          GroundingInput("6", im[2], "b", "a b", ((2, 3),))]
    assert KIND.batch_bounds(xs, 1) == [(0, 2), (2, 3), (3, 4), (4, 5), (5, 7)]
    assert KIND.batch_bounds(xs, 2) == [(0, 3), (3, 5), (5, 7)]
    assert KIND.batch_bounds(xs[3:5], 1) == [(0, 1), (1, 2)]  # plain expressions: batch_size each


@pytest.mark.shared
@pytest.mark.parametrize("run,split,protocol,bs", RUNS, ids=[r[0] for r in RUNS])
def test_parity_with_official_flickr_evaluation(fx, tmp_path, run, split, protocol, bs):
    from mmbench_mdetr.grounding import build

    exp = FX / "expected" / run
    off = json.loads((exp / "official.json").read_text())
    model = build(checkpoint=str(fx / "checkpoint.pth"), text_encoder=str(fx / "tiny_roberta"),
                  device="cpu", batch_size=bs)
    data = F.load("grounding", split, _root(tmp_path, fx / "coco" / "train2014"), protocol=protocol,
                  images=None, missing="error")
    inputs = [s.input_view() for s in data.samples]

    # the model's outputs, one forward pass per sentence, padded with the same partners as the official batches
    # (every sentence of the val split has a boxed phrase, so its batches are the official ones)
    outputs = model.phrase_outputs(inputs)
    units, _, raw = outputs
    rows = [off["captions"].index(text) for _, text in units]
    boxes = np.load(exp / "pred_boxes.npy")
    assert np.abs(raw["pred_boxes"] - boxes[rows]).max() <= 1e-5
    if (exp / "pred_logits.npy").is_file():
        assert np.abs(raw["pred_logits"] - np.load(exp / "pred_logits.npy")[rows]).max() <= 5e-5

    # PostProcessFlickr's ranked boxes per phrase
    official = {(str(p["image_id"]), int(p["sentence_id"])): p["boxes"] for p in off["predictions"]}
    seen: dict[tuple[str, int], int] = {}
    preds = model._predict_phrases(inputs, outputs)  # what predict() returns, from the outputs above
    assert all(np.array_equal(a, b) for a, b in zip(preds[:3], model.predict(inputs[:3])))
    for s, got in zip(data.samples, preds):
        img, sent, _ = s.id.split(":")
        k = seen.get((img, int(sent)), 0)
        seen[(img, int(sent))] = k + 1
        want = np.asarray(official[(img, int(sent))][k])
        assert got.shape == want.shape == (12, 4)
        assert np.abs(got - want).max() <= 1e-2, s.id
    assert sum(seen.values()) == len(data.samples) == sum(len(v) for v in official.values())

    # Recall@k of the official evaluator: continuous IoU >= 0.5 on the unclamped boxes, through the evaluate
    # loop (its batches hold whole sentences) with the predictions above
    by_id = {x.id: p for x, p in zip(inputs, preds)}

    class Cached:
        box_format, box_normalized = model.box_format, model.box_normalized

        def predict(self, xs):
            return [by_id[x.id] for x in xs]

    res = evaluate(Cached(), data, show_progress=False, outside="score")
    summary = off["flickr_summary"]
    for k in (1, 5, 10):
        assert res.metrics[f"P@{k}"] == pytest.approx(100 * summary[f"Recall@{k}_all"], abs=1e-12)
    assert res.metrics["acc@0.5"] == res.metrics["P@1"]
    cats = res.details["by_category"]
    assert sorted(cats) == sorted(k.split("_", 1)[1] for k in summary if k.startswith("Recall@1_") and k != "Recall@1_all")
    for c, vals in cats.items():
        for k in (1, 5, 10):
            assert vals[f"P@{k}"] == pytest.approx(100 * summary[f"Recall@{k}_{c}"], abs=1e-12), (c, k)
    assert res.details["outside"] == "score"


def test_positive_tokens_follow_create_positive_map(tiny_text):
    """Spans start or end on a space: the official char_to_token fallbacks (begin + 1, end - 2) find the word."""
    from transformers import RobertaTokenizerFast

    from mmbench_mdetr.grounding import MDETRGrounder

    class Stub(MDETRGrounder):
        def __init__(self):  # only the tokenizer is needed
            self.tokenizer = RobertaTokenizerFast.from_pretrained(str(tiny_text))

    m = Stub()
    text = "a red circle on the left"
    tok = m.tokenizer(text)
    red, circle_end = tok.char_to_token(2), tok.char_to_token(11)  # "red circle" = text[2:12]
    assert tok.char_to_token(1) is None and tok.char_to_token(12) is None  # the spaces around it
    want = list(range(red, circle_end + 1))
    assert len(want) >= 2
    assert m.positive_tokens(text, [(2, 12)], 40).nonzero().flatten().tolist() == want
    # begin on the space before "red", end on the space after "circle": the fallbacks give the same tokens
    assert m.positive_tokens(text, [(1, 13)], 40).nonzero().flatten().tolist() == want
    # two spans, and a span that maps to no token at all is skipped
    both = m.positive_tokens(text, [(2, 5), (20, 24)], 40).nonzero().flatten().tolist()
    c2t = tok.char_to_token
    assert both == list(range(c2t(2), c2t(4) + 1)) + list(range(c2t(20), c2t(23) + 1))
    assert not m.positive_tokens("a  b", [(1, 2)], 40).any()


def test_published_numbers_are_per_backbone():
    """ashkamath/mdetr .github/refexp.md and .github/flickr.md: a run is compared with its own backbone's rows."""
    from mmbench.plugins import get_registry
    from mmbench.runner import published_deltas

    spec = get_registry().model("mdetr")

    def pub(meta, metrics, variant):
        return {(p["metric"], p["published"]) for p in published_deltas(spec, meta, metrics, variant)}

    refcoco = {"name": "refcoco", "split": "val", "protocol": "refcoco-unc"}
    assert pub(refcoco, {"P@1": 80.0}, "resnet101") == {("P@1", 86.75)}
    assert pub(refcoco, {"P@1": 80.0}, "timm_tf_efficientnet_b3_ns") == {("P@1", 87.51)}
    assert pub(refcoco, {"P@1": 80.0}, "resnet18") == set()
    m = {"P@1": 1.0, "P@5": 2.0, "P@10": 3.0}
    test_any = {"name": "flickr30k_entities", "split": "test", "protocol": "any-box"}
    assert pub(test_any, m, "resnet101") == {("P@1", 83.4), ("P@5", 93.5), ("P@10", 95.3)}
    assert pub(test_any, m, "timm_tf_efficientnet_b5_ns") == {("P@1", 84.3), ("P@5", 93.9), ("P@10", 95.8)}
    val_merged = {"name": "flickr30k_entities", "split": "val", "protocol": "merged-box"}
    assert pub(val_merged, m, "resnet101") == {("P@1", 82.3), ("P@5", 91.8), ("P@10", 93.7)}
    assert pub(val_merged, m, "timm_tf_efficientnet_b3_ns") == set()


@pytest.mark.shared
def test_the_model_reports_its_backbone_as_published_variant(fx):
    from mmbench_mdetr.grounding import build

    model = build(checkpoint=str(fx / "checkpoint.pth"), text_encoder=str(fx / "tiny_roberta"),
                  device="cpu")
    assert model.published_variant == "resnet18"


@pytest.mark.shared
def test_a_sharded_cached_run_gives_the_official_batched_record(fx, tmp_path):
    """Shards hold whole sentences (the kind's batch bounds), so padded batches are the same in every shard."""
    from mmbench.runner import EvalConfig, run_eval

    root = _root(tmp_path, fx / "coco" / "train2014")
    opts = {"checkpoint": str(fx / "checkpoint.pth"), "text_encoder": str(fx / "tiny_roberta"),
            "device": "cpu", "batch_size": "2"}
    cfg = dict(split="val", data_root=str(root), options=opts, task_options={"outside": "score"}, bootstrap=0,
               show_progress=False)
    sharded = run_eval("mdetr", "flickr30k_entities", EvalConfig(**cfg, cache=str(tmp_path / "c"), shard_size=4))
    assert sharded.execution["shards"]["outputs"] > 1
    # the official batched results (separate_bs2), which the single-process path reproduces (test above)
    summary = json.loads((FX / "expected" / "separate_bs2" / "official.json").read_text())["flickr_summary"]
    for k in (1, 5, 10):
        assert sharded.metrics[f"P@{k}"] == pytest.approx(100 * summary[f"Recall@{k}_all"], abs=1e-12)
    for c, vals in sharded.details["by_category"].items():
        assert vals["P@1"] == pytest.approx(100 * summary[f"Recall@1_{c}"], abs=1e-12)
