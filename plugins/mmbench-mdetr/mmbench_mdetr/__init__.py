"""mmbench plugin: MDETR referring-expression grounding from official ashkamath/mdetr checkpoints."""

__version__ = "0.3.0"
