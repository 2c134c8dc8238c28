"""mmbench-clip: CLIP and FLAVA from local Hugging Face checkpoints, as mmbench plugins."""

__version__ = "0.1.0"
