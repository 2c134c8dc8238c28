"""The classification plugin object shared by every fusion method: options, feature stage,
training on the train split with model selection on val, prediction and extra metrics."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any

import numpy as np

from mmbench.errors import DataError, MismatchError, MMBenchError

#: options every method takes -> (default, help)
COMMON_OPTIONS: dict[str, tuple[Any, str]] = {
    "encoder": ("builtin", "feature encoder: builtin (no weights), a retrieval plugin name, or precomputed"),
    "features": ("", "with encoder=precomputed: an .npz with ids and text/image arrays"),
    "cache_dir": ("", "feature cache folder (default ~/.cache/mmbench/features or $MMBENCH_FEATURE_CACHE)"),
    "cache": ("true", "cache encoded features on disk (true/false)"),
    "seed": ("0", "seed for initialisation, shuffling and the SVD"),
    "epochs": ("40", "training epochs (the best epoch on val is kept)"),
    "lr": ("0.001", "Adam learning rate"),
    "weight_decay": ("0.0001", "Adam weight decay"),
    "hidden": ("64", "hidden width"),
    "dropout": ("0.2", "dropout rate"),
    "train_batch": ("64", "training mini-batch size"),
    "text_dim": ("256", "LSA dimensions for sparse text features"),
    "threads": ("1", "torch CPU threads while training/predicting (small nets: 1 is fastest)"),
}

#: options only some methods take: method -> {option: (default, help)}
METHOD_OPTIONS: dict[str, dict[str, tuple[Any, str]]] = {
    "tfn": {"fusion_dim": ("16", "per-modality vector size before the outer product")},
    "lmf": {"fusion_dim": ("16", "per-modality vector size"), "rank": ("4", "rank of the fusion weight")},
    "tmc": {"annealing_epochs": ("10", "epochs over which the KL term's weight rises to 1")},
    "etmc": {"annealing_epochs": ("10", "epochs over which the KL term's weight rises to 1")},
    "cmml": {"lambda_div": ("0.01", "weight of the diversity term (labelled data)"),
             "lambda_u": ("1.0", "weight of the robust consistency term (unlabelled data)"),
             "delta": ("1.003", "Huber threshold of the consistency term")},
    "ptp": {"fusion_dim": ("16", "per-modality vector size before the concatenation"),
            "rank": ("4", "CP rank of the polynomial weight tensor (>= 1)"),
            "order": ("3", "polynomial order P, 2..8 (the official poly_order=2 default computes P = 3)"),
            "poly_norm": ("1", "times the signed square root is applied to each rank's power (official default 1)"),
            "euclid_norm": ("false", "L2-normalise each rank's output over the units (official default off)")},
    "modal-attention": {},
    "mbt": {"tokens": ("4", "tokens per modality (a linear map of its feature vector)"),
            "layers": ("2", "transformer layers per stream"),
            "fusion_layer": ("1", "first layer that exchanges through the bottleneck, 0..layers (layers: never)"),
            "bottlenecks": ("4", "shared bottleneck tokens (0: independent streams)"),
            "heads": ("4", "attention heads (must divide hidden)"),
            "mlp_dim": ("0", "MLP width of each block (0: 4 x hidden, the official ratio)"),
            "attention_dropout": ("0.1", "dropout on the attention weights (official default 0.1)"),
            "classifier": ("gap", "gap (mean over all modality tokens, official default) or token "
                                  "(a CLS token per modality; the official code then adds one bottleneck)")},
}

INT_OPTIONS = {"threads", "seed", "epochs", "hidden", "train_batch", "text_dim", "fusion_dim", "rank", "annealing_epochs",
               "order", "poly_norm", "tokens", "layers", "fusion_layer", "bottlenecks", "heads", "mlp_dim"}
FLOAT_OPTIONS = {"lr", "weight_decay", "dropout", "lambda_div", "lambda_u", "delta", "attention_dropout"}
BOOL_OPTIONS = {"cache", "euclid_norm"}
NET_KWARGS = {"hidden", "dropout", "fusion_dim", "rank", "annealing_epochs", "lambda_div", "lambda_u", "delta",
              "order", "poly_norm", "euclid_norm", "tokens", "layers", "fusion_layer", "bottlenecks", "heads",
              "mlp_dim", "attention_dropout", "classifier"}


def option_help(method: str) -> dict[str, str]:
    opts = {**COMMON_OPTIONS, **METHOD_OPTIONS.get(method, {})}
    out = {k: f"{h} (default {d})" for k, (d, h) in opts.items()}
    out["encoder.KEY"] = "options passed to the retrieval plugin used as encoder"
    return out


def parse_options(method: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    known = {**COMMON_OPTIONS, **METHOD_OPTIONS.get(method, {})}
    opts = {k: d for k, (d, _) in known.items()}
    enc_opts: dict[str, str] = {}
    for k, v in raw.items():
        if k.startswith("encoder."):
            enc_opts[k[len("encoder."):]] = str(v)
        elif k in known:
            opts[k] = v
        else:
            raise MMBenchError(f"plugin {method!r}: unknown option {k!r}. Known options: "
                               f"{', '.join(sorted(known))}, encoder.KEY")
    for k in list(opts):
        v = opts[k]
        try:
            if k in INT_OPTIONS:
                opts[k] = int(v)
            elif k in FLOAT_OPTIONS:
                opts[k] = float(v)
        except (TypeError, ValueError):
            kind = "an integer" if k in INT_OPTIONS else "a number"
            raise MMBenchError(f"plugin {method!r}: option {k}={v!r} is not {kind}") from None
    for k in BOOL_OPTIONS & set(opts):
        flag = str(opts[k]).lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise MMBenchError(f"plugin {method!r}: option {k}={opts[k]!r} must be true or false")
        opts[k] = flag in ("true", "1", "yes")
    for k in ("threads", "epochs", "hidden", "train_batch", "text_dim", "fusion_dim", "rank", "tokens", "layers",
              "heads"):
        if k in opts and opts[k] < 1:
            raise MMBenchError(f"plugin {method!r}: option {k}={opts[k]} must be >= 1")
    for k in ("dropout", "attention_dropout"):
        if k in opts and not 0 <= opts[k] < 1:
            raise MMBenchError(f"plugin {method!r}: option {k}={opts[k]} must be in [0, 1)")
    _check_method_options(method, opts)
    return opts, enc_opts


def _check_method_options(method: str, o: dict[str, Any]) -> None:
    """Bounds of the method-specific options, checked when the model is built (not at fit)."""
    def bad(msg):
        raise MMBenchError(f"plugin {method!r}: {msg}")

    if method == "ptp":
        from mmbench_fusion.nets import PTP_MAX_ORDER

        if not 2 <= o["order"] <= PTP_MAX_ORDER:
            bad(f"option order={o['order']} must be in [2, {PTP_MAX_ORDER}] (order 1 is a linear layer, "
                f"not a polynomial; higher orders overflow float32)")
        if o["poly_norm"] < 0:
            bad(f"option poly_norm={o['poly_norm']} must be >= 0")
    if method == "mbt":
        if not 0 <= o["fusion_layer"] <= o["layers"]:
            bad(f"option fusion_layer={o['fusion_layer']} must be in [0, layers={o['layers']}]")
        if o["bottlenecks"] < 0:
            bad(f"option bottlenecks={o['bottlenecks']} must be >= 0")
        if o["mlp_dim"] < 0:
            bad(f"option mlp_dim={o['mlp_dim']} must be >= 0 (0: 4 x hidden)")
        if o["hidden"] % o["heads"]:
            bad(f"option heads={o['heads']} must divide hidden={o['hidden']}")
        if o["classifier"] not in ("gap", "token"):
            bad(f"option classifier={o['classifier']!r} must be gap or token")


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch intra-op threads, restoring the caller's setting afterwards."""
    import torch

    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


