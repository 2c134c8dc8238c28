"""Shared training and scoring plumbing for VSE-family region-feature retrieval models.

The first-party SGRAF, SCAN and VSE++ plugins (and any plugin of the same family) share:
the VSE++ hinge loss, the SCAN-format vocabulary built from captions, the seeded demo
training loop over the demo dataset's region features with validation rsum and
best-checkpoint saving in the official ``model_best.pth.tar`` layout, and the option /
input checks of their mmbench model wrappers. What differs between the models (the option
set, the network, how a batch is scored, how image features are formed) is passed in.
:func:`write_unsafe_checkpoint` crafts a code-running checkpoint for loader tests.

Cheap to import: numpy, torch, the vocabulary and the demo data are imported inside the
functions that need them, so a plugin's hook module may use the option helpers at CLI startup.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from mmbench.errors import DataError, PluginError

if TYPE_CHECKING:
    import numpy as np

    from mmbench.text import Vocabulary

CHECKPOINT_FILE = "model_best.pth.tar"
VOCAB_FILE = "demo_precomp_vocab.json"

# --- options and inputs of the model wrappers -------------------------------------------

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


# --- training ----------------------------------------------------------------------------

def build_vocab(captions: Iterable[str], threshold: int = 4) -> Vocabulary:
    """SCAN's build_vocab: words seen >= ``threshold`` times (SCAN tokens), in first-appearance order."""
    from mmbench.text import Vocabulary, scan_tokens

    counts = collections.Counter(w for c in captions for w in scan_tokens(c))
    return Vocabulary.from_words(w for w, n in counts.items() if n >= threshold)


def contrastive_loss(scores, margin: float, max_violation: bool):
    """VSE++/SCAN hinge loss over a (B, B) image x caption score matrix with positives on the diagonal.

    ``max_violation``: only the hardest negative per row/column (VSE++), else the sum over all.
    """
    import torch

    d = scores.diag().view(-1, 1)
    cost_c = (margin + scores - d).clamp(min=0)  # image -> other captions
    cost_i = (margin + scores - d.t()).clamp(min=0)  # caption -> other images
    eye = torch.eye(scores.size(0), dtype=torch.bool)
    cost_c, cost_i = cost_c.masked_fill(eye, 0), cost_i.masked_fill(eye, 0)
    if max_violation:
        return cost_c.max(1).values.sum() + cost_i.max(0).values.sum()
    return cost_c.sum() + cost_i.sum()


def region_stack(images) -> np.ndarray:
    """(B, R, D): every image's region rows (the input of SCAN/SGRAF-style models)."""
    import numpy as np

    return np.stack([im.regions for im in images])


def region_mean(images) -> np.ndarray:
    """(B, D) float32: the mean of every image's region rows (one vector per image, as VSE++ precomp)."""
    import numpy as np

    return np.stack([im.regions.mean(0) for im in images]).astype(np.float32)


#: ``batch_scores(model, feats, ids, lengths) -> (B_images, B_captions)`` torch scores
BatchScores = Callable[[Any, Any, Any, Any], Any]


