"""Submission: from a task call to a Slurm job id, exactly once.

Pickles the call, lays out its job directory, renders the batch script and
runs ``sbatch``; consults a workflow's journal first so a restarted workflow
reattaches instead of resubmitting; never submits twice when a connection
drops or the controller stumbles; resubmits an interrupted job that Slurm
could not requeue. ``Cluster`` calls into here; nothing here is public.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slurm.errors import (
    ConfigurationError,
    ConnectionLostError,
    DependencyError,
    ResultError,
    SubmissionError,
)
from slurm.journal import JournalEntry, fingerprint
from slurm.options import literal_filename_pattern
from slurm.payload import Envelope, JobRef, dumps_payload
from slurm.runner import DONE_DIR_VARIABLE
from slurm.script import render_batch_script
from slurm.slurmcmd import parse_sbatch_output, sbatch_argv
from slurm.task import Task

if TYPE_CHECKING:
    from slurm.cluster import Cluster
    from slurm.job import Job

logger = logging.getLogger(__name__)

_SBATCH_ATTEMPTS = 5
_TRANSIENT_ERRORS = (
    "Socket timed out",
    "Resource temporarily unavailable",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted",
    "Connection refused",
)

DEFAULT_MAX_REQUEUES = 3
DEFAULT_REQUEUE_GRACE = 60


def requeue_policy(
    sbatch_options: Mapping[str, Any], sdk_options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """sbatch flags and runner policy for surviving preemption and time limits.

    Jobs are requeueable and get USR1 ``requeue_grace`` seconds before their
    time limit (Slurm may send it up to a minute early); ``max_requeues``
    bounds how often one call is requeued. ``no_requeue=True`` turns it off.
    """
    try:
        max_requeues = int(sdk_options.get("max_requeues", DEFAULT_MAX_REQUEUES))
        grace = int(sdk_options.get("requeue_grace", DEFAULT_REQUEUE_GRACE))
    except (TypeError, ValueError):
        max_requeues = grace = -1
    if max_requeues < 0 or grace <= 0:
        raise ConfigurationError(
            "max_requeues must be a whole number >= 0 and requeue_grace a number of seconds "
            f"> 0; got max_requeues={sdk_options.get('max_requeues')!r}, "
            f"requeue_grace={sdk_options.get('requeue_grace')!r}."
        )
    if sbatch_options.get("no_requeue") or sbatch_options.get("requeue") is False:
        return {}, {"max_requeues": 0}
    flags: dict[str, Any] = {"requeue": True}
    if "signal" not in sbatch_options:
        flags["signal"] = f"B:USR1@{grace}"
    return flags, {"max_requeues": max_requeues}


def dependency_flag(cluster: Cluster, task: Task[Any, Any], refs: Sequence[JobRef]) -> str | None:
    """The ``--dependency`` value; ``afterok`` on a job that already succeeded is dropped.

    Raises:
        DependencyError: an ``afterok`` dependency has already failed, so the
            call could never run (sbatch would refuse it); nothing is submitted.
    """
    by_kind: dict[str, list[str]] = {}
    for dep_kind, job in task.dependencies:
        by_kind.setdefault(dep_kind, []).append(str(job.id))
    afterok = [(ref.job_id, ref) for ref in refs]
    afterok += [
        (str(job.id), job._slurm_job_ref()) for kind, job in task.dependencies if kind == "afterok"
    ]
    by_kind.setdefault("afterok", []).extend(ref.job_id for ref in refs)
    finished: set[str] = set()
    for job_id, ref in afterok:
        outcome = _outcome(cluster, ref)
        if outcome is None:
            continue
        if not outcome.ok:
            raise DependencyError(
                f"{task.name}() depends (afterok) on job {job_id}, which already failed "
                f"({outcome.type_name}: {outcome.message}), so it could never run. Nothing was "
                f"submitted. Use .after(job, kind='afterany') to run it whatever the outcome.",
                job_id=job_id,
            )
        finished.add(job_id)
    parts = []
    for kind, ids in by_kind.items():
        ids = [i for i in dict.fromkeys(ids) if not (kind == "afterok" and i in finished)]
        if ids:
            parts.append(":".join([kind, *ids]))
    return ",".join(parts) or None


def _outcome(cluster: Cluster, ref: JobRef) -> Envelope | None:
    """The result envelope of a finished single job, or None (running, an array, unreadable)."""
    if ref.result_path.endswith("/results"):
        return None
    try:
        return Envelope.from_bytes(cluster.transport.read_bytes(ref.result_path))
    except (FileNotFoundError, OSError, ResultError):
        return None


def submit(
    cluster: Cluster,
    task: Task[Any, Any],
    payload: dict[str, Any],
    extra_options: Mapping[str, Any],
    log_name: str,
) -> tuple[str, str, float | None]:
    """Pickle, lay out the job directory, write the script, sbatch it.

    Inside a workflow, the journal is consulted first: a call the earlier
    run already submitted is reattached instead. Returns (job id, job
    directory, submission time or None when reattached).
    """
    python = cluster.python  # first: the preflight must fail before anything is written
    sbatch_options, sdk_options = cluster._options_for(task)
    if task.is_workflow:
        payload["cluster_spec"] = cluster._workflow_spec()
    requeue_flags, payload["policy"] = requeue_policy(sbatch_options, sdk_options)
    try:
        data, refs = dumps_payload(payload)
    except Exception as exc:
        raise ConfigurationError(
            f"The call to {task.name}() cannot be sent to the cluster: its arguments cannot "
            f"be pickled ({type(exc).__name__}: {exc}). Nothing was submitted. Pass plain "
            "data, or objects that cloudpickle can serialise."
        ) from exc
    seq, job_dir = -1, None
    if cluster._journal is not None:
        depends_on = sorted(
            {ref.job_id for ref in refs} | {str(job.id) for _, job in task.dependencies}
        )
        digest = fingerprint(
            task.name, repr(sorted(sbatch_options.items())), data, ",".join(depends_on)
        )
        seq, entry = cluster._journal.claim(task.name, digest)
        if entry is not None:
            job_id = entry.job_id or find_submitted(cluster, entry.job_dir)
            if job_id is not None:
                if entry.job_id is None:
                    cluster._journal.complete(seq, job_id)
                logger.info("reattached %s to job %s (journal)", task.name, job_id)
                return job_id, entry.job_dir, None
            job_dir = entry.job_dir  # prepared, but never reached Slurm: submit now
    dependency = dependency_flag(cluster, task, refs)
    job_dir = job_dir or cluster._new_job_dir(task.name)
    options = dict(sbatch_options)
    options.update(requeue_flags)
    options.update(extra_options)
    options.setdefault("comment", f"slurm-sdk:{job_dir.rsplit('/', 1)[-1]}")
    # sbatch expands %-patterns in these paths: the job directory must stay literal.
    literal = literal_filename_pattern(job_dir)
    options["output"] = f"{literal}/{log_name}.out" if "%" in log_name else f"{literal}/stdout"
    options["error"] = f"{literal}/{log_name}.err" if "%" in log_name else f"{literal}/stderr"
    if dependency:
        options["dependency"] = dependency
    setup = sdk_options.get("setup") or ()
    if isinstance(setup, str):
        setup = [setup]
    if "signal" in requeue_flags:
        # Slurm may send the time-limit warning up to a minute early, even before
        # Python has installed its handler: ignore USR1 until the runner takes it
        # over (an ignored signal stays ignored across exec; a default one kills).
        setup = ["trap '' USR1", *setup]
    script = render_batch_script(
        options=options,
        command=[python, "-m", "slurm.runner", job_dir],
        # Where the runner drops its done marker: this Cluster object's own directory.
        # In the script, not the payload, so that the call's fingerprint (what a
        # restarted workflow matches its journal against) does not depend on it.
        env={DONE_DIR_VARIABLE: cluster.done_dir},
        workdir=os.getcwd() if cluster.backend_type == "local" else None,
        setup=list(setup),
    )
    # On this machine the job may import what this process imports; a remote
    # cluster gets the code through its own environment (see packaging).
    sys_path = (
        [os.path.abspath(p or os.curdir) for p in sys.path]
        if cluster.backend_type == "local"
        else []
    )
    transport = cluster.transport
    transport.write_bytes(f"{job_dir}/payload.pkl", data)
    transport.write_text(f"{job_dir}/sys_path.txt", "\n".join(sys_path) + "\n")
    transport.write_text(f"{job_dir}/job.sh", script, mode=0o700)
    if payload.get("items") is not None:
        transport.mkdir(f"{job_dir}/logs", mode=0o700)
        transport.mkdir(f"{job_dir}/results", mode=0o700)
    if cluster._journal is not None:
        cluster._journal.begin(JournalEntry(seq, task.name, digest, job_dir))
    cluster._ensure_layout()
    submitted = time.time()
    job_id = sbatch(cluster, job_dir)
    if cluster._journal is not None:
        cluster._journal.complete(seq, job_id)
    cluster._record(job_id, job_dir)
    return job_id, job_dir, submitted


def resubmit(cluster: Cluster, job: Job[Any]) -> None:
    """Submit an interrupted job again, as a new Slurm job, when Slurm could not requeue it.

    The same job directory, payload and script are used, so it is the same
    call; the ``Job`` follows the new id.
    """
    info = cluster.tracker.info_of(job)
    state = info.state.value if info else "UNKNOWN"
    flags = [f"--array={job.array_index}"] if job.array_index is not None else []
    argv = sbatch_argv(f"{job.job_dir}/job.sh", flags=flags)
    result = cluster._run(argv, retry=False)
    new_id = parse_sbatch_output(result.stdout)
    if job.array_index is not None:
        new_id = f"{new_id}_{job.array_index}"
    logger.warning(
        "job %s (%s) ended %s and Slurm did not requeue it (the cluster's PreemptMode or "
        "JobRequeue do not allow it): resubmitted the same call as job %s (%d of %d)",
        job.id,
        job.name,
        state,
        new_id,
        len(job.previous_ids) + 1,
        job.max_requeues,
    )
    job.previous_ids.append(job.id)
    job.id = new_id
    cluster._record(new_id.split("_", 1)[0], job.job_dir)
    cluster.tracker.watch(job, submitted=time.time())


def find_submitted(cluster: Cluster, job_dir: str) -> str | None:
    """The id of a job sbatch accepted for ``job_dir`` whose id was never recorded.

    Looks in every state squeue still shows (a short job may have ended
    already; Slurm keeps it there for ``MinJobAge``). A failing squeue is
    asked again: "not found" must mean not found, or the job is submitted twice.

    Raises:
        SubmissionError: squeue kept failing, so nobody can tell.
    """
    comment = f"slurm-sdk:{job_dir.rsplit('/', 1)[-1]}"
    argv = ["squeue", "--noheader", "--me", "--states=all", "--format=%i|%k"]
    delay = 0.5
    for attempt in range(_SBATCH_ATTEMPTS):
        result = cluster._run(argv, check=False)
        if result.returncode == 0:
            break
        if attempt < _SBATCH_ATTEMPTS - 1:
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
    else:
        raise SubmissionError(
            f"Cannot tell whether the job in {job_dir} reached Slurm: sbatch's answer was "
            f"lost and squeue fails ({result.stderr.strip() or 'no message'}). Look for the "
            f"comment {comment!r} in `squeue --me --states=all --format=%i|%k` before "
            "submitting it again.",
            argv=result.argv,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )
    for line in result.stdout.splitlines():
        job_id, _, found = line.strip().partition("|")
        if found == comment:
            return job_id.split("_", 1)[0]
    return None


def sbatch(cluster: Cluster, job_dir: str) -> str:
    """Submit the job directory's script; return the job id.

    Never submits twice: when the connection drops after sbatch was sent,
    or the controller answers with a transient error, the job's comment
    (``slurm-sdk:<directory name>``) is looked up in ``squeue`` before
    sbatch is tried again.
    """
    argv = sbatch_argv(f"{job_dir}/job.sh")
    delay = 0.5
    for attempt in range(_SBATCH_ATTEMPTS):
        last = attempt == _SBATCH_ATTEMPTS - 1
        try:
            result = cluster._run(argv, retry=False, check=False)
        except ConnectionLostError:
            if last:
                raise
            found = find_submitted(cluster, job_dir)
            if found is not None:
                return found
            continue
        if result.returncode == 0:
            return parse_sbatch_output(result.stdout)
        transient = any(text in result.stderr for text in _TRANSIENT_ERRORS)
        if transient and not last:
            logger.info("sbatch: transient error (%s); retrying", result.stderr.strip())
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
            found = find_submitted(cluster, job_dir)
            if found is not None:
                return found
            continue
        raise SubmissionError(
            f"sbatch refused the job ({result.stderr.strip() or 'no message'}). Check the "
            f"options in {job_dir}/job.sh.",
            argv=result.argv,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )
    raise AssertionError("unreachable")
