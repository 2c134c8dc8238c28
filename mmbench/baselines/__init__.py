"""Built-in baseline models that need no downloaded weights (one or more per task kind)."""
