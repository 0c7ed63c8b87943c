"""slurm-sdk: turn plain Python functions into Slurm jobs."""

from __future__ import annotations

from slurm.errors import (
    ConfigurationError,
    JobError,
    JobTerminatedError,
    JobTimeoutError,
    SlurmError,
    TaskFailedError,
)

__all__ = [
    "ConfigurationError",
    "JobError",
    "JobTerminatedError",
    "JobTimeoutError",
    "SlurmError",
    "TaskFailedError",
]
