"""Shared pytest fixtures for the harness tests (tests/) and the plugin packages' tests (plugins/*/tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("MMBENCH_SHARED", REPO.parent / "shared"))

# The VSE-family parity fixtures (parity_case, assert_official_metrics) live in the mmbench-vse library
# (mmbench_vse.testing, imported by the plugins' test modules); rewrite their asserts as a conftest's are.
pytest.register_assert_rewrite("mmbench_vse.testing")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real data and parity fixtures); tests using it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def shared_data(shared_dir) -> Path:
    d = shared_dir / "data"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="session")
def parity_dir(shared_dir) -> Path:
    d = shared_dir / "parity"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a test module (tiny tensors: OpenMP spin-waiting dominates on a busy CPU).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
