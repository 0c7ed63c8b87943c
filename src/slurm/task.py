"""``slurm.task``: where :class:`Task` was imported from (kept for users' code)."""

from slurm._api.task import SlurmTask, Task

__all__ = ["SlurmTask", "Task"]
