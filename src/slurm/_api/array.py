r"""``ArrayJob``: one Slurm array (or several, past ``MaxArraySize``) of calls.

``len()``, indexing and iteration give the per-element :class:`~slurm.Job`\ s;
waiting, results and usage are gathered over them, usage with one sacct call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from slurm._api.futures import wait
from slurm._api.job import Job, usage_of_many
from slurm._slurm.usage import UsageSummary, summarise
from slurm._wire.layout import JobPaths
from slurm._wire.payload import JobRef
from slurm._wire.queue import is_pool_call
from slurm.errors import JobTimeoutError

if TYPE_CHECKING:
    from pathlib import Path

    from slurm._client.session import Session

T = TypeVar("T")

__all__ = ["ArrayJob"]


class ArrayJob(Generic[T]):
    """One Slurm array: ``len()``, indexing and iteration give per-element jobs."""

    def __init__(
        self,
        session: Session,
        parts: Sequence[tuple[str, str]],
        jobs: Sequence[Job[T]],
        *,
        name: str,
    ) -> None:
        #: The cluster's session its elements are tracked by.
        self.session = session
        self.parts = list(parts)  # (array job id, job directory), one per Slurm array
        self.array_ids = [array_id for array_id, _ in self.parts]
        # A map larger than MaxArraySize is split over several Slurm arrays: the
        # first one's id names it; `array_ids` has them all. A map whose every item
        # was answered from the cache submitted none: no id, no directory.
        self.id = self.array_ids[0] if self.parts else ""
        self.job_dir = self.parts[0][1] if self.parts else ""
        self.name = name
        self._jobs = list(jobs)
        #: The ids of the jobs the array waited for (``.after()`` and Job items).
        self.dependencies: list[str] = sorted({d for job in self._jobs for d in job.dependencies})

    def __repr__(self) -> str:
        cached = f", {len(self.cached)} cached" if self.cached else ""
        return (
            f"<ArrayJob {self.id or '(none submitted)'} {self.name!r} x{len(self._jobs)}{cached}>"
        )

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, index: int) -> Job[T]: ...
    @overload
    def __getitem__(self, index: slice) -> list[Job[T]]: ...
    def __getitem__(self, index: int | slice) -> Job[T] | list[Job[T]]:
        return self._jobs[index]

    def __iter__(self) -> Iterator[Job[T]]:
        return iter(self._jobs)

    @property
    def jobs(self) -> list[Job[T]]:
        return list(self._jobs)

    @property
    def cached(self) -> list[int]:
        """The indices of the items answered from the cache (``cache=True``), not submitted."""
        return [i for i, job in enumerate(self._jobs) if job.cached is not None]

    def __slurm_job_items__(self) -> list[Job[T]] | None:
        """The elements one by one when some were answered from the cache (their results
        are not all in this map's results directories), else None."""
        return self.jobs if self.cached else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Only reached for a map with cached items (see __slurm_job_items__): it travels
        # as the list of its elements, each naming its own result.
        return list, (self._jobs,)

    def __slurm_job_ref__(self) -> JobRef:
        """How a payload names the array: every element's result, in item order."""
        # The runner reads every element's result, array after array, in item order.
        dirs = tuple(JobPaths(job_dir).results_dir for _, job_dir in self.parts)
        return JobRef(tuple(self.array_ids), result_dirs=dirs)

    def get_results_dir(self) -> Path:
        """The directory of the elements' result files (``results/i.pkl`` and
        ``results/i.json``), on the cluster.

        A map larger than ``MaxArraySize`` is several Slurm arrays, each with its
        own directory: this is the first one's (:attr:`results_dirs` has them all).
        """
        from pathlib import Path

        return Path(self.results_dirs[0])

    @property
    def results_dirs(self) -> list[str]:
        """The results directory of each Slurm array of this map, in item order."""
        return [JobPaths(job_dir).results_dir for _, job_dir in self.parts]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every element; True if all succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for job in self._jobs:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = job.wait(remaining) and ok
        return ok

    def done(self) -> bool:
        return all(job.done() for job in self._jobs)

    @property
    def usage(self) -> UsageSummary:
        """Min / median / max of the finished elements' usage, and which element was worst.

        One sacct call for all elements (see :attr:`Job.usage`).
        """
        return summarise(usage_of_many(self._jobs))

    def get_results(
        self,
        timeout: float | None = None,
        *,
        return_exceptions: bool = False,
        progress: bool | str = False,
    ) -> list[Any]:
        """Results in item order.

        With ``return_exceptions=True`` a failed element's exception stands in
        its place. Otherwise the first failure is raised once every element has
        finished, with a note naming all failed indices; the other results stay
        available through ``array[i].get_result()``. ``progress=True`` shows a
        progress bar while waiting.
        """
        if progress:
            wait(self._jobs, timeout, progress=progress if isinstance(progress, str) else self.name)
        else:
            self.wait(timeout)
        results: list[Any] = []
        failures: list[tuple[int, BaseException]] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        for index, job in enumerate(self._jobs):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                results.append(job.get_result(remaining))
            except JobTimeoutError:
                raise
            except Exception as exc:
                failures.append((index, exc))
                results.append(exc)
        if failures and not return_exceptions:
            first = failures[0][1]
            indices = ", ".join(str(i) for i, _ in failures)
            first.add_note(
                f"{len(failures)} of {len(self._jobs)} elements of array {self.id} failed "
                f"(indices {indices}); the others' results are in array[i].get_result()."
            )
            raise first
        return results

    def cancel(self) -> None:
        """Cancel every element (no error for those that already ended)."""
        if is_pool_call(self.id):  # in a worker pool: each element on its own
            for job in self._jobs:
                job.cancel()
            return
        if not self.array_ids:
            return
        self.session.slurm.cancel(self.array_ids)
        self.session.tracker.refresh(self._jobs)
        self.session.tracker.ending_soon()
