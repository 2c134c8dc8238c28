"""Fixtures of the mmbench-fusion tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fusion_feature_cache(tmp_path_factory):
    """One feature cache for the package's test session (each split is encoded once, e.g. the
    demo splits shared by several modules' end-to-end runs); never the user's ~/.cache. Cache
    file names hold a digest of the samples' content, so sharing cannot serve stale features."""
    d = tmp_path_factory.mktemp("fusion-features")
    mp = pytest.MonkeyPatch()
    mp.setenv("MMBENCH_FEATURE_CACHE", str(d))
    yield d
    mp.undo()
