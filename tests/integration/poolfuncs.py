"""Tasks of the worker-pool tests (importable on the compute node, as jobfuncs)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from slurm import WorkflowContext, task, workflow


class PoolError(Exception):
    """Raised by a pooled call; comes home as this type."""


@task(time="00:02:00", mem="64M")
def shout(x: int) -> int:
    print(f"stdout of call {x}")
    print(f"stderr of call {x}", file=sys.stderr)
    return x * x


@task(time="00:02:00", mem="64M")
def total(values: list[int]) -> int:
    return sum(values)


@task(time="00:02:00", mem="64M")
def fail(x: int) -> None:
    raise PoolError(f"call {x} failed")


@task(time="00:02:00", mem="64M")
def hold(log: str, go: str) -> str:
    """Note which worker runs it, wait until the test says go, note the end."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(
            f"start {os.environ.get('SLURM_ARRAY_JOB_ID')}_"
            f"{os.environ.get('SLURM_ARRAY_TASK_ID')}\n"
        )
    deadline = time.monotonic() + 100
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("end\n")
    return "held"


@workflow(time="00:05:00", mem="256M")
def pooled_children(n: int, ctx: WorkflowContext) -> dict[str, Any]:
    """A workflow whose children run in a pool of two workers."""
    with ctx.cluster.pool(workers=2, idle_timeout=5, time="00:03:00", mem="128M") as pool:
        jobs = [shout(i) for i in range(n)]
    return {
        "results": [job.get_result() for job in jobs],
        "ids": [job.id for job in jobs],
        "workers": pool.worker_ids,
    }
