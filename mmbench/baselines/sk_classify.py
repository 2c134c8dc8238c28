"""``sk-*``: scikit-learn logistic regression over TF-IDF words and image colour statistics.

- ``sk-text-only``: TF-IDF unigrams only (works on text-only data: ``image`` may be None);
- ``sk-image-only``: colour statistics only;
- ``sk-early-fusion``: one model over the concatenation of both (text TF-IDF + standardised,
  down-weighted colour statistics);
- ``sk-late-fusion``: one model per modality, class probabilities averaged.
"""

from __future__ import annotations

import numpy as np

from mmbench.baselines._threads import one_blas_thread
from mmbench.baselines.features import TextVectorizer, colour_features
from mmbench.errors import DataError, MMBenchError

MODES = ("text", "image", "early", "late")


def _images(samples, who: str):
    missing = [s.id for s in samples if s.image is None]
    if missing:
        raise DataError(None, f"{who} needs images, but {len(missing)} sample(s) have none "
                              f"(first: {missing[:3]}); is the dataset in text-only mode?", field="image",
                        expected="an image per sample (use sk-text-only for text-only data)")
    return colour_features([s.image for s in samples], bins=4, grid=1, grid_bins=2)


class SkClassifier:
    def __init__(self, mode: str, C: float = 10.0, max_iter: int = 2000, seed: int = 0):
        if mode not in MODES:
            raise MMBenchError(f"sk classifier: mode {mode!r} is not one of {MODES}")
        self.mode, self.C, self.max_iter, self.seed = mode, float(C), int(max_iter), int(seed)
        self.batch_size = 512
        self.name = {"text": "sk-text-only", "image": "sk-image-only", "early": "sk-early-fusion",
                     "late": "sk-late-fusion"}[mode]

    def _lr(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)

    def _text(self, samples):
        return self.vec.transform([s.text or "" for s in samples])

    def _image(self, samples):
        return (_images(samples, self.name) - self.mu) / self.sd

    def fit(self, train, val=None):
        with one_blas_thread():
            return self._fit(train)

    def _fit(self, train):
        samples = train.samples
        y = train.labels
        self.n_classes = len(train.classes)
        missing = set(range(self.n_classes)) - set(np.unique(y).tolist())
        if missing:
            raise DataError(None, f"{self.name}: the train split has no sample of class(es) {sorted(missing)}",
                            field="label", expected="every class in the train split")
        text = img = None
        if self.mode in ("text", "early", "late"):
            self.vec = TextVectorizer(ngram_range=(1, 1)).fit([s.text or "" for s in samples])
            text = self._text(samples)
        if self.mode in ("image", "early", "late"):
            raw = _images(samples, self.name)
            self.mu, self.sd = raw.mean(0), raw.std(0) + 1e-6
            img = (raw - self.mu) / self.sd
        self.models = {}
        if self.mode == "early":
            self.models["early"] = self._lr().fit(self._join(text, img), y)
        else:
            if text is not None:
                self.models["text"] = self._lr().fit(text, y)
            if img is not None:
                self.models["image"] = self._lr().fit(img, y)
        return self

    @staticmethod
    def _join(text, img):
        # standardised colour statistics have unit variance per column; scale them down so
        # that the many image columns do not drown the (L2-normalised) text row
        return np.hstack([text, img / np.sqrt(img.shape[1])])

    def _early(self, samples):
        return self._join(self._text(samples), self._image(samples))

    def predict_proba(self, samples):
        if not hasattr(self, "models"):
            raise MMBenchError(f"{self.name}: the model is not fitted; it trains on the dataset's train split")
        with one_blas_thread():
            if self.mode == "early":
                return self.models["early"].predict_proba(self._early(samples))
            probs = []
            if "text" in self.models:
                probs.append(self.models["text"].predict_proba(self._text(samples)))
            if "image" in self.models:
                probs.append(self.models["image"].predict_proba(self._image(samples)))
            return np.mean(probs, axis=0)


def _build(mode: str, C, max_iter, seed) -> SkClassifier:
    try:
        return SkClassifier(mode, C=float(C), max_iter=int(max_iter), seed=int(seed))
    except ValueError:
        raise MMBenchError(f"sk-{mode}: options C={C!r}, max_iter={max_iter!r}, seed={seed!r}: expected a "
                           f"number and two integers") from None


def text_only(C="10", max_iter="2000", seed="0"):
    return _build("text", C, max_iter, seed)


def image_only(C="10", max_iter="2000", seed="0"):
    return _build("image", C, max_iter, seed)


def early_fusion(C="10", max_iter="2000", seed="0"):
    return _build("early", C, max_iter, seed)


def late_fusion(C="10", max_iter="2000", seed="0"):
    return _build("late", C, max_iter, seed)
