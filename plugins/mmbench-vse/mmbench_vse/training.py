"""Training plumbing shared by VSE-family region-feature retrieval models (SGRAF, SCAN, VSE++, IMRAM).

The VSE++ hinge loss, the SCAN-format vocabulary built from captions, the seeded demo
training loop over the demo dataset's region features with validation rsum and
best-checkpoint saving in the official ``model_best.pth.tar`` layout, and the command line
of a plugin's ``train_demo`` script. What differs between the models (the option set, the
network, how a batch is scored, how image features are formed) is passed in.

Cheap to import: numpy, torch, the vocabulary and the demo data are imported inside the
functions that need them.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from mmbench_vse.wrapper import CHECKPOINT_FILE, VOCAB_FILE

if TYPE_CHECKING:
    import numpy as np

    from mmbench_vse.vocab import Vocabulary

__all__ = ["CHECKPOINT_FILE", "VOCAB_FILE", "BatchScores", "build_vocab", "contrastive_loss", "cross_attention_scores",
           "demo_arg_parser", "demo_main", "region_mean", "region_stack", "train_and_report", "train_demo",
           "val_rsum"]


def build_vocab(captions: Iterable[str], threshold: int = 4) -> Vocabulary:
    """SCAN's build_vocab: words seen >= ``threshold`` times (SCAN tokens), in first-appearance order."""
    from mmbench_vse.vocab import Vocabulary, scan_tokens

    counts = collections.Counter(w for c in captions for w in scan_tokens(c))
    return Vocabulary.from_words(w for w, n in counts.items() if n >= threshold)


def contrastive_loss(scores, margin: float, max_violation: bool):
    """VSE++/SCAN hinge loss over a (B, B) image x caption score matrix with positives on the diagonal.

    ``max_violation``: only the hardest negative per row/column (VSE++), else the sum over all.
    """
    import torch

    d = scores.diag().view(-1, 1)
    cost_c = (margin + scores - d).clamp(min=0)  # image -> other captions
    cost_i = (margin + scores - d.t()).clamp(min=0)  # caption -> other images
    eye = torch.eye(scores.size(0), dtype=torch.bool)
    cost_c, cost_i = cost_c.masked_fill(eye, 0), cost_i.masked_fill(eye, 0)
    if max_violation:
        return cost_c.max(1).values.sum() + cost_i.max(0).values.sum()
    return cost_c.sum() + cost_i.sum()


def region_stack(images) -> np.ndarray:
    """(B, R, D): every image's region rows (the input of SCAN/SGRAF-style models)."""
    import numpy as np

    return np.stack([im.regions for im in images])


def region_mean(images) -> np.ndarray:
    """(B, D) float32: the mean of every image's region rows (one vector per image, as VSE++ precomp)."""
    import numpy as np

    return np.stack([im.regions.mean(0) for im in images]).astype(np.float32)


#: ``batch_scores(model, feats, ids, lengths) -> (B_images, B_captions)`` torch scores
BatchScores = Callable[[Any, Any, Any, Any], Any]


def cross_attention_scores(model, feats, ids, lengths, *, no_grad_chunk: int | None = None):
    """:data:`BatchScores` of a SCAN-style model (``img_enc``, ``txt_enc``, ``pair_scores(v, c, mask)``).

    ``no_grad_chunk``: without autograd (validation scores a whole split in one call), score
    that many captions at a time to bound the memory.
    """
    import torch

    from mmbench_vse.layers import word_mask

    v = model.img_enc(feats)
    c = model.txt_enc(ids, lengths)
    mask = word_mask(c, lengths)
    if no_grad_chunk is None or torch.is_grad_enabled():
        return model.pair_scores(v, c, mask)
    step = no_grad_chunk
    return torch.cat([model.pair_scores(v, c[t:t + step], mask[t:t + step]) for t in range(0, c.size(0), step)], 1)


