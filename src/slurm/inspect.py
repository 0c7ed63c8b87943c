"""The inspection API: what the ``slurm`` command, the MCP server and tools read.

Everything here looks at the SDK's jobs under a cluster's job base directory
without unpickling anything (outcomes are JSON) and with batched controller
calls (one ``squeue``, then one ``sacct`` for the jobs squeue has forgotten),
never one query per job. It is public and documented; the command line uses
nothing else of the SDK but the names :mod:`slurm` exports. Beside the
looks, it gives tools the pure readers the SDK itself uses: the job-directory
layout (:class:`JobPaths`), the run log (:func:`parse_run_log`), the records
of sacct and scontrol, attempts and outcomes.

Example::

    from slurm import Cluster
    from slurm import inspect

    with Cluster.from_env() as cluster:
        ids = inspect.job_ids(cluster)[:10]
        snapshot = inspect.look(cluster, ids)
        for job_id in ids:
            print(job_id, snapshot.infos.get(job_id))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slurm._api.cluster import Cluster
from slurm._api.job import Job, gather_usage
from slurm._api.why import Why, why_of_id
from slurm._client.cache import CachedCall, ResultCache
from slurm._client.config import environment_names, find_slurmfile, load_environment
from slurm._client.doctor import DoctorReport, render_text
from slurm._client.doctor import diagnose as _diagnose
from slurm._client.packaging.imagecache import ImageCache, tag_reference
from slurm._client.packaging.pins import Pin
from slurm._client.packaging.sif import CachedImage
from slurm._client.settings import choose_backend, click_options, settings_from_namespace
from slurm._client.store import is_job_id, parse_job_dir
from slurm._slurm.commands import (
    JobInfo,
    JobState,
    chunked,
    expand_array_ids,
    parse_exit_code,
    scontrol_show_job_argv,
)
from slurm._slurm.container import container_name, script_container
from slurm._slurm.queries import query_ids
from slurm._slurm.reasons import (
    Explanation,
    NodeSize,
    PendingFacts,
    error_lines,
    explain_failure,
    explain_pending,
    format_bytes,
    format_seconds,
    parse_dependency,
    parse_scontrol_records,
    request_mb,
)
from slurm._slurm.retry import ended_state, read_attempts
from slurm._slurm.usage import (
    USAGE_SACCT_FIELDS,
    Usage,
    UsageSummary,
    parse_usage_sacct,
    runner_usage,
    summarise,
)
from slurm._terminal import printable
from slurm._transport.base import check_result
from slurm._transport.forward import PortForward
from slurm._wire.cache import CacheEntry
from slurm._wire.layout import JobPaths, job_comment
from slurm._wire.payload import Outcome
from slurm._wire.record import replace
from slurm._wire.runlog import RunEvent, parse_run_log
from slurm.errors import ConfigurationError, SlurmError

__all__ = [
    "USAGE_SACCT_FIELDS",
    "CacheEntry",
    "CachedCall",
    "CachedImage",
    "DoctorReport",
    "Explanation",
    "ImageCache",
    "JobInfo",
    "JobPaths",
    "NodeSize",
    "Outcome",
    "PendingFacts",
    "Pin",
    "PortForward",
    "ResultCache",
    "RunEvent",
    "Snapshot",
    "Why",
    "array_indices",
    "cancel_jobs",
    "choose_backend",
    "chunked",
    "click_options",
    "container_name",
    "doctor_report",
    "ended_state",
    "entries",
    "environment_names",
    "error_lines",
    "expand_array_ids",
    "explain_failure",
    "explain_pending",
    "find_slurmfile",
    "format_bytes",
    "format_seconds",
    "image_cache",
    "is_job_id",
    "job_ids",
    "job_outcome",
    "job_usages",
    "load_environment",
    "look",
    "parse_dependency",
    "parse_exit_code",
    "parse_job_dir",
    "parse_run_log",
    "parse_scontrol_records",
    "parse_usage_sacct",
    "printable",
    "query_ids",
    "read_attempts",
    "read_outcome",
    "render_text",
    "request_mb",
    "runner_usage",
    "scontrol_show_job_argv",
    "script_container",
    "settings_from_namespace",
    "tag_reference",
    "usage_of",
    "why_of_id",
]


@dataclass(frozen=True)
class Snapshot:
    """One batched look at Slurm: what squeue and sacct said, and which ids squeue listed."""

    infos: Mapping[str, JobInfo] = field(default_factory=dict)
    queued: frozenset[str] = frozenset()
    #: Job ids with a result (the runner wrote one), for jobs Slurm forgot.
    markers: frozenset[str] = frozenset()
    #: Whether sacct answered: ``False`` when it was asked and failed (slurmdbd down),
    #: ``None`` when it was not asked (squeue knew every job).
    accounting: bool | None = None


def job_ids(cluster: Cluster) -> list[str]:
    """The SDK's jobs under the cluster's job base directory, newest first (the index)."""
    return cluster.store.job_ids()


def entries(
    cluster: Cluster, ids: Sequence[str]
) -> tuple[list[tuple[str, str]], list[ConfigurationError]]:
    """(id, job directory) of each job, and the refusals of the index entries left out
    (an entry another user could have written, a directory that is not the SDK's)."""
    found, refused = [], []
    for job_id in ids:
        try:
            found.append((job_id, cluster.store.job_dir_of(job_id)))
        except ConfigurationError as exc:
            refused.append(exc)
    return found, refused


def look(cluster: Cluster, ids: Sequence[str], *, exit_codes: bool = False) -> Snapshot:
    """One batched look at ``ids``: squeue, then sacct for the ones squeue has forgotten.

    With ``exit_codes``, sacct is asked about ended jobs squeue still lists too
    (squeue has no exit codes). For jobs neither knows, the result file says
    whether they finished.

    Raises:
        CommandError: squeue failed for another reason than unknown ids.
    """
    answer = cluster.slurm.look(ids, exit_codes=exit_codes)
    infos = dict(answer.infos)
    # A job whose result file exists has finished as far as the SDK is concerned,
    # even while squeue still shows it RUNNING/COMPLETING for a moment.
    # Array elements too: an array's id stands for all of them.
    for job_id in [j for j, info in infos.items() if info.state.is_active]:
        outcome = _result_outcome(cluster, job_id)
        if outcome is not None:
            state = JobState.COMPLETED if outcome else JobState.FAILED
            infos[job_id] = replace(infos[job_id], state=state)
    with_result = frozenset(
        j for j in ids if not answer.knows(j) and _result_outcome(cluster, j) is not None
    )
    return Snapshot(infos, answer.queued, with_result, answer.accounting)


def _result_outcome(cluster: Cluster, job_id: str) -> bool | None:
    """True/False when the job left a result (success or not), None when it has none."""
    _, _, index = job_id.partition("_")
    try:
        paths = JobPaths(cluster.store.job_dir_of(job_id), int(index) if index else None)
        return Outcome.from_json(cluster.transport.read_text(paths.outcome)).ok
    except (FileNotFoundError, SlurmError):
        return None


def read_outcome(cluster: Cluster, job: Job[Any]) -> Outcome | None:
    """The job's outcome record (JSON: nothing is unpickled to show a job), or None
    while it has none.

    Raises:
        ResultError: the outcome file is unreadable or of another SDK version.
    """
    try:
        text = cluster.transport.read_text(job.outcome_path)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return Outcome.from_json(text, job_id=job.id)


def job_outcome(cluster: Cluster, job: Job[Any]) -> tuple[str, str] | None:
    """``("ok", repr of the value)``, ``("error", "Type: message")``, or None without a result."""
    try:
        outcome = read_outcome(cluster, job)
    except SlurmError as exc:
        return "error", str(exc)
    if outcome is None:
        return None
    if not outcome.ok:
        return "error", f"{outcome.type_name}: {outcome.message}"
    return "ok", outcome.summary


def job_usages(cluster: Cluster, ids: Sequence[str]) -> dict[str, Usage | UsageSummary]:
    """What each job used (one sacct call); an array's id gets its elements' summary."""
    jobs = [cluster.get_job(job_id, track=False) for job_id in ids]
    found: dict[str, Usage | UsageSummary] = dict(gather_usage(cluster.session, jobs))
    for job in jobs:  # an earlier attempt of a retried call: what was recorded of it
        for attempt in job.earlier_attempts:
            if attempt.usage is not None:
                found.setdefault(attempt.job_id, attempt.usage)
    for job_id in ids:
        if job_id in found:
            continue
        indices = array_indices(cluster, job_id)
        elements = [cluster.get_job(f"{job_id}_{i}", track=False) for i in indices]
        measured = gather_usage(cluster.session, elements)
        by_index = {j.array_index: measured[j.id] for j in elements if j.id in measured}
        if by_index:
            found[job_id] = summarise({i: u for i, u in by_index.items() if i is not None})
    return found


def usage_of(cluster: Cluster, job: Job[Any]) -> Usage | None:
    """What one job used (sacct, else the runner's own figures), asked now."""
    return gather_usage(cluster.session, [job]).get(job.id)


def array_indices(cluster: Cluster, job_id: str) -> list[int]:
    """An array's element indices, from its results directory (none for a single job)."""
    paths = JobPaths(cluster.store.job_dir_of(job_id))
    try:
        names = cluster.transport.list_dir(paths.results_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted({int(n.split(".")[0]) for n in names if n.split(".")[0].isdigit()})


def cancel_jobs(cluster: Cluster, ids: Sequence[str]) -> None:
    """Cancel these jobs with one scancel, refusing (before it) any id not the SDK's.

    An id is the SDK's when the job base directory's index knows it and Slurm lists it
    as this user's job with the ``--comment`` the SDK gave it (``slurm-sdk:<job
    directory>``): an index entry alone could name an id Slurm has since given to
    someone else's job (ids are reused after a controller's state is reset). An id
    Slurm no longer lists has ended: nothing to cancel.

    Raises:
        ConfigurationError: an id is not a job of the SDK under this job base dir.
        CommandError: squeue or scancel failed.
    """
    known = set(cluster.store.job_ids())
    unknown = [j for j in ids if not is_job_id(j) or j.split("_")[0] not in known]
    if unknown:
        raise ConfigurationError(
            f"Not the SDK's jobs under {cluster.base_dir}: {', '.join(unknown)}. Nothing was "
            "cancelled; check the ids with `slurm jobs list` (and --job-base-dir)."
        )
    listed = cluster.slurm.comments_of_mine(ids)

    def base(job_id: str) -> str:
        return job_id.split("_", 1)[0]

    foreign = [
        j
        for j in ids
        if base(j) in listed and listed[base(j)] != job_comment(cluster.store.job_dir_of(j))
    ]
    if foreign:
        raise ConfigurationError(
            f"Slurm's jobs {', '.join(foreign)} are not the ones this job base directory "
            f"submitted (their --comment is not the SDK's for {cluster.base_dir}): the ids "
            "were reused. Nothing was cancelled."
        )
    alive = [j for j in ids if base(j) in listed]
    if alive:
        check_result(cluster.slurm.cancel(alive), "the cluster (scancel)")


def image_cache(cluster: Cluster) -> ImageCache:
    """The tags pinned to a digest and the ``.sif`` cache under the job base directory
    (``slurm images``): ``pins()``, ``images()``, ``unpin(tags)``."""
    return ImageCache(cluster.session)


def doctor_report(cluster: Cluster) -> DoctorReport:
    """Every check of ``slurm doctor`` (:meth:`Cluster.diagnose` gives it as a dict)."""
    return _diagnose(cluster.session)
