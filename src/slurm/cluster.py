"""``slurm.cluster``: where :class:`Cluster` was imported from (kept for users' code)."""

from slurm._api.cluster import Cluster
from slurm._client.store import DEFAULT_JOB_BASE_DIR

__all__ = ["DEFAULT_JOB_BASE_DIR", "Cluster"]
