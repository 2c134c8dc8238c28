"""Train the small AoANet shipped with this plugin on the demo dataset's region features.

    python -m mmbench_aoanet.train_demo [--out DIR] [--epochs N] [--seed S]

Seeded, single-threaded CPU (about a minute). Writes the two official files:
``model-best.pth`` (``torch.save(model.state_dict())``) and ``infos_demo-best.pkl`` (protocol-2
pickle of ``{iter, epoch, iterators, split_ix, vocab, opt: argparse.Namespace, best_val_score}``,
as husthuaan/AoANet:train.py writes them). The vocabulary is built as scripts/prepro_labels.py
does (Karpathy-style tokens, words seen more than ``--word-count-threshold`` times in first-appearance
order, then ``UNK``; ids from 1, 0 = BOS/END/pad), captions cut to 16 tokens. The loss is the
cross-entropy of the official ``LanguageModelCriterion`` (teacher forcing, no label smoothing or
scheduled sampling: the demo is tiny); the best epoch by validation loss is kept, as train.py does
with ``--language_eval 0``.
"""

from __future__ import annotations

import argparse
import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mmbench_aoanet.captioner import DEMO_DIR
from mmbench_aoanet.model import AoAModel

SEQ_LENGTH = 16


def tokens(caption: str) -> list[str]:
    return re.findall("[a-z0-9]+", caption.lower())


def build_vocab(captions: list[str], threshold: int) -> dict[str, str]:
    counts = Counter(w for c in captions for w in tokens(c))
    words = [w for w in counts if counts[w] > threshold]  # Counter keeps first-appearance order
    words.append("UNK")
    return {str(i + 1): w for i, w in enumerate(words)}


def encode(data, vocab: dict[str, str]):
    w2i = {w: int(i) for i, w in vocab.items()}
    unk = w2i["UNK"]
    labels, owner = [], []
    for i, refs in enumerate(data.references):
        for c in refs:
            ids = [w2i.get(w, unk) for w in tokens(c)][:SEQ_LENGTH]
            row = np.zeros(SEQ_LENGTH + 2, np.int64)
            row[1:1 + len(ids)] = ids
            labels.append(row)
            owner.append(i)
    return torch.from_numpy(np.stack(labels)), np.array(owner)


def demo_opt(vocab_size: int, att_feat_size: int, epochs: int) -> argparse.Namespace:
    """husthuaan/AoANet opts.parse_opt names, with the README's train.sh architecture at demo size."""
    return argparse.Namespace(
        caption_model="aoa", input_json="(mmbench demo dataset)", input_fc_dir="", input_att_dir="",
        input_box_dir="", input_label_h5="", start_from=None, cached_tokens="", rnn_size=32, num_layers=2,
        rnn_type="lstm", input_encoding_size=32, att_hid_size=512, fc_feat_size=att_feat_size,
        att_feat_size=att_feat_size, logit_layers=1, use_bn=0, mean_feats=1, refine=1, refine_aoa=1, use_ff=0,
        dropout_aoa=0.3, ctx_drop=1, decoder_type="AoA", use_multi_head=2, num_heads=4, multi_head_scale=1,
        use_warmup=0, acc_steps=1, norm_att_feat=0, use_box=0, norm_box_feat=0, max_epochs=epochs, batch_size=20,
        grad_clip=0.1, drop_prob_lm=0.5, self_critical_after=-1, seq_per_img=5, beam_size=1, max_length=20,
        length_penalty="", block_trigrams=0, remove_bad_endings=0, optim="adam", learning_rate=5e-3,
        learning_rate_decay_start=-1, label_smoothing=0.0, id="demo", checkpoint_path="log/log_demo",
        language_eval=0, train_only=0, use_fc=True, use_att=True, vocab_size=vocab_size, seq_length=SEQ_LENGTH)


def _batch_feats(images, d: int):
    n = max(im.regions.shape[0] for im in images)
    att = np.zeros((len(images), n, d), np.float32)
    for i, im in enumerate(images):
        att[i, :im.regions.shape[0]] = im.regions
    return torch.from_numpy(att)


def xe_loss(model: AoAModel, att, labels) -> torch.Tensor:
    # misc/utils.py LanguageModelCriterion on (labels[:, 1:], masks[:, 1:]); mask = tokens + END (+ BOS column)
    out = model.teacher_forced(None, att, labels, None)
    target = labels[:, 1:]
    nonzero = (labels != 0).sum(1) + 2
    mask = (torch.arange(labels.size(1))[None] < nonzero[:, None]).float()[:, 1:]
    lp = out.gather(2, target.unsqueeze(2)).squeeze(2)
    return -(lp * mask).sum() / mask.sum()


def train(epochs: int = 20, seed: int = 0, out: Path | None = None, threshold: int = 3) -> Path:
    from mmbench.datasets.demo import load

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    tr, va = load("captioning", "train"), load("captioning", "val")
    vocab = build_vocab([c for refs in tr.references for c in refs], threshold)
    d = tr.images[0].regions.shape[1]
    opt = demo_opt(len(vocab), d, epochs)
    model = AoAModel(vars(opt))
    labels, owner = encode(tr, vocab)
    vlabels, vowner = encode(va, vocab)
    feats = _batch_feats(tr.images, d)
    vfeats = _batch_feats(va.images, d)
    optim = torch.optim.Adam(model.parameters(), lr=opt.learning_rate)
    rng = np.random.default_rng(seed)
    best, best_state, best_epoch, it = float("inf"), None, -1, 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(tr.images))
        for start in range(0, len(order), opt.batch_size):
            imgs = order[start:start + opt.batch_size]
            rows = np.concatenate([np.nonzero(owner == i)[0] for i in imgs])
            loss = xe_loss(model, feats[owner[rows]], labels[rows])
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), opt.grad_clip)  # misc/utils.py clip_gradient
            optim.step()
            it += 1
        model.eval()
        with torch.no_grad():
            vloss = float(xe_loss(model, vfeats[vowner], vlabels))
        print(f"epoch {epoch}: train loss {loss.item():.3f}, val loss {vloss:.3f}")
        if vloss < best:
            best, best_epoch = vloss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = Path(out or DEMO_DIR)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(best_state, out / "model-best.pth")
    infos = {"iter": it, "epoch": best_epoch + 1, "iterators": {"train": 0, "val": 0, "test": 0},
             "split_ix": {}, "vocab": vocab, "opt": opt, "best_val_score": -best}
    with open(out / "infos_demo-best.pkl", "wb") as fh:
        pickle.dump(infos, fh, protocol=2)  # misc/utils.py pickle_dump
    print(f"best epoch {best_epoch} (val loss {best:.3f}); wrote {out}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--word-count-threshold", type=int, default=3)
    args = ap.parse_args(argv)
    train(args.epochs, args.seed, args.out, args.word_count_threshold)


if __name__ == "__main__":
    main()
