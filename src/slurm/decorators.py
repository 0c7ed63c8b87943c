"""``slurm.decorators``: where ``@task`` and ``@workflow`` were imported from (kept for users'
code)."""

from slurm._api.decorators import task, workflow

__all__ = ["task", "workflow"]
