"""Waiting on many jobs at once: ``as_completed`` and ``wait``, with an optional progress bar.

Both lean on each cluster's single tracker, so watching a thousand jobs costs
the same controller calls as watching one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal, Protocol

from slurm._api.job import Job
from slurm.errors import JobTimeoutError

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ManyJobs",
    "as_completed",
    "flatten",
    "wait",
]

ALL_COMPLETED: Final = "ALL_COMPLETED"
FIRST_COMPLETED: Final = "FIRST_COMPLETED"
FIRST_EXCEPTION: Final = "FIRST_EXCEPTION"
_SLICE = 0.25  # seconds one tracker is waited on when jobs span several clusters


class ManyJobs(Protocol):
    """Several jobs waited for as their elements: an :class:`~slurm.ArrayJob`."""

    @property
    def jobs(self) -> list[Job[Any]]: ...


def flatten(jobs: Iterable[Job[Any] | ManyJobs]) -> list[Job[Any]]:
    """Every job, an array's elements in its place."""
    flat: list[Job[Any]] = []
    for job in jobs:
        flat.extend([job] if isinstance(job, Job) else job.jobs)
    return flat


def as_completed(
    jobs: Iterable[Job[Any] | ManyJobs],
    timeout: float | None = None,
    *,
    progress: bool | str = False,
) -> Iterator[Job[Any]]:
    """Yield jobs as they finish (successfully or not), like ``concurrent.futures``.

    ``progress=True`` (or a description) shows a rich progress bar on stderr.
    An ``ArrayJob`` counts as its elements. Raises ``JobTimeoutError`` when
    ``timeout`` seconds pass before all have finished.
    """
    pending = flatten(jobs)
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = _Progress(len(pending), progress) if progress else None
    try:
        while pending:
            first = pending[0]
            trackers = {id(job.session.tracker) for job in pending}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if len(trackers) == 1:
                first.session.tracker.wait_any(pending, remaining)
            else:
                time.sleep(_SLICE if remaining is None else min(_SLICE, remaining))
            ready = [job for job in pending if job.session.tracker.is_final(job)]
            for job in ready:
                if job.wait_final(0):  # False: it was resubmitted and runs again
                    pending.remove(job)
                    if bar is not None:
                        bar.advance(job)
                    yield job
            if deadline is not None and time.monotonic() >= deadline and pending:
                raise JobTimeoutError(
                    f"{len(pending)} job(s) still running after {timeout} s "
                    f"(first: {pending[0].id})",
                    job_id=pending[0].id,
                )
    finally:
        if bar is not None:
            bar.close()


def wait(
    jobs: Iterable[Job[Any] | ManyJobs],
    timeout: float | None = None,
    return_when: Literal["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"] = ALL_COMPLETED,
    *,
    progress: bool | str = False,
) -> tuple[list[Job[Any]], list[Job[Any]]]:
    """Wait for jobs; return ``(done, not_done)``, like ``concurrent.futures.wait``."""
    all_jobs = flatten(jobs)
    done: list[Job[Any]] = []
    try:
        for job in as_completed(all_jobs, timeout, progress=progress):
            done.append(job)
            if return_when == FIRST_COMPLETED or (
                return_when == FIRST_EXCEPTION and not job.is_successful()
            ):
                break
    except JobTimeoutError:
        pass
    ids = {id(job) for job in done}
    return done, [job for job in all_jobs if id(job) not in ids]


class _Progress:
    """A rich progress bar: finished / total, with failures counted apart."""

    def __init__(self, total: int, label: bool | str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        description = label if isinstance(label, str) else "jobs"
        self._task = self._progress.add_task(description, total=total, failed="")
        self._failed = 0
        self._progress.start()

    def advance(self, job: Job[Any]) -> None:
        if not job.is_successful():
            self._failed += 1
        failed = f"[red]{self._failed} failed" if self._failed else ""
        self._progress.update(self._task, advance=1, failed=failed)

    def close(self) -> None:
        self._progress.stop()
