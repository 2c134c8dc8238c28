"""mmbench's four task kinds, registered through the same hook as a third party's."""

from __future__ import annotations

from mmbench.hookspecs import hookimpl


@hookimpl
def mmbench_task_kinds():
    from mmbench.tasks import captioning, classification, grounding, retrieval

    return [retrieval.KIND, captioning.KIND, grounding.KIND, classification.KIND]
