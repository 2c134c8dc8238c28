"""Train the small full-IMRAM model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_imram.train_demo [--out DIR] [--epochs N] [--seed S]

Seeded, single-threaded CPU (about 5 minutes wall on a busy 2-core machine; val rsum 574.8, test
rsum 554.8 on 200 images). Writes ``model_best.pth.tar`` in the official IMRAM format
(HuiChen24/IMRAM:train_gpus.py: ``{'epoch', 'model', 'best_rsum', 'opt'}`` with ``model`` the
``nn.DataParallel`` state_dict, ``module.`` keys; ``epoch`` = 0-based index + 1; the best
validation rsum kept) and ``demo_precomp_vocab.json`` (SCAN/IMRAM json vocabulary: words seen
>= 4 times in the train captions). Options as the official scripts (``--max_violation --bi_gru
--agg_func=Mean --no_IMRAM_norm``, script/tune_*.sh), ``model_mode=full_IMRAM``,
``iteration_step=2``, demo-sized dims. Loss: the official hinge loss, summed over all negatives
for the first epochs, then the hardest negative (``max_violation``). The loop itself is
:func:`mmbench_vse.training.train_demo`; the checkpoint is then rewritten without ``Eiters`` (IMRAM's
train_gpus.py does not save it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmbench_vse import training
from mmbench.checkpoints import load_checkpoint

from mmbench_imram.model import IMRAM
from mmbench_imram.retrieval import DATA, IMRAMRetrieval


def demo_opt(vocab_size: int, epochs: int) -> argparse.Namespace:
    """The official option set (HuiChen24/IMRAM:opts.py names and defaults) with demo-sized dims."""
    return argparse.Namespace(
        data_path="(mmbench demo dataset)", data_name="demo_precomp", vocab_path="vocab", margin=0.2,
        num_epochs=epochs, batch_size=32, word_dim=32, embed_size=32, grad_clip=2.0, num_layers=1,
        learning_rate=2e-3, lr_update=epochs, workers=0, log_step=10, val_step=5000,
        logger_name="./runs/demo/log", model_name="./runs/demo/checkpoint", resume="", max_violation=True,
        img_dim=64, no_imgnorm=False, no_txtnorm=False, raw_feature_norm="clipped_l2norm", agg_func="Mean",
        cross_attn="t2i", precomp_enc_type="basic", bi_gru=True, lambda_lse=6.0, lambda_softmax=9.0,
        pos_emb=False, gpuid="0", model_mode="full_IMRAM", iteration_step=2, no_IMRAM_norm=True,
        vocab_size=vocab_size)


def batch_scores(model: IMRAM, feats, ids, lengths) -> torch.Tensor:
    # validation (whole split in one call, without autograd): caption chunks keep the memory bounded
    return training.cross_attention_scores(model, feats, ids, lengths, no_grad_chunk=25)


def train(epochs: int = 4, seed: int = 0, warmup: int = 2, out: Path | None = None):
    out = Path(out or DATA / "demo")
    out, best = training.train_demo(lambda vocab_size: demo_opt(vocab_size, epochs), IMRAM, batch_scores, out,
                                    epochs=epochs, seed=seed, warmup=warmup, first_epoch=1)
    ck = load_checkpoint(out / training.CHECKPOINT_FILE, what="demo checkpoint")
    ck = {"epoch": ck["epoch"], "model": ck["model"][0], "best_rsum": ck["best_rsum"], "opt": ck["opt"]}
    torch.save(ck, out / training.CHECKPOINT_FILE)
    return out, best


def main(argv=None) -> None:
    training.demo_main(__doc__, argv, epochs=4, train=lambda args: train(args.epochs, args.seed, out=args.out),
                       load_model=IMRAMRetrieval)


if __name__ == "__main__":
    main()
