"""mmbench plugin: SGRAF (SGR / SAF) image-text retrieval from official checkpoints."""

__version__ = "0.1.0"
