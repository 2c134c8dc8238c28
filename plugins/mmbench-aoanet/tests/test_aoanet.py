"""AoANet plugin: parity with the official eval (../shared/parity/aoanet), other opt values, safe loading, kit."""

from __future__ import annotations

import argparse
import io
import json
import pickle

import numpy as np
import pytest
import torch

from mmbench.errors import DataError, PluginError, UnsafeFileError
from mmbench.tasks.base import ImageItem
from mmbench_aoanet.captioner import build
from mmbench_aoanet.decoding import DecodeSettings, beam_search, decode_sequence, greedy
from mmbench_aoanet.infos import load_infos
from mmbench_aoanet.model import AoAModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fixture(parity_dir):
    from mmbench.datasets.cocobu import load

    d = parity_dir / "aoanet"
    if not d.is_dir():
        pytest.skip("no aoanet parity fixture")
    data = load("captioning", "test", d / "data", references="dataset_coco_subset.json")
    return d, data


def _official(d, beam):
    return build(model=str(d / "model-best.pth"), infos_path=str(d / "infos_aoanet-best.pkl"), beam_size=str(beam),
                 device="cpu")


def _tokens(row):
    row = list(row)
    return row[:row.index(0)] if 0 in row else row


@pytest.mark.shared
@pytest.mark.parametrize("beam", [1, 2, 3])
def test_captions_logprobs_and_beams_equal_official(fixture, beam):
    d, data = fixture
    exp = json.loads((d / "expected" / f"captions_beam{beam}.json").read_text())
    vis = json.loads((d / "expected" / f"vis_beam{beam}.json").read_text())
    model = _official(d, beam)
    # the architecture comes from every opt field of the infos, not from this fixture's numbers
    assert model.opt["rnn_size"] == 32 and model.opt["num_heads"] == 4 and model.details["decoding"]["beam_size"] == beam
    seq, lp, done = model.decode(data.images)
    caps = model.generate(data.images)
    assert [im.id for im in data.images] == [str(e["image_id"]) for e in exp["images"]]
    assert caps == [v["caption"] for v in vis]
    for i, e in enumerate(exp["images"]):
        assert _tokens(seq[i].tolist()) == e["tokens"]
        assert seq[i].tolist() == e["seq_official_full"] or beam == 1
        n = e["n_steps"]
        np.testing.assert_allclose(lp[i, :n].numpy(), e["seq_logprobs"], rtol=0, atol=1e-4)
        if beam > 1:
            assert len(done[i]) == len(e["done_beams"]) == beam
            for ours, theirs in zip(done[i], e["done_beams"]):
                assert ours["seq"].tolist() == theirs["seq"]
                np.testing.assert_allclose(ours["logps"].numpy(), theirs["logps"], rtol=0, atol=1e-4)
                assert ours["p"] == pytest.approx(theirs["p"], abs=1e-4)
                assert ours["unaug_p"] == pytest.approx(theirs["unaug_p"], abs=1e-4)


@pytest.mark.shared
def test_intermediates_and_teacher_forced_loss(fixture):
    d, data = fixture
    model = _official(d, 1)
    fc, att, masks = model._features(data.images)
    mean, att_r, p_att, m = model.model.prepare_feature(fc, att, masks)
    ref = np.load(d / "intermediate" / "prepared_features.npz")
    counts = ref["att_masks"].sum(1).astype(int)
    np.testing.assert_array_equal(m.numpy(), ref["att_masks"])
    np.testing.assert_allclose(mean.detach().numpy(), ref["mean_feats"], atol=1e-5)
    for i, n in enumerate(counts):
        np.testing.assert_allclose(att_r[i, :n].detach().numpy(), ref["att_feats"][i, :n], atol=1e-5)
        np.testing.assert_allclose(p_att[i, :n].detach().numpy(), ref["p_att_feats"][i, :n], atol=1e-5)
    tf = np.load(d / "intermediate" / "teacher_forced.npz")
    labels = torch.from_numpy(tf["labels"].astype(np.int64))
    rows = torch.arange(labels.shape[0]) // 5
    with torch.no_grad():
        out = model.model.teacher_forced(None, att[rows], labels, masks[rows])
    tgt = out.gather(2, labels[:, 1:].unsqueeze(2)).squeeze(2).numpy() * tf["masks"][:, 1:]
    np.testing.assert_allclose(tgt, tf["target_logprobs"], atol=1e-4)
    loss = -tgt.sum() / tf["masks"][:, 1:].sum()
    crit = json.loads((d / "expected" / "loss_verbose.json").read_text())["crit_value"]
    assert loss == pytest.approx(crit, abs=1e-5)


