"""Train the small VSE++ model shipped with this plugin, on the demo dataset's train split.

    python -m mmbench_vsepp.train_demo [--out DIR] [--epochs N]

Seeded and CPU-only (well under a minute). Images are the mean of their demo region rows
(the plugin's ``region_pool=mean``). Writes ``model_best.pth.tar`` in the official VSE++
format (``{'epoch', 'model': [img_enc, txt_enc], 'best_rsum', 'opt': argparse.Namespace,
'Eiters'}``, best validation rsum kept, as fartashf/vsepp:train.py does) and
``demo_precomp_vocab.json`` (SCAN-format json; official VSE++ pickles a Vocabulary object
instead, which the plugin also reads, without unrestricted unpickling). Loss: VSE++'s hinge loss with the hardest
negative (``max_violation``) after a warm-up of epochs summing all violations.
The loop itself is :func:`mmbench_vse.training.train_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmbench_vse import training

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


def batch_scores(model: VSE, feats, ids, lengths) -> torch.Tensor:
    """Dot products of the normalised embeddings (VSE++'s cosine measure)."""
    return model.img_enc(feats) @ model.txt_enc(ids, lengths).T


def train(epochs: int = 20, seed: int = 0, warmup: int = 5, out: Path | None = None):
    # opt.max_violation is True: the hardest negative from epoch index `warmup` on
    return training.train_demo(lambda vocab_size: demo_opt(vocab_size, epochs), VSE, batch_scores, out or DATA / "demo",
                               epochs=epochs, seed=seed, warmup=warmup, features=training.region_mean)


def main(argv=None) -> None:
    training.demo_main(__doc__, argv, epochs=20, train=lambda args: train(args.epochs, args.seed, out=args.out),
                       load_model=VSEPPRetrieval)


if __name__ == "__main__":
    main()
