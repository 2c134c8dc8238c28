"""CLI command groups beyond the core ones in ``mmbench.cli``; each module has ``register(app)``.

Modules: score (saved outputs -> metrics), datasets (check / layout), compare
(regression gates), new_plugin (plugin scaffold), tasks (the installed task kinds), cache (the shard cache). They import heavy libraries lazily,
inside the command functions, so ``mmbench --help`` stays fast.
"""

MODULES = ("score", "datasets", "compare", "new_plugin", "tasks", "cache")
