"""``WorkflowContext``: what a running workflow gets to orchestrate its tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # pathlib too: every job imports this module, few need pathlib
    from pathlib import Path

    from slurm._api.cluster import Cluster

__all__ = ["WorkflowContext"]


@dataclass(frozen=True)
class WorkflowContext:
    """Injected into a workflow's parameter annotated ``WorkflowContext`` (or named ``ctx``).

    Attributes:
        cluster: the cluster tasks are submitted to (from the workflow's node).
        workflow_job_id: the Slurm job id of the workflow itself.
        workflow_job_dir: the workflow job's directory; children live under it.
        shared_dir: a directory for artifacts shared by the workflow's tasks.
    """

    #: A parameter annotated with this type is filled in by the runner (see slurm._job.inject).
    __slurm_inject__: ClassVar[str] = "workflow"

    cluster: Cluster
    workflow_job_id: str
    workflow_job_dir: Path
    shared_dir: Path
