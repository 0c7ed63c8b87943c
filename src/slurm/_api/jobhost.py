"""The API layer's side of a running workflow: its cluster and its ``WorkflowContext``.

:mod:`slurm.runner` hands this host to the job side
(:class:`~slurm._job.call.WorkflowHost`), which calls it only for a workflow.
"""

from __future__ import annotations

from pathlib import Path

from slurm._api.cluster import Cluster
from slurm._api.task import set_process_default
from slurm._api.workflow import WorkflowContext
from slurm._wire.payload import WorkflowSpec

__all__ = ["ClusterHost"]


class ClusterHost:
    """Makes the cluster a workflow submits its tasks to, on its own node."""

    def open(
        self, spec: WorkflowSpec, job_dir: Path, job_id: str
    ) -> tuple[Cluster, WorkflowContext]:
        cluster = Cluster.for_workflow(spec, job_dir=str(job_dir))
        set_process_default(cluster)  # every thread of the workflow's process submits here
        shared = job_dir / "shared"
        shared.mkdir(mode=0o700, parents=True, exist_ok=True)
        context = WorkflowContext(
            cluster=cluster, workflow_job_id=job_id, workflow_job_dir=job_dir, shared_dir=shared
        )
        return cluster, context
