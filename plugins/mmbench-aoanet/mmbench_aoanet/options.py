"""The documented --option keys (no heavy imports: read when plugins are listed)."""

#: every --option (decoding options carry the official eval parser's names and defaults)
OPTIONS = {
    "model": "official model-best.pth (state_dict); default: the shipped demo model",
    "infos_path": "the infos_<id>-best.pkl written beside it (opt + vocab)",
    "beam_size": "beam size (default 2, the README's eval command; 1 = greedy decoding)",
    "max_length": "maximum caption length in tokens (default 20, the eval parser's)",
    "sample_method": "greedy (default), sample, gumbel, topK or topP (0<P<1), as CaptionModel.sample_next_word; "
                     "sampling needs beam_size=1 and draws from a generator seeded with the run's seed",
    "length_penalty": "'' (default), wu_X or avg_X: rescales finished beams' scores",
    "group_size": "diverse beam search groups (default 1 = plain beam search)",
    "diversity_lambda": "diverse beam search penalty (default 0.5)",
    "temperature": "divides the log-probs before sampling, and before the beam's log_softmax after the first "
                   "step (default 1.0; greedy ignores it, as the official)",
    "decoding_constraint": "1 forbids repeating the previous word (default 0)",
    "block_trigrams": "1 penalises repeated trigrams in greedy decoding (default 0)",
    "remove_bad_endings": "1 forbids END after words like 'a'/'the' and trims them from the text (default 0)",
    "batch_size": "images per decoding batch (default 50)",
    "device": "cpu, cuda or cuda:N (default cuda when available)",
    "precision": "fp32 (default), fp16 or bf16: the model and features are cast (CUDA only); beam scores "
                 "stay float32 on the CPU, as the official beam_step",
    "allow_unsafe_pickle": "read the infos pickle with unrestricted unpickling (only for files you trust)",
    "seed": "the run's seed: seeds the sampling methods' generator (greedy and beam search ignore it)",
    "sample_n": "refused: not an option of husthuaan/AoANet's eval (self-critical.pytorch added it later)",
}
