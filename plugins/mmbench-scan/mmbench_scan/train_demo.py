"""Train the small SCAN t2i model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_scan.train_demo [--cross-attn t2i|i2t] [--out DIR] [--epochs N]

Seeded, single-threaded CPU (about 1 minute of CPU; 2.5 minutes wall on a busy 2-core machine). Writes ``model_best.pth.tar`` in the official SCAN
format (``{'epoch', 'model': [img_enc, txt_enc], 'best_rsum', 'opt': argparse.Namespace,
'Eiters'}``, the best validation rsum kept, as kuanghuei/SCAN:train.py does) and
``demo_precomp_vocab.json`` (SCAN format: words seen >= 4 times in the train captions, in
first-appearance order as SCAN's build_vocab). Loss: the official hinge triplet loss summed over all negatives (``max_violation=False``,
stored in ``opt``); on this small data the hardest-negative variant trains more slowly.
The loop itself is :func:`mmbench_vse.training.train_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmbench_vse import training

from mmbench_scan.model import SCAN
from mmbench_scan.retrieval import DATA, SCANRetrieval


def demo_opt(cross_attn: str, vocab_size: int, epochs: int) -> argparse.Namespace:
    """The official option set (kuanghuei/SCAN:train.py names and defaults) with demo-sized dims."""
    return argparse.Namespace(
        data_path="(mmbench demo dataset)", data_name="demo_precomp", vocab_path="./vocab/", margin=0.2,
        num_epochs=epochs, batch_size=32, word_dim=32, embed_size=64, grad_clip=2.0, num_layers=1,
        learning_rate=2e-3, lr_update=epochs, workers=0, log_step=10, val_step=500,
        logger_name=f"./runs/demo_{cross_attn}/log", model_name=f"./runs/demo_{cross_attn}/checkpoint", resume="",
        max_violation=False, img_dim=64, no_imgnorm=False, no_txtnorm=False, raw_feature_norm="clipped_l2norm",
        agg_func="Mean", cross_attn=cross_attn, precomp_enc_type="basic", bi_gru=True, lambda_lse=6.0,
        lambda_softmax=9.0 if cross_attn == "t2i" else 4.0, vocab_size=vocab_size)


def train(cross_attn: str = "t2i", epochs: int = 3, seed: int = 0, warmup: int | None = None, out: Path | None = None):
    # kuanghuei/SCAN:train.py stores the 0-based epoch index
    return training.train_demo(lambda vocab_size: demo_opt(cross_attn, vocab_size, epochs), SCAN,
                               training.cross_attention_scores, out or DATA / f"demo_{cross_attn}", epochs=epochs,
                               seed=seed, warmup=warmup, first_epoch=0)


def main(argv=None) -> None:
    training.demo_main(__doc__, argv, epochs=3,
                       extra_args={"--cross-attn": dict(default="t2i", choices=("t2i", "i2t"))},
                       train=lambda args: train(args.cross_attn, args.epochs, args.seed, out=args.out),
                       load_model=SCANRetrieval)


if __name__ == "__main__":
    main()
