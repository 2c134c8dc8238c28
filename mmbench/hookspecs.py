"""The hook specifications: the single contract a third-party plugin implements.

A plugin is a module (usually shipped in its own pip package) that registers itself
in the ``mmbench`` entry-point group and implements any of the hooks below, decorated
with ``mmbench.hookimpl``::

    # pyproject.toml
    [project.entry-points.mmbench]
    myplugin = "myplugin.plugin"

    # myplugin/plugin.py
    from mmbench import hookimpl
    from mmbench.specs import ModelSpec

    @hookimpl
    def mmbench_models():
        return [ModelSpec(name="my-model", task="retrieval",
                          factory="myplugin.model:build", accepts=("image",))]

mmbench's own datasets and baselines are registered through these same hooks.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mmbench")
hookimpl = pluggy.HookimplMarker("mmbench")


@hookspec
def mmbench_models() -> list:
    """Return a list of :class:`mmbench.specs.ModelSpec` this plugin offers.

    Must be cheap: do not import torch models or read weights here; name the factory
    by a ``"module:attr"`` string so it is imported only when a run needs it.
    """


@hookspec
def mmbench_datasets() -> list:
    """Return a list of :class:`mmbench.specs.DatasetSpec` this plugin offers.

    Must be cheap: no data is read until the spec's factory is called.
    """


@hookspec
def mmbench_task_kinds() -> list:
    """Return a list of :class:`mmbench.tasks.base.TaskKind` instances this plugin adds (e.g. VQA).

    A kind owns its data type, model protocol, evaluate loop, options, metrics (direction and
    unit), bootstrap statistics, paired alignment and conformance checks; models and datasets
    of the kind then name it in ``ModelSpec.task`` / ``DatasetSpec.tasks``. mmbench's four
    kinds are registered through this same hook (``mmbench.tasks.builtin``).
    """
