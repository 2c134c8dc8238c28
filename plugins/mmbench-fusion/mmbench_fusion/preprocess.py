"""Transforms fitted on the training split only, between the feature stage and the networks.

Sparse text counts (the builtin encoder) become TF-IDF (sublinear tf, smoothed idf),
L2-normalised, then projected by a truncated SVD (LSA) to ``text_dim`` dimensions and
centred and scaled by one global factor (unit mean variance); dense features (image
statistics, plugin embeddings) are standardised per dimension with training statistics.
"""

from __future__ import annotations

import numpy as np


class ModalityPreprocessor:
    def __init__(self, text_dim: int = 256, seed: int = 0):
        self.text_dim = int(text_dim)
        self.seed = int(seed)
        self.tfidf = None
        self.svd = None
        self.columns: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, X) -> "ModalityPreprocessor":
        import scipy.sparse as sp

        if sp.issparse(X):
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfTransformer

            # only the hashed columns seen in training matter (others get no SVD weight):
            # compacting them first keeps the randomized SVD cheap
            X = X.tocsc()
            self.columns = np.flatnonzero(np.diff(X.indptr) > 0)
            X = X[:, self.columns].tocsr()
            self.tfidf = TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm="l2").fit(X)
            T = self.tfidf.transform(X)
            k = max(1, min(self.text_dim, len(self.columns) - 1, T.shape[0] - 1))
            self.svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7,
                                    random_state=self.seed).fit(T)
            Z = self.svd.transform(T)
        else:
            Z = np.asarray(X, dtype=np.float64)
        self.mean = Z.mean(0)
        if self.svd is not None:
            # LSA coordinates keep their relative scale (per-dimension standardisation would
            # blow the noise directions up to the size of the main ones): one global scale
            self.std = np.full(Z.shape[1], max(float(np.sqrt(Z.var(0).mean())), 1e-6))
        else:
            std = Z.std(0)
            self.std = np.where(std > 1e-6, std, 1.0)
        return self

    def transform(self, X) -> np.ndarray:
        import scipy.sparse as sp

        if sp.issparse(X):
            if self.svd is None:
                raise ValueError("sparse features at predict time but dense features at fit time")
            Z = self.svd.transform(self.tfidf.transform(X.tocsc()[:, self.columns].tocsr()))
        else:
            Z = np.asarray(X, dtype=np.float64)
        if Z.shape[1] != len(self.mean):
            raise ValueError(f"features have {Z.shape[1]} dimensions, fitted on {len(self.mean)}")
        return ((Z - self.mean) / self.std).astype(np.float32)
