"""mmbench plugin: Show, Attend and Tell (sgrvinod's PyTorch tutorial) image captioning."""

__version__ = "0.1.0"
