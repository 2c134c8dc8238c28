"""Task kinds: each module holds its sample/output types, model protocol and evaluate loop."""

from mmbench.tasks.base import DatasetMeta, ImageItem, ModelInput, TargetAccessError, TaskResult
from mmbench.tasks.captioning import CaptioningData
from mmbench.tasks.classification import ClassificationData, ClassificationInput, ClassificationSample
from mmbench.tasks.grounding import GroundingData, GroundingInput, GroundingSample
from mmbench.tasks.retrieval import RetrievalData

DATA_TYPES = {
    "retrieval": RetrievalData,
    "captioning": CaptioningData,
    "grounding": GroundingData,
    "classification": ClassificationData,
}

__all__ = [
    "DatasetMeta", "ImageItem", "TaskResult", "RetrievalData", "CaptioningData",
    "ClassificationData", "ClassificationSample", "GroundingData", "GroundingSample", "DATA_TYPES",
    "ClassificationInput", "GroundingInput", "ModelInput", "TargetAccessError",
]
