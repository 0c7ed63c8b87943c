"""Submission: from a task call to a Slurm job id, exactly once.

Pickles the call, lays out its job directory, renders the batch script and
runs ``sbatch``; consults a workflow's journal first so a restarted workflow
reattaches instead of resubmitting; never submits twice when a connection
drops or the controller stumbles; resubmits an interrupted job that Slurm
could not requeue. ``Cluster`` calls into here; nothing here is public.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slurm.container import CONTAINER_VARIABLE, ContainerSpec, container_spec
from slurm.errors import ConfigurationError, DependencyError, ResultError, SubmissionError
from slurm.journal import JournalEntry, fingerprint
from slurm.layout import JobPaths, log_patterns, outcome_of
from slurm.options import literal_filename_pattern
from slurm.payload import Call, JobRef, Outcome, Payload, RunPolicy, dumps_payload
from slurm.retry import Attempt, Retry, limits_of
from slurm.runner import DONE_DIR_VARIABLE
from slurm.script import render_batch_script
from slurm.task import Task

if TYPE_CHECKING:
    from slurm.cluster import Cluster
    from slurm.job import Job

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEUES = 3
DEFAULT_REQUEUE_GRACE = 60


@dataclass(frozen=True)
class Submitted:
    """What one submission gave: the Slurm id (an array's id), its directory, its policy.

    ``submitted`` is the ``time.time()`` of sbatch, ``None`` when a restarted
    workflow reattached to a job its earlier run had submitted. ``limits`` are
    the time and memory it was submitted with; ``retry`` the task's Retry.
    """

    job_id: str
    job_dir: str
    submitted: float | None
    policy: RunPolicy
    depends_on: tuple[str, ...] = ()
    limits: Mapping[str, str] = field(default_factory=dict)
    retry: Retry | None = None


def retry_policy(
    task: Task[Any, Any], sbatch_options: Mapping[str, Any], sdk_options: Mapping[str, Any]
) -> Retry | None:
    """The task's ``retry=`` option, checked before anything is submitted.

    Raises:
        ConfigurationError: not a :class:`~slurm.Retry`, or a growth with no limit to grow.
    """
    retry = sdk_options.get("retry")
    if retry is None or retry is False:
        return None
    if not isinstance(retry, Retry):
        raise ConfigurationError(
            f"{task.name}(): retry= must be a slurm.Retry(...), got {retry!r}. Nothing was "
            "submitted. Example: retry=slurm.Retry(max_attempts=3, grow={'time': 2.0})."
        )
    retry.check_limits(task.name, sbatch_options)
    return retry


def requeue_policy(
    sbatch_options: Mapping[str, Any], sdk_options: Mapping[str, Any]
) -> tuple[dict[str, Any], RunPolicy]:
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
        return {}, RunPolicy(max_requeues=0)
    flags: dict[str, Any] = {"requeue": True}
    if "signal" not in sbatch_options:
        flags["signal"] = f"B:USR1@{grace}"
    return flags, RunPolicy(max_requeues=max_requeues)


def dependency_flag(cluster: Cluster, task: Task[Any, Any], refs: Sequence[JobRef]) -> str | None:
    """The ``--dependency`` value; ``afterok`` on a job that already succeeded is dropped.

    Raises:
        DependencyError: an ``afterok`` dependency has already failed, so the
            call could never run (sbatch would refuse it); nothing is submitted.
    """
    by_kind: dict[str, list[str]] = {}
    dependencies = [(kind, job._slurm_job_ref()) for kind, job in task.dependencies]
    for dep_kind, ref in dependencies:
        by_kind.setdefault(dep_kind, []).extend(ref.job_ids)
    afterok = [(job_id, ref) for ref in refs for job_id in ref.job_ids]
    afterok += [
        (job_id, ref) for kind, ref in dependencies if kind == "afterok" for job_id in ref.job_ids
    ]
    by_kind.setdefault("afterok", []).extend(job_id for ref in refs for job_id in ref.job_ids)
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


def _outcome(cluster: Cluster, ref: JobRef) -> Outcome | None:
    """How a finished single job ended (its JSON outcome: never unpickled), or None
    (running, an array, unreadable)."""
    if not ref.result_path:
        return None
    try:
        return Outcome.from_json(cluster.transport.read_text(outcome_of(ref.result_path)))
    except (FileNotFoundError, OSError, ResultError):
        return None


def submit(
    cluster: Cluster, task: Task[Any, Any], calls: Sequence[Call], *, array: str | None
) -> Submitted:
    """Pickle the call(s), lay out the job directory, write the script, sbatch it once.

    ``array`` is sbatch's ``--array`` value (``0-9%2``): element ``i`` runs
    ``calls[i]``, from its own payload file; ``None`` submits one job running
    ``calls[0]``. Inside a workflow, the journal is consulted first: a call
    the earlier run already submitted is reattached instead.

    Raises:
        ConfigurationError: the preflight failed, or the arguments cannot be pickled.
        DependencyError: an ``afterok`` dependency already failed.
        SubmissionError: sbatch refused the job.

    When sbatch refuses the job (an unknown partition, account or QOS: Slurm's
    message is in the error) or an option cannot be written into the script, the
    job directory made for it is removed again: nothing is left behind.
    """
    created: list[str] = []
    try:
        return _submit(cluster, task, calls, array=array, created=created)
    except (ConfigurationError, SubmissionError) as exc:
        if created and not (isinstance(exc, SubmissionError) and not exc.refused):
            cluster.store.remove_job_dir(created[0])
        raise
    except OSError as exc:  # the job's files could not be written (a full disk, a quota)
        if not created:
            raise
        cluster.store.remove_job_dir(created[0])
        raise ConfigurationError(
            f"Cannot write the job's files under {cluster.base_dir}: {exc.strerror or exc}. "
            "Nothing was submitted. Free space there (`slurm jobs prune`) or pass another "
            "job_base_dir."
        ) from exc


def _submit(
    cluster: Cluster,
    task: Task[Any, Any],
    calls: Sequence[Call],
    *,
    array: str | None,
    created: list[str],
) -> Submitted:
    from slurm.packaging.images import prepare as prepare_images
    from slurm.packaging.launch import launch_for

    sbatch_options, sdk_options = cluster.options_for(task)
    # First: the preflight must fail before anything is written.
    launch = launch_for(cluster, task, sdk_options, calls)
    # packaging="container" builds and pushes the image here (once); a workflow runs
    # outside its image and hands it to its tasks.
    sdk_options, for_children = prepare_images(cluster, task, sdk_options)
    container = container_spec(
        sdk_options, shared=[cluster.store.base_dir, os.path.dirname(cluster.store.index_dir)]
    )
    if container is not None:
        check_container(cluster, container, launch.python)
    requeue_flags, policy = requeue_policy(sbatch_options, sdk_options)
    retry = retry_policy(task, sbatch_options, sdk_options)
    if retry is not None and "TIMEOUT" in retry.on:
        policy = dataclasses.replace(policy, requeue_on_time_limit=False)
    limits = limits_of(sbatch_options)
    workflow = cluster.workflow_spec(for_children) if task.is_workflow else None
    payloads: list[bytes] = []
    refs: list[JobRef] = []
    try:
        for call in calls:
            data, found = dumps_payload(Payload(task, call, policy, workflow))
            payloads.append(data)
            refs.extend(found)
    except Exception as exc:
        raise ConfigurationError(
            f"The call to {task.name}() cannot be sent to the cluster: its arguments cannot "
            f"be pickled ({type(exc).__name__}: {exc}). Nothing was submitted. Pass plain "
            "data, or objects that cloudpickle can serialise."
        ) from exc
    journal, store = cluster.journal, cluster.store
    seq, job_dir, digest = -1, None, ""
    depends_on = tuple(
        dict.fromkeys(
            [job_id for ref in refs for job_id in ref.job_ids]
            + [job_id for _, job in task.dependencies for job_id in job._slurm_job_ref().job_ids]
        )
    )
    if journal is not None:
        digest = fingerprint(
            task.name,
            repr(sorted(sbatch_options.items())),
            *payloads,
            ",".join(sorted(depends_on)),
        )
        seq, entry = journal.claim(task.name, digest)
        if entry is not None:
            job_id = entry.job_id or cluster.slurm.find_by_comment(_comment(entry.job_dir))
            if job_id is not None:
                if entry.job_id is None:
                    journal.complete(seq, job_id)
                # A call retried since: its Job follows the attempts file (Job.reload_attempts).
                logger.info("reattached %s to job %s (journal)", task.name, job_id)
                return Submitted(job_id, entry.job_dir, None, policy, depends_on, limits, retry)
            job_dir = entry.job_dir  # prepared, but never reached Slurm: submit now
    dependency = dependency_flag(cluster, task, refs)
    if job_dir is None:
        job_dir = store.new_job_dir(task.name)
        created.append(job_dir)
    else:  # prepared by an earlier run: its directory may have been removed since
        cluster.transport.mkdir(job_dir, mode=0o700)
    options = dict(sbatch_options)
    options.update(requeue_flags)
    if array is not None:
        options["array"] = array
    options.setdefault("comment", _comment(job_dir))
    # sbatch expands %-patterns in these paths: the job directory must stay literal.
    options["output"], options["error"] = log_patterns(
        literal_filename_pattern(job_dir), array=array is not None
    )
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
    command = [*launch.command, "-m", "slurm.runner", job_dir]
    if array is not None:
        command.append("--array")
    if is_multi_rank(options):
        command.append("--ranks")  # the runner starts one runner per rank with srun
    # Locally the job starts where this process runs, unless the task chose chdir=.
    local = cluster.backend_type == "local"
    workdir = os.getcwd() if local and not options.get("chdir") else None
    script = render_batch_script(
        options=options,
        command=command,
        # Where the runner drops its done marker: this Cluster object's own directory.
        # In the script, not the payload, so that the call's fingerprint (what a
        # restarted workflow matches its journal against) does not depend on it.
        env={
            DONE_DIR_VARIABLE: store.done_dir,
            **launch.env,
            **({CONTAINER_VARIABLE: container.to_json()} if container else {}),
        },
        workdir=workdir,
        setup=list(setup),
    )
    # On this machine the job may import what this process imports (but not from
    # the working directory, which "" stands for); a remote cluster gets the code
    # through its own environment (see packaging).
    sys_path = (
        [os.path.abspath(p) for p in sys.path if p] if cluster.backend_type == "local" else []
    )
    paths = JobPaths(job_dir)
    transport = cluster.transport
    if array is None:
        transport.write_bytes(paths.payload, payloads[0])
    else:
        for directory in (paths.payloads_dir, paths.logs_dir, paths.results_dir):
            transport.mkdir(directory, mode=0o700)
        for index, data in enumerate(payloads):
            transport.write_bytes(JobPaths(job_dir, index).payload, data)
    transport.write_text(paths.sys_path, "\n".join(sys_path) + "\n")
    depends = [("afterok", j) for ref in refs for j in ref.job_ids] + [
        (kind, j) for kind, job in task.dependencies for j in job._slurm_job_ref().job_ids
    ]
    if depends:  # for `slurm jobs report`: sbatch is not told of those already finished
        transport.write_text(paths.depends_on, "".join(f"{k} {j}\n" for k, j in depends))
    transport.write_text(paths.script, script, mode=0o700)
    if journal is not None:
        journal.begin(JournalEntry(seq, task.name, digest, job_dir))
    store.ensure_layout()
    submitted = time.time()
    job_id = cluster.slurm.sbatch(paths.script, comment=options["comment"])
    if journal is not None:
        journal.complete(seq, job_id)
    store.record(job_id, job_dir)
    return Submitted(job_id, job_dir, submitted, policy, depends_on, limits, retry)


def submit_jobs(
    cluster: Cluster,
    task: Task[Any, Any],
    calls: Sequence[Call],
    jobs: Sequence[Job[Any]],
    *,
    array: bool,
    max_concurrent: int | None = None,
) -> list[tuple[str, str]]:
    """Submit ``calls`` (one job, or arrays) and place ``jobs[i]`` on call ``i``.

    Slurm caps array indices below MaxArraySize: more calls become several
    arrays, transparently (results still in call order). Each job is
    watched by the tracker. Returns (Slurm id, job directory) per submission.
    """
    if not array:
        done = submit(cluster, task, calls[:1], array=None)
        _place(cluster, jobs[0], done, done.job_id, None)
        return [(done.job_id, done.job_dir)]
    limit = cluster.max_array_size
    parts: list[tuple[str, str]] = []
    for start in range(0, len(calls), limit):
        part = calls[start : start + limit]
        spec = f"0-{len(part) - 1}"
        if max_concurrent:
            spec += f"%{int(max_concurrent)}"
        done = submit(cluster, task, part, array=spec)
        parts.append((done.job_id, done.job_dir))
        for index in range(len(part)):
            _place(cluster, jobs[start + index], done, f"{done.job_id}_{index}", index)
    return parts


def submit_batch(
    cluster: Cluster, collected: Sequence[tuple[Task[Any, Any], Call, Job[Any]]]
) -> None:
    """Submit the calls a ``cluster.batch()`` block collected: one array per task and
    option set (a lone call as a plain job), placing each call's Job on its element."""
    groups: dict[tuple[Any, ...], list[tuple[Task[Any, Any], Call, Job[Any]]]] = {}
    for task, call, job in collected:
        key = (
            task.unwrapped,
            task.is_workflow,
            repr(sorted(task.options.items())),
            tuple((kind, id(dep)) for kind, dep in task.dependencies),
        )
        groups.setdefault(key, []).append((task, call, job))
    for members in groups.values():
        calls = [call for _, call, _ in members]
        jobs = [job for _, _, job in members]
        submit_jobs(cluster, members[0][0], calls, jobs, array=len(members) > 1)


def _place(
    cluster: Cluster, job: Job[Any], done: Submitted, job_id: str, index: int | None
) -> None:
    job._locate(job_id, done.job_dir, index)
    job.max_requeues = done.policy.max_requeues
    job.dependencies = list(done.depends_on)
    job.retry, job.limits = done.retry, dict(done.limits)
    if done.submitted is None:  # reattached: the call may have been retried since
        job.reload_attempts()
    cluster.tracker.watch(job, submitted=done.submitted)


def check_pyxis(cluster: Cluster, what: str) -> None:
    """The cluster's srun knows pyxis's ``--container-image`` (asked once per Cluster).

    Raises:
        ConfigurationError: it does not; ``what`` says what asked for a container.
    """
    if cluster._pyxis_checked:
        return
    out = cluster.transport.run(["srun", "--help"], check=False, timeout=60)
    if "--container-image" not in out.stdout + out.stderr:
        raise ConfigurationError(
            f"The task asks for {what}, but this cluster's srun has no --container-image "
            "option: pyxis (the Slurm plugin that runs tasks in containers) is not installed "
            "there. Nothing was submitted. Ask the cluster's admins for pyxis + enroot, or "
            "drop the container (on the dev cluster: `slurm devcluster up --containers`)."
        )
    cluster._pyxis_checked = True


def check_container(cluster: Cluster, spec: ContainerSpec, python: str) -> None:
    """Before submitting a task in a container: the cluster's srun knows pyxis's
    ``--container-image`` (asked once per Cluster), an image given as a path exists,
    and one given as a registry reference is in its registry (asked from the login
    host with ``python``, see :mod:`slurm.packaging.registry`).

    Raises:
        ConfigurationError: saying what to do.
    """
    transport = cluster.transport
    check_pyxis(cluster, f"container_image={spec.image!r}")
    if spec.image.startswith("/") and not transport.exists(spec.image):
        raise ConfigurationError(
            f"container_image {spec.image!r} does not exist on the cluster. Nothing was "
            "submitted. Give the path of a squashfs image there (e.g. made with "
            "`enroot import`), or a registry reference such as 'registry#name:tag'."
        )
    if not spec.image.startswith("/"):
        from slurm.packaging.images import check_image

        check_image(cluster, spec.image, python)


def is_multi_rank(options: Mapping[str, Any]) -> bool:
    """True when sbatch options ask for more than one task (``nodes``, ``ntasks``,
    ``ntasks_per_node`` above 1): the function then runs once per rank."""
    for key in ("nodes", "ntasks", "ntasks_per_node"):
        value = str(options.get(key, "1")).strip()
        # "2", or a range such as "2-4" whose minimum counts
        first = value.split("-", 1)[0].split(":", 1)[0]
        if first.isdigit() and int(first) > 1:
            return True
    return False


def _comment(job_dir: str) -> str:
    """The ``--comment`` that finds a job again from its directory's name."""
    return f"slurm-sdk:{job_dir.rsplit('/', 1)[-1]}"


def resubmit(
    cluster: Cluster,
    job: Job[Any],
    *,
    retried: Attempt | None = None,
    limits: Mapping[str, str] | None = None,
) -> None:
    """Submit a call again, as a new Slurm job; the ``Job`` follows the new id.

    The same job directory, payload and script are used, so it is the same
    call. Without ``retried``: an interrupted job Slurm could not requeue
    (preempted, node lost), counted against ``max_requeues``. With
    ``retried`` (the task's :class:`~slurm.Retry`): that attempt ended in a
    state the Retry covers; it is recorded in the call's attempts file (which
    a restarted workflow and ``get_job`` follow) and the new job gets
    ``limits``. Either way the job keeps its current limits unless told.
    """
    info = cluster.tracker.info_of(job)
    state = retried.state if retried else info.state.value if info else "UNKNOWN"
    new_limits = dict(job.limits if limits is None else limits)
    flags = [f"--array={job.array_index}"] if job.array_index is not None else []
    # Command-line flags win over the script's #SBATCH lines.
    flags += [f"--{key.replace('_', '-')}={value}" for key, value in sorted(new_limits.items())]
    paths = JobPaths(job.job_dir, job.array_index)
    transport = cluster.transport
    if retried is not None:
        if retried.state == "FAILED":  # retried on an exception: keep that result aside
            transport.run(["mv", "-f", paths.result, f"{paths.result}.{job.id}"], check=False)
        # The runner counts requeues per attempt: this line starts a new count.
        _append(cluster, paths.runs, f"{time.time():.3f} retry after={job.id} {state}\n")
    submitted = time.time()
    # The earlier job carries the same comment: a lost answer cannot be looked up.
    new_id = cluster.slurm.sbatch(job.script_path, comment=None, flags=flags)
    if job.array_index is not None:
        new_id = f"{new_id}_{job.array_index}"
    if retried is not None:
        line = retried.to_json(next_id=new_id, next_limits=new_limits, next_submitted=submitted)
        _append(cluster, paths.attempts, line + "\n")
        changed = {k: v for k, v in new_limits.items() if job.limits.get(k) != v}
        grown = ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "the same limits"
        logger.warning(
            "job %s (%s) ended %s: retrying as job %s with %s (attempt %d of %d)",
            job.id,
            job.name,
            state,
            new_id,
            grown,
            job.attempt + 1,
            job.retry.max_attempts if job.retry else 0,
        )
    else:
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
    job.limits = new_limits
    cluster.store.record(new_id.split("_", 1)[0], job.job_dir)
    cluster.tracker.watch(job, submitted=submitted)


def _append(cluster: Cluster, path: str, text: str) -> None:
    """Add ``text`` to a small file of the job directory (read and rewritten: any transport)."""
    try:
        before = cluster.transport.read_text(path)
    except FileNotFoundError:
        before = ""
    cluster.transport.write_text(path, before + text)
