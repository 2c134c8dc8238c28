"""mmbench plugin: VSE++ (precomputed features) image-text retrieval from official checkpoints."""

__version__ = "0.1.0"