def val_rsum(model, vocab: Vocabulary, data, batch_scores: BatchScores, features=region_stack) -> float:
    """rsum of ``model`` (switched to eval mode) on all of ``data`` scored in one block."""
    import torch

    from mmbench.metrics.retrieval import ranks_from_sims, summarize
    from mmbench.text import encode_captions

    model.eval()
    with torch.no_grad():
        feats = torch.from_numpy(features(data.images))
        ids, lengths = encode_captions(vocab, data.texts)
        sims = batch_scores(model, feats, torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    i2t, t2i, _, _ = ranks_from_sims(sims, data.text_image)
    return summarize(i2t, t2i)["rsum"]


def train_demo(make_opt: Callable[[int], argparse.Namespace], make_model: Callable[[dict], Any],
               batch_scores: BatchScores, out: Path, *, epochs: int, seed: int = 0, warmup: int | None = None,
               features=region_stack, first_epoch: int = 1):
    """Train on the demo dataset's retrieval train split; save the best-val-rsum model as the official repos do.

    Seeded (torch and numpy from ``seed``): the vocabulary from the train captions
    (:func:`build_vocab`), ``opt = make_opt(vocab_size)``, ``model = make_model(vars(opt))``,
    Adam at ``opt.learning_rate``, shuffled caption batches of ``opt.batch_size`` paired with
    their images (a last batch of one is skipped), :func:`contrastive_loss` with
    ``opt.margin`` (hardest negative when ``opt.max_violation``, from epoch index ``warmup``
    on), gradient norm clipped to ``opt.grad_clip``, :func:`val_rsum` on the val split after
    every epoch. Writes ``out/model_best.pth.tar`` (``{'epoch', 'model':
    model.official_states(), 'best_rsum', 'opt', 'Eiters'}``; ``epoch`` counts from
    ``first_epoch``: 1 in SGRAF's and VSE++'s train.py, 0 in SCAN's) and
    ``out/demo_precomp_vocab.json``. Returns ``(out, best_rsum)``.
    """
    import numpy as np
    import torch

    from mmbench.datasets.demo import load
    from mmbench.text import encode_captions

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_data, val_data = load("retrieval", "train"), load("retrieval", "val")
    vocab = build_vocab(train_data.texts)
    opt = make_opt(len(vocab))
    model = make_model(vars(opt))
    optim = torch.optim.Adam(model.parameters(), lr=opt.learning_rate)
    feats_all = features(train_data.images)
    ids_all, len_all = encode_captions(vocab, train_data.texts)
    best, best_state, best_epoch, eiters = -1.0, None, 0, 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_data.texts))
        for start in range(0, len(order), opt.batch_size):
            idx = order[start:start + opt.batch_size]
            if len(idx) < 2:
                continue
            feats = torch.from_numpy(feats_all[train_data.text_image[idx]])
            lengths = len_all[idx]
            ids = torch.from_numpy(ids_all[idx, :lengths.max()])
            scores = batch_scores(model, feats, ids, torch.from_numpy(lengths))
            loss = contrastive_loss(scores, opt.margin, max_violation=opt.max_violation and epoch >= (warmup or 0))
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
            optim.step()
            eiters += 1
        rsum = val_rsum(model, vocab, val_data, batch_scores, features)
        print(f"epoch {epoch + 1}/{epochs}: val rsum {rsum:.1f}", flush=True)
        if rsum > best:
            best, best_epoch = rsum, epoch + first_epoch
            best_state = [{k: t.detach().clone() for k, t in sd.items()} for sd in model.official_states()]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = {"epoch": best_epoch, "model": best_state, "best_rsum": best, "opt": opt, "Eiters": eiters}
    torch.save(ckpt, out / CHECKPOINT_FILE)
    vocab.to_json(out / VOCAB_FILE)
    return out, best


def demo_arg_parser(doc: str, *, epochs: int) -> argparse.ArgumentParser:
    """The ``--epochs``, ``--seed``, ``--out`` command line of a plugin's ``train_demo`` script."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    return ap


def train_and_report(train: Callable[[], tuple[Path, float]], load_model: Callable[..., Any]) -> None:
    """Run ``train()`` single-threaded, then print the written model's rsum on the demo test split.

    ``load_model(checkpoint=..., vocab=..., device="cpu")`` builds the plugin's mmbench model
    from the written files; a cross-attention model (one with ``score``) scores all test
    images x captions in one block, a dual encoder by the dot product of its embeddings.
    """
    import time

    import torch

    from mmbench.datasets.demo import load
    from mmbench.metrics.retrieval import ranks_from_sims, summarize

    torch.set_num_threads(1)  # same float summation order on every machine
    t0 = time.perf_counter()
    out, best = train()
    model = load_model(checkpoint=out / CHECKPOINT_FILE, vocab=out / VOCAB_FILE, device="cpu")
    test = load("retrieval", "test")
    if hasattr(model, "score"):
        sims = model.score(model.encode_images(test.images), model.encode_texts(test.texts))
    else:
        sims = model.encode_images(test.images) @ model.encode_texts(test.texts).T
    i2t, t2i, _, _ = ranks_from_sims(sims, test.text_image)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s: best val rsum {best:.1f}, "
          f"test rsum {summarize(i2t, t2i)['rsum']:.1f} (chance about 16)")


# --- test aid for plugin authors ---------------------------------------------------------

class _RunsCommand:
    """Unpickling this runs a shell command: what a restricted loader must refuse."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def write_unsafe_checkpoint(path, marker, *, n_modules: int = 2, field: str = "opt", legacy: bool = False) -> Path:
    """Write an official-layout ``model_best.pth.tar`` that would create ``marker`` if fully unpickled.

    ``{'epoch', 'model': n_modules empty state_dicts, 'best_rsum', 'opt', 'Eiters'}`` with
    ``field`` replaced by an object whose unpickling calls ``os.system('touch <marker>')``;
    ``legacy=True`` writes torch's pre-1.6 format. A loader test asserts that loading is
    refused (``UnsafeFileError`` naming ``system``) and that ``marker`` does not exist.
    """
    import shlex

    import torch

    ckpt: dict[str, Any] = {"epoch": 0, "model": [{} for _ in range(n_modules)], "best_rsum": 0.0, "opt": {},
                            "Eiters": 0}
    if field not in ckpt:
        raise ValueError(f"field {field!r}: expected one of {sorted(ckpt)}")
    ckpt[field] = _RunsCommand(f"touch {shlex.quote(str(marker))}")
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return Path(path)
