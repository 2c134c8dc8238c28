"""mmbench_vse.training / .wrapper: the training and scoring plumbing shared by the VSE-family plugins."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pytest
import torch

from mmbench.checkpoints import load_checkpoint
from mmbench.errors import DataError, PluginError
from mmbench.tasks.base import ImageItem
from mmbench_vse import training, wrapper


def _loss_by_loops(s: np.ndarray, margin: float, max_violation: bool) -> float:
    # fartashf/vsepp:model.py ContrastiveLoss written out pair by pair: for image i and caption j != i,
    # cost_s[i, j] = [margin + s(i, j) - s(i, i)]+ and cost_im[i, j] = [margin + s(i, j) - s(j, j)]+
    n = len(s)
    cost_s = [[max(0.0, margin + s[i, j] - s[i, i]) if i != j else 0.0 for j in range(n)] for i in range(n)]
    cost_im = [[max(0.0, margin + s[i, j] - s[j, j]) if i != j else 0.0 for j in range(n)] for i in range(n)]
    if max_violation:
        return sum(max(row) for row in cost_s) + sum(max(cost_im[i][j] for i in range(n)) for j in range(n))
    return sum(map(sum, cost_s)) + sum(map(sum, cost_im))


@pytest.mark.parametrize("max_violation", [False, True])
def test_contrastive_loss_matches_pairwise_definition(max_violation):
    s = np.random.default_rng(1).normal(size=(5, 5)) * 0.3
    got = training.contrastive_loss(torch.from_numpy(s), 0.2, max_violation).item()
    assert got == pytest.approx(_loss_by_loops(s, 0.2, max_violation), rel=1e-12)
    assert got > 0
    easy = torch.eye(4, dtype=torch.float64)  # positives beat every negative by 1 > margin
    assert training.contrastive_loss(easy, 0.2, max_violation).item() == 0.0


def test_build_vocab_threshold_and_first_appearance_order():
    caps = ["A dog runs.", "the dog, a cat", "dog cat cat", "a cat and a dog"]
    v = training.build_vocab(caps, threshold=3)
    # counts: a 4, dog 4, cat 4, the/runs/and 1; specials first, then first appearance
    assert v.word2idx == {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "a": 4, "dog": 5, "cat": 6}
    assert len(training.build_vocab(caps)) == 7 and len(training.build_vocab(caps, threshold=5)) == 4


def test_stack_regions_and_pooling():
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    ims = [ImageItem(id="a", regions=rows), ImageItem(id="b", regions=rows + 1)]
    out = wrapper.stack_regions(ims, 4, plugin="p")
    assert out.dtype == np.float32 and out.shape == (2, 3, 4) and out[1, 2, 3] == 12.0
    assert np.array_equal(training.region_mean(ims), np.array([[4, 5, 6, 7], [5, 6, 7, 8]], np.float32))
    assert training.region_stack(ims).shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"image 'a'.*\(3, 4\).*expected \(36, 4\) to fit this p checkpoint \(why\)"):
        wrapper.stack_regions(ims, 4, plugin="p", n_regions=36, why=" (why)")
    with pytest.raises(DataError, match=r"expected \(R, 5\)"):
        wrapper.stack_regions(ims, 5, plugin="p")
    with pytest.raises(DataError, match="different region counts"):
        wrapper.stack_regions([ims[0], ImageItem(id="c", regions=rows[:2])], 4, plugin="p")
    with pytest.raises(PluginError, match="p: image 'x' has no region features.*'regions' input form"):
        wrapper.stack_regions([ImageItem(id="x", pil=object())], 4, plugin="p")
    with pytest.raises(PluginError, match="p: encode_texts\\(\\) got an empty batch"):
        wrapper.not_empty([], "encode_texts", plugin="p")


def test_option_helpers(tmp_path):
    with pytest.raises(PluginError, match=r"p: unknown option\(s\) \['a', 'z'\]; known: vocab, device"):
        wrapper.check_options("p", {"z": 1, "a": 2, "vocab": 3}, ("vocab", "device"))
    wrapper.check_options("p", {"vocab": 1}, ("vocab", "device"))
    assert wrapper.checkpoint_and_vocab("p", None, None, tmp_path) == (tmp_path / "model_best.pth.tar",
                                                                  tmp_path / "demo_precomp_vocab.json")
    assert wrapper.checkpoint_and_vocab("p", "c", "v", tmp_path) == ("c", "v")
    with pytest.raises(PluginError, match=r"p: give both checkpoint=PATH .*\(a hint\)"):
        wrapper.checkpoint_and_vocab("p", "c", None, tmp_path, vocab_hint="a hint")
    opts = wrapper.loader_options(batch_size="b")
    assert list(opts) == ["vocab", "device", "batch_size", "allow_unsafe_pickle"] and opts["batch_size"] == "b"

    wrapper.require_opt({"a": 1, "b": 2}, ("a", "b"), "ck.pth", what="X")
    with pytest.raises(DataError, match=r"ck.pth: field 'opt': lacks \['b'\] \(expected X training options\)"):
        wrapper.require_opt({"a": 1}, ("a", "b"), "ck.pth", what="X")
    words = training.build_vocab(["a b c"], threshold=1)  # 4 specials + 3 words
    wrapper.check_vocab_size(words, "v.json", {"vocab_size": "7"})
    with pytest.raises(DataError, match=r"v.json: field 'word2idx': has 7 words but the checkpoint's opt.vocab_size is 9"):
        wrapper.check_vocab_size(words, "v.json", {"vocab_size": 9})
    with pytest.raises(DataError, match=r"has 7 words but the checkpoint ck.pth has opt.vocab_size 9 \(expected the vocab"):
        wrapper.check_vocab_size(words, "v.json", {"vocab_size": 9}, checkpoint="ck.pth")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def load_official(self, states):
            self.load_state_dict(states[0])

    with pytest.raises(DataError, match=r"(?s)ck.pth: field .model.: state_dicts do not fit.*\(expected two by two\)"):
        wrapper.load_official_states(Net(), [{"fc.weight": torch.zeros(3, 2)}], "ck.pth", expected="two by two")


def test_import_is_cheap():
    import subprocess

    code = ("import sys, mmbench_vse, mmbench_vse.wrapper, mmbench_vse.training, mmbench_vse.checkpoints; "
            "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _TinyDual(torch.nn.Module):
    """A VSE-shaped dual encoder small enough to train on the demo data in a second."""

    def __init__(self, opt: dict):
        super().__init__()
        self.img_enc = torch.nn.Linear(opt["img_dim"], opt["embed_size"])
        self.txt_enc = torch.nn.EmbeddingBag(opt["vocab_size"], opt["embed_size"])

    def official_states(self):
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]


def _tiny_scores(model, feats, ids, lengths):
    img = torch.nn.functional.normalize(model.img_enc(feats), dim=-1)
    txt = torch.nn.functional.normalize(model.txt_enc(ids), dim=-1)
    return img @ txt.T


def _tiny_opt(vocab_size: int) -> argparse.Namespace:
    return argparse.Namespace(batch_size=128, learning_rate=1e-2, margin=0.2, max_violation=True, grad_clip=2.0,
                              img_dim=64, embed_size=16, vocab_size=vocab_size)


def test_train_demo_writes_official_layout_and_is_seeded(tmp_path, capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outs = [training.train_demo(_tiny_opt, _TinyDual, _tiny_scores, tmp_path / name, epochs=2, warmup=1,
                               features=training.region_mean, first_epoch=first)
                for name, first in (("a", 1), ("c", 0))]
    finally:
        torch.set_num_threads(n)
    printed = capsys.readouterr().out
    assert printed.count("epoch 2/2: val rsum") == 2
    cks = [load_checkpoint(out / "model_best.pth.tar") for out, _ in outs]
    a, c = cks
    assert sorted(a) == ["Eiters", "best_rsum", "epoch", "model", "opt"] and isinstance(a["opt"], argparse.Namespace)
    assert a["best_rsum"] == outs[0][1] > 16  # chance rsum on the demo val split is about 16
    assert a["Eiters"] > 0 and a["Eiters"] % 2 == 0  # same number of batches in both epochs
    assert a["epoch"] in (1, 2) and c["epoch"] == a["epoch"] - 1  # first_epoch only shifts the count
    # same seed: identical weights
    assert all(torch.equal(sa[k], sc[k]) for sa, sc in zip(a["model"], c["model"]) for k in sa)
    vocab = json.loads((outs[0][0] / "demo_precomp_vocab.json").read_text())["word2idx"]
    assert len(vocab) == a["opt"].vocab_size and list(vocab)[:4] == ["<pad>", "<start>", "<end>", "<unk>"]


def test_is_a_library_not_a_plugin_and_plugin_hooks_do_not_import_it():
    import importlib.metadata as md
    import subprocess

    assert [ep for ep in md.distribution("mmbench-vse").entry_points if ep.group == "mmbench"] == []
    # loading the plugins' hook modules imports no toolkit code; listing their models imports no torch
    code = ("import sys, mmbench.plugins; reg = mmbench.plugins.get_registry(); a = 'mmbench_vse' in sys.modules; "
            "names = sorted(reg.models); print(a, 'torch' in sys.modules, all(n in names for n in "
            "('sgraf', 'scan', 'vsepp', 'imram')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]

