"""slurm-sdk: turn plain Python functions into Slurm jobs.

The light parts (decorators, contexts, errors) are imported here; the rest
(``Cluster``, ``Job``...) lazily, so that the job-side runner starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slurm.aio import as_completed_async
    from slurm.cluster import Cluster
    from slurm.errors import (
        CommandError,
        ConfigurationError,
        DependencyError,
        InvalidOptionError,
        JobError,
        JobTerminatedError,
        JobTimeoutError,
        NotSubmittableError,
        ResultError,
        SlurmError,
        SubmissionError,
        TaskFailedError,
        TransportError,
        WorkflowError,
    )
    from slurm.futures import as_completed, wait
    from slurm.job import ArrayJob, Job
    from slurm.retry import Attempt, Retry
    from slurm.runtime import JobContext, current_job_context
    from slurm.slurmcmd import JobState
    from slurm.task import Task
    from slurm.transport.sshauth import AuthPrompt
    from slurm.usage import Usage, UsageSummary
    from slurm.workflow import WorkflowContext

# Submodules named like the decorators: import them first, then bind the
# decorators, so `from slurm import task, workflow` always gives the decorators
# while `slurm.workflow.WorkflowContext` keeps working.
import slurm.task
import slurm.workflow  # noqa: F401
from slurm.decorators import task, workflow

_EXPORTS = {
    "Cluster": "slurm.cluster",
    "AuthPrompt": "slurm.transport.sshauth",
    "Task": "slurm.task",
    "as_completed": "slurm.futures",
    "as_completed_async": "slurm.aio",
    "wait": "slurm.futures",
    "Job": "slurm.job",
    "ArrayJob": "slurm.job",
    "Attempt": "slurm.retry",
    "Retry": "slurm.retry",
    "Usage": "slurm.usage",
    "UsageSummary": "slurm.usage",
    "JobState": "slurm.slurmcmd",
    "JobContext": "slurm.runtime",
    "current_job_context": "slurm.runtime",
    "WorkflowContext": "slurm.workflow",
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
}

__all__ = [  # noqa: RUF022 (decorators first, then the rest sorted)
    "task",
    "workflow",
    "ArrayJob",
    "Attempt",
    "AuthPrompt",
    "Cluster",
    "CommandError",
    "ConfigurationError",
    "DependencyError",
    "InvalidOptionError",
    "Job",
    "JobContext",
    "JobError",
    "JobState",
    "JobTerminatedError",
    "JobTimeoutError",
    "NotSubmittableError",
    "ResultError",
    "Retry",
    "SlurmError",
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
    "wait",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slurm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
