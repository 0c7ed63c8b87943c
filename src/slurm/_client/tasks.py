"""What the client side needs of a task: the :class:`SubmittedTask` protocol.

:class:`slurm.Task` (in :mod:`slurm._api.task`) is the one implementation;
submission, packaging and the image builder read a task only through these
properties, so that they never import the API layer above them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["SubmittedTask"]


class SubmittedTask(Protocol):
    """A function with its options, as submission reads it."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> dict[str, Any]:
        """The task's own options (normalised), without the cluster's defaults."""
        ...

    @property
    def is_workflow(self) -> bool: ...

    @property
    def dependencies(self) -> tuple[tuple[str, Any], ...]:
        """``(kind, job)`` pairs from ``.after()``; each job has ``__slurm_job_ref__()``."""
        ...

    @property
    def prebuild(self) -> tuple[SubmittedTask, ...]:
        """Tasks whose container images are built before this one is submitted."""
        ...

    @property
    def unwrapped(self) -> Callable[..., Any]: ...

    @property
    def reference_module(self) -> str | None: ...

    def call_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> list[tuple[str, Any]]:
        """A call's arguments by parameter name, defaults filled in (for its cache key)."""
        ...


class CallQueue(Protocol):
    """Where calls go instead of ``sbatch`` in ``cluster.pool()`` (:mod:`slurm._client.pool`)."""

    def check(
        self,
        task: SubmittedTask,
        sbatch: Mapping[str, Any],
        sdk: Mapping[str, Any],
        dependency: str | None,
        python: str,
    ) -> None:
        """Refuse, before anything is written, a call the pool cannot run."""
        ...

    def enqueue(
        self, job_dir: str, count: int, *, array: bool, env: Mapping[str, str], python: str
    ) -> str:
        """Queue the calls prepared in ``job_dir``; their id."""
        ...