@pytest.mark.shared
def test_greedy_step_logprobs(fixture):
    d, data = fixture
    model = _official(d, 1)
    ref = np.load(d / "intermediate" / "greedy_step_logprobs.npy")
    fc, att, masks = model._features(data.images)
    feats = model.model.prepare_feature(fc, att, masks)
    seq, _ = greedy(model.model, feats, model.settings, model.bad_ix)
    state = model.model.init_hidden(len(data.images))
    it = torch.zeros(len(data.images), dtype=torch.long)
    with torch.no_grad():
        for t in range(ref.shape[1]):
            lp, state = model.model.get_logprobs_state(it, *feats, state)
            live = ~np.isnan(ref[:, t, 0])
            np.testing.assert_allclose(lp.numpy()[live], ref[live, t], atol=1e-4)
            it = seq[:, t]


def _tiny_opt(**over):
    opt = dict(caption_model="aoa", vocab_size=9, input_encoding_size=8, rnn_size=8, fc_feat_size=6, att_feat_size=6,
               att_hid_size=5, use_bn=0, logit_layers=1, refine=1, refine_aoa=1, use_ff=0, num_heads=2,
               multi_head_scale=1, use_multi_head=2, mean_feats=1, out_res=0, decoder_type="AoA", drop_prob_lm=0.5,
               num_layers=2, vocab={str(i): w for i, w in enumerate(["a", "the", "cat", "on", "mat", "of", "dog",
                                                                      "red", "UNK"], 1)})
    opt.update(over)
    return opt


def _write_tiny(tmp_path, seed=0, **over):
    opt = _tiny_opt(**over)
    vocab = opt.pop("vocab")
    torch.manual_seed(seed)
    m = AoAModel(opt)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        for name, b in m.named_buffers():
            if "running_var" in name:
                b.uniform_(0.5, 2.0)
            elif "running_mean" in name:
                b.normal_()
    torch.save(m.state_dict(), tmp_path / "model-best.pth")
    with open(tmp_path / "infos.pkl", "wb") as fh:
        pickle.dump({"opt": argparse.Namespace(**opt), "vocab": vocab, "best_val_score": np.float64(1.1)}, fh, protocol=2)
    return str(tmp_path / "model-best.pth"), str(tmp_path / "infos.pkl")


def _images(n=4, d=6, seed=1):
    rng = np.random.default_rng(seed)
    return [ImageItem(id=str(i), regions=np.abs(rng.normal(size=(3 + i, d))).astype(np.float32)) for i in range(n)]


@pytest.mark.parametrize("over", [
    {}, {"use_ff": 1}, {"refine": 0}, {"refine_aoa": 0}, {"use_multi_head": 1}, {"decoder_type": "LSTM"},
    {"decoder_type": "base", "out_res": 1}, {"mean_feats": 0}, {"use_bn": 1}, {"use_bn": 2}, {"multi_head_scale": 2},
])
def test_other_opt_values_build_load_and_decode_consistently(tmp_path, over):
    model, infos = _write_tiny(tmp_path, **over)
    images = _images()
    g = build(model=model, infos_path=infos, beam_size="1", device="cpu", max_length="6")
    b1 = g.generate(images)
    assert len(b1) == 4 and all(isinstance(c, str) for c in b1)
    assert g.generate(images) == b1 and [g.generate([im])[0] for im in images] == b1  # batch invariant
    # beam search keeps every finished beam sorted by score, and its best beats or ties greedy's (UNK aside)
    bm = build(model=model, infos_path=infos, beam_size="3", device="cpu", max_length="6")
    seq, lp, done = bm.decode(images)
    for beams in done:
        ps = [b["p"] for b in beams]
        assert ps == sorted(ps, reverse=True) and len(beams) == 3
        for b in beams:  # p is the float32 sum of the kept per-step log-probs
            assert b["p"] == pytest.approx(float(b["logps"].sum()), abs=1e-4)


