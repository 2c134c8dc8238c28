"""mmbench-vse: the toolkit shared by the VSE-family retrieval plugins (SGRAF, SCAN, VSE++, IMRAM).

A library, not a plugin (no entry point, no models). Cheap to import: nothing is imported here,
so a plugin's hook module may import :mod:`mmbench_vse.wrapper` without pulling in numpy or torch.

- :mod:`mmbench_vse.tokenize`: the nltk-compatible word tokenizer (``word_tokenize``)
- :mod:`mmbench_vse.vocab`: the SCAN-format vocabulary (``Vocabulary``, ``encode_captions``, ``scan_tokens``)
- :mod:`mmbench_vse.checkpoints`: ``official_checkpoint``, ``namespace_dict``, ``write_unsafe_checkpoint``
- :mod:`mmbench_vse.wrapper`: option / input checks of the model wrappers
- :mod:`mmbench_vse.training`: hinge loss, vocabulary building, the seeded demo training loop
- :mod:`mmbench_vse.layers`: torch modules and functions shared by the models
- :mod:`mmbench_vse.testing`: pytest fixtures for the plugins' parity tests
"""

__version__ = "0.1.0"
