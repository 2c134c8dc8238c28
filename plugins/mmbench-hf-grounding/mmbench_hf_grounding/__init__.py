"""mmbench-hf-grounding: open-vocabulary detectors from transformers as zero-shot referring-expression grounders."""

__version__ = "0.1.0"
