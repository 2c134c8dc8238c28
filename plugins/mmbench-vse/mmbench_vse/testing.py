"""pytest fixtures for the VSE-family plugins' parity tests against ../shared/parity.

Use them in a test module by importing them (pytest picks up fixtures from the module's namespace)::

    from mmbench_vse.testing import assert_official_metrics, parity_case  # noqa: F401  (fixtures)

``parity_case`` needs the ``parity_dir`` fixture (the repository's root conftest.py: the
``parity`` folder of ../shared, skipping when it is absent).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def parity_case(parity_dir):
    """Factory: a ../shared/parity folder name -> (folder, RetrievalData of its images and captions).

    Caption j belongs to image j // 5 (the official loaders' layout). Images whose features are one
    vector (VSE++) are given as (1, D) region rows unless ``as_rows=False``.
    """
    import numpy as np

    from mmbench.tasks import DatasetMeta, ImageItem, RetrievalData

    def load(name: str, as_rows: bool = True):
        d = parity_dir / name
        ims = np.load(d / "data" / "test_ims.npy")
        caps = (d / "data" / "test_caps.txt").read_text(encoding="utf-8").splitlines()
        rows = [ims[i][None] if as_rows and ims[i].ndim == 1 else ims[i] for i in range(len(ims))]
        data = RetrievalData(images=[ImageItem(id=str(i), regions=r) for i, r in enumerate(rows)], texts=caps,
                             text_image=np.arange(len(caps)) // 5, meta=DatasetMeta("parity", "test", "retrieval"))
        return d, data

    return load


@pytest.fixture(scope="session")
def assert_official_metrics():
    """``check(result, folder)``: a TaskResult's metrics and per-query ranks equal the official ones."""
    import json

    def check(res, folder):
        exp = json.loads((folder / "expected_metrics.json").read_text())
        for direction in ("i2t", "t2i"):
            for key, metric in (("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10"), ("medr", "medr"), ("meanr", "meanr")):
                assert res.metrics[f"{direction}.{metric}"] == pytest.approx(exp[direction][key], abs=1e-12)
        assert res.metrics["rsum"] == pytest.approx(exp["rsum"], abs=1e-9)
        assert res.per_sample["i2t_rank"] == exp["i2t_ranks_0based"]
        assert res.per_sample["t2i_rank"] == exp["t2i_ranks_0based"]

    return check
