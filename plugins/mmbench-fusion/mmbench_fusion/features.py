"""The feature stage: per-sample encoders for each modality, cached on disk.

Contract
--------
An *encoder* turns classification samples into one feature matrix per modality::

    enc = get_encoder("builtin")            # or a retrieval plugin name, or "precomputed"
    X = enc.encode(samples, "text")         # (N, D) float32 ndarray or scipy CSR
    X = enc.encode(samples, "image")        # (N, D) float32 ndarray

Encoders are *stateless per sample*: a row depends on that sample alone, never on the
split it came from. That is what makes the cache exact: features are stored in mmbench's
content-addressed cache (``mmbench.execution.cache``) under ``cache_dir``, keyed by the encoder
identity, dataset, split, modality and a digest of the samples' content (ids, texts, image
identity), so a changed dataset can never be served stale features. Anything fitted on the training split (IDF weights,
SVD projection, standardisation) lives in the classifier (``preprocess.py``), not here.

Encoders:
- ``builtin`` — no downloaded weights. Text: hashed word uni+bigram counts (sklearn's
  ``HashingVectorizer``, MurmurHash3, stable across processes) after normalising
  @mentions, URLs and digits. Image: colour and texture statistics of the image
  resized to 64×64 (3×3 grid colour means/stds, HSV histograms, gradient-orientation
  histogram).
- ``<retrieval plugin>`` (e.g. ``clip``) — that installed dual encoder's
  ``encode_texts``/``encode_images``; options for it are passed as ``encoder.KEY=VALUE``.
- ``precomputed`` — an ``.npz`` file (``features=PATH``) with ``ids`` (strings) and
  optional ``text``/``image`` arrays whose rows follow ``ids``; loaded without pickle.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmbench.errors import DataError, MismatchError, MMBenchError, PluginError

MODALITIES = ("text", "image")
TEXT_HASH_FEATURES = 2 ** 18
IMAGE_SIDE = 64
FEATURE_FORMAT = 1  # bump when an encoder's output changes: old cache files stop matching


def default_cache_dir() -> Path:
    env = os.environ.get("MMBENCH_FEATURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mmbench" / "features"


# ----------------------------------------------------------------------------- builtin text

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_DIGITS = re.compile(r"\d+")
TOKEN_PATTERN = r"(?u)#?\b\w+\b|[!?]+|[:;]-?[()DPp]"


def normalise_text(text: str | None) -> str:
    t = (text or "").lower()
    t = _URL.sub(" url ", t)
    t = _MENTION.sub(" @user ", t)
    t = _DIGITS.sub("0", t)
    return t.replace("@user", "atuser")


def hashed_text_counts(texts: Sequence[str | None]):
    """(N, 2**18) CSR float32 of hashed word uni+bigram counts (no IDF, no normalisation)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=TEXT_HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                            norm=None, lowercase=False, preprocessor=normalise_text,
                            token_pattern=TOKEN_PATTERN, dtype=np.float32)
    return vec.transform(list(texts)).tocsr()


# ----------------------------------------------------------------------------- builtin image

