"""mmbench-fusion: multimodal fusion classifiers (early/late fusion, TFN, LMF, TMC, ETMC, CMML, PTP, modal attention, MBT) as mmbench plugins."""

__version__ = "0.1.0"
