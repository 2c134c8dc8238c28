"""mmbench's own baseline models, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from mmbench.hookspecs import hookimpl


@hookimpl
def mmbench_models():
    return []
