"""The functions the benchmark's jobs run; importable on the node (the job's cwd is the repo)."""

from __future__ import annotations

import pickle
from typing import Any

from slurm import task


def echo(x: int) -> int:
    return x


def inc(x: int) -> int:
    return x + 1


def inc_submitit_result(path: str) -> int:
    """submitit has no data dependencies: read the previous job's result pickle ourselves."""
    with open(path, "rb") as f:
        outcome, value = pickle.load(f)
    assert outcome == "success", outcome
    return int(value) + 1


def nap(x: int) -> int:
    """W5's call: 10 ms of sleep."""
    import time

    time.sleep(0.01)
    return x


sdk_echo: Any = task(echo)
sdk_nap: Any = task(nap)
sdk_inc: Any = task(inc)
