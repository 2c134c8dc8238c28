"""``nn-caption``: copy the consensus caption of the nearest train image in colour-feature space."""

from __future__ import annotations

import numpy as np

from mmbench.baselines.features import TextVectorizer, colour_features, l2_normalize
from mmbench.errors import MMBenchError


def consensus_caption(captions: list[str], vectorizer: TextVectorizer) -> str:
    """The caption with the highest mean TF-IDF cosine to the image's other captions."""
    if len(captions) == 1:
        return captions[0]
    v = vectorizer.transform(captions)
    sim = v @ v.T
    np.fill_diagonal(sim, 0.0)
    return captions[int(np.argmax(sim.sum(1)))]  # first of equals wins (argmax)


class NearestNeighbourCaptioner:
    def __init__(self, k: int = 1):
        self.k = int(k)
        if self.k < 1:
            raise MMBenchError(f"nn-caption: option k={k!r} must be >= 1")
        self.batch_size = 256

    def fit(self, train, val=None):
        feats = colour_features(train.images)
        self.mean, self.std = feats.mean(0), feats.std(0) + 1e-6
        self.bank = l2_normalize((feats - self.mean) / self.std)
        vec = TextVectorizer(ngram_range=(1, 2)).fit([c for refs in train.references for c in refs])
        self.captions = [consensus_caption(list(refs), vec) for refs in train.references]
        self.vectorizer = vec
        return self

    def generate(self, images):
        if not hasattr(self, "bank"):
            raise MMBenchError("nn-caption: the model is not fitted; it trains on the dataset's train split")
        q = l2_normalize((colour_features(images) - self.mean) / self.std)
        sims = q @ self.bank.T
        if self.k == 1:
            return [self.captions[int(i)] for i in sims.argmax(1)]
        out = []  # k > 1: the consensus among the k neighbours' consensus captions
        for row in sims:
            nn = np.argsort(-row, kind="stable")[:self.k]
            out.append(consensus_caption([self.captions[int(i)] for i in nn], self.vectorizer))
        return out


def build(k: str | int = 1) -> NearestNeighbourCaptioner:
    try:
        return NearestNeighbourCaptioner(k=int(k))
    except ValueError:
        raise MMBenchError(f"nn-caption: option k={k!r}: expected an integer") from None