def test_beam_search_matches_brute_force_on_a_tiny_model(tmp_path):
    # with beam_size = V + 1 every continuation is kept at the first step; the best done beam must be the
    # highest-scoring sequence among those the beam considered: checked against exhaustive search for L = 2
    model, infos = _write_tiny(tmp_path, seed=3)
    m = build(model=model, infos_path=infos, beam_size="1", device="cpu", max_length="2")
    feats = m.model.prepare_feature(*m._features(_images(1)))
    s = DecodeSettings(beam_size=10, max_length=2)
    _, _, done = beam_search(m.model, feats, s, m.bad_ix)
    best = done[0][0]
    # exhaustive: first token w1 (UNK -1000), then w2 (UNK -1000); sequences stop at 0
    with torch.no_grad():
        st = m.model.init_hidden(1)
        lp1, st1 = m.model.get_logprobs_state(torch.zeros(1, dtype=torch.long), *feats, st)
        lp1 = lp1[0].clone()
        lp1[-1] -= 1000
        cands = []
        for w1 in range(10):
            if w1 == 0:
                cands.append(((0,), float(lp1[0])))
                continue
            lp2, _ = m.model.get_logprobs_state(torch.tensor([w1]), *feats, st1)
            lp2 = torch.log_softmax(lp2, -1)[0].clone()
            lp2[-1] -= 1000
            for w2 in range(10):
                cands.append(((w1, w2), float(lp1[w1] + lp2[w2])))
    top = max(cands, key=lambda c: c[1])
    assert tuple(_tokens(best["seq"].tolist())) == tuple(t for t in top[0] if t) and best["p"] == pytest.approx(top[1], abs=1e-4)


def test_decoding_options(tmp_path):
    model, infos = _write_tiny(tmp_path, seed=5)
    images = _images()
    m = build(model=model, infos_path=infos, beam_size="1", device="cpu", max_length="8", decoding_constraint="1")
    seq, _, _ = m.decode(images)
    for row in seq.tolist():
        toks = _tokens(row)
        assert all(a != b for a, b in zip(toks, toks[1:]))  # no word twice in a row
    for beam in ("1", "2"):
        m = build(model=model, infos_path=infos, beam_size=beam, device="cpu", max_length="8", remove_bad_endings="1")
        seq, _, _ = m.decode(images)
        for row in seq.tolist():
            toks = _tokens(row)
            if toks and len(toks) < 8:  # ended with END: never right after a bad-ending word
                assert m.vocab[str(toks[-1])] not in ("a", "the", "of", "on")
    m = build(model=model, infos_path=infos, beam_size="4", group_size="2", diversity_lambda="0.7", device="cpu",
              max_length="6", length_penalty="wu_0.5")
    _, _, done = m.decode(images)
    assert all(len(b) == 4 for b in done)  # two groups of two
    assert m.details["decoding"] == {**DecodeSettings().as_dict(), "beam_size": 4, "group_size": 2,
                                     "diversity_lambda": 0.7, "max_length": 6, "length_penalty": "wu_0.5"}
    for bad, match in ((dict(sample_method="sample"), "beam_size=1"), (dict(sample_method="top0"), "topK"),
                       (dict(sample_method="top2.5", beam_size="1"), "topK"), (dict(sample_n="5"), "sample_n"),
                       (dict(sample_method="nucleus", beam_size="1"), "topK"), (dict(beam_size="3", group_size="2"), "multiple"),
                       (dict(length_penalty="long"), "wu_X"), (dict(decoding_constraint="2"), "0 or 1"),
                       (dict(block_trigrams="1", beam_size="2"), "greedy"), (dict(precision="fp16"), "CUDA"),
                       (dict(precision="fp8"), "precision")):
        with pytest.raises(PluginError, match=match):
            build(model=model, infos_path=infos, device="cpu", **bad)


