"""mmbench plugin: AoANet (Attention on Attention, Huang et al. ICCV 2019) image captioning."""

__version__ = "0.1.0"
