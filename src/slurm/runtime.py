"""``slurm.runtime``: what a running job knows about itself (kept for users' code).

See :mod:`slurm._job.context`.
"""

from slurm._job.context import (
    JobContext,
    current_job_context,
    expand_hostlist,
    on_requeue,
    requeue_requested,
)

__all__ = [
    "JobContext",
    "current_job_context",
    "expand_hostlist",
    "on_requeue",
    "requeue_requested",
]
