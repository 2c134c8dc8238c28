"""mmbench plugin: ViLBERT (facebookresearch/vilbert-multi-task) retrieval and referring expressions."""

__version__ = "0.2.0"