def val_rsum(model, vocab: Vocabulary, data, batch_scores: BatchScores, features=region_stack) -> float:
    """rsum of ``model`` (switched to eval mode) on all of ``data`` scored in one block."""
    import torch

    from mmbench.metrics.retrieval import ranks_from_sims, summarize
    from mmbench_vse.vocab import encode_captions

    model.eval()
    with torch.no_grad():
        feats = torch.from_numpy(features(data.images))
        ids, lengths = encode_captions(vocab, data.texts)
        sims = batch_scores(model, feats, torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    i2t, t2i, _, _ = ranks_from_sims(sims, data.text_image)
    return summarize(i2t, t2i)["rsum"]


def train_demo(make_opt: Callable[[int], argparse.Namespace], make_model: Callable[[dict], Any],
               batch_scores: BatchScores, out: Path, *, epochs: int, seed: int = 0, warmup: int | None = None,
               features=region_stack, first_epoch: int = 1):
    """Train on the demo dataset's retrieval train split; save the best-val-rsum model as the official repos do.

    Seeded (torch and numpy from ``seed``): the vocabulary from the train captions
    (:func:`build_vocab`), ``opt = make_opt(vocab_size)``, ``model = make_model(vars(opt))``,
    Adam at ``opt.learning_rate``, shuffled caption batches of ``opt.batch_size`` paired with
    their images (a last batch of one is skipped), :func:`contrastive_loss` with
    ``opt.margin`` (hardest negative when ``opt.max_violation``, from epoch index ``warmup``
    on), gradient norm clipped to ``opt.grad_clip``, :func:`val_rsum` on the val split after
    every epoch. Writes ``out/model_best.pth.tar`` (``{'epoch', 'model':
    model.official_states(), 'best_rsum', 'opt', 'Eiters'}``; ``epoch`` counts from
    ``first_epoch``: 1 in SGRAF's and VSE++'s train.py, 0 in SCAN's) and
    ``out/demo_precomp_vocab.json``. Returns ``(out, best_rsum)``.
    """
    import numpy as np
    import torch

    from mmbench.datasets.demo import load
    from mmbench_vse.vocab import encode_captions

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_data, val_data = load("retrieval", "train"), load("retrieval", "val")
    vocab = build_vocab(train_data.texts)
    opt = make_opt(len(vocab))
    model = make_model(vars(opt))
    optim = torch.optim.Adam(model.parameters(), lr=opt.learning_rate)
    feats_all = features(train_data.images)
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
        rsum = val_rsum(model, vocab, val_data, batch_scores, features)
        print(f"epoch {epoch + 1}/{epochs}: val rsum {rsum:.1f}", flush=True)
        if rsum > best:
            best, best_epoch = rsum, epoch + first_epoch
            best_state = [{k: t.detach().clone() for k, t in sd.items()} for sd in model.official_states()]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = {"epoch": best_epoch, "model": best_state, "best_rsum": best, "opt": opt, "Eiters": eiters}
    torch.save(ckpt, out / CHECKPOINT_FILE)
    vocab.to_json(out / VOCAB_FILE)
    return out, best


def demo_arg_parser(doc: str, *, epochs: int) -> argparse.ArgumentParser:
    """The ``--epochs``, ``--seed``, ``--out`` command line of a plugin's ``train_demo`` script."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    return ap


def train_and_report(train: Callable[[], tuple[Path, float]], load_model: Callable[..., Any]) -> None:
    """Run ``train()`` single-threaded, then print the written model's rsum on the demo test split.

    ``load_model(checkpoint=..., vocab=..., device="cpu")`` builds the plugin's mmbench model
    from the written files; a cross-attention model (one with ``score``) scores all test
    images x captions in one block, a dual encoder by the dot product of its embeddings.
    """
    import time

    import torch

    from mmbench.datasets.demo import load
    from mmbench.metrics.retrieval import ranks_from_sims, summarize

    torch.set_num_threads(1)  # same float summation order on every machine
    t0 = time.perf_counter()
    out, best = train()
    model = load_model(checkpoint=out / CHECKPOINT_FILE, vocab=out / VOCAB_FILE, device="cpu")
    test = load("retrieval", "test")
    if hasattr(model, "score"):
        sims = model.score(model.encode_images(test.images), model.encode_texts(test.texts))
    else:
        sims = model.encode_images(test.images) @ model.encode_texts(test.texts).T
    i2t, t2i, _, _ = ranks_from_sims(sims, test.text_image)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: best val rsum {best:.1f}, "
          f"test rsum {summarize(i2t, t2i)['rsum']:.1f} (chance about 16)")


def demo_main(doc: str, argv, *, epochs: int, train: Callable[[argparse.Namespace], tuple[Path, float]],
              load_model: Callable[..., Any], extra_args: dict[str, dict] | None = None) -> None:
    """A plugin's ``python -m <plugin>.train_demo``: parse, train, report.

    The command line is :func:`demo_arg_parser`'s (``--epochs`` defaulting to ``epochs``)
    plus ``extra_args`` (``{flag: add_argument keywords}``); ``train(args)`` trains and
    returns ``(out, best_rsum)``; :func:`train_and_report` prints the written model's test rsum.
    """
    ap = demo_arg_parser(doc, epochs=epochs)
    for flag, kwargs in (extra_args or {}).items():
        ap.add_argument(flag, **kwargs)
    args = ap.parse_args(argv)
    train_and_report(lambda: train(args), load_model)
