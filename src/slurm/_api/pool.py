"""``with cluster.pool(workers=N, **sbatch) as pool:``: task calls inside go to N worker jobs.

The block's handle (:class:`WorkerPool`) puts the session's calls into a pool's
queue (:mod:`slurm._client.pool`) instead of one ``sbatch`` each, gathers the
``Job`` of every call made inside it (from the session's event stream) and, when
the block ends, waits for them and lets the workers go. Each call keeps its
own ``Job``: result, exception with its traceback, stdout and stderr, usage
(the runner's own figures), the workers that lost it (``attempts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from slurm._api.task import enter_cluster, leave_cluster
from slurm._client.events import Submitted
from slurm._client.pool import Pool, check_pool
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from slurm._api.job import Job
    from slurm._api.task import Submitter
    from slurm._client.session import Session

    class _Host(Submitter, Protocol):
        """The cluster a pool belongs to (a :class:`~slurm.Cluster`)."""

        session: Session


__all__ = ["WorkerPool"]


class WorkerPool:
    """An open worker pool: the calls made in its block run in its workers.

    Attributes:
        worker_ids: the Slurm ids of the worker jobs started so far.
        jobs: the ``Job`` of every call made in the block, in order.
        pool_dir: the pool's directory (its queue and its workers' logs).
    """

    def __init__(
        self,
        cluster: _Host,
        workers: Any,
        *,
        min_workers: Any = 0,
        idle_timeout: Any = 60.0,
        lease: Any = 30.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._cluster = cluster
        self._spec = check_pool(
            workers,
            min_workers=min_workers,
            idle_timeout=idle_timeout,
            lease=lease,
            options=options,
        )
        self._pool: Pool | None = None
        self.jobs: list[Job[Any]] = []
        self._stop_listening: Any = None
        self._token: Token[Submitter | None] | None = None

    @property
    def worker_ids(self) -> list[str]:
        return list(self._pool.worker_ids) if self._pool is not None else []

    @property
    def pool_dir(self) -> str | None:
        return self._pool.pool_dir if self._pool is not None else None

    @property
    def commands(self) -> int:
        """How many Slurm commands the pool itself ran (sbatch, squeue, scancel)."""
        return self._pool.commands if self._pool is not None else 0

    def __enter__(self) -> WorkerPool:
        session = self._cluster.session
        if session.pool is not None:
            raise ConfigurationError("cluster.pool() blocks do not nest; end the first one.")
        pool = Pool(session, self._spec)
        pool.open()
        self._pool = pool
        prefix = f"pool-{pool.token}-"

        def heard(event: object) -> None:
            if isinstance(event, Submitted) and event.job_id.startswith(prefix):
                found = getattr(event.job, "jobs", None)
                self.jobs.extend(found if isinstance(found, list) else [event.job])

        self._stop_listening = session.events.listen(heard)
        session.pool = pool
        self._token = enter_cluster(self._cluster)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._cluster.session
        session.pool = None
        if self._token is not None:
            leave_cluster(self._token)
        try:
            if exc_type is None:  # leaving the block waits for its calls
                for job in self.jobs:
                    job.wait_final()
        finally:
            if self._stop_listening is not None:
                self._stop_listening()
            if self._pool is not None:
                self._pool.close()

    def __repr__(self) -> str:
        return f"<WorkerPool {self.pool_dir} workers={self.worker_ids} calls={len(self.jobs)}>"
