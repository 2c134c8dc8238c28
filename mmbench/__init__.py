"""mmbench: a plugin-based evaluation harness for image-text models."""

__version__ = "0.1.0"

from mmbench.errors import MMBenchError  # noqa: E402
from mmbench.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "MMBenchError", "hookimpl"]