def image_statistics(pil) -> np.ndarray:
    """Colour/texture statistics of one RGB PIL image: a fixed 91-d float32 vector."""
    from PIL import Image

    im = pil.convert("RGB").resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
    rgb = np.asarray(im, dtype=np.float32) / 255.0  # (H, W, 3)
    hsv = np.asarray(im.convert("HSV"), dtype=np.float32) / 255.0
    feats = [rgb.mean((0, 1)), rgb.std((0, 1))]
    cells = np.array_split(np.arange(IMAGE_SIDE), 3)
    for rows in cells:  # 3x3 grid: where the colours are
        for cols in cells:
            block = rgb[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            feats += [block.mean((0, 1)), block.std((0, 1))]
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hue_hist, _ = np.histogram(h, bins=12, range=(0, 1), weights=s)  # hue counted where saturated
    feats.append(hue_hist / (IMAGE_SIDE * IMAGE_SIDE))
    feats.append(np.histogram(s, bins=4, range=(0, 1))[0] / (IMAGE_SIDE * IMAGE_SIDE))
    feats.append(np.histogram(v, bins=4, range=(0, 1))[0] / (IMAGE_SIDE * IMAGE_SIDE))
    grey = rgb.mean(2)
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientation
    ori_hist, _ = np.histogram(ang, bins=8, range=(0, np.pi), weights=mag)
    feats.append(ori_hist / (mag.sum() + 1e-8))
    feats.append(np.array([mag.mean(), mag.std(), (mag > 0.1).mean()], dtype=np.float32))
    return np.concatenate([np.asarray(f, dtype=np.float32).ravel() for f in feats])


# ----------------------------------------------------------------------------- encoders

class Encoder:
    """Base: ``identity`` names the encoder and its configuration for the cache key."""

    identity = "encoder"

    def encode(self, samples: Sequence, modality: str):  # pragma: no cover - interface
        raise NotImplementedError


class BuiltinEncoder(Encoder):
    identity = f"builtin-v{FEATURE_FORMAT}"

    def encode(self, samples, modality):
        if modality == "text":
            return hashed_text_counts([s.text for s in samples])
        return np.stack([image_statistics(s.image.load()) for s in samples]).astype(np.float32)


class PluginEncoder(Encoder):
    """The encoders of an installed retrieval plugin (dual encoder)."""

    def __init__(self, name: str, options: dict[str, str] | None = None, registry=None):
        from mmbench.plugins import get_registry

        reg = registry or get_registry()
        spec = reg.model(name)
        if spec.task != "retrieval":
            raise MismatchError(f"encoder={name!r}: plugin {name!r} does {spec.task}; the feature stage needs a "
                                f"retrieval dual encoder (encode_texts/encode_images) or encoder=builtin")
        self.options = dict(options or {})
        try:
            self.model = spec.build(**self.options)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"encoder={name!r}: building the plugin failed: {type(exc).__name__}: {exc}") from exc
        missing = [m for m in ("encode_texts", "encode_images") if not hasattr(self.model, m)]
        if missing:
            raise PluginError(f"encoder={name!r}: plugin {name!r} lacks {', '.join(missing)}; "
                              f"only dual encoders can serve as feature encoders")
        if hasattr(self.model, "fit"):
            raise PluginError(f"encoder={name!r}: plugin {name!r} must be trained (it has fit()) and cannot "
                              f"serve as a frozen feature encoder; use a pretrained dual encoder")
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        self.identity = f"plugin-{name}-{spec.version}" + (f"-{_digest(opts)[:8]}" if opts else "")
        self.batch_size = int(getattr(self.model, "batch_size", None) or 64)
        self.name = name

    def encode(self, samples, modality):
        from mmbench.tasks.base import as_numpy

        out = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start:start + self.batch_size]
            if modality == "text":
                arr = self.model.encode_texts([s.text or "" for s in chunk])
            else:
                arr = self.model.encode_images([s.image for s in chunk])
            arr = as_numpy(arr, what=f"encode_{modality}s() output", plugin=self.name)
            if arr.ndim != 2 or arr.shape[0] != len(chunk):
                raise PluginError(f"encoder={self.name!r}: encode_{modality}s() returned shape "
                                  f"{tuple(arr.shape)} for {len(chunk)} inputs, expected ({len(chunk)}, D)")
            out.append(arr.astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class PrecomputedEncoder(Encoder):
    """Rows looked up by sample id in an ``.npz`` (``ids`` + ``text``/``image``), no pickle."""

    def __init__(self, path: str | None):
        if not path:
            raise MMBenchError("encoder=precomputed needs --option features=PATH.npz "
                                    "(arrays: ids, and text and/or image with one row per id)")
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                self.arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise DataError(self.path, "features file not found") from None
        except ValueError as exc:  # object arrays would need pickle: refused
            raise DataError(self.path, f"cannot load without pickle: {exc}",
                            expected="plain numeric arrays and a string array 'ids'") from None
        except Exception as exc:
            raise DataError(self.path, f"not a readable .npz file: {exc}") from None
        if "ids" not in self.arrays:
            raise DataError(self.path, "missing array", field="ids", expected="a 1-d string array of sample ids")
        ids = [str(i) for i in self.arrays["ids"]]
        self.row = {i: n for n, i in enumerate(ids)}
        for m in MODALITIES:
            if m in self.arrays and (self.arrays[m].ndim != 2 or len(self.arrays[m]) != len(ids)):
                raise DataError(self.path, f"array has shape {self.arrays[m].shape}", field=m,
                                expected=f"({len(ids)}, D): one row per id")
        self.identity = f"precomputed-{sha256_path(self.path)[:12]}"

    def encode(self, samples, modality):
        if modality not in self.arrays:
            raise DataError(self.path, f"no {modality} features", field=modality,
                            expected=f"an array {modality!r} with one row per id")
        missing = [s.id for s in samples if str(s.id) not in self.row]
        if missing:
            raise DataError(self.path, f"{len(missing)} sample id(s) not found, e.g. {missing[:3]}", field="ids",
                            expected="every sample id of the dataset")
        idx = np.array([self.row[str(s.id)] for s in samples], dtype=np.int64)
        return np.asarray(self.arrays[modality][idx], dtype=np.float32)


def get_encoder(name: str = "builtin", *, features: str | None = None,
                options: dict[str, str] | None = None) -> Encoder:
    if name in ("builtin", ""):
        return BuiltinEncoder()
    if name == "precomputed":
        return PrecomputedEncoder(features)
    return PluginEncoder(name, options)


# ----------------------------------------------------------------------------- cache

def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def samples_digest(samples: Sequence, modality: str) -> str:
    """A digest of what the encoder reads for ``modality``: ids plus texts or image identity."""
    h = hashlib.blake2b(digest_size=16)
    h.update(modality.encode())
    for s in samples:
        h.update(b"\0" + str(s.id).encode() + b"\1")
        if modality == "text":
            h.update((s.text or "").encode())
        elif s.image is not None:
            im = s.image
            if im.pil is not None:
                h.update(f"{im.pil.mode}{im.pil.size}".encode())
                h.update(hashlib.blake2b(im.pil.tobytes(), digest_size=16).digest())
            elif im.path is not None:
                try:
                    st = os.stat(im.path)
                    h.update(f"{im.path}|{st.st_size}|{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(str(im.path).encode())
    return h.hexdigest()


def _to_tree(X) -> dict:
    import scipy.sparse as sp

    if sp.issparse(X):
        X = X.tocsr()
        return {"kind": "csr", "data": X.data, "indices": X.indices, "indptr": X.indptr,
                "shape": np.asarray(X.shape, dtype=np.int64)}
    return {"kind": "dense", "X": np.asarray(X, dtype=np.float32)}


def _from_tree(t: dict):
    import scipy.sparse as sp

    if t["kind"] == "csr":
        return sp.csr_matrix((t["data"], t["indices"], t["indptr"]), shape=tuple(int(v) for v in t["shape"]))
    return t["X"]


class FeatureStore:
    """Encodes samples through an encoder, with the on-disk cache of ``mmbench.execution.cache``
    (``cache_dir=None`` disables it): content-addressed, written atomically, checksum-verified on every
    read (a damaged entry is recomputed, never trusted); ``mmbench cache ls|prune --cache DIR`` lists
    and prunes it."""

    def __init__(self, encoder: Encoder, cache_dir: str | Path | None = None):
        from mmbench.execution.cache import Cache

        self.encoder = encoder
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.cache = Cache(self.cache_dir) if self.cache_dir else None
        self.hits = 0
        self.misses = 0

    def key_for(self, samples, modality: str, dataset: str = "", split: str = "") -> str:
        from mmbench.execution.cache import work_key

        return work_key(stage="fusion-features", encoder=self.encoder.identity, dataset=dataset, split=split,
                        modality=modality, samples=samples_digest(samples, modality), format=FEATURE_FORMAT)

    def get(self, samples, modality: str, *, dataset: str = "", split: str = ""):
        samples = list(samples)
        if not samples:
            return np.zeros((0, 0), np.float32)
        key = self.key_for(samples, modality, dataset, split) if self.cache is not None else None
        if key is not None:
            hit, tree = self.cache.get(key)
            if hit:
                X = _from_tree(tree)
                if X.shape[0] == len(samples):
                    self.hits += 1
                    return X
        X = self.encoder.encode(samples, modality)
        if X.shape[0] != len(samples):
            raise PluginError(f"encoder {self.encoder.identity}: {X.shape[0]} rows for {len(samples)} samples")
        self.misses += 1
        if key is not None:
            self.cache.put(key, _to_tree(X), {"stage": "fusion-features", "plugin": "mmbench-fusion",
                                              "encoder": self.encoder.identity, "dataset": dataset,
                                              "split": split, "modality": modality})
        return X
