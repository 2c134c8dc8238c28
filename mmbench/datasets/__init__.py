"""Dataset adapters: one module per on-disk format; ``builtin`` registers them through the hooks."""
