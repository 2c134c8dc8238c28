"""mmbench-hf-grounding against transformers itself, on tiny random checkpoints built here with save_pretrained.

The reference for every model is transformers' own pipeline run on one sample at a time: its processor,
the model's forward, and its ``post_process_*`` function with no threshold, then a stable sort by score.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmbench.errors import DataError, MMBenchError
from mmbench.plugins import Registry
from mmbench.tasks import DatasetMeta, GroundingData, GroundingSample, ImageItem
from mmbench.testing import check_model, check_plugin
from mmbench_hf_grounding import make_demo, models, plugin, tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = ("owlvit", "owlv2", "grounding-dino", "mm-grounding-dino")
EXPRESSIONS = ["the red one", "The Small WEDGE at the center", "a big blue lozenge on the left.",
               "thing", "the dark purple circle next to the little orange box on the right, behind the big green ball"]
SIZES = [(120, 80), (64, 100), (96, 96), (150, 70), (81, 123)]  # (W, H): wide, tall, square, odd


def _samples():
    rng = np.random.default_rng(0)
    out = []
    for i, ((w, h), e) in enumerate(zip(SIZES, EXPRESSIONS)):
        pil = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out.append(GroundingSample(id=f"s{i}", image=ImageItem(id=f"im{i}", pil=pil, size=(w, h)), expression=e,
                                   boxes=np.array([[0.0, 0.0, w / 2, h / 2]])))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_grounding")
    return {k: make_demo.build(k, root / k, seed=100 + i) for i, k in enumerate(KINDS)}


def _reference(kind, folder, samples):
    """transformers alone: (boxes, scores) per sample, unclipped, ranked by a stable sort on the score."""
    import transformers
    from transformers import AutoProcessor

    cls = getattr(transformers, models.KINDS[kind][1])
    model = cls.from_pretrained(str(folder), local_files_only=True).float().eval()
    proc = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    out = []
    for s in samples:
        pil = s.image.pil
        w, h = pil.size
        with torch.no_grad():
            if kind in ("owlvit", "owlv2"):
                n = model.config.text_config.max_position_embeddings
                enc = proc(text=[[s.expression]], images=[pil], return_tensors="pt", truncation=True, max_length=n)
                res = proc.image_processor.post_process_object_detection(model(**enc), threshold=-1.0,
                                                                         target_sizes=[(h, w)])[0]
            else:
                q = s.expression.strip().lower()
                q = q if q.endswith(".") else q + "."
                enc = proc(images=[pil], text=[q], return_tensors="pt")
                res = proc.post_process_grounded_object_detection(model(**enc), enc["input_ids"], threshold=-1.0,
                                                                  text_threshold=0.0, target_sizes=[(h, w)])[0]
        order = torch.sort(res["scores"], descending=True, stable=True).indices
        out.append((res["boxes"][order].numpy().astype(np.float64), res["scores"][order].numpy().astype(np.float64)))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_ranked_boxes_equal_transformers_post_processing(kind, folders):
    samples = _samples()
    ref = _reference(kind, folders[kind], samples)
    one = models._build(kind, model=str(folders[kind]), batch_size="1", clip_boxes="false")
    boxes, scores = one.predict_with_scores(samples)
    n_boxes = {"owlvit": 36, "owlv2": 36, "grounding-dino": 20, "mm-grounding-dino": 20}[kind]
    for s, b, sc, (rb, rs) in zip(samples, boxes, scores, ref):
        assert b.shape == rb.shape == (n_boxes, 4), s.id  # every box, no threshold
        np.testing.assert_array_equal(sc, rs)  # one sample per forward: the very same computation
        np.testing.assert_array_equal(b, rb)
        assert np.all(np.diff(sc) <= 0) and len(np.unique(sc)) > n_boxes // 2  # ranked, scores not all tied
    # batched (same-shape samples share a forward): equal to float32 tolerance, same order
    many = models._build(kind, model=str(folders[kind]), batch_size="8", clip_boxes="false")
    mb, ms = many.predict_with_scores(samples)
    for b, sc, (rb, rs) in zip(mb, ms, ref):
        np.testing.assert_allclose(sc, rs, rtol=0, atol=2e-6)
        np.testing.assert_allclose(b, rb, rtol=0, atol=2e-4)
    # default: the same boxes clipped to the image, same order
    clipped = models._build(kind, model=str(folders[kind]), batch_size="1").predict(samples)
    for s, b, (rb, _) in zip(samples, clipped, ref):
        w, h = s.image.size
        want = rb.copy()
        want[:, 0::2] = want[:, 0::2].clip(0, w)
        want[:, 1::2] = want[:, 1::2].clip(0, h)
        np.testing.assert_array_equal(b, want)


def test_owlv2_boxes_scale_against_the_padded_square(folders):
    """The known pitfall: OWLv2 normalises boxes to the zero-padded square, so both axes scale by max(W, H)."""
    from transformers import AutoProcessor, Owlv2ForObjectDetection

    s = _samples()[0]  # 120 x 80: padded to 120 x 120 at the bottom
    w, h = s.image.size
    m = Owlv2ForObjectDetection.from_pretrained(str(folders["owlv2"]), local_files_only=True).eval()
    proc = AutoProcessor.from_pretrained(str(folders["owlv2"]), local_files_only=True)
    pv = proc(text=[[s.expression]], images=[s.image.pil], return_tensors="pt")
    # the processor pads (with zeros after rescaling) to 120 x 120 and resizes: the bottom third is padding
    assert pv["pixel_values"].shape[-2:] == (96, 96)
    with torch.no_grad():
        out = m(**pv)
    cx, cy, bw, bh = out.pred_boxes[0].double().unbind(-1)
    norm = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).numpy()
    order = np.argsort(-torch.sigmoid(out.logits[0, :, 0]).numpy(), kind="stable")
    got = models._build("owlv2", model=str(folders["owlv2"]), clip_boxes="false").predict([s])[0]
    np.testing.assert_allclose(got, norm[order] * max(w, h), atol=1e-3)
    assert np.abs(got - norm[order] * np.array([w, h, w, h])).max() > 1.0  # the OWL-ViT scaling would be wrong
    # and the OWL-ViT path really scales by (W, H)
    got_v = models._build("owlvit", model=str(folders["owlvit"]), clip_boxes="false").predict([s])[0]
    assert got_v[:, 1::2].max() <= h * 1.3 and got_v[:, 0::2].max() <= w * 1.3


def test_grounding_dino_query_form(folders):
    assert models.grounding_dino_query("  The Man on the LEFT ") == "the man on the left."
    assert models.grounding_dino_query("a cat.") == "a cat."
    m = models._build("grounding-dino", model=str(folders["grounding-dino"]))
    enc = m._encode(Image.new("RGB", (40, 30)), "The RED one")
    ids = enc["input_ids"][0].tolist()
    assert ids[0] == 101 and ids[-1] == 102 and ids[-2] == 1012  # [CLS] ... "." [SEP]: bert-base-uncased ids
    assert m.tokenizer.decode(ids[1:-1]) == "the red one."
    assert m.details["score_threshold"] is None and m.details["text_threshold"] is None
    assert "max over text tokens" in m.details["score"]


def test_long_owl_queries_are_truncated_and_counted(folders):
    m = models._build("owlvit", model=str(folders["owlvit"]))
    long = _samples()[4]
    assert len(m.tokenizer(long.expression)["input_ids"]) > 16
    enc = m._encode(long.image.pil, long.expression)
    assert enc["input_ids"].shape == (1, 16) and enc["input_ids"][0, -1] == m.tokenizer.eos_token_id
    assert m.details["truncated_queries"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_demo_folders_pass_the_kit(kind):
    folder = models.KINDS[kind][2]
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 500_000
    assert json.loads((folder / "config.json").read_text())["model_type"] == models.KINDS[kind][0]
    reg = Registry(entry_points=False, extra_modules=(plugin,))
    rep = check_plugin(kind, registry=reg, limit=8, batch=4)
    assert rep.ok and {"batch-invariant", "deterministic", "wrong-input-form", "evaluate"} <= set(rep.passed)


def test_kit_on_mixed_sizes(folders):
    """Batch-invariance with images of different sizes (Grounding DINO would otherwise pad them)."""
    samples = _samples()
    data = GroundingData(samples, DatasetMeta("tiny", "test", "grounding"))
    for kind in ("owlv2", "grounding-dino"):
        m = models._build(kind, model=str(folders[kind]), batch_size="5")
        rep = check_model(m, "grounding", data, name=kind, accepts=("image",), batch=5)
        assert rep.ok


def test_options_and_errors(folders, tmp_path):
    with pytest.raises(MMBenchError, match=r"unknown option\(s\) \['beams'\].*known: model, device, precision"):
        models.build_owlvit(beams="3")
    with pytest.raises(MMBenchError, match="not a local folder"):
        models.build_owlv2(model=str(tmp_path / "nope"))
    with pytest.raises(DataError, match="use --plugin owlvit"):
        models.build_owlv2(model=str(folders["owlvit"]))
    with pytest.raises(MMBenchError, match="needs a CUDA device"):
        models.build_grounding_dino(model=str(folders["grounding-dino"]), device="cpu", precision="fp16")
    with pytest.raises(MMBenchError, match="not one of"):
        models.build_grounding_dino(precision="fp64")
    with pytest.raises(MMBenchError, match="not a boolean"):
        models.build_owlvit(clip_boxes="maybe")
    m = models.build_mm_grounding_dino(seed=3, batch_size="2")
    assert m.batch_size == 2 and m.box_format == "xyxy" and m.box_normalized is False
    assert m.checkpoint_path.name == "model.safetensors" and m.predict([]) == []
    regions_only = GroundingSample("r", ImageItem(id="r", regions=np.zeros((2, 4), np.float32), size=(9, 9)), "x",
                                   np.array([[0, 0, 1, 1.0]]))
    with pytest.raises(DataError, match="accepts the 'image' input form"):
        m.predict([regions_only])


def test_specs_and_published_numbers():
    specs = {s.name: s for s in plugin.mmbench_models()}
    assert set(specs) == set(KINDS)
    for s in specs.values():
        assert s.task == "grounding" and set(s.options) == {"model", "device", "precision", "batch_size", "clip_boxes"}
        assert "RANDOM weights" in s.description
    pub = {(p.dataset, p.split, p.protocol): p.value for p in specs["grounding-dino"].published if p.metric == "P@1"}
    assert pub[("refcoco", "val", "refcoco-unc")] == 50.8 and pub[("refcoco", "testB", "refcoco-unc")] == 45.0
    assert pub[("mdetr_refexp", "testA", "refcoco-unc")] == 57.4 and pub[("refcocog", "test", "refcocog-umd")] == 59.7
    mm = {(p.dataset, p.split): p.value for p in specs["mm-grounding-dino"].published}
    assert mm[("refcoco", "val")] == 53.1 and mm[("refcoco+", "testB")] == 48.4
    assert not specs["owlvit"].published and not specs["owlv2"].published


def test_tiny_tokenizers_keep_the_layouts_the_models_rely_on(tmp_path):
    tok = tiny.clip_bpe_tokenizer()
    ids = tok("the small wedge")["input_ids"]
    assert ids[-1] == tok.eos_token_id == len(tok) - 1 and tok.pad_token_id == 0  # OWL pools at argmax(ids)
    assert tok.unk_token_id not in ids[:-1]  # in CLIP the unknown token IS the end-of-text token
    vocab = tiny.bert_wordpiece_vocab()
    assert [vocab[i] for i in (0, 100, 101, 102, 103, 1012, 1029)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                                         ".", "?"]
    bt = tiny.bert_tokenizer(tmp_path)
    assert bt.unk_token_id not in bt("the lozenge at the centre, near xyz.")["input_ids"]


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["owlv2", "grounding-dino"])
def test_real_coco_images_equal_transformers(shared_dir, kind, folders):
    """Real, non-square COCO JPEGs (../shared/parity/mdetr_refexp/coco): decoded from files by ImageItem."""
    d = shared_dir / "parity" / "mdetr_refexp" / "coco" / "train2014"
    files = sorted(d.glob("*.jpg"))[:3]
    if not files:
        pytest.skip(f"no COCO images in {d}")
    samples = []
    for i, f in enumerate(files):
        with Image.open(f) as im:
            size = im.size
        samples.append(GroundingSample(f"c{i}", ImageItem(id=f.stem, path=f, size=size), EXPRESSIONS[i],
                                       np.array([[0, 0, 10, 10.0]])))
    assert any(s.image.size[0] != s.image.size[1] for s in samples)
    for s in samples:
        s.image.pil = s.image.load()  # the reference reads .pil
    ref = _reference(kind, folders[kind], samples)
    boxes, scores = models._build(kind, model=str(folders[kind]), batch_size="1",
                                  clip_boxes="false").predict_with_scores(samples)
    for b, sc, (rb, rs) in zip(boxes, scores, ref):
        np.testing.assert_array_equal(sc, rs)
        np.testing.assert_array_equal(b, rb)


def test_grounding_dino_queries_past_max_text_len_are_truncated_by_the_tokenizer(folders):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    m = models._build("grounding-dino", model=str(folders["grounding-dino"]), clip_boxes="false")
    s = _samples()[1]
    s.expression = " ".join(["the small red wedge at the center"] * 6)  # > 32 tokens (the tiny max_text_len)
    q = models.grounding_dino_query(s.expression)
    assert len(m.tokenizer(q)["input_ids"]) > m.max_text == 32
    ref_model = GroundingDinoForObjectDetection.from_pretrained(str(folders["grounding-dino"]), local_files_only=True)
    proc = AutoProcessor.from_pretrained(str(folders["grounding-dino"]), local_files_only=True)
    with pytest.raises(RuntimeError), torch.no_grad():  # why the plugin truncates: transformers fails untruncated
        ref_model.eval()(**proc(images=[s.image.pil], text=[q], return_tensors="pt"))
    enc = proc(images=[s.image.pil], text=[q], return_tensors="pt", truncation=True, max_length=32)
    assert enc["input_ids"].shape == (1, 32) and enc["input_ids"][0, -1] == 102  # [SEP] kept
    with torch.no_grad():
        res = proc.post_process_grounded_object_detection(ref_model(**enc), enc["input_ids"], threshold=-1.0,
                                                          target_sizes=[s.image.size[::-1]])[0]
    order = torch.sort(res["scores"], descending=True, stable=True).indices
    (b,), (sc,) = m.predict_with_scores([s])
    np.testing.assert_array_equal(sc, res["scores"][order].numpy())
    np.testing.assert_array_equal(b, res["boxes"][order].numpy())
    assert m.details["truncated_queries"] == 1
