"""Which cluster a task call submits to: the innermost ``with cluster:`` block,
else the cluster of the workflow this process runs."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slurm._api.cluster import Cluster

_active: ContextVar[Cluster | None] = ContextVar("slurm_active_cluster", default=None)
_process_default: Cluster | None = None


def active_cluster() -> Cluster | None:
    """The cluster a task called now would be submitted to, if any."""
    return _active.get() or _process_default


def push(cluster: Cluster) -> object:
    return _active.set(cluster)


def pop(token: object) -> None:
    _active.reset(token)  # type: ignore[arg-type]


def set_process_default(cluster: Cluster | None) -> None:
    """Used by the runner: every thread of a workflow's process submits here."""
    global _process_default
    _process_default = cluster
