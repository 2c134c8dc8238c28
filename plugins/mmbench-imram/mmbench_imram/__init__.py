"""mmbench plugin: IMRAM (iterative matching with recurrent attention memory) image-text retrieval."""

__version__ = "0.1.0"