class FusionClassifier:
    """One fusion method as an mmbench classifier (``fit`` then ``predict_proba``)."""

    #: hand the whole evaluation split over at once: one feature-cache entry per split
    batch_size = 1_000_000

    def __init__(self, method: str, **options: Any):
        from mmbench_fusion.nets import METHODS

        if method not in METHODS:
            raise MMBenchError(f"unknown fusion method {method!r}; known: {', '.join(METHODS)}")
        self.method = method
        self.opts, self.encoder_options = parse_options(method, options)
        self.net = None
        self.details: dict[str, Any] = {"method": method}
        self._store = None
        self._last_uncertainty: dict[str, float] = {}

    # ------------------------------------------------------------------ features
    @property
    def store(self):
        if self._store is None:
            from mmbench_fusion.features import FeatureStore, default_cache_dir, get_encoder

            enc = get_encoder(self.opts["encoder"], features=self.opts["features"] or None,
                              options=self.encoder_options)
            cache_dir = (self.opts["cache_dir"] or default_cache_dir()) if self.opts["cache"] else None
            self._store = FeatureStore(enc, cache_dir)
        return self._store

    def _modalities(self, samples, where: str) -> list[str]:
        with_image = [s.image is not None for s in samples]
        if any(with_image) and not all(with_image):
            missing = [s.id for s in samples if s.image is None][:3]
            raise DataError(where, f"{with_image.count(False)} of {len(samples)} samples have no image "
                                   f"(e.g. {missing}) while others have one", field="image",
                            expected="images on every sample, or none (explicit text-only mode)")
        text_only = not any(with_image)
        if self.method == "image-only":
            if text_only:
                raise MismatchError(f"plugin 'image-only' needs images, but {where} is text-only "
                                    f"(samples have image=None); use text-only or a fused method")
            return ["image"]
        if self.method == "text-only" or text_only:
            return ["text"]
        return ["text", "image"]

    def _raw(self, samples, dataset: str = "", split: str = ""):
        return [self.store.get(samples, m, dataset=dataset, split=split) for m in self.modalities]

    def _prep(self, raws):
        return [p.transform(X) for p, X in zip(self.preps, raws)]

    # ------------------------------------------------------------------ training
    def fit(self, train, val=None) -> "FusionClassifier":
        with torch_threads(self.opts["threads"]):
            return self._fit(train, val)

    def _fit(self, train, val=None) -> "FusionClassifier":
        import torch

        from mmbench_fusion.nets import METHODS, LateFusion
        from mmbench_fusion.preprocess import ModalityPreprocessor

        o = self.opts
        meta = train.meta
        dname = f"{meta.name}-{meta.fingerprint[:12]}" if meta.fingerprint else meta.name
        where = f"dataset {meta.name!r} split {meta.split!r}"
        if not train.samples:
            raise DataError(where, "no labelled training samples", expected="a non-empty train split")
        self.modalities = self._modalities(train.samples, where)
        self.classes = list(train.classes)
        unl = list(train.unlabelled)
        if unl and "image" in self.modalities and any(s.image is None for s in unl):
            raise DataError(where, "some unlabelled samples have no image while the labelled ones do",
                            field="unlabelled", expected="images on every sample, or none (text-only mode)")
        raw_tr = self._raw(train.samples, dname, meta.split)
        raw_un = self._raw(unl, dname, f"{meta.split}-unlabelled") if unl else None
        self.preps = []
        for m, X in enumerate(raw_tr):
            fit_on = X
            if raw_un is not None:
                import scipy.sparse as sp

                fit_on = sp.vstack([X, raw_un[m]]).tocsr() if sp.issparse(X) else np.concatenate([X, raw_un[m]])
            self.preps.append(ModalityPreprocessor(o["text_dim"], o["seed"]).fit(fit_on))
        xs = [torch.from_numpy(a) for a in self._prep(raw_tr)]
        y = torch.from_numpy(train.labels)
        use_unl = self.method == "cmml" and raw_un is not None and len(self.modalities) > 1
        xs_u = [torch.from_numpy(a) for a in self._prep(raw_un)] if use_unl else None
        xs_v = y_v = None
        if val is not None and val.samples:
            vname = f"{val.meta.name}-{val.meta.fingerprint[:12]}" if val.meta.fingerprint else val.meta.name
            self._modalities(val.samples, f"dataset {val.meta.name!r} split {val.meta.split!r}")
            xs_v = [torch.from_numpy(a) for a in self._prep(self._raw(val.samples, vname, val.meta.split))]
            y_v = val.labels

        torch.manual_seed(o["seed"])
        gen = torch.Generator().manual_seed(o["seed"])
        kwargs = {k: o[k] for k in NET_KWARGS if k in o}
        net = METHODS[self.method]([x.shape[1] for x in xs], len(self.classes), **kwargs)
        opt = torch.optim.Adam(net.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
        n, bs = len(y), o["train_batch"]
        u_perm, u_pos = None, 0
        best = (-1.0, 0, None)  # (val accuracy, epoch, state)
        history = []
        for epoch in range(1, o["epochs"] + 1):
            net.train()
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                out = net([x[idx] for x in xs])
                loss = net.loss(out, y[idx], epoch)
                if use_unl:
                    nu = xs_u[0].shape[0]
                    if u_perm is None or u_pos >= nu:
                        u_perm, u_pos = torch.randperm(nu, generator=gen), 0
                    uidx = u_perm[u_pos:u_pos + bs]
                    u_pos += bs
                    loss = loss + net.unlabelled_loss([x[uidx] for x in xs_u])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if xs_v is not None:
                acc = float((self._forward(net, xs_v)["probs"].argmax(1).numpy() == y_v).mean())
                history.append(round(acc, 6))
                if acc > best[0]:
                    best = (acc, epoch, copy.deepcopy(net.state_dict()))
        if best[2] is not None:
            net.load_state_dict(best[2])
        self.net = net
        d = self.details
        d.update({"modalities": list(self.modalities), "text_only": self.modalities == ["text"]
                  and self.method != "text-only", "encoder": self.store.encoder.identity,
                  "feature_dims": [int(x.shape[1]) for x in xs], "n_train": n, "epochs": o["epochs"],
                  "best_epoch": best[1] if best[2] is not None else o["epochs"],
                  "val_accuracy": best[0] if best[2] is not None else None, "val_history": history,
                  "seed": o["seed"], "feature_cache": {"hits": self.store.hits, "misses": self.store.misses}})
        if self.method == "cmml":
            d["n_unlabelled_available"] = len(train.unlabelled)
            d["n_unlabelled_used"] = int(xs_u[0].shape[0]) if use_unl else 0
        if isinstance(net, LateFusion) and len(self.modalities) > 1:
            d["late_fusion_weights"] = self._tune_late_weights(net, xs_v, y_v)
        return self

    @staticmethod
    def _forward(net, xs):
        import torch

        net.eval()
        with torch.no_grad():
            return net(xs)

    def _tune_late_weights(self, net, xs_v, y_v) -> list[float]:
        """Weights (w, 1 - w) on (text, image) log-probabilities, w on the grid 0, 0.05, ..., 1
        maximising val accuracy (ties: the w nearest 0.5). Without val: equal weights."""
        import torch

        if xs_v is None:
            return net.weights.tolist()
        per = self._forward(net, xs_v)["view_log_probs"]
        grid = np.round(np.linspace(0, 1, 21), 2)
        accs = [float((net.pool(per, torch.tensor([w, 1 - w], dtype=per.dtype)).argmax(1).numpy() == y_v).mean())
                for w in grid]
        top = max(accs)
        w = min((g for g, a in zip(grid, accs) if a == top), key=lambda g: abs(g - 0.5))
        net.weights.copy_(torch.tensor([w, 1 - w], dtype=net.weights.dtype))
        return [float(w), float(1 - w)]

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, samples) -> np.ndarray:
        with torch_threads(self.opts["threads"]):
            return self._predict_proba(samples)

    def _predict_proba(self, samples) -> np.ndarray:
        import torch

        if self.net is None:
            raise MMBenchError(f"plugin {self.method!r}: predict_proba() before fit(); it trains on the train split")
        samples = list(samples)
        mods = self._modalities(samples, "the evaluation samples")
        if mods != self.modalities:
            raise MismatchError(f"plugin {self.method!r} was trained on {'+'.join(self.modalities)} but the "
                                f"evaluation samples offer {'+'.join(mods)}")
        xs = [torch.from_numpy(a) for a in self._prep(self._raw(samples))]
        out = self._forward(self.net, xs)
        if "uncertainty" in out:
            self._last_uncertainty.update(zip((str(s.id) for s in samples), out["uncertainty"].tolist()))
        return out["probs"].numpy().astype(np.float64)

    #: direction and unit of every extra metric (reports, gates and sorting read them from the record):
    #: calibration error is better low; TMC's uncertainty u = K/S is better low on correct predictions
    #: and high on wrong ones (a trustworthy model knows when it is wrong)
    extra_metric_info = {
        "ECE": {"higher_is_better": False, "unit": "percent"},
        "uncertainty.mean": {"higher_is_better": False, "unit": "fraction"},
        "uncertainty.correct": {"higher_is_better": False, "unit": "fraction"},
        "uncertainty.wrong": {"higher_is_better": True, "unit": "fraction"},
    }

    def extra_metrics(self, data, result) -> dict[str, float]:
        """Metrics beyond the task's: ECE (in %, 15 bins) of the scores for every method; TMC adds
        its mean uncertainty u = K/S overall and on correct / wrong predictions (ETMC too).

        Called by the runner as ``extra_metrics(data, result)`` (ClassificationData, TaskResult with
        ``extra["scores"]``); ``(samples, scores)`` also works. The training facts (best epoch,
        unlabelled samples used, late-fusion weights, ...) are the ``details`` attribute, which the
        runner records as ``details["model"]``.
        """
        from mmbench_fusion.calibration import expected_calibration_error

        samples = list(data.samples) if hasattr(data, "samples") else list(data)
        if hasattr(result, "extra"):
            scores = result.extra["scores"]
        else:
            scores = result
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        out = {"ECE": 100.0 * expected_calibration_error(scores, labels)}
        if self.method in ("tmc", "etmc"):
            u = np.array([self._last_uncertainty.get(str(s.id), np.nan) for s in samples])
            if np.isnan(u).any():
                self.predict_proba(samples)
                u = np.array([self._last_uncertainty[str(s.id)] for s in samples])
            correct = scores.argmax(1) == labels
            out["uncertainty.mean"] = float(u.mean())
            if correct.any():
                out["uncertainty.correct"] = float(u[correct].mean())
            if (~correct).any():
                out["uncertainty.wrong"] = float(u[~correct].mean())
        return out
