"""``@task`` and ``@workflow``: turn a function into a :class:`~slurm._api.task.Task`."""

from __future__ import annotations

from slurm._api.task import Task
from slurm._slurm.options import normalize_options
from slurm._types import TYPE_CHECKING, overload

if TYPE_CHECKING:  # every job imports this module (the user's `from slurm import task`)
    from collections.abc import Callable
    from typing import Any, ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")


__all__ = ["task", "workflow"]


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(fn: None = None, /, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(
    fn: Callable[P, R] | None = None, /, **options: Any
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make ``fn`` a task: one Slurm job per call.

    Keyword options are sbatch long options with ``_`` for ``-`` (``time``,
    ``mem``, ``cpus_per_task``, ``partition``, ``gres``...). A misspelt name
    raises :class:`~slurm.errors.InvalidOptionError` naming the closest ones.

    ``cache=True`` keeps each call's result across runs: a later call with the
    same code, arguments and packaging gets it back without a job
    (``job.cached`` says so); ``cache_key=`` (a function of the arguments) and
    ``cache_on=`` (option names) refine the key. See ``docs/caching.md``.

    Example::

        @task(time="00:05:00", mem="1G")
        def add(a: int, b: int) -> int:
            return a + b

        with Cluster(backend_type="local"):
            assert add(1, 2).get_result() == 3
    """
    if fn is not None:
        return Task(fn, options)
    checked = normalize_options(options)  # a typo fails here, at decoration
    return lambda function: Task(function, checked)


@overload
def workflow(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def workflow(fn: None = None, /, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def workflow(
    fn: Callable[P, R] | None = None, /, **options: Any
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make ``fn`` a workflow: it runs as its own Slurm job and submits tasks.

    A parameter annotated :class:`~slurm._api.workflow.WorkflowContext` (or named
    ``ctx``) receives the context: the cluster to submit to, the workflow's job
    id and directory, and ``shared_dir`` for artifacts.
    """
    if fn is not None:
        return Task(fn, options, workflow=True)
    checked = normalize_options(options)
    return lambda function: Task(function, checked, workflow=True)
