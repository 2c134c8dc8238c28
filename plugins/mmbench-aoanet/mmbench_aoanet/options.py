"""The documented --option keys (no heavy imports: read when plugins are listed)."""

#: every --option (decoding options carry the official eval parser's names and defaults)
OPTIONS = {
    "model": "official model-best.pth (state_dict); default: the shipped demo model",
    "infos_path": "the infos_<id>-best.pkl written beside it (opt + vocab)",
    "beam_size": "beam size (default 2, the README's eval command; 1 = greedy decoding)",
    "max_length": "maximum caption length in tokens (default 20, the eval parser's)",
    "sample_method": "greedy (default; random sampling methods are refused: not a reproducible evaluation)",
    "length_penalty": "'' (default), wu_X or avg_X: rescales finished beams' scores",
    "group_size": "diverse beam search groups (default 1 = plain beam search)",
    "diversity_lambda": "diverse beam search penalty (default 0.5)",
    "temperature": "divides the logits before the beam's log_softmax (default 1.0)",
    "decoding_constraint": "1 forbids repeating the previous word (default 0)",
    "block_trigrams": "1 penalises repeated trigrams in greedy decoding (default 0)",
    "remove_bad_endings": "1 forbids END after words like 'a'/'the' and trims them from the text (default 0)",
    "batch_size": "images per decoding batch (default 50)",
    "device": "cpu, cuda or cuda:N (default cuda when available)",
    "allow_unsafe_pickle": "read the infos pickle with unrestricted unpickling (only for files you trust)",
    "seed": "the run's seed (decoding is deterministic; recorded only)",
}