def _official_sample_next_word(logprobs, sample_method, temperature):
    # husthuaan/AoANet:models/CaptionModel.py sample_next_word, verbatim but for .cuda() (global RNG)
    import torch.nn.functional as F

    if sample_method == 'gumbel':
        def sample_gumbel(shape, eps=1e-20):
            U = torch.rand(shape)
            return -torch.log(-torch.log(U + eps) + eps)

        def gumbel_softmax_sample(logits, temperature):
            y = logits + sample_gumbel(logits.size())
            return F.log_softmax(y / temperature, dim=-1)
        _logprobs = gumbel_softmax_sample(logprobs, temperature)
        _, it = torch.max(_logprobs.data, 1)
        sampleLogprobs = logprobs.gather(1, it.unsqueeze(1))
    else:
        logprobs = logprobs / temperature
        if sample_method.startswith('top'):
            top_num = float(sample_method[3:])
            if 0 < top_num < 1:
                probs = F.softmax(logprobs, dim=1)
                sorted_probs, sorted_indices = torch.sort(probs, descending=True, dim=1)
                _cumsum = sorted_probs.cumsum(1)
                mask = _cumsum < top_num
                mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, :-1]], 1)
                sorted_probs = sorted_probs * mask.float()
                sorted_probs = sorted_probs / sorted_probs.sum(1, keepdim=True)
                logprobs.scatter_(1, sorted_indices, sorted_probs.log())
            else:
                the_k = int(top_num)
                tmp = torch.empty_like(logprobs).fill_(float('-inf'))
                topk, indices = torch.topk(logprobs, the_k, dim=1)
                tmp = tmp.scatter(1, indices, topk)
                logprobs = tmp
        it = torch.distributions.Categorical(logits=logprobs.detach()).sample()
        sampleLogprobs = logprobs.gather(1, it.unsqueeze(1))
    return it, sampleLogprobs


@pytest.mark.parametrize("method", ["sample", "gumbel", "top3", "top0.6"])
def test_sample_next_word_draws_as_the_official_global_rng(method):
    from mmbench_aoanet.decoding import sample_next_word

    lp = torch.log_softmax(torch.randn(6, 11, generator=torch.Generator().manual_seed(2)) * 2, 1)
    for seed in (0, 7):
        torch.manual_seed(seed)
        ref = [_official_sample_next_word(lp.clone(), method, 0.8) for _ in range(3)]
        gen = torch.Generator().manual_seed(seed)
        ours = [sample_next_word(lp.clone(), method, 0.8, gen) for _ in range(3)]
        for (a, la), (b, lb) in zip(ref, ours):
            assert a.tolist() == b.tolist()
            torch.testing.assert_close(la, lb, rtol=0, atol=0)


def test_sampling_is_seeded_and_honours_its_options(tmp_path):
    model, infos = _write_tiny(tmp_path, seed=5)
    images = _images(8)
    mk = lambda **o: build(model=model, infos_path=infos, device="cpu", max_length="8", beam_size="1", **o)  # noqa: E731
    greedy_caps = mk().generate(images)
    for method in ("sample", "gumbel", "top3", "top0.8"):
        a = mk(sample_method=method, seed="3")
        first = a.generate(images)
        assert mk(sample_method=method, seed="3").generate(images) == first  # reproducible for a seed
        assert a.generate(images) != first  # the generator advances from batch to batch, as the global RNG
        others = {tuple(mk(sample_method=method, seed=str(k)).generate(images)) for k in range(4, 8)}
        assert any(o != tuple(first) for o in others)  # other seeds, other samples
        assert a.details["decoding"]["sample_method"] == method and a.details["sampling"]["seed"] == 3
    # a tiny temperature makes sampling greedy; top1 is greedy whatever the temperature
    assert mk(sample_method="sample", temperature="1e-4").generate(images) == greedy_caps
    assert mk(sample_method="top1", temperature="3").generate(images) == greedy_caps
    assert mk(sample_method="sample", temperature="5", seed="1").generate(images) != greedy_caps
    assert mk().details["sampling"] is None
    # the per-step log-probs are those of the drawn tokens under logprobs / temperature (the official's)
    m = mk(sample_method="sample", temperature="2", seed="9")
    seq, lp, _ = m.decode(images)
    feats = m.model.prepare_feature(*m._features(images))
    with torch.no_grad():
        step, _ = m.model.get_logprobs_state(torch.zeros(len(images), dtype=torch.long), *feats,
                                             m.model.init_hidden(len(images)))
    torch.testing.assert_close(lp[:, 0], (step / 2).gather(1, seq[:, :1]).squeeze(1))


