"""``slurm.task``: where :class:`Task` was imported from (kept for users' code)."""

from slurm._api.task import Task

__all__ = ["Task"]
