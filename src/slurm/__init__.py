"""slurm-sdk: turn plain Python functions into Slurm jobs.

This module is the public surface: the names in ``__all__`` (a test pins
them), :mod:`slurm.errors`, :mod:`slurm.pytest_plugin`, and the modules
earlier code imports from (``slurm.cluster``, ``slurm.task``,
``slurm.decorators``, ``slurm.workflow``, ``slurm.runtime``,
``slurm.logging``, ``slurm.callbacks``, ``slurm.runner``). Everything in a
package whose name starts with ``_`` is the SDK's own (docs/architecture.md).

The light parts (decorators, contexts, errors) are imported here; the rest
(``Cluster``, ``Job``...) lazily, so that the job-side runner starts fast.
"""

from __future__ import annotations

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from slurm._api.aio import as_completed_async
    from slurm._api.array import ArrayJob
    from slurm._api.cluster import Cluster
    from slurm._api.futures import as_completed, wait
    from slurm._api.job import Job
    from slurm._api.task import SlurmTask, Task
    from slurm._api.workflow import WorkflowContext
    from slurm._job.context import JobContext, current_job_context, on_requeue, requeue_requested
    from slurm._slurm.commands import JobState
    from slurm._slurm.retry import Attempt, Retry
    from slurm._slurm.status import JobStatus
    from slurm._slurm.usage import Usage, UsageSummary
    from slurm._transport.sshauth import AuthPrompt
    from slurm.callbacks.callbacks import (
        BaseCallback,
        BenchmarkCallback,
        LoggerCallback,
        RichLoggerCallback,
    )
    from slurm.errors import (
        BackendCommandError,
        BackendError,
        BackendTimeout,
        CommandError,
        ConfigurationError,
        DependencyError,
        DownloadError,
        InvalidOptionError,
        JobError,
        JobTerminatedError,
        JobTimeoutError,
        NotSubmittableError,
        PackagingError,
        ResultError,
        SlurmError,
        SlurmfileError,
        SubmissionError,
        TaskFailedError,
        TransportError,
        WorkflowError,
    )

# Submodules named like the decorators: import them first, then bind the
# decorators, so `from slurm import task, workflow` always gives the decorators
# while `slurm.workflow.WorkflowContext` keeps working.
import slurm.task
import slurm.workflow  # noqa: F401
from slurm._api.decorators import task, workflow

_EXPORTS = {
    "Cluster": "slurm._api.cluster",
    "AuthPrompt": "slurm._transport.sshauth",
    "Task": "slurm._api.task",
    "as_completed": "slurm._api.futures",
    "as_completed_async": "slurm._api.aio",
    "wait": "slurm._api.futures",
    "Job": "slurm._api.job",
    "ArrayJob": "slurm._api.array",
    "Attempt": "slurm._slurm.retry",
    "Retry": "slurm._slurm.retry",
    "Usage": "slurm._slurm.usage",
    "UsageSummary": "slurm._slurm.usage",
    "JobState": "slurm._slurm.commands",
    "JobStatus": "slurm._slurm.status",
    "JobContext": "slurm._job.context",
    "current_job_context": "slurm._job.context",
    "on_requeue": "slurm._job.context",
    "requeue_requested": "slurm._job.context",
    "WorkflowContext": "slurm._api.workflow",
    "CommandError": "slurm.errors",
    "ConfigurationError": "slurm.errors",
    "DependencyError": "slurm.errors",
    "InvalidOptionError": "slurm.errors",
    "JobError": "slurm.errors",
    "JobTerminatedError": "slurm.errors",
    "JobTimeoutError": "slurm.errors",
    "NotSubmittableError": "slurm.errors",
    "ResultError": "slurm.errors",
    "SlurmError": "slurm.errors",
    "SubmissionError": "slurm.errors",
    "TaskFailedError": "slurm.errors",
    "TransportError": "slurm.errors",
    "WorkflowError": "slurm.errors",
    # The earlier slurm-sdk's top-level names (docs/differences.md).
    "SlurmTask": "slurm._api.task",
    "BaseCallback": "slurm.callbacks.callbacks",
    "BenchmarkCallback": "slurm.callbacks.callbacks",
    "LoggerCallback": "slurm.callbacks.callbacks",
    "RichLoggerCallback": "slurm.callbacks.callbacks",
    "BackendCommandError": "slurm.errors",
    "BackendError": "slurm.errors",
    "BackendTimeout": "slurm.errors",
    "DownloadError": "slurm.errors",
    "PackagingError": "slurm.errors",
    "SlurmfileError": "slurm.errors",
}

__all__ = [  # noqa: RUF022 (decorators first, then the rest sorted)
    "task",
    "workflow",
    "ArrayJob",
    "Attempt",
    "AuthPrompt",
    "BackendCommandError",
    "BackendError",
    "BackendTimeout",
    "BaseCallback",
    "BenchmarkCallback",
    "Cluster",
    "CommandError",
    "ConfigurationError",
    "DependencyError",
    "DownloadError",
    "InvalidOptionError",
    "Job",
    "JobContext",
    "JobError",
    "JobState",
    "JobStatus",
    "JobTerminatedError",
    "JobTimeoutError",
    "LoggerCallback",
    "NotSubmittableError",
    "PackagingError",
    "ResultError",
    "Retry",
    "RichLoggerCallback",
    "SlurmError",
    "SlurmTask",
    "SlurmfileError",
    "SubmissionError",
    "Task",
    "TaskFailedError",
    "TransportError",
    "Usage",
    "UsageSummary",
    "WorkflowContext",
    "WorkflowError",
    "as_completed",
    "as_completed_async",
    "current_job_context",
    "on_requeue",
    "requeue_requested",
    "wait",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slurm' has no attribute {name!r}")
    import importlib  # here, not above: every job imports this package

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
