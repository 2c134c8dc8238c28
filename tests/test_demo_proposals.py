"""The demo's ``proposals`` form (grounding): a pixel box per region row, and nothing else moved.

Pinned values below were computed with the generator as it was before the boxes existed (``GENERATOR_VERSION``
"1"): the boxes come from a stream of their own, so every earlier form (pixels, region features, captions,
expressions, ground-truth boxes, labels, ids, their order) and every fingerprint must still be what the shipped
demo checkpoints and the stored run records were made with.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mmbench.datasets import demo

# split -> (pixel bytes, region bytes, semantic content) sha256[:16], float64 sum of the regions, sum of the
# per-image pixel means, scenes; "test-seed1" is seed 1, "val-size2" size 2
BEFORE = {
    "train": ("248330413881823b", "7faa7423ac541dfd", "416eb0ecb429e0fc", 203448.40236142243, 54914.18232783559, 400),
    "val": ("ab6f27c211b633d0", "f2e4dfad4f887568", "8dd0859a67b72fbf", 50345.52028724227, 14074.29575376157, 100),
    "test": ("befb9521c7a68256", "b2d7fb782ece7cff", "300745420b87fcaa", 96613.35366787763, 28611.264178240737, 200),
    "unlabelled": ("5ecaa5fbea0efa08", "9143e2f9959af103", "49c889ea901e3216", 95844.28337812766,
                   26459.986255787026, 200),
    "test-seed1": ("30a49dc078be038d", "27018ccd7f83dc86", "1543507352268aa8", 100076.01288115022,
                   26547.846824363427, 200),
    "val-size2": ("547accb751dd592a", "3aa687b10fa378a0", "b79e001f70ca6848", 97941.87536266021,
                  27448.895905671303, 200),
}
#: the pixel / region bytes of demo test scene 0 where the hashes above were taken: where this scene's bytes are
#: the same, the numeric stack rounds as it did there, and every scene's bytes must be the same too
CANARY = ("be1dfb64f21c63a0", "20cf8b6b5787bf18")
# task/split -> (meta.fingerprint, sha256[:16] of the task data's ids, texts, boxes and labels)
BEFORE_META = {
    "retrieval/train": ("cb8117e874a87219", "e3b5d759d7209366"),
    "retrieval/val": ("a6429f80331e2697", "de3d3dde1980f165"),
    "retrieval/test": ("0c7b7d13d6fd8fcf", "527c05ac4d1fdf35"),
    "captioning/train": ("93178f41068a59d8", "db9a13d37965eb61"),
    "captioning/val": ("7b60c4df1b7365e7", "5787eb231ad6d49c"),
    "captioning/test": ("cc2508bc7b553faf", "e39375f2f270e810"),
    "grounding/train": ("1e7d8298f06ee59b", "00e6c559545d492b"),
    "grounding/val": ("e7f22df5cc368c9c", "beb4d5b46f56200b"),
    "grounding/test": ("cafd1d2201c368dc", "668505dd2a3c669f"),
    "classification/train": ("d43eb7f1948291fc", "a2438a7500f34c79"),
    "classification/val": ("0861a2ea7997994e", "ddc1dd29cf8dc8ef"),
    "classification/test": ("a426c04ffe31d226", "033d3cbe7fc4719f"),
}


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _scenes(key):
    split, size, seed = {"test-seed1": ("test", 1, 1), "val-size2": ("val", 2, 0)}.get(key, (key, 1, 0))
    return demo.scenes(split, size, seed)


def _hashes(scenes):
    hp, hr, hs = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    tot = pm = 0.0
    for s in scenes:
        hp.update(s.pil.tobytes())
        hr.update(s.regions.tobytes())
        sem = {"id": s.id, "objects": [[o.shape, o.colour, o.size, o.slot, list(o.box)] for o in s.objects],
               "mood": s.mood, "captions": s.captions, "expressions": s.expressions, "tweet": s.tweet,
               "cue": s.text_cue, "label": s.label}
        hs.update(json.dumps(sem, sort_keys=True).encode())
        tot += float(s.regions.astype(np.float64).sum())
        pm += float(np.asarray(s.pil, np.float64).mean())
    return hp.hexdigest()[:16], hr.hexdigest()[:16], hs.hexdigest()[:16], tot, pm, len(scenes)


def _content(task, data):
    h = hashlib.sha256()
    if task == "grounding":
        for s in data.samples:
            h.update(json.dumps([s.id, s.image.id, s.expression, s.boxes.tolist()]).encode())
    elif task == "retrieval":
        h.update(json.dumps([[im.id for im in data.images], data.texts, data.text_image.tolist()]).encode())
    elif task == "captioning":
        h.update(json.dumps([[im.id for im in data.images], data.references]).encode())
    else:
        h.update(json.dumps([[s.id, s.text, s.label] for s in data.samples]
                            + [[s.id, s.text] for s in data.unlabelled]).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_existing_forms_are_unchanged(key):
    pix, reg, sem, tot, pm, n = _hashes(_scenes(key))
    want = BEFORE[key]
    assert (sem, n) == (want[2], want[5])  # numpy's seeded Generator: exact everywhere
    s0 = demo.scenes("test", 1, 0)[0]
    if hashlib.sha256(s0.pil.tobytes()).hexdigest()[:16] == CANARY[0]:
        assert pix == want[0]  # Pillow rasterises as where the hashes were taken: every pixel as before
    if hashlib.sha256(s0.regions.tobytes()).hexdigest()[:16] == CANARY[1]:
        assert reg == want[1]  # the same float rounding: every region feature bit-identical
    # elsewhere the float64 matmul (BLAS kernel) and Pillow's rasteriser own the last bits
    assert tot == pytest.approx(want[3], rel=1e-7)
    assert pm == pytest.approx(want[4], rel=1e-4)


@pytest.mark.parametrize("key", sorted(BEFORE_META))
def test_every_task_fingerprint_and_content_is_unchanged(key):
    task, split = key.split("/")
    data = demo.load(task, split, size=1, seed=0, text_only=False)
    assert (data.meta.fingerprint, _content(task, data)) == BEFORE_META[key]
    assert data.meta.forms == (("image", "regions", "proposals") if task == "grounding" else ("image", "regions"))


def test_text_only_fingerprint_is_unchanged():
    assert demo.load("classification", "test", size=1, seed=0, text_only=True).meta.fingerprint == "29b8b31b58c066b6"


def test_the_boxes_stream_is_separate_from_the_scene_stream(monkeypatch):
    a = demo._scene(0, 2, 5, "demo-test-")
    monkeypatch.setattr(demo, "_proposal_boxes", lambda *args: np.zeros((demo.NUM_REGIONS, 4), np.float32))
    b = demo._scene(0, 2, 5, "demo-test-")
    assert a.pil.tobytes() == b.pil.tobytes() and a.regions.tobytes() == b.regions.tobytes()
    assert (a.captions, a.expressions, a.tweet, a.label) == (b.captions, b.expressions, b.tweet, b.label)
    assert np.array_equal(a.region_source, b.region_source)
    assert not np.array_equal(a.region_boxes, b.region_boxes)


def test_grounding_offers_the_proposals_form_and_only_grounding():
    from mmbench.tasks.grounding import check_proposals

    g = demo.load("grounding", "test", size=1, seed=0, text_only=False)
    assert "proposals" in g.meta.forms
    for s in g.samples[:50]:
        assert s.image.forms == {"image", "regions", "proposals"}
        check_proposals(s.image)
        assert s.image.region_boxes.shape == (demo.NUM_REGIONS, 4) and s.image.region_boxes.dtype == np.float32
    # the other kinds' items carry no boxes: a model reading boxes when present (ViLBERT's retrieval demo)
    # sees what it was trained on
    r = demo.load("retrieval", "test", size=1, seed=0, text_only=False)
    assert all(im.region_boxes is None and im.forms == {"image", "regions"} for im in r.images)
    c = demo.load("classification", "test", size=1, seed=0, text_only=False)
    assert all(s.image.region_boxes is None for s in c.samples)


@pytest.mark.parametrize("split", ["train", "test"])
def test_boxes_are_valid_and_follow_their_rows(split):
    proj = demo._projection()
    n_obj_rows = own_template = 0
    for s in demo.scenes(split, 1, 0):
        b = s.region_boxes.astype(np.float64)
        assert b.shape == (36, 4) and np.isfinite(b).all()
        assert (b >= 0).all() and (b <= demo.IMAGE_SIZE).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        src = s.region_source
        assert src.shape == (36,) and set(src.tolist()) <= set(range(len(s.objects))) | {demo.BACKGROUND_ROW,
                                                                                       demo.NOISE_ROW}
        # 2-4 rows per object, 2-3 background rows, the rest noise: the generator's row counts
        for k in range(len(s.objects)):
            assert 2 <= int((src == k).sum()) <= 4
        assert 2 <= int((src == demo.BACKGROUND_ROW).sum()) <= 3
        templates = np.stack([demo._object_attr(o) @ proj for o in s.objects])
        for r in range(36):
            w, h = b[r, 2] - b[r, 0], b[r, 3] - b[r, 1]
            if src[r] >= 0:
                assert _iou(b[r], s.objects[src[r]].box) >= 0.5
                n_obj_rows += 1
                # the box sits on the row its object's features are in (the same permutation for both)
                own_template += int(np.argmin(np.linalg.norm(templates - s.regions[r], axis=1)) == src[r])
            elif src[r] == demo.BACKGROUND_ROW:
                assert w * h >= 0.7 * demo.IMAGE_SIZE ** 2
                assert float(np.linalg.norm(s.regions[r])) > 1.0
            else:
                assert 8 <= w <= 48 and 8 <= h <= 48
                assert float(np.linalg.norm(s.regions[r])) < 1.0  # the low-energy rows
    assert n_obj_rows > 1000 and own_template / n_obj_rows > 0.97


def test_boxes_are_deterministic_seeded_and_extend_with_size():
    a = demo._scene(0, 0, 3, "demo-train-")
    assert np.array_equal(a.region_boxes, demo._scene(0, 0, 3, "demo-train-").region_boxes)
    assert not np.array_equal(a.region_boxes, demo._scene(1, 0, 3, "demo-train-").region_boxes)
    one, two = demo.scenes("val", 1, 0), demo.scenes("val", 2, 0)
    assert all(np.array_equal(x.region_boxes, y.region_boxes) for x, y in zip(one, two[:len(one)]))


def test_a_new_proposals_version_changes_the_grounding_fingerprint_only(monkeypatch):
    before = {t: demo.load(t, "test", size=1, seed=0, text_only=False).meta.fingerprint
              for t in ("retrieval", "grounding")}
    monkeypatch.setattr(demo, "PROPOSALS_VERSION", "2")
    after = {t: demo.load(t, "test", size=1, seed=0, text_only=False).meta.fingerprint
             for t in ("retrieval", "grounding")}
    assert after["retrieval"] == before["retrieval"] and after["grounding"] != before["grounding"]


def test_a_random_proposal_is_the_chance_level():
    # what picking one of the 37 rows a proposal ranker sees (global box + 36 proposals) at random scores:
    # the chance level the shipped ViLBERT demo is compared with
    g = demo.load("grounding", "test", size=1, seed=0, text_only=False)
    rates = []
    for s in g.samples:
        boxes = [(0, 0, 96, 96)] + [tuple(map(float, b)) for b in s.image.region_boxes]
        rates.append(np.mean([_iou(b, s.boxes[0]) >= 0.5 for b in boxes]))
    assert len(rates) == 406 and 100 * float(np.mean(rates)) == pytest.approx(8.28, abs=0.01)
