"""Train the small SGRAF model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_sgraf.train_demo [--module SGR|SAF] [--out DIR] [--epochs N]

Seeded, single-threaded CPU (about 1 minute of CPU; 2.5 minutes wall on a busy 2-core machine). Writes ``model_best.pth.tar`` in the official
SGRAF format (``{'epoch', 'model': [img_enc, txt_enc, sim_enc], 'best_rsum', 'opt':
argparse.Namespace, 'Eiters'}``, the best validation rsum kept, as the official train.py
does) and ``demo_precomp_vocab.json`` (SCAN format, words seen >= 4 times in train
captions, in first-appearance order as SCAN's build_vocab). Loss: the official hinge triplet loss summed over all negatives (``max_violation=False``,
stored in ``opt``); on this small data the hardest-negative variant trains more slowly.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import torch

from mmbench.datasets.demo import load
from mmbench.metrics.retrieval import ranks_from_sims, summarize
from mmbench.text import Vocabulary, encode_captions, scan_tokens

from mmbench_sgraf.model import SGRAF
from mmbench_sgraf.retrieval import DATA, SGRAFRetrieval


def demo_opt(module_name: str, vocab_size: int, epochs: int) -> argparse.Namespace:
    """The official option set (Paranioar/SGRAF:opts.py names and defaults) with demo-sized dims."""
    return argparse.Namespace(
        data_path="(mmbench demo dataset)", data_name="demo_precomp", vocab_path="./vocab/",
        model_name=f"./runs/demo_{module_name}/checkpoint", logger_name=f"./runs/demo_{module_name}/log",
        batch_size=32, num_epochs=epochs, lr_update=epochs, learning_rate=2e-3, workers=0, log_step=10,
        val_step=1000, grad_clip=2.0, margin=0.2, max_violation=False, img_dim=64, word_dim=32, embed_size=64,
        sim_dim=32, num_layers=1, bi_gru=True, no_imgnorm=False, no_txtnorm=False, module_name=module_name,
        sgr_step=3, vocab_size=vocab_size)


def build_vocab(captions: list[str], threshold: int = 4) -> Vocabulary:
    counts = collections.Counter(w for c in captions for w in scan_tokens(c))
    return Vocabulary.from_words(w for w, n in counts.items() if n >= threshold)


def contrastive_loss(scores: torch.Tensor, margin: float, max_violation: bool) -> torch.Tensor:
    """VSE++ hinge loss over a (B, B) image x caption score matrix with positives on the diagonal."""
    d = scores.diag().view(-1, 1)
    cost_c = (margin + scores - d).clamp(min=0)  # image -> other captions
    cost_i = (margin + scores - d.t()).clamp(min=0)  # caption -> other images
    eye = torch.eye(scores.size(0), dtype=torch.bool)
    cost_c, cost_i = cost_c.masked_fill(eye, 0), cost_i.masked_fill(eye, 0)
    if max_violation:
        return cost_c.max(1).values.sum() + cost_i.max(0).values.sum()
    return cost_c.sum() + cost_i.sum()


def batch_scores(model: SGRAF, feats, ids, lengths) -> torch.Tensor:
    v, v_glo = model.encode_images(feats)
    c, mask, c_glo = model.encode_texts(ids, lengths)
    return model.sim_enc.pair_scores(v, v_glo, c, mask, c_glo)


def val_rsum(model: SGRAF, vocab: Vocabulary, data) -> float:
    model.eval()
    with torch.no_grad():
        feats = torch.from_numpy(np.stack([im.regions for im in data.images]))
        ids, lengths = encode_captions(vocab, data.texts)
        sims = batch_scores(model, feats, torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    i2t, t2i, _, _ = ranks_from_sims(sims, data.text_image)
    return summarize(i2t, t2i)["rsum"]


def train(module_name: str = "SGR", epochs: int = 3, seed: int = 0, warmup: int | None = None, out: Path | None = None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_data, val_data = load("retrieval", "train"), load("retrieval", "val")
    vocab = build_vocab(train_data.texts)
    opt = demo_opt(module_name, len(vocab), epochs)
    model = SGRAF(vars(opt))
    optim = torch.optim.Adam(model.parameters(), lr=opt.learning_rate)
    feats_all = np.stack([im.regions for im in train_data.images])
    ids_all, len_all = encode_captions(vocab, train_data.texts)
    best, best_state, best_epoch, eiters = -1.0, None, 0, 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_data.texts))
        for start in range(0, len(order), opt.batch_size):
            idx = order[start:start + opt.batch_size]
            if len(idx) < 2:
                continue
            feats = torch.from_numpy(feats_all[train_data.text_image[idx]])
            lengths = len_all[idx]
            ids = torch.from_numpy(ids_all[idx, :lengths.max()])
            scores = batch_scores(model, feats, ids, torch.from_numpy(lengths))
            loss = contrastive_loss(scores, opt.margin, max_violation=opt.max_violation and epoch >= (warmup or 0))
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
            optim.step()
            eiters += 1
        rsum = val_rsum(model, vocab, val_data)
        print(f"epoch {epoch + 1}/{epochs}: val rsum {rsum:.1f}", flush=True)
        if rsum > best:
            best, best_epoch = rsum, epoch + 1
            best_state = [{k: t.detach().clone() for k, t in sd.items()} for sd in model.official_states()]
    out = Path(out or DATA / f"demo_{module_name.lower()}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = {"epoch": best_epoch, "model": best_state, "best_rsum": best, "opt": opt, "Eiters": eiters}
    torch.save(ckpt, out / "model_best.pth.tar")
    vocab.to_json(out / "demo_precomp_vocab.json")
    return out, best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", default="SGR", choices=("SGR", "SAF"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # same float summation order on every machine
    t0 = time.perf_counter()
    out, best = train(args.module, args.epochs, args.seed, out=args.out)
    model = SGRAFRetrieval(checkpoint=out / "model_best.pth.tar", vocab=out / "demo_precomp_vocab.json", device="cpu")
    test = load("retrieval", "test")
    sims = model.score(model.encode_images(test.images), model.encode_texts(test.texts))
    i2t, t2i, _, _ = ranks_from_sims(sims, test.text_image)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: best val rsum {best:.1f}, "
          f"test rsum {summarize(i2t, t2i)['rsum']:.1f} (chance about 16)")


if __name__ == "__main__":
    main()
