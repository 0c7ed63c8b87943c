"""asyncio and cluster.batch() against the real dev cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jobfuncs
import pytest

import slurm
from slurm import Cluster

_TIMEOUT = 120


def test_many_concurrent_awaits_and_as_completed_async(cluster: Cluster, tmp_path: Path) -> None:
    jobs = [jobfuncs.add(i, 1) for i in range(12)]
    # `slow` ends only once as_completed_async has given every other job: listed first,
    # it must still come last (given in list order, the loop would wait for it forever).
    gate = tmp_path / "others-were-given"
    slow = jobfuncs.after_file(str(gate), "late")

    async def main() -> tuple[list[int], list[str], str]:
        values = await asyncio.wait_for(asyncio.gather(*jobs), _TIMEOUT)
        order = []
        async for job in slurm.as_completed_async([slow, *jobs], _TIMEOUT):
            order.append(job.id)
            if len(order) == len(jobs):
                gate.touch()
        return list(values), order, await slow

    values, order, late = asyncio.run(main())
    assert values == [i + 1 for i in range(12)]
    assert order[-1] == slow.id and late == "late"
    assert sorted(order) == sorted([slow.id, *(j.id for j in jobs)])


def test_cancelled_await_leaves_the_slurm_job_running(cluster: Cluster) -> None:
    job = jobfuncs.sleep_then(3.0, "kept")

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(job.result_async(), 0.5)

    asyncio.run(give_up())
    assert job.get_result(timeout=_TIMEOUT) == "kept"


def test_batch_submits_one_array_and_each_call_keeps_its_job(cluster: Cluster) -> None:
    with cluster.batch():
        jobs = [jobfuncs.add(i, 10) for i in range(8)]
        failing = jobfuncs.fail_with("batched failure")
    assert len({job.id.split("_")[0] for job in jobs}) == 1 and "_" in jobs[0].id
    assert [job.get_result(timeout=_TIMEOUT) for job in jobs] == [i + 10 for i in range(8)]
    with pytest.raises(jobfuncs.CustomError, match="batched failure"):
        failing.get_result(timeout=_TIMEOUT)
    again = cluster.get_job(jobs[5].id)
    assert again.get_result(timeout=_TIMEOUT) == 15
    follow = jobfuncs.echo(jobs[7])
    assert follow.get_result(timeout=_TIMEOUT) == 17
