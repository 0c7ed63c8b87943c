"""asyncio: ``await job``, ``await job.result_async()``, ``as_completed_async(jobs)``.

Awaiting a job costs no thread and no poll of its own: the cluster's one
tracker calls back into the event loop (``call_soon_threadsafe``) when the
job becomes final. Cancelling an awaiting coroutine only stops the waiting;
the Slurm job runs on (cancel it with ``job.cancel()``). The blocking steps
that remain (reading a result file, resubmitting a job Slurm could not
requeue) run in the loop's default executor.

Example::

    async def main() -> None:
        with Cluster(backend_type="local") as cluster:
            jobs = [simulate(seed) for seed in range(10)]
            async for job in slurm.as_completed_async(jobs):
                print(job.id, await job)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from slurm.errors import JobTimeoutError

if TYPE_CHECKING:
    from slurm._api.job import ArrayJob, Job

T = TypeVar("T")

__all__ = ["as_completed_async", "result_async", "wait_final_async"]


async def _final_once(job: Job[Any]) -> None:
    """Until the tracker says ``job`` is final (one callback, no polling)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(settle)

    forget = job.cluster.tracker.when_final(job, wake)
    try:
        await done
    finally:
        forget()


async def wait_final_async(job: Job[Any], timeout: float | None = None) -> bool:
    """Wait until ``job`` is final, resubmitting it when Slurm could not requeue it
    or its Retry covers how it ended.

    Returns False when ``timeout`` seconds passed first.
    """
    job._check_submitted()
    deadline = None if timeout is None else time.monotonic() + timeout
    loop = asyncio.get_running_loop()
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(_final_once(job), remaining)
        except TimeoutError:
            return False
        if not await loop.run_in_executor(None, job._resubmit_if_needed):
            return True


async def result_async(job: Job[T], timeout: float | None = None) -> T:
    """What ``job.get_result(timeout)`` returns or raises, without blocking the loop."""
    if not await wait_final_async(job, timeout):
        raise JobTimeoutError(
            f"Job {job.id} ({job.name}) did not finish within {timeout} s. Await it again "
            "to keep waiting.",
            job_id=job.id,
        )
    loop = asyncio.get_running_loop()
    value: T = await loop.run_in_executor(None, job.get_result, 0)
    return value


async def as_completed_async(
    jobs: Iterable[Job[Any] | ArrayJob[Any]], timeout: float | None = None
) -> AsyncIterator[Job[Any]]:
    """Yield jobs as they finish (an ``ArrayJob`` counts as its elements).

    Raises:
        JobTimeoutError: ``timeout`` seconds passed before all had finished.
    """
    from slurm._api.futures import _flatten

    pending = _flatten(jobs)
    waiters = {asyncio.ensure_future(wait_final_async(job)): job for job in pending}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while waiters:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = await asyncio.wait(
                waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                first = next(iter(waiters.values()))
                raise JobTimeoutError(
                    f"{len(waiters)} job(s) still running after {timeout} s (first: {first.id})",
                    job_id=first.id,
                )
            for waiter in done:
                waiter.result()
                yield waiters.pop(waiter)
    finally:
        for waiter in waiters:
            waiter.cancel()
