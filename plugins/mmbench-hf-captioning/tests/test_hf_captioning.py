"""mmbench-hf-captioning against transformers itself, on tiny random BLIP/GIT checkpoints built here.

The reference is transformers called directly, one image at a time: the processor, ``model.generate``
with the same explicit settings, ``batch_decode(skip_special_tokens=True)``, the official prompt removal
(BLIP: a character slice, salesforce/BLIP:models/blip.py; GIT: the prompt tokens,
microsoft/GenerativeImage2Text:generativeimage2text/layers/decoder.py) and strip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmbench.errors import MMBenchError
from mmbench.plugins import Registry
from mmbench.tasks import ImageItem
from mmbench.testing import check_plugin
from mmbench_hf_captioning import models, plugin
from mmbench_hf_captioning.tiny import (bert_tokenizer, blip2_processor, opt_tokenizer, processor, tiny_blip2_config,
                                        tiny_blip_config, tiny_git_config, wordpiece_vocab)

TEXTS = ["a red square on the left", "two blue circles", "a big green triangle at the right",
         "a small yellow diamond, in the middle!", "purple", "an orange box and a red ball next to each other",
         "a picture of"]
BLIP2_TEXTS = TEXTS + ["a photo of a red circle", "a photo of two green boxes\n", "a photo of"]


def _images(n=5):
    rng = np.random.default_rng(0)
    return [ImageItem(id=f"im{i}", pil=Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)),
                      size=(56, 40 + 8 * i)) for i in range(n)]


def _tiny(kind, d, seed):
    from transformers import Blip2ForConditionalGeneration, BlipForConditionalGeneration, GitForCausalLM

    if kind == "blip2":  # ViT + Q-Former (4 queries) + OPT, byte-level BPE tokenizer laid out like OPT's
        tok = opt_tokenizer(BLIP2_TEXTS, vocab_size=300)
        proc = blip2_processor(tok, 32, num_query_tokens=4)  # adds <image>
        torch.manual_seed(seed)
        m = Blip2ForConditionalGeneration(tiny_blip2_config(tok, width=32, layers=1, image_size=32, num_query_tokens=4,
                                                            max_len=48, init_range=0.3))
        m.save_pretrained(d)
        proc.save_pretrained(d)
        return d
    tok = bert_tokenizer(TEXTS, d, blip=kind == "blip", max_length=16)
    torch.manual_seed(seed)
    # a large init std makes the random captions depend on the image (std 0.02 gives one caption for all)
    if kind == "blip":
        m = BlipForConditionalGeneration(tiny_blip_config(tok, width=32, layers=1, image_size=32, max_len=16, init_range=0.3))
    else:
        m = GitForCausalLM(tiny_git_config(tok, width=32, layers=1, image_size=32, max_len=16, init_range=0.3))
    m.save_pretrained(d)
    processor(kind, tok, 32).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    return _tiny("blip", tmp_path_factory.mktemp("tiny_blip"), 0)


@pytest.fixture(scope="module")
def git_dir(tmp_path_factory):
    return _tiny("git", tmp_path_factory.mktemp("tiny_git"), 1)


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory):
    return _tiny("blip2", tmp_path_factory.mktemp("tiny_blip2"), 2)


def _reference(kind, d, images, prompt, **gen):
    """transformers directly, one image at a time: token ids and the caption of each."""
    from transformers import AutoProcessor, Blip2ForConditionalGeneration, BlipForConditionalGeneration, GitForCausalLM

    proc = AutoProcessor.from_pretrained(str(d), local_files_only=True)
    cls = {"blip": BlipForConditionalGeneration, "git": GitForCausalLM, "blip2": Blip2ForConditionalGeneration}[kind]
    m = cls.from_pretrained(str(d), local_files_only=True).float().eval()
    return [_reference_one(kind, m, proc, image, prompt, **gen) for image in images]


def _reference_one(kind, m, proc, image, prompt, **gen):
    tok = proc.tokenizer
    with torch.no_grad():
        if kind == "blip2":
            # the processor puts num_query_tokens <image> tokens before tokenizer(prompt); LAVIS's lengths:
            # max_length counts the prompt tokens and min_length too (salesforce/LAVIS:lavis/models/blip2_models/
            # blip2_opt.py), the caption ends at "\n", and what follows the input ids is decoded
            inputs = proc(images=[image.pil], text=[prompt], return_tensors="pt")
            n_prompt = len(tok(prompt)["input_ids"])
            gen = dict(gen)
            if "max_length" in gen:
                gen["max_new_tokens"] = gen.pop("max_length") - n_prompt
            gen["min_new_tokens"] = max(0, gen.pop("min_length") - n_prompt)
            ids = m.generate(**inputs, eos_token_id=tok("\n", add_special_tokens=False)["input_ids"][0],
                             pad_token_id=tok.pad_token_id, **gen)
            assert ids[0, :inputs["input_ids"].shape[1]].tolist() == inputs["input_ids"][0].tolist()
            cap = tok.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
        elif kind == "blip":
            inputs = proc(images=[image.pil], text=[prompt], return_tensors="pt")
            ids = m.generate(**inputs, **gen)
            cap = tok.batch_decode(ids, skip_special_tokens=True)[0][len(prompt):].strip()
        else:
            pv = proc(images=[image.pil], return_tensors="pt")["pixel_values"]
            start = torch.tensor([[tok.cls_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]])
            ids = m.generate(pixel_values=pv, input_ids=start, eos_token_id=tok.sep_token_id,
                             pad_token_id=tok.pad_token_id, **gen)
            cap = tok.batch_decode(ids[:, start.shape[1]:], skip_special_tokens=True)[0].strip()
    return ids[0], cap


def _trim(row, pad):
    row = row.tolist()
    while row and row[-1] == pad:
        row.pop()
    return row


BASE = dict(do_sample=False, num_return_sequences=1, early_stopping=False, no_repeat_ngram_size=0)
CASES = [  # (kind, plugin options, the generate() settings they must mean, prompt)
    ("blip", {}, dict(num_beams=3, max_length=16, min_length=5, repetition_penalty=1.0, length_penalty=1.0),
     "a picture of "),
    ("blip", {"preset": "greedy"}, dict(num_beams=1, max_length=16, min_length=0, repetition_penalty=1.0,
                                        length_penalty=1.0), ""),
    ("blip", {"num_beams": "2", "max_new_tokens": "8", "min_length": "6", "repetition_penalty": "1.5",
              "no_repeat_ngram_size": "2", "prompt": "a picture of"},
     dict(num_beams=2, max_new_tokens=8, min_length=6, repetition_penalty=1.5, length_penalty=1.0,
          no_repeat_ngram_size=2), "a picture of"),
    ("git", {}, dict(num_beams=4, max_length=16, min_length=0, repetition_penalty=1.0, length_penalty=0.6), ""),
    ("git", {"preset": "greedy", "max_length": "12"},
     dict(num_beams=1, max_length=12, min_length=0, repetition_penalty=1.0, length_penalty=1.0), ""),
    ("git", {"num_beams": "3", "length_penalty": "2.0", "min_length": "6", "prompt": "a red", "max_new_tokens": "6"},
     dict(num_beams=3, max_new_tokens=6, min_length=6, repetition_penalty=1.0, length_penalty=2.0), "a red"),
    # BLIP-2: LAVIS's lengths (max_new_tokens; min_length counts the prompt tokens, not the query tokens)
    ("blip2", {}, dict(num_beams=5, max_new_tokens=30, min_length=8, repetition_penalty=1.0, length_penalty=1.0),
     "a photo of"),
    ("blip2", {"preset": "greedy"}, dict(num_beams=1, max_length=20, min_length=0, repetition_penalty=1.0,
                                         length_penalty=1.0), ""),
    ("blip2", {"num_beams": "2", "max_length": "12", "min_length": "9", "repetition_penalty": "1.3",
               "no_repeat_ngram_size": "2", "length_penalty": "0.5", "prompt": "a red"},
     dict(num_beams=2, max_length=12, min_length=9, repetition_penalty=1.3, length_penalty=0.5,
          no_repeat_ngram_size=2), "a red"),
]


def _blip2_generate_kwargs(cap, gen, prompt):
    """The generate() settings a LAVIS-style ``gen`` means for a BLIP-2 checkpoint (query tokens not counted)."""
    n_prompt = len(cap.tokenizer(prompt)["input_ids"])
    gen = dict(gen)
    if "max_length" in gen:
        gen["max_new_tokens"] = gen.pop("max_length") - n_prompt
    gen["min_new_tokens"] = max(0, gen.pop("min_length") - n_prompt)
    return gen


@pytest.mark.parametrize("kind,options,gen,prompt", CASES)
def test_captions_equal_transformers_generate(kind, options, gen, prompt, blip_dir, git_dir, blip2_dir):
    d = {"blip": blip_dir, "git": git_dir, "blip2": blip2_dir}[kind]
    cap = getattr(models, f"build_{kind}")(model=str(d), **options)
    gen = dict(BASE, **gen)
    assert cap.prompt == prompt
    want = _blip2_generate_kwargs(cap, gen, prompt) if kind == "blip2" else gen
    assert {k: v for k, v in cap.generate_kwargs.items() if k not in ("eos_token_id", "pad_token_id")} == want
    assert cap.details["generate"] == cap.generate_kwargs and cap.details["prompt"] == prompt
    ims = _images(3)
    batch_ids = cap.generate_ids(ims)
    batch = cap.generate(ims)
    pad = cap.tokenizer.pad_token_id
    refs = _reference(kind, d, ims, prompt, **gen)
    for i, (ref_ids, ref_cap) in enumerate(refs):
        assert _trim(batch_ids[i], pad) == _trim(ref_ids, pad), i  # token for token
        assert batch[i] == ref_cap, i
        assert cap.generate([ims[i]]) == [ref_cap], i  # batch size 1 vs N
    assert len(set(batch)) > 1, batch  # the tiny random models caption images differently
    assert all(isinstance(c, str) for c in batch)


def test_blip_prompt_is_cut_as_characters_like_the_official_code(blip_dir):
    cap = models.build_blip(model=str(blip_dir), preset="greedy", prompt="a picture of ")
    ids = cap.generate_ids(_images(2))
    assert (ids[:, 0] == cap.model.config.text_config.bos_token_id).all()  # [DEC] replaced [CLS]
    assert ids[0, 1:4].tolist() == cap.tokenizer("a picture of", add_special_tokens=False)["input_ids"]
    full = cap.tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert all(f.startswith("a picture of") for f in full)
    assert cap.decode(ids) == [f[len("a picture of "):].strip() for f in full]


def test_git_prompt_tokens_are_cut(git_dir):
    cap = models.build_git(model=str(git_dir), preset="greedy", prompt="a red")
    ids = cap.generate_ids(_images(2))
    start = [cap.tokenizer.cls_token_id] + cap.tokenizer("a red", add_special_tokens=False)["input_ids"]
    assert ids[:, :len(start)].tolist() == [start, start]
    assert cap.decode(ids) == [c.strip() for c in cap.tokenizer.batch_decode(ids[:, len(start):],
                                                                                skip_special_tokens=True)]


def test_blip2_input_and_prompt_removal(blip2_dir, monkeypatch):
    """BLIP-2's input is [<image>] * num_query_tokens + tokenizer(prompt) (what the processor builds), "\n" ends a
    caption, and exactly that input prefix is cut from the output: when generate returns it (transformers 5.x)
    and when it returns only the new tokens (older releases), the captions are the same."""
    from transformers import AutoProcessor

    cap = models.build_blip2(model=str(blip2_dir), preset="greedy", prompt="a photo of", max_new_tokens="6")
    tok = cap.tokenizer
    prompt_ids = tok("a photo of")["input_ids"]
    assert prompt_ids[0] == tok.convert_tokens_to_ids("</s>") and tok.decode(prompt_ids[1:]) == "a photo of"
    start = [cap.image_token_id] * 4 + prompt_ids
    assert cap._prompt_ids(2).tolist() == [start, start] and cap.num_query_tokens == 4
    proc = AutoProcessor.from_pretrained(str(blip2_dir), local_files_only=True)
    ims = _images(3)
    assert proc(images=[ims[0].pil], text=["a photo of"])["input_ids"][0] == start
    assert cap.generate_kwargs["eos_token_id"] == tok("\n", add_special_tokens=False)["input_ids"][0]
    assert cap.details["prompt_tokens"] == prompt_ids and cap.details["lavis_lengths"]["prompt_tokens"] == 4
    ids = cap.generate_ids(ims)
    assert ids[:, :len(start)].tolist() == [start] * 3 and ids.shape[1] <= len(start) + 6
    full = cap.generate(ims)
    assert full == [c.strip() for c in tok.batch_decode(ids[:, len(start):], skip_special_tokens=True)]
    # an output without the input prefix (the pre-image-token releases) is decoded as it is
    assert cap.decode(ids[:, len(start):]) == full
    real = type(cap.model).generate
    monkeypatch.setattr(type(cap.model), "generate", lambda self, **kw: real(self, **kw)[:, kw["input_ids"].shape[1]:])
    assert cap.generate(ims) == full


def test_blip2_errors(blip2_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setitem(models.DEMO_CHECKPOINTS, "blip2", tmp_path / "absent")
    with pytest.raises(MMBenchError, match="blip2: no demo checkpoint ships with this package; give --option model="):
        models.build_blip2()
    monkeypatch.undo()

    d = tmp_path / "old"
    shutil.copytree(blip2_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("image_token_index", None)
    cfg.pop("image_token_id", None)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MMBenchError, match="image_token_index is not set"):
        models.build_blip2(model=str(d))
    with pytest.raises(MMBenchError, match="model_type is 'blip-2'.*use --plugin blip2"):
        models.build_blip(model=str(blip2_dir))
    with pytest.raises(MMBenchError, match="4 query tokens \\+ 4 prompt tokens \\+ 60 new tokens exceed"):
        models.build_blip2(model=str(blip2_dir), max_new_tokens="60")
    with pytest.raises(MMBenchError, match="takes 4 tokens, not less than max_length=4"):
        models.build_blip2(model=str(blip2_dir), max_length="4")


def test_checkpoint_generation_config_does_not_leak(git_dir, tmp_path):
    """A generation_config.json in the folder cannot change the settings the plugin passes explicitly."""
    import shutil

    d = tmp_path / "git"
    shutil.copytree(git_dir, d)
    gc = json.loads((d / "generation_config.json").read_text())
    gc.update(num_beams=1, length_penalty=5.0, max_length=3, no_repeat_ngram_size=1)
    (d / "generation_config.json").write_text(json.dumps(gc))
    ims = _images(3)
    assert models.build_git(model=str(d)).generate(ims) == models.build_git(model=str(git_dir)).generate(ims)
    assert models.build_git(model=str(d)).details["checkpoint_generation_config"]["length_penalty"] == 5.0


def test_details_record_every_setting(blip_dir, git_dir):
    b = models.build_blip(model=str(blip_dir), seed=3)
    assert b.details["preset"] == "blip-coco" and b.details["seed"] == 3
    assert b.details["generate"]["num_beams"] == 3 and b.details["image_size"] == {"height": 32, "width": 32}
    assert any("preset's image size is 384" in n for n in b.details["notes"])
    json.dumps(b.details)  # recorded in the run record: must be JSON
    g = models.build_git(model=str(git_dir))
    assert g.details["generate"]["max_length"] == 16 and g.details["generate"]["length_penalty"] == 0.6
    assert any("capped at the checkpoint's max_position_embeddings 16" in n for n in g.details["notes"])
    assert any("GNMT" in n for n in g.details["notes"])
    json.dumps(g.details)


def test_blip2_details_record_every_setting(blip2_dir):
    b = models.build_blip2(model=str(blip2_dir), seed=5)
    assert b.details["preset"] == "blip2-coco" and b.details["seed"] == 5
    assert b.details["generate"]["num_beams"] == 5 and b.details["generate"]["max_new_tokens"] == 30
    assert b.details["generate"]["min_new_tokens"] == 4  # LAVIS min_len 8 minus "</s> a photo of"
    assert b.details["lavis_lengths"] == {"max_len (new tokens)": 30, "min_len (prompt tokens included)": 8,
                                          "prompt_tokens": 4}
    assert b.details["eos"] == "\n" and "caption_coco_opt2.7b_eval.yaml" in b.details["preset_source"]
    assert any("preset's image size is 364" in n for n in b.details["notes"])
    assert any("#27351" in n for n in b.details["notes"])
    json.dumps(b.details)


@pytest.mark.parametrize("name", ["blip", "git", "blip2"])
def test_tiny_checkpoints_pass_the_kit(name, blip_dir, git_dir, blip2_dir):
    reg = Registry(entry_points=False, extra_modules=(plugin,))
    d = {"blip": blip_dir, "git": git_dir, "blip2": blip2_dir}[name]
    rep = check_plugin(name, options={"model": str(d), "batch_size": "3"}, registry=reg, limit=3)
    assert rep.ok and "batch-invariant" in rep.passed and "wrong-input-form" in rep.passed


def test_clear_errors(blip_dir, git_dir, tmp_path):
    with pytest.raises(MMBenchError, match="is not a local folder. mmbench never downloads"):
        models.build_blip(model="Salesforce/blip-image-captioning-base")
    with pytest.raises(MMBenchError, match="config.json: missing"):
        models.build_git(model=str(tmp_path))
    with pytest.raises(MMBenchError, match="model_type is 'git'.*use --plugin git"):
        models.build_blip(model=str(git_dir))
    with pytest.raises(MMBenchError, match="precision=fp16 needs a CUDA device"):
        models.build_blip(model=str(blip_dir), precision="fp16", device="cpu")
    with pytest.raises(MMBenchError, match="precision='fp8' is not one of fp32, fp16, bf16"):
        models.build_blip(model=str(blip_dir), precision="fp8")
    with pytest.raises(MMBenchError, match=r"unknown option\(s\) \['beams'\] for git; known: model, device, "
                                           r"precision, batch_size, preset, num_beams"):
        models.build_git(model=str(git_dir), beams="3")
    with pytest.raises(MMBenchError, match="preset='coco' is not one of blip-coco, git-coco, blip2-coco, greedy"):
        models.build_git(model=str(git_dir), preset="coco")
    with pytest.raises(MMBenchError, match="not both"):
        models.build_git(model=str(git_dir), max_length="10", max_new_tokens="5")
    with pytest.raises(MMBenchError, match="exceeds the checkpoint's max_position_embeddings"):
        models.build_git(model=str(git_dir), max_length="100")
    with pytest.raises(MMBenchError, match="takes 3 tokens, not less than max_length=3"):
        models.build_git(model=str(git_dir), prompt="a red", max_length="3")
    with pytest.raises(MMBenchError, match="num_beams='x' is not an integer"):
        models.build_blip(model=str(blip_dir), num_beams="x")
    with pytest.raises(MMBenchError, match="length_penalty='nan' must be finite"):
        models.build_blip(model=str(blip_dir), length_penalty="nan")
    cap = models.build_blip(model=str(blip_dir))
    with pytest.raises(MMBenchError, match="offers \\['regions'\\]"):
        cap.generate([ImageItem(id="r", regions=np.zeros((36, 8), np.float32))])
    with pytest.raises(ValueError, match="empty batch"):
        cap.generate([])


def test_specs_are_cheap_and_declare_published_numbers():
    specs = {s.name: s for s in plugin.mmbench_models()}
    assert sorted(specs) == ["blip", "blip2", "blip2-opt-6.7b", "git", "git-large"]
    assert all(s.task == "captioning" and s.accepts == ("image",) for s in specs.values())
    assert all(set(models.OPTIONS) == set(s.options) for s in specs.values())
    pub = {(s.name, p.metric): p.value for s in specs.values() for p in s.published}
    assert pub == {("blip", "Bleu_4"): 0.399, ("blip", "CIDEr"): 1.335, ("git", "CIDEr"): 1.3135,
                   ("git-large", "CIDEr"): 1.3845, ("blip2", "Bleu_4"): 0.437, ("blip2", "CIDEr"): 1.458,
                   ("blip2-opt-6.7b", "Bleu_4"): 0.435, ("blip2-opt-6.7b", "CIDEr"): 1.452}
    assert all(p.dataset == "coco" and p.split == "test" for s in specs.values() for p in s.published)


def test_wordpiece_vocab_covers_ascii_and_the_caption_words():
    vocab = wordpiece_vocab(["A red box, on the LEFT: 2 shapes!"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == len(set(vocab))
    assert {"red", "box", "left", "shapes", ",", ":", "!", "2", "z", "##z"} <= set(vocab)


# --------------------------------------------------------------------------- the shipped demo checkpoints

@pytest.mark.parametrize("kind", ["blip", "git", "blip2"])
def test_shipped_checkpoint_is_small_complete_and_the_default(kind):
    d = models.DEMO_CHECKPOINTS[kind]
    files = {p.name: p.stat().st_size for p in d.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "processor_config.json", "training.json"} <= set(files)
    assert sum(files.values()) <= (1024 if kind == "blip2" else 512) * 1024, files
    info = json.loads((d / "training.json").read_text())
    assert info["model"] == kind and info["seed"] == 0 and info["train_images"] == 400
    cap = getattr(models, f"build_{kind}")()
    assert cap.path == d and cap.checkpoint_path == d / "model.safetensors"
    assert next(cap.model.parameters()).dtype == torch.float32
    test = Registry(entry_points=False).dataset("demo").load("captioning", "test")
    unk = cap.tokenizer.unk_token_id
    assert not any(unk in ids for refs in test.references for ids in cap.tokenizer(refs)["input_ids"])


def _demo_scores(kind):
    from mmbench.metrics.captioning import caption_scores

    test = Registry(entry_points=False).dataset("demo").load("captioning", "test")
    n = 60  # the first 60 test images keep the test quick; `mmbench eval -p blip -p git -d demo` scores all 200
    refs = {im.id: r for im, r in zip(test.images[:n], test.references[:n])}
    cap = getattr(models, f"build_{kind}")(batch_size="60")
    preds = dict(zip(refs, cap.generate(test.images[:n])))
    # a trivial caption: the same words for every image
    const = {i: "a red square on the left and a blue circle on a grey background" for i in refs}
    m = ("bleu", "cider")
    return (caption_scores(refs, preds, metrics=m)["metrics"], caption_scores(refs, const, metrics=m)["metrics"],
            preds)


@pytest.mark.parametrize("kind", ["blip", "git", "blip2"])
def test_shipped_checkpoint_beats_a_trivial_caption(kind):
    got, const, preds = _demo_scores(kind)
    assert len(set(preds.values())) > 15, "the demo model ignores the image"
    assert got["CIDEr"] > 1.3 * const["CIDEr"] and got["Bleu_4"] > const["Bleu_4"], (got, const)


@pytest.mark.parametrize("kind", ["blip", "git", "blip2"])
def test_demo_training_is_reproducible(kind, tmp_path):
    from mmbench_hf_captioning.train_demo import train

    infos = [train(kind, tmp_path / f"run{i}", epochs=1, n_images=100, log=lambda *_: None) for i in range(2)]
    assert infos[0]["steps"] == 2 and infos[0]["train_images"] == 100 and infos[0]["final_loss"] == infos[1]["final_loss"]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "processor_config.json"):
        assert (tmp_path / "run0" / name).read_bytes() == (tmp_path / "run1" / name).read_bytes(), name
    # the shipped config, tokenizer and processor say what the script writes (compared as content:
    # the writer's version stamp is not part of it)
    from mmbench.testing import json_content

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        assert json_content(tmp_path / "run0" / name) == json_content(models.DEMO_CHECKPOINTS[kind] / name), name
    assert getattr(models, f"build_{kind}")(model=str(tmp_path / "run0")).generate(_images(1))[0] is not None


def test_gpu_check_script_cpu_smoke():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--device", "cpu", "--images", "4", "--batch-size", "2"]) == 0
