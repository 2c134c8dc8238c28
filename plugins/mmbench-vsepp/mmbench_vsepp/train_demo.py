"""Train the small VSE++ model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_vsepp.train_demo [--out DIR] [--epochs N]

Seeded and CPU-only (well under a minute). Images are the mean of their demo region rows
(the plugin's ``region_pool=mean``). Writes ``model_best.pth.tar`` in the official VSE++
format (``{'epoch', 'model': [img_enc, txt_enc], 'best_rsum', 'opt': argparse.Namespace,
'Eiters'}``, best validation rsum kept, as fartashf/vsepp:train.py does) and
``demo_precomp_vocab.json`` (SCAN-format json; official VSE++ pickles a Vocabulary object
instead, which the plugin also reads, without unrestricted unpickling). Loss: VSE++'s hinge loss with the hardest
negative (``max_violation``) after a warm-up of epochs summing all violations.
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

from mmbench_vsepp.model import VSE
from mmbench_vsepp.retrieval import DATA, VSEPPRetrieval


def demo_opt(vocab_size: int, epochs: int) -> argparse.Namespace:
    """The official option set (fartashf/vsepp:train.py names and defaults) with demo-sized dims."""
    return argparse.Namespace(
        data_path="(mmbench demo dataset)", data_name="demo_precomp", vocab_path="./vocab/", margin=0.2,
        num_epochs=epochs, batch_size=128, word_dim=32, embed_size=128, grad_clip=2.0, crop_size=224,
        num_layers=1, learning_rate=2e-3, lr_update=epochs, workers=0, log_step=10, val_step=500,
        logger_name="runs/demo", resume="", max_violation=True, img_dim=64, finetune=False, cnn_type="vgg19",
        use_restval=False, measure="cosine", use_abs=False, no_imgnorm=False, reset_train=False,
        vocab_size=vocab_size)


def build_vocab(captions: list[str], threshold: int = 4) -> Vocabulary:
    counts = collections.Counter(w for c in captions for w in scan_tokens(c))
    return Vocabulary.from_words(w for w, n in counts.items() if n >= threshold)


def contrastive_loss(scores: torch.Tensor, margin: float, max_violation: bool) -> torch.Tensor:
    """VSE++ hinge loss over a (B, B) image x caption score matrix with positives on the diagonal."""
    d = scores.diag().view(-1, 1)
    cost_c = (margin + scores - d).clamp(min=0)
    cost_i = (margin + scores - d.t()).clamp(min=0)
    eye = torch.eye(scores.size(0), dtype=torch.bool)
    cost_c, cost_i = cost_c.masked_fill(eye, 0), cost_i.masked_fill(eye, 0)
    if max_violation:
        return cost_c.max(1).values.sum() + cost_i.max(0).values.sum()
    return cost_c.sum() + cost_i.sum()


def pooled(data) -> np.ndarray:
    return np.stack([im.regions.mean(0) for im in data.images]).astype(np.float32)


def val_rsum(model: VSE, vocab: Vocabulary, data) -> float:
    model.eval()
    with torch.no_grad():
        img = model.img_enc(torch.from_numpy(pooled(data)))
        ids, lengths = encode_captions(vocab, data.texts)
        txt = model.txt_enc(torch.from_numpy(ids), torch.from_numpy(lengths))
    i2t, t2i, _, _ = ranks_from_sims((img @ txt.T).numpy(), data.text_image)
    return summarize(i2t, t2i)["rsum"]


def train(epochs: int = 20, seed: int = 0, warmup: int = 5, out: Path | None = None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_data, val_data = load("retrieval", "train"), load("retrieval", "val")
    vocab = build_vocab(train_data.texts)
    opt = demo_opt(len(vocab), epochs)
    model = VSE(vars(opt))
    optim = torch.optim.Adam(model.parameters(), lr=opt.learning_rate)
    feats_all = pooled(train_data)
    ids_all, len_all = encode_captions(vocab, train_data.texts)
    best, best_state, best_epoch, eiters = -1.0, None, 0, 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_data.texts))
        for start in range(0, len(order), opt.batch_size):
            idx = order[start:start + opt.batch_size]
            if len(idx) < 2:
                continue
            img = model.img_enc(torch.from_numpy(feats_all[train_data.text_image[idx]]))
            lengths = len_all[idx]
            txt = model.txt_enc(torch.from_numpy(ids_all[idx, :lengths.max()]), torch.from_numpy(lengths))
            loss = contrastive_loss(img @ txt.T, opt.margin, max_violation=epoch >= warmup)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
            optim.step()
            eiters += 1
        rsum = val_rsum(model, vocab, val_data)
        print(f"epoch {epoch + 1}/{epochs}: val rsum {rsum:.1f}", flush=True)
        if rsum > best:
            best, best_epoch = rsum, epoch + 1  # this train.py stores epoch + 1
            best_state = [{k: t.detach().clone() for k, t in sd.items()} for sd in model.official_states()]
    out = Path(out or DATA / "demo")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = {"epoch": best_epoch, "model": best_state, "best_rsum": best, "opt": opt, "Eiters": eiters}
    torch.save(ckpt, out / "model_best.pth.tar")
    vocab.to_json(out / "demo_precomp_vocab.json")
    return out, best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # same float summation order on every machine
    t0 = time.perf_counter()
    out, best = train(args.epochs, args.seed, out=args.out)
    model = VSEPPRetrieval(checkpoint=out / "model_best.pth.tar", vocab=out / "demo_precomp_vocab.json", device="cpu")
    test = load("retrieval", "test")
    sims = model.encode_images(test.images) @ model.encode_texts(test.texts).T
    i2t, t2i, _, _ = ranks_from_sims(sims, test.text_image)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: best val rsum {best:.1f}, "
          f"test rsum {summarize(i2t, t2i)['rsum']:.1f} (chance about 16)")


if __name__ == "__main__":
    main()
