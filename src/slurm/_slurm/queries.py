"""Batched questions to Slurm about many jobs: one ``squeue``, then one ``sacct``.

Shared by the tracker and the ``slurm jobs`` command. Array elements are asked
for by their array's id: ``--jobs=A`` lists every element of array A, and a
single id is the controller's cheap request (a multi-id request dumps the job
table). Callers get every row Slurm returned and keep the ones they want.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slurm._slurm.commands import (
    JobInfo,
    JobState,
    chunked,
    parse_sacct,
    parse_squeue,
    sacct_argv,
    says_never_requeued,
    scontrol_show_job_argv,
    squeue_argv,
    squeue_says_invalid_id,
)
from slurm._slurm.usage import Usage, parse_usage_sacct, usage_sacct_argv
from slurm._transport.base import CommandResult
from slurm.errors import CommandError, SlurmError

__all__ = ["query_ids", "query_never_requeued", "query_sacct", "query_squeue", "query_usage"]

Run = Callable[[list[str]], CommandResult]
CHUNK = 500


def query_ids(job_ids: Sequence[str]) -> list[str]:
    """The ids to ask Slurm for: an array's id stands for all its elements."""
    return list(dict.fromkeys(job_id.split("_", 1)[0] for job_id in job_ids))


def query_squeue(run: Run, job_ids: Sequence[str]) -> dict[str, JobInfo]:
    """What squeue knows of these jobs (unknown ids are simply absent).

    Raises:
        CommandError: squeue failed for another reason than unknown ids.
    """
    infos: dict[str, JobInfo] = {}
    for chunk in chunked(query_ids(job_ids), CHUNK):
        result = run(squeue_argv(chunk))
        if result.returncode != 0 and not squeue_says_invalid_id(result.stderr):
            raise CommandError(
                "squeue failed",
                argv=result.argv,
                returncode=result.returncode,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        infos.update(parse_squeue(result.stdout))
    return infos


def query_never_requeued(run: Run, infos: dict[str, JobInfo]) -> frozenset[str]:
    """Of the jobs squeue lists as PREEMPTED, those Slurm will not requeue (``Requeue=0``).

    squeue lists a preempted job until ``MinJobAge`` has passed and the controller
    purges it, a minute or more; a requeueable one shows PREEMPTED only briefly.
    One ``scontrol`` per such job, so they are over as soon as they are preempted.
    """
    never: set[str] = set()
    for job_id, info in infos.items():
        if info.state is not JobState.PREEMPTED:
            continue
        try:
            result = run(scontrol_show_job_argv(job_id))
        except SlurmError:
            continue  # unknown: wait for squeue to forget it, as before
        if result.returncode == 0 and says_never_requeued(result.stdout):
            never.add(job_id)
    return frozenset(never)


def query_sacct(
    run: Run, job_ids: Sequence[str], since: str | None = None
) -> dict[str, JobInfo] | None:
    """What accounting knows of these jobs; ``None`` when sacct is not usable here.

    ``since`` (``YYYY-MM-DDTHH:MM:SS``) leaves out older jobs that reused an id;
    a cluster whose clock is behind ours rejects it, so it is dropped on error.
    """
    infos: dict[str, JobInfo] = {}
    for chunk in chunked(query_ids(job_ids), CHUNK):
        try:
            result = run(sacct_argv(chunk, since=since))
            if result.returncode != 0 and since is not None:
                since = None
                result = run(sacct_argv(chunk))
        except SlurmError:
            return infos or None
        if result.returncode != 0:
            return None
        infos.update(parse_sacct(result.stdout))
    return infos


def query_usage(run: Run, job_ids: Sequence[str]) -> dict[str, Usage] | None:
    """What accounting recorded of these jobs' usage; ``None`` when sacct is not usable here."""
    found: dict[str, Usage] = {}
    for chunk in chunked(query_ids(job_ids), CHUNK):
        try:
            result = run(usage_sacct_argv(chunk))
        except SlurmError:
            return found or None
        if result.returncode != 0:
            return None
        found.update(parse_usage_sacct(result.stdout))
    return found
