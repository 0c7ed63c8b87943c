"""The functions the benchmark's jobs run; importable on the node (the job's cwd is the repo).

A job imports this module to unpickle its call, and the job's start is measured from
one (``measure_floor``): it imports what a small user module would, ``from slurm import
task`` and nothing more (not :mod:`typing`, ~5 ms of a start here).
"""

from __future__ import annotations

from slurm import task


def echo(x: int) -> int:
    return x


def inc(x: int) -> int:
    return x + 1


def inc_submitit_result(path: str) -> int:
    """submitit has no data dependencies: read the previous job's result pickle ourselves."""
    import pickle

    with open(path, "rb") as f:
        outcome, value = pickle.load(f)
    assert outcome == "success", outcome
    return int(value) + 1


def nap(x: int) -> int:
    """W5's call: 10 ms of sleep."""
    import time

    time.sleep(0.01)
    return x


sdk_echo = task(echo)
sdk_nap = task(nap)
sdk_inc = task(inc)
