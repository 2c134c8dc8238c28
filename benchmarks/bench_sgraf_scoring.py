"""SGRAF pair-scoring throughput (pairs / second) at the published model size.

    python benchmarks/bench_sgraf_scoring.py [--device cpu|cuda] [--images 32] [--captions 64]
                                             [--module SGR|SAF] [--threads N] [--repeats 3]

Builds the mmbench SGRAF scorer with the Flickr30k/COCO configuration of the released
models (img_dim 2048, word_dim 300, embed_size 1024, sim_dim 256, bi-GRU, 36 regions;
random weights, BatchNorm running statistics as initialised: speed does not depend on
the values) and times ``score(image_block, text_block)`` on one tile of random inputs
with caption lengths drawn around Flickr30k's (mean about 14 tokens with <start>/<end>).

Two ways are timed on the same tile and checked to agree:
- ``tile``: mmbench's scorer (``score_tile``: captions sorted by length, chunks of
  ``--chunk`` captions x all images of the tile vectorised, padding trimmed per chunk);
- ``per-caption``: one caption at a time against all images of the tile, the loop shape
  of the official ``EncoderSimilarity.forward`` (Paranioar/SGRAF:model.py).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mmbench_sgraf.model import SGRAF

OPT = {"img_dim": 2048, "word_dim": 300, "embed_size": 1024, "sim_dim": 256, "vocab_size": 8481, "num_layers": 1,
       "bi_gru": True, "no_imgnorm": False, "no_txtnorm": False, "sgr_step": 3}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--captions", type=int, default=64)
    ap.add_argument("--module", default="SGR", choices=("SGR", "SAF"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=4, help="captions per vectorised chunk (length-sorted)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dev = torch.device(args.device)
    model = SGRAF({**OPT, "module_name": args.module}).to(dev).eval()
    feats = torch.from_numpy(np.maximum(rng.normal(size=(args.images, 36, OPT["img_dim"])), 0).astype(np.float32))
    lengths = torch.from_numpy(np.clip(rng.poisson(12, size=args.captions) + 2, 4, 40))
    ids = torch.randint(4, OPT["vocab_size"], (args.captions, int(lengths.max())))
    with torch.no_grad():
        v, v_glo = model.encode_images(feats.to(dev))
        c, mask, c_glo = model.encode_texts(ids.to(dev), lengths)

    def tile():
        return model.sim_enc.score_tile(v, v_glo, c, mask, c_glo, max_captions=args.chunk)

    def per_caption():
        cols = []
        for t in range(c.size(0)):
            n = int(lengths[t])
            cols.append(model.sim_enc.pair_scores(v, v_glo, c[t:t + 1, :n], mask[t:t + 1, :n], c_glo[t:t + 1]))
        return torch.cat(cols, 1)

    results = {}
    outs = {}
    pairs = args.images * args.captions
    for name, fn in (("tile", tile), ("per-caption", per_caption)):
        with torch.no_grad():
            outs[name] = fn()  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
        results[name] = {"seconds": best, "pairs_per_second": pairs / best}
    diff = float((outs["tile"] - outs["per-caption"]).abs().max())
    report = {"device": str(dev), "threads": torch.get_num_threads(), "module": args.module, "tile": [args.images,
              args.captions], "mean_caption_length": float(lengths.float().mean()), "max_abs_diff": diff, **results}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
