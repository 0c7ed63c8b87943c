"""Callbacks: hooks that hear what happens to jobs, on the client and on the node.

See :mod:`slurm.callbacks.callbacks` for the hooks, where each runs and the
contexts they get. Importing this package is light (no client code): a
callback pickled into a job is rebuilt on the node from here.
"""

from slurm.callbacks.callbacks import (
    BaseCallback,
    BenchmarkCallback,
    CompletedContext,
    ExecutionLocus,
    JobStatusUpdatedContext,
    LoggerCallback,
    PackagingBeginContext,
    PackagingEndContext,
    RichLoggerCallback,
    RunBeginContext,
    RunEndContext,
    SubmitBeginContext,
    SubmitEndContext,
    WorkflowCallbackContext,
    WorkflowTaskSubmitContext,
)
from slurm.callbacks.debug import DebugCallback

__all__ = [
    "BaseCallback",
    "BenchmarkCallback",
    "CompletedContext",
    "DebugCallback",
    "ExecutionLocus",
    "JobStatusUpdatedContext",
    "LoggerCallback",
    "PackagingBeginContext",
    "PackagingEndContext",
    "RichLoggerCallback",
    "RunBeginContext",
    "RunEndContext",
    "SubmitBeginContext",
    "SubmitEndContext",
    "WorkflowCallbackContext",
    "WorkflowTaskSubmitContext",
]
