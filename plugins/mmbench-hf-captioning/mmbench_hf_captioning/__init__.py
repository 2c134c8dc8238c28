"""mmbench-hf-captioning: BLIP and GIT captioners over local Hugging Face checkpoints."""
