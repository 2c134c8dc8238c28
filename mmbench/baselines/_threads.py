"""Run small linear-algebra problems on one BLAS thread.

The baselines' problems are tiny (hundreds of rows); on a busy machine a multi-threaded
BLAS spends far longer synchronising than computing (a 400 x 78 logistic regression took
1.2 s with the default pool and 0.08 s with one thread on the 2-core dev box).
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
