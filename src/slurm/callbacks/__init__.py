"""Callbacks: hooks that hear what happens to jobs, on the client and on the node.

See :mod:`slurm.callbacks.callbacks` for the hooks, where each runs and the
contexts they get. Importing this package is light (no client code): a
callback pickled into a job is rebuilt on the node from here. Its names are
imported at their first use (the client imports the package for its dispatcher,
without callbacks to hear it most of the time).
"""

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
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


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "DebugCallback":
        from slurm.callbacks import debug as module
    else:
        from slurm.callbacks import callbacks as module  # type: ignore[no-redef]
    value = getattr(module, name)
    globals()[name] = value
    return value
