"""``squeue --only-job-state`` (Slurm 24.05 and later): job states alone, cheaply.

A plain ``squeue`` makes the controller gather every field of every job it
lists; ``--only-job-state`` asks it for the job ids and states only (its own
lighter request) and prints nothing else: with ``--format`` a ``%N`` comes
out empty and a ``%r`` as ``None``, whatever the job waits for. So it answers
"is each job still pending, running or over?" and not "why does it wait?" or
"where does it run?". The tracker (:mod:`slurm._client.tracker`) asks it
while every job it watches was last seen running: a state that did not change
needs nothing more; any other answer sends the usual ``squeue`` for the details.

Facts seen on 24.11 and 26.05 (golden outputs in ``tests/unit/golden/real-R``):
``--noheader``, ``--array``, ``--states=all`` and ``--format=%i|%T`` are
honoured; an unknown id is left out with exit status 0 (a plain ``squeue``
fails with "Invalid job id specified" when every id is unknown).

Pure: :func:`squeue_states_argv`, :func:`parse_squeue_states`, :func:`knows_only_job_state`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from slurm._slurm.commands import JobState, expand_array_ids

__all__ = ["knows_only_job_state", "parse_squeue_states", "squeue_states_argv"]

#: The first release with ``squeue --only-job-state``.
FIRST_RELEASE = (24, 5)


def knows_only_job_state(version: str) -> bool:
    """Whether a Slurm of this version (``"24.11.5"``, ``"slurm 26.05.0"``,
    ``"slurm-wlm 22.05.8"``) has ``squeue --only-job-state``; False when unreadable."""
    match = re.search(r"(\d+)\.(\d+)", version)
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= FIRST_RELEASE


def squeue_states_argv(job_ids: Sequence[str]) -> list[str]:
    """One light squeue for many jobs: one ``ID|STATE`` line per array element, ended ones
    included (while the controller still holds them)."""
    return [
        "squeue",
        "--only-job-state",
        "--noheader",
        "--array",
        "--states=all",
        f"--jobs={','.join(job_ids)}",
        "--format=%i|%T",
    ]


def parse_squeue_states(stdout: str) -> dict[str, JobState]:
    """Parse :func:`squeue_states_argv`'s output into ``{job id: state}`` (a compressed
    array range, printed without ``--array``, is expanded)."""
    states: dict[str, JobState] = {}
    for line in stdout.splitlines():
        id_text, sep, state_text = line.strip().partition("|")
        if not sep or not id_text:
            continue
        state = JobState.parse(state_text)
        for job_id in expand_array_ids(id_text):
            states[job_id] = state
    return states