def test_decode_sequence_post_processing():
    vocab = {"1": "a", "2": "dog", "3": "on", "4": "the", "5": "gr@@", "6": "ass"}
    seq = torch.tensor([[1, 2, 3, 4, 0, 2], [5, 6, 0, 0, 0, 0], [1, 4, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]])
    assert decode_sequence(vocab, seq) == ["a dog on the", "grass", "a the", ""]
    # bad endings trimmed; a caption made only of them is kept whole (the official loop's quirk)
    assert decode_sequence(vocab, seq, 1) == ["a dog", "grass", "a the", ""]


def test_refused_options_and_files(tmp_path):
    with pytest.raises(PluginError, match="unknown option"):
        build(beamsize="2")
    with pytest.raises(PluginError, match="both model"):
        build(model="x")
    for over, match in (({"caption_model": "topdown"}, "caption_model"), ({"logit_layers": 2}, "logit_layers"),
                        ({"use_box": 1}, "use_box")):
        model, infos = _write_tiny(tmp_path)
        opt = {**_tiny_opt(), **over}
        vocab = opt.pop("vocab")
        with open(tmp_path / "infos.pkl", "wb") as fh:
            pickle.dump({"opt": argparse.Namespace(**opt), "vocab": vocab}, fh, protocol=2)
        with pytest.raises(DataError, match=match):
            build(model=model, infos_path=infos, device="cpu")
    model, infos = _write_tiny(tmp_path, use_ff=1)
    torch.save({k: v for k, v in torch.load(model).items() if "feed_forward" not in k}, tmp_path / "cut.pth")
    with pytest.raises(DataError, match="does not fit"):
        build(model=str(tmp_path / "cut.pth"), infos_path=infos, device="cpu")
    m = build(model=model, infos_path=infos, device="cpu")
    with pytest.raises(DataError, match="regions of shape"):
        m.generate([ImageItem(id="x", regions=np.zeros((4, 7), np.float32))])
    with pytest.raises(PluginError, match="no region features"):
        m.generate([ImageItem(id="x", pil=object())])


def test_infos_unpickler_refuses_code_and_reads_numpy_scalars(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"opt": argparse.Namespace(a=1), "vocab": {}, "x": Evil()},
                                                     protocol=2))
    with pytest.raises(UnsafeFileError, match=r"builtins.open|io.open|allow_unsafe_pickle"):
        load_infos(tmp_path / "evil.pkl")
    assert not marker.exists()
    buf = io.BytesIO()
    pickle.dump({"opt": argparse.Namespace(rnn_size=4), "vocab": {1: "a"}, "best_val_score": np.float64(1.25)}, buf,
                protocol=2)
    (tmp_path / "ok.pkl").write_bytes(buf.getvalue())
    infos = load_infos(tmp_path / "ok.pkl")
    assert infos["opt"] == {"rnn_size": 4} and infos["vocab"] == {"1": "a"} and infos["best_val_score"] == 1.25


def test_shipped_demo_is_official_format_and_small():
    from mmbench_aoanet.captioner import DEMO_INFOS, DEMO_MODEL

    assert DEMO_MODEL.stat().st_size < 2**20
    assert all(isinstance(v, torch.Tensor) for v in torch.load(DEMO_MODEL, weights_only=True).values())
    infos = load_infos(DEMO_INFOS)
    assert infos["opt"]["caption_model"] == "aoa" and infos["vocab"][str(len(infos["vocab"]))] == "UNK"


def test_demo_run_above_constant_caption():
    from mmbench.datasets.demo import load
    from mmbench.metrics.captioning import caption_scores
    from mmbench.testing import limit_data

    data = limit_data(load("captioning", "test"), 60)
    model = build(device="cpu")
    preds = model.generate(data.images)
    ids = [im.id for im in data.images]
    refs = dict(zip(ids, data.references))
    ours = caption_scores(refs, dict(zip(ids, preds)), tokenizer="python", metrics=("bleu", "cider"))
    const = caption_scores(refs, {i: "a red circle on the left" for i in ids}, tokenizer="python",
                           metrics=("bleu", "cider"))
    assert ours["metrics"]["CIDEr"] > 3 * const["metrics"]["CIDEr"] and ours["metrics"]["CIDEr"] > 0.5
    assert ours["metrics"]["Bleu_4"] > const["metrics"]["Bleu_4"] + 0.1


def test_plugin_kit():
    from mmbench.testing import check_plugin

    report = check_plugin("aoanet", options={"device": "cpu"}, limit=8)
    assert report.ok
