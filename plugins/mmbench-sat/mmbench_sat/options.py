"""The documented --option keys (no heavy imports: read when plugins are listed)."""

OPTIONS = {
    "checkpoint": "the tutorial's BEST_checkpoint_*.pth.tar (whole pickled modules, read safely); "
                  "default: the shipped demo model",
    "word_map": "the WORDMAP_*.json it was trained with",
    "beam_size": "beam size (default 3, caption_image_beam_search's default; 1 = greedy)",
    "batch_size": "images per encoder batch (default 16)",
    "device": "device of the encoder: cpu, cuda or cuda:N (default cuda when available); the beam search runs on the CPU",
    "precision": "fp32 (default), fp16 or bf16 for the encoder (CUDA only; the beam search stays float32)",
    "allow_unsafe_pickle": "load the checkpoint with unrestricted unpickling (only for files you trust; needs "
                           "the tutorial's models.py and torchvision importable)",
    "seed": "the run's seed (decoding is deterministic; recorded only)",
}
