"""Evaluation at scale: executors (local, torch.distributed, Ray), sharded evaluation and the
content-addressed cache of finished shards. See docs/scale.md."""

from mmbench.execution.cache import Cache, work_key
from mmbench.execution.executors import EXECUTORS, Executor, LocalExecutor, ModelRecipe, RayExecutor, Stage, \
    TorchExecutor, make_executor
from mmbench.execution.sharded import Plan

__all__ = ["Cache", "work_key", "EXECUTORS", "Executor", "LocalExecutor", "ModelRecipe", "RayExecutor", "Stage",
           "TorchExecutor", "make_executor", "Plan"]
