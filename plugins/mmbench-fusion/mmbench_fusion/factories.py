"""Model factories named by the specs: ``factory(**options)`` -> a FusionClassifier."""

from __future__ import annotations

from mmbench_fusion.classifier import FusionClassifier


def _factory(method: str):
    def build(**options) -> FusionClassifier:
        return FusionClassifier(method, **options)

    build.__name__ = method.replace("-", "_")
    build.__doc__ = f"Build the {method!r} fusion classifier from string options."
    return build


early_fusion = _factory("early-fusion")
late_fusion = _factory("late-fusion")
tfn = _factory("tfn")
lmf = _factory("lmf")
tmc = _factory("tmc")
etmc = _factory("etmc")
cmml = _factory("cmml")
text_only = _factory("text-only")
image_only = _factory("image-only")
ptp = _factory("ptp")
modal_attention = _factory("modal-attention")
mbt = _factory("mbt")
