"""``slurm.workflow``: where :class:`WorkflowContext` was imported from (kept for users' code)."""

from slurm._api.workflow import WorkflowContext

__all__ = ["WorkflowContext"]
