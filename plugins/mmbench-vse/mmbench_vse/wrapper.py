"""Options and inputs of the mmbench model wrappers of VSE-family retrieval plugins.

The SGRAF, SCAN, VSE++ and IMRAM plugins share: the ModelSpec option help of a loader of
official checkpoints, the option / input checks of their model wrappers (unknown options,
the checkpoint + vocabulary pair or the shipped demo model, the checkpoint's ``opt``, the
vocabulary size, a state_dict that does not fit, empty batches, region feature shapes).

Cheap to import (only :mod:`mmbench.errors`): a plugin's hook module may use
:func:`loader_options` at CLI startup; numpy is imported inside :func:`stack_regions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from mmbench.errors import DataError, PluginError

if TYPE_CHECKING:
    import numpy as np

#: the files of an official / demo model: the checkpoint and its SCAN-format vocabulary
CHECKPOINT_FILE = "model_best.pth.tar"
VOCAB_FILE = "demo_precomp_vocab.json"

#: ModelSpec option help shared by the loaders of official checkpoints
DEVICE_HELP = "cpu | cuda | cuda:N (default: cuda when available, else cpu)"
UNSAFE_PICKLE_HELP = "true to load a checkpoint the restricted loader refuses (trusted files only)"
SCAN_VOCAB_HELP = "the SCAN-format <data_name>_vocab.json the checkpoint was trained with"


def loader_options(*, vocab: str = SCAN_VOCAB_HELP, batch_size: str) -> dict[str, str]:
    """The ``vocab``, ``device``, ``batch_size``, ``allow_unsafe_pickle`` entries of a ModelSpec's options."""
    return {"vocab": vocab, "device": DEVICE_HELP, "batch_size": batch_size, "allow_unsafe_pickle": UNSAFE_PICKLE_HELP}


def check_options(plugin: str, options: dict, known: Sequence[str]) -> None:
    """PluginError listing ``known`` (in the given order) when ``options`` has a key outside it."""
    bad = sorted(set(options) - set(known))
    if bad:
        raise PluginError(f"{plugin}: unknown option(s) {bad}; known: {', '.join(known)}")


def checkpoint_and_vocab(plugin: str, checkpoint, vocab, demo_dir: Path, *,
                         vocab_hint: str = "the <data_name>_vocab.json it was trained with") -> tuple:
    """Both paths as given, or the shipped demo model's pair when neither is given."""
    if checkpoint is None and vocab is None:
        return demo_dir / CHECKPOINT_FILE, demo_dir / VOCAB_FILE
    if checkpoint is None or vocab is None:
        raise PluginError(f"{plugin}: give both checkpoint=PATH (model_best.pth.tar) and vocab=PATH "
                          f"({vocab_hint}), or neither for the demo model")
    return checkpoint, vocab


def require_opt(opt: dict, keys: Sequence[str], checkpoint, *, what: str) -> None:
    """DataError naming the checkpoint when its ``opt`` lacks any of ``keys``."""
    missing = [k for k in keys if k not in opt]
    if missing:
        raise DataError(checkpoint, f"lacks {missing}", field="opt", expected=f"{what} training options")


def check_vocab_size(vocab, vocab_path, opt: dict, *, checkpoint=None) -> None:
    """DataError naming the vocabulary file when its size is not the checkpoint's ``opt.vocab_size``.

    ``checkpoint``: name it in the message (where several checkpoints share one vocabulary).
    """
    if len(vocab) != int(opt["vocab_size"]):
        whose = f"the checkpoint {checkpoint} has opt.vocab_size" if checkpoint else "the checkpoint's opt.vocab_size is"
        raise DataError(vocab_path, f"has {len(vocab)} words but {whose} {opt['vocab_size']}", field="word2idx",
                        expected="the vocabulary the model was trained with")


def load_official_states(model, states: list[dict], checkpoint, *, expected: str) -> None:
    """``model.load_official(states)``, a shape/name mismatch raised as DataError naming the file."""
    try:
        model.load_official(states)
    except RuntimeError as exc:
        raise DataError(checkpoint, f"state_dicts do not fit the architecture built from opt: {exc}",
                        field="model", expected=expected) from None


def not_empty(items, what: str, *, plugin: str) -> None:
    """PluginError for an empty batch given to a cross-attention encoder."""
    if len(items) == 0:
        raise PluginError(f"{plugin}: {what}() got an empty batch (a cross-attention block needs at least one item)")


def stack_regions(images, img_dim: int, *, plugin: str, n_regions: int | None = None, why: str = "") -> np.ndarray:
    """(B, R, D) float32 from ImageItems' region features, with clear errors.

    ``n_regions`` fixes R (``why``, appended to the error, says which layer needs it).
    """
    import numpy as np

    out = []
    for im in images:
        r = getattr(im, "regions", None)
        if r is None:
            raise PluginError(f"{plugin}: image {im.id!r} has no region features (it offers "
                              f"{sorted(im.forms)}); {plugin} takes the 'regions' input form")
        r = np.asarray(r, dtype=np.float32)
        if r.ndim != 2 or r.shape[1] != img_dim or (n_regions is not None and r.shape[0] != n_regions):
            want = f"({n_regions if n_regions else 'R'}, {img_dim})"
            raise DataError(None, f"image {im.id!r}: region features have shape {tuple(r.shape)}",
                            field="regions", expected=f"{want} to fit this {plugin} checkpoint" + why)
        out.append(r)
    if len({r.shape[0] for r in out}) > 1:
        raise DataError(None, "images in one batch have different region counts", field="regions",
                        expected="the same number of regions for every image")
    return np.stack(out) if out else np.zeros((0, n_regions or 0, img_dim), np.float32)


def recall_numbers(rows, source: str, tolerance: float = 0.5) -> tuple:
    """Published R@1/5/10 as ``PublishedNumber``s from a paper's results table.

    ``rows``: ``(dataset, split, protocol, (i2t R@1, R@5, R@10), (t2i R@1, R@5, R@10))`` per line.
    """
    from mmbench.specs import PublishedNumber

    return tuple(PublishedNumber(dataset=dataset, metric=f"{direction}.R@{k}", value=v, protocol=protocol,
                                 split=split, tolerance=tolerance, source=source)
                 for dataset, split, protocol, i2t, t2i in rows
                 for direction, values in (("i2t", i2t), ("t2i", t2i))
                 for k, v in zip((1, 5, 10), values))
