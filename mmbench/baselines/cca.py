"""``cca``: a regularised CCA joint embedding of colour statistics and TF-IDF words (dual encoder)."""

from __future__ import annotations

import numpy as np

from mmbench.baselines._threads import one_blas_thread
from mmbench.baselines.features import TextVectorizer, colour_features, l2_normalize
from mmbench.errors import MMBenchError


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T


class CCARetrieval:
    """Closed-form regularised CCA between image colour features and caption TF-IDF.

    Each train caption is paired with its image; both sides are centred, whitened with
    ridge ``reg`` and projected on the top ``dim`` canonical directions, each scaled by
    its canonical correlation; outputs are L2-normalised (cosine similarity).
    """

    def __init__(self, dim: int = 16, reg: float = 1.0):
        self.dim = int(dim)
        self.reg = float(reg)
        if self.dim < 1 or self.reg <= 0:
            raise MMBenchError(f"cca: options dim={dim!r} and reg={reg!r} must be a positive integer and a "
                               f"positive number")
        self.text = TextVectorizer(ngram_range=(1, 2), min_df=2)
        self.batch_size = 256

    def fit(self, train, val=None):
        with one_blas_thread():
            return self._fit(train)

    def _fit(self, train):
        x_img = colour_features(train.images)
        t = self.text.fit_transform(train.texts)
        x = x_img[np.asarray(train.text_image)]
        self.mx, self.mt = x.mean(0), t.mean(0)
        self.sx, self.st = x.std(0) + 1e-6, np.float32(1.0)
        xc = (x - self.mx) / self.sx
        tc = (t - self.mt) / self.st
        n = len(xc)
        cxx = xc.T @ xc / n
        ctt = tc.T @ tc / n
        cxx += self.reg * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
        ctt += self.reg * np.trace(ctt) / len(ctt) * np.eye(len(ctt))
        wx, wt = _inv_sqrt(cxx), _inv_sqrt(ctt)
        u, s, vt = np.linalg.svd(wx @ (xc.T @ tc / n) @ wt)
        k = min(self.dim, len(s))
        self.px = (wx @ u[:, :k] * s[:k]).astype(np.float32)
        self.pt = (wt @ vt[:k].T * s[:k]).astype(np.float32)
        self.correlations = s[:k].tolist()
        return self

    def _check(self):
        if not hasattr(self, "px"):
            raise MMBenchError("cca: the model is not fitted; it trains on the dataset's train split (fit())")

    def encode_images(self, images):
        self._check()
        return l2_normalize(((colour_features(images) - self.mx) / self.sx) @ self.px)

    def encode_texts(self, texts):
        self._check()
        return l2_normalize(((self.text.transform(texts) - self.mt) / self.st) @ self.pt)


def build(dim: str | int = 16, reg: str | float = 1.0) -> CCARetrieval:
    try:
        return CCARetrieval(dim=int(dim), reg=float(reg))
    except ValueError:
        raise MMBenchError(f"cca: options dim={dim!r}, reg={reg!r}: expected an integer and a number") from None
