"""asyncio: ``await job``, ``await job.result_async()``, ``as_completed_async(jobs)``.

Awaiting a job costs no thread and no poll of its own: the cluster's one
tracker calls back into the event loop (``call_soon_threadsafe``) when the
job becomes final. Cancelling an awaiting coroutine only stops the waiting;
the Slurm job runs on (cancel it with ``job.cancel()``). The blocking steps
that remain (reading a result file, resubmitting a job Slurm could not
requeue) run in the loop's default executor. The waiting itself is
:meth:`Job.wait_final_async`, the same loop as the blocking wait.

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
from typing import Any

from slurm._api.futures import ManyJobs, flatten
from slurm._api.job import Job
from slurm.errors import JobTimeoutError

__all__ = ["as_completed_async"]


async def as_completed_async(
    jobs: Iterable[Job[Any] | ManyJobs], timeout: float | None = None
) -> AsyncIterator[Job[Any]]:
    """Yield jobs as they finish (an ``ArrayJob`` counts as its elements).

    Raises:
        JobTimeoutError: ``timeout`` seconds passed before all had finished.
    """
    pending = flatten(jobs)
    waiters = {asyncio.ensure_future(job.wait_final_async()): job for job in pending}
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
