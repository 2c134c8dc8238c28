"""Task kinds: one module per kind (``tasks/<kind>.py``) holding its :class:`TaskKind` object —
sample and input types, model protocol, evaluate loop, options, metrics, bootstrap statistics,
paired alignment and conformance checks. Other modules ask :func:`get_kind`; none keeps a table
per task. Third parties add kinds through the ``mmbench_task_kinds`` hook.
"""

from mmbench.tasks.base import DatasetMeta, ImageItem, MetricInfo, ModelInput, TargetAccessError, TaskKind, \
    TaskOption, TaskResult
from mmbench.tasks.captioning import CaptioningData
from mmbench.tasks.classification import ClassificationData, ClassificationInput, ClassificationSample
from mmbench.tasks.grounding import GroundingData, GroundingInput, GroundingSample
from mmbench.tasks.retrieval import RetrievalData

#: the kinds mmbench itself ships (registered through ``mmbench.tasks.builtin``)
BUILTIN_KINDS = ("retrieval", "captioning", "grounding", "classification")


def task_kinds(registry=None) -> dict[str, TaskKind]:
    """Every installed task kind by name (mmbench's and the plugins')."""
    if registry is None:
        from mmbench.plugins import get_registry

        registry = get_registry()
    return registry.task_kinds


def get_kind(name: str, registry=None) -> TaskKind:
    """The installed task kind ``name``; an unknown name raises UnknownNameError listing the known ones."""
    if isinstance(name, TaskKind):
        return name
    kinds = task_kinds(registry)
    if name in kinds:
        return kinds[name]
    from mmbench.errors import UnknownNameError

    raise UnknownNameError("task kind", str(name), list(kinds))


class UnknownKind(TaskKind):
    """Stands in, in reports, for a kind whose plugin is not installed: metrics are shown as recorded,
    directions come from what the record declares, and nothing is recomputed."""

    def __init__(self, name: str):
        self.name = name

    def unit_stats(self, per_sample):
        from mmbench.errors import MMBenchError

        raise MMBenchError(f"task kind {self.name!r} is not installed: its metrics cannot be recomputed")


def kind_for_report(name: str, registry=None) -> TaskKind:
    """The kind of a record being reported: the installed one, or an :class:`UnknownKind`."""
    try:
        return get_kind(name, registry)
    except Exception:  # noqa: BLE001 - a report must still show a record of an uninstalled kind
        return UnknownKind(name or "?")


__all__ = [
    "DatasetMeta", "ImageItem", "TaskResult", "RetrievalData", "CaptioningData", "MetricInfo", "TaskKind",
    "TaskOption", "ClassificationData", "ClassificationSample", "GroundingData", "GroundingSample",
    "ClassificationInput", "GroundingInput", "ModelInput", "TargetAccessError", "BUILTIN_KINDS", "get_kind",
    "task_kinds", "kind_for_report", "UnknownKind",
]
