"""mmbench plugin: SCAN (t2i / i2t stacked cross attention) image-text retrieval from official checkpoints."""

__version__ = "0.1.0"
