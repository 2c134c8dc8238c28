"""Train the small SGRAF model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_sgraf.train_demo [--module SGR|SAF] [--out DIR] [--epochs N]

Seeded, single-threaded CPU (about 1 minute of CPU; 2.5 minutes wall on a busy 2-core machine). Writes ``model_best.pth.tar`` in the official
SGRAF format (``{'epoch', 'model': [img_enc, txt_enc, sim_enc], 'best_rsum', 'opt':
argparse.Namespace, 'Eiters'}``, the best validation rsum kept, as the official train.py
does) and ``demo_precomp_vocab.json`` (SCAN format, words seen >= 4 times in train
captions, in first-appearance order as SCAN's build_vocab). Loss: the official hinge triplet loss summed over all negatives (``max_violation=False``,
stored in ``opt``); on this small data the hardest-negative variant trains more slowly.
The loop itself is :func:`mmbench_vse.training.train_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmbench_vse import training

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


def batch_scores(model: SGRAF, feats, ids, lengths) -> torch.Tensor:
    v, v_glo = model.encode_images(feats)
    c, mask, c_glo = model.encode_texts(ids, lengths)
    return model.sim_enc.pair_scores(v, v_glo, c, mask, c_glo)


def train(module_name: str = "SGR", epochs: int = 3, seed: int = 0, warmup: int | None = None, out: Path | None = None):
    return training.train_demo(lambda vocab_size: demo_opt(module_name, vocab_size, epochs), SGRAF, batch_scores,
                               out or DATA / f"demo_{module_name.lower()}", epochs=epochs, seed=seed, warmup=warmup)


def main(argv=None) -> None:
    training.demo_main(__doc__, argv, epochs=3, extra_args={"--module": dict(default="SGR", choices=("SGR", "SAF"))},
                       train=lambda args: train(args.module, args.epochs, args.seed, out=args.out),
                       load_model=SGRAFRetrieval)


if __name__ == "__main__":
    main()
