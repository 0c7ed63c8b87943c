"""Submission: from a task call to a Slurm job id, exactly once.

:func:`submit_calls` runs in named phases, each a function of its own:

1. :func:`resolve` the options: the cluster's defaults under the task's,
   requeue and retry policy, limits (pure checks first: bad input fails
   before anything is prepared);
2. :func:`_prepare_code`: the interpreter and shipped source (the preflight
   runs here), the container image, the workflow's spec;
3. :func:`_pickle_calls`: one payload per call, and the jobs they refer to;
4. :func:`_claim` the journal entry of a running workflow (a restarted one
   reattaches instead of resubmitting);
5. :func:`_render` the batch script;
6. ship the call's local source (:func:`~slurm._client.packaging.launch.ship`),
   :func:`_write_files`, then ``sbatch`` once (:meth:`SlurmClient.sbatch`
   never sends it twice) and the record in the index.

Phase 2 is reported on the session's event stream (``PackagingBegan``,
``PackagingEnded``), and ``SubmitBegan`` just before sbatch (see
:mod:`slurm._client.events`); the ``Cluster`` reports ``Submitted`` once the
job has adopted its placement.

What comes back is a :class:`Placement` per call: the ``Job`` adopts it.
:func:`resubmit` gives a new placement for a call Slurm could not requeue, or
one a ``Retry`` runs again. ``Cluster`` calls into here; nothing here is public.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slurm._client.cachekey import CachePolicy, cache_policy
from slurm._client.events import PackagingBegan, PackagingEnded, SubmitBegan
from slurm._client.learned import learned_key
from slurm._client.packaging.images import check_container, prepare_for_node
from slurm._client.packaging.images import prepare as prepare_images
from slurm._client.packaging.launch import Launch, launch_for, ship
from slurm._client.packing import plan_for
from slurm._client.tasks import SubmittedTask
from slurm._slurm.container import ContainerSpec, asks_for_gpus, container_spec
from slurm._slurm.options import literal_filename_pattern, module_lines
from slurm._slurm.pack import Packing, element_options
from slurm._slurm.retry import Attempt, Retry, limits_of, time_seconds
from slurm._slurm.script import ABSOLUTE_PYTHONPATH, render_batch_script
from slurm._wire import record
from slurm._wire.cache import CacheEntry
from slurm._wire.callbacks import dumps_callbacks
from slurm._wire.env import (
    CONTAINER_VARIABLE,
    DONE_DIR_VARIABLE,
    PACK_CALLS_VARIABLE,
    RUNNER_ENTRY,
    WARN_AT_VARIABLE,
)
from slurm._wire.journal import JournalEntry, fingerprint
from slurm._wire.layout import JobPaths, job_comment, log_patterns, outcome_of
from slurm._wire.pack import PackPlan
from slurm._wire.payload import (
    Call,
    JobRef,
    Outcome,
    Payload,
    RunPolicy,
    WorkflowSpec,
    dumps_payload,
)
from slurm._wire.queue import is_pool_call
from slurm._wire.runlog import retry_line
from slurm.errors import (
    ConfigurationError,
    DependencyError,
    PackagingError,
    ResultError,
    SubmissionError,
)

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = [
    "Placement",
    "check_by_value",
    "dependency_flag",
    "is_multi_rank",
    "requeue_policy",
    "resolve",
    "resubmit",
    "retry_policy",
    "submit",
    "submit_packed",
    "submit_parts",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEUES = 3
DEFAULT_REQUEUE_GRACE = 60


@record.record(frozen=True)
class Submitted:
    """What one sbatch gave: the Slurm id (an array's id), its directory, its policy.

    ``submitted`` is the ``time.time()`` of sbatch, ``None`` when a restarted
    workflow reattached to a job its earlier run had submitted. ``limits`` are
    the time and memory it was submitted with; ``retry`` the task's Retry.
    """

    job_id: str
    job_dir: str
    submitted: float | None
    policy: RunPolicy
    depends_on: tuple[str, ...] = ()
    limits: Mapping[str, str] = record.field(default_factory=dict)
    retry: Retry | None = None
    rule: str = "asked"
    learn_key: str | None = None
    image: str | None = None  # the container image it runs in (a registry's pinned digest)


@record.record(frozen=True)
class Placement:
    """Where one call runs now: what its ``Job`` adopts at submission and resubmission.

    ``job_id`` is the element's own id in an array (``123_4``); ``submitted``
    is ``None`` for a call reattached from a workflow's journal (it may have
    been retried since: the job reads its attempts file). ``rule`` says which rule
    chose ``limits`` (:mod:`slurm._slurm.sizing`); ``learn_key`` is the call's entry in
    the learned sizes (``Retry(learn=True)``), or None. ``array_index`` names the
    call's files; in a packed array (``pack=K``) the Slurm element that runs the
    call is ``element``, which runs other calls too.
    """

    job_id: str
    job_dir: str
    array_index: int | None
    max_requeues: int
    dependencies: tuple[str, ...]
    retry: Retry | None
    limits: Mapping[str, str]
    submitted: float | None
    rule: str = "asked"
    learn_key: str | None = None
    cached: CacheEntry | None = None
    element: int | None = None
    image: str | None = None

    @classmethod
    def from_cache(cls, entry: CacheEntry) -> Placement:
        """A call answered from the cache: the run that made its result."""
        return cls(
            entry.job_id, entry.job_dir, entry.array_index, 0, (), None, {}, None, cached=entry
        )

    @classmethod
    def of(
        cls, done: Submitted, job_id: str, index: int | None, element: int | None = None
    ) -> Placement:
        return cls(
            job_id,
            done.job_dir,
            index,
            done.policy.max_requeues,
            done.depends_on,
            done.retry,
            dict(done.limits),
            done.submitted,
            done.rule,
            done.learn_key,
            element=element,
            image=done.image,
        )


@record.record(frozen=True)
class Resolved:
    """Phase 1: the options of one submission, checked."""

    sbatch: dict[str, Any]
    sdk: dict[str, Any]
    requeue_flags: dict[str, Any]
    policy: RunPolicy
    retry: Retry | None
    limits: dict[str, str]
    rule: str = "asked"
    learn_key: str | None = None
    asked: dict[str, Any] | None = None  # the sbatch options before learning
    cache: CachePolicy | None = None


@record.record(frozen=True)
class Prepared:
    """Phase 2: how the job starts on the cluster."""

    launch: Launch
    sdk: dict[str, Any]
    container: ContainerSpec | None
    workflow: WorkflowSpec | None


@record.record(frozen=True)
class _Claim:
    """Phase 4: the journal's word on this call (a running workflow's only)."""

    seq: int = -1
    digest: str = ""
    job_dir: str | None = None  # prepared by an earlier run of the workflow
    reattached: Submitted | None = None


@record.record(frozen=True)
class Staged:
    """Phases 1 and 2 done once for calls submitted in parts (the misses of a cached map);
    ``journal=False``: the position in a workflow's journal was taken for them already."""

    resolved: Resolved
    prepared: Prepared
    travelling: list[Any]
    journal: bool = True


def retry_policy(
    task: SubmittedTask, sbatch_options: Mapping[str, Any], sdk_options: Mapping[str, Any]
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
    own_signal = "signal" not in sbatch_options
    if own_signal:
        flags["signal"] = f"B:USR1@{grace}"
    at_time_limit = sdk_options.get("requeue_on_time_limit")
    return flags, RunPolicy(
        max_requeues=max_requeues,
        requeue_on_time_limit=at_time_limit,
        requeue_grace=grace if own_signal else None,
    )


def dependency_flag(session: Session, task: SubmittedTask, refs: Sequence[JobRef]) -> str | None:
    """The ``--dependency`` value; ``afterok`` on a job that already succeeded is dropped.

    Raises:
        DependencyError: an ``afterok`` dependency has already failed, so the
            call could never run (sbatch would refuse it); nothing is submitted.
    """
    by_kind: dict[str, list[str]] = {}
    dependencies = [(kind, job.__slurm_job_ref__()) for kind, job in task.dependencies]
    for dep_kind, ref in dependencies:
        by_kind.setdefault(dep_kind, []).extend(ref.job_ids)
    afterok = [(job_id, ref) for ref in refs for job_id in ref.job_ids]
    afterok += [
        (job_id, ref) for kind, ref in dependencies if kind == "afterok" for job_id in ref.job_ids
    ]
    by_kind.setdefault("afterok", []).extend(job_id for ref in refs for job_id in ref.job_ids)
    finished: set[str] = set()
    for job_id, ref in afterok:
        outcome = _outcome(session, ref)
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
    # A pooled call is no Slurm job that sbatch could wait for; outside its block it has
    # ended (leaving the block waits for its calls), inside one the pool refuses to wait.
    pooled = session.pool is None
    for kind, ids in by_kind.items():
        ids = [
            i
            for i in dict.fromkeys(ids)
            if not (kind == "afterok" and i in finished) and not (pooled and is_pool_call(i))
        ]
        if ids:
            parts.append(":".join([kind, *ids]))
    return ",".join(parts) or None


def _outcome(session: Session, ref: JobRef) -> Outcome | None:
    """How a finished single job ended (its JSON outcome: never unpickled), or None
    (running, an array, unreadable)."""
    if not ref.result_path:
        return None
    try:
        return Outcome.from_json(session.transport.read_text(outcome_of(ref.result_path)))
    except (FileNotFoundError, OSError, ResultError):
        return None


def submit(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    *,
    array: str | None,
    staged: Staged | None = None,
    plan: PackPlan | None = None,
) -> Submitted:
    """Pickle the call(s), lay out the job directory, write the script, sbatch it once.

    ``array`` is sbatch's ``--array`` value (``0-9%2``): element ``i`` runs
    ``calls[i]``, from its own payload file; ``None`` submits one job running
    ``calls[0]``; with a ``plan`` (a packed array) element ``e`` runs the calls
    the plan gives it. Inside a workflow, the journal is consulted first: a call
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
        return _submit(session, task, calls, array=array, created=created, staged=staged, plan=plan)
    except (ConfigurationError, SubmissionError) as exc:
        if created and not (isinstance(exc, SubmissionError) and not exc.refused):
            session.store.remove_job_dir(created[0])
        raise
    except OSError as exc:  # the job's files could not be written (a full disk, a quota)
        if not created:
            raise
        session.store.remove_job_dir(created[0])
        raise ConfigurationError(
            f"Cannot write the job's files under {session.base_dir}: {exc.strerror or exc}. "
            "Nothing was submitted. Free space there (`slurm jobs prune`) or pass another "
            "job_base_dir."
        ) from exc


def _submit(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    *,
    array: str | None,
    created: list[str],
    staged: Staged | None = None,
    plan: PackPlan | None = None,
) -> Submitted:
    if staged is None:
        staged = stage(session, task, resolve(session, task), calls)
    resolved, prepared, travelling = staged.resolved, staged.prepared, staged.travelling
    if plan is not None:  # an element runs several calls: their time, their CPUs
        sbatch = element_options(resolved.sbatch, plan.per_element, plan.parallel)
        resolved = record.replace(resolved, sbatch=sbatch, limits=limits_of(sbatch))
    events = session.events
    payloads, refs = _pickle_calls(task, calls, resolved.policy, prepared.workflow)
    check_by_value(task, payloads, prepared.launch.python_version)
    depends_on = tuple(
        dict.fromkeys(
            [job_id for ref in refs for job_id in ref.job_ids]
            + [job_id for _, job in task.dependencies for job_id in job.__slurm_job_ref__().job_ids]
        )
    )
    pool = session.pool
    journaled = staged.journal and pool is None
    claim = _claim(session, task, resolved, payloads, depends_on) if journaled else _Claim()
    if claim.reattached is not None:
        return claim.reattached
    dependency = dependency_flag(session, task, refs)
    if pool is not None:
        pool.check(task, resolved.sbatch, prepared.sdk, dependency, prepared.launch.python)
    job_dir = claim.job_dir
    if job_dir is None:
        job_dir = session.store.new_job_dir(task.name)
        created.append(job_dir)
    else:  # prepared by an earlier run: its directory may have been removed since
        session.transport.mkdir(job_dir, mode=0o700)
    options, script = _render(
        session, resolved, prepared, job_dir, array, dependency, packed=plan is not None
    )
    ship(session, prepared.launch)
    depends = [("afterok", j) for ref in refs for j in ref.job_ids] + [
        (kind, j) for kind, job in task.dependencies for j in job.__slurm_job_ref__().job_ids
    ]
    _write_files(
        session,
        job_dir,
        payloads,
        script,
        depends,
        array=array is not None,
        callbacks=travelling,
        plan=plan,
    )
    events.emit(SubmitBegan(task, options, job_dir, session.backend_type, array))
    image = prepared.container.ran if prepared.container is not None else None
    if pool is not None:  # no sbatch: a worker of the pool takes the calls
        submitted = time.time()
        env = prepared.launch.env
        job_id = pool.enqueue(
            job_dir, len(payloads), array=array is not None, env=env, python=prepared.launch.python
        )
        return Submitted(
            job_id, job_dir, submitted, resolved.policy, depends_on, resolved.limits, image=image
        )
    journal = session.journal if claim.seq >= 0 else None
    if journal is not None:
        journal.begin(JournalEntry(claim.seq, task.name, claim.digest, job_dir))
    session.store.ensure_layout()
    submitted = time.time()
    job_id = session.slurm.sbatch(JobPaths(job_dir).script, comment=options["comment"])
    if journal is not None:
        journal.complete(claim.seq, job_id)
    session.store.record(job_id, job_dir)
    return Submitted(
        job_id,
        job_dir,
        submitted,
        resolved.policy,
        depends_on,
        resolved.limits,
        resolved.retry,
        resolved.rule,
        resolved.learn_key,
        image,
    )


def resolve(session: Session, task: SubmittedTask) -> Resolved:
    """Phase 1: the task's options over the cluster's defaults; requeue, retry and cache
    policy and the limits, all checked before anything is prepared or written."""
    sbatch_options, sdk_options = session.options_for(task.name, task.options)
    requeue_flags, policy = requeue_policy(sbatch_options, sdk_options)
    retry = retry_policy(task, sbatch_options, sdk_options)
    if retry is not None and "TIMEOUT" in retry.on:
        policy = record.replace(policy, requeue_on_time_limit=False)
    rule, learn_key, asked = "asked", None, None
    if retry is not None and retry.learn:
        # The key is the request as asked: another mem= or partition learns on its own.
        learn_key = learned_key(_task_identity(task), sbatch_options)
        learned = session.learned.get(learn_key)
        if learned:
            asked, sbatch_options = sbatch_options, {**sbatch_options, **learned}
            rule = "learned"
            logger.info("%s starts at its learned request %s", task.name, learned)
    limits = limits_of(sbatch_options)
    cache = cache_policy(task, {**sbatch_options, **sdk_options})
    return Resolved(
        sbatch_options,
        sdk_options,
        requeue_flags,
        policy,
        retry,
        limits,
        rule,
        learn_key,
        asked,
        cache,
    )


def _task_identity(task: SubmittedTask) -> str:
    """The task's module and name: two tasks of one name in two modules learn apart."""
    return f"{task.reference_module or '__main__'}.{task.name}"


def stage(
    session: Session, task: SubmittedTask, resolved: Resolved, calls: Sequence[Call]
) -> Staged:
    """Phase 2, reported on the event stream: how the job starts on the cluster."""
    events = session.events
    began = time.monotonic()
    events.emit(PackagingBegan(task, dict(resolved.sdk)))
    travelling = list(session.runner_callbacks())
    prepared = _prepare_code(session, task, resolved, calls, travelling)
    image = prepared.container.image if prepared.container is not None else None
    events.emit(PackagingEnded(task, prepared.launch.python, image, time.monotonic() - began))
    return Staged(resolved, prepared, travelling)


def _prepare_code(
    session: Session,
    task: SubmittedTask,
    resolved: Resolved,
    calls: Sequence[Call],
    callbacks: Sequence[Any] = (),
) -> Prepared:
    """Phase 2: the interpreter and the call's local source (the preflight runs first, so
    that it fails before anything is written; the modules of the ``callbacks`` that
    travel are shipped too), the container image, a workflow's spec."""
    try:
        launch = launch_for(session, task, resolved.sdk, calls, also=callbacks)
        # packaging="container" builds and pushes the image here (once); a workflow runs
        # outside its image and hands it to its tasks.
        sdk_options, for_children = prepare_images(session, task, resolved.sdk)
        container = container_spec(
            sdk_options,
            shared=[session.store.base_dir, os.path.dirname(session.store.index_dir)],
            gpus=asks_for_gpus(resolved.sbatch),
        )
        if container is not None:
            container = check_container(session, container, launch.python)
        if for_children:  # Apptainer: the tasks' image pulled here (the node pulls nothing)
            prepare_for_node(session, {**resolved.sdk, **for_children}, launch.python)
        for dependent in task.prebuild:  # with_dependencies: their images travel too
            _, dependent_sdk = session.options_for(dependent.name, dependent.options)
            dependent_options, _ = prepare_images(session, dependent, dependent_sdk)
            prepare_for_node(session, dependent_options, launch.python)
    except ConfigurationError as exc:  # what the earlier SDK called a packaging error
        if type(exc) is not ConfigurationError:  # a more precise one already
            raise
        raise PackagingError(str(exc)) from exc
    workflow = session.workflow_spec(for_children) if task.is_workflow else None
    return Prepared(launch, sdk_options, container, workflow)


def _pickle_calls(
    task: SubmittedTask, calls: Sequence[Call], policy: RunPolicy, workflow: WorkflowSpec | None
) -> tuple[list[bytes], list[JobRef]]:
    """Phase 3: one payload per call; the jobs its arguments refer to."""
    payloads: list[bytes] = []
    refs: list[JobRef] = []
    for number, call in enumerate(calls):
        try:
            data, found = dumps_payload(Payload(task, call, policy, workflow))
        except Exception as exc:
            which = f"call {number} of {len(calls)} ({_describe(call)}) of"
            raise ConfigurationError(
                f"The {which if len(calls) > 1 else 'call to'} {task.name}() cannot be sent to "
                f"the cluster: its arguments cannot be pickled ({type(exc).__name__}: {exc}). "
                "Nothing was submitted. Pass plain data, or objects that cloudpickle can "
                "serialise."
            ) from exc
        payloads.append(data)
        refs.extend(found)
    return payloads, refs


def _describe(call: Call) -> str:
    """A call's arguments in a message, bounded."""
    import reprlib

    parts = [reprlib.repr(a) for a in call.args]
    parts += [f"{k}={reprlib.repr(v)}" for k, v in call.kwargs.items()]
    return ", ".join(parts)


def check_by_value(
    task: SubmittedTask, payloads: Sequence[bytes], cluster_python: tuple[int, int] | None
) -> None:
    """A call that travels by value needs the cluster's Python to be this one's minor version.

    A function importable on the cluster travels by reference, and plain data
    and exceptions cross with plain pickle, between any Python 3.11 or later;
    code pickled by value (a function from ``__main__`` or a notebook, a
    lambda, a class defined there, as the function or inside an argument) is
    only readable by the minor version that wrote it. cloudpickle writes such
    code with its own reconstructors, so their module's name in the payload
    says that something travels by value.

    Raises:
        ConfigurationError: it does, and the versions differ; nothing was submitted.
    """
    here = sys.version_info[:2]
    if cluster_python is None or cluster_python == here:
        return
    if not any(b"cloudpickle" in data for data in payloads):
        return
    there, mine = ".".join(map(str, cluster_python)), ".".join(map(str, here))
    what = (
        f"{task.name}() is defined in __main__, a notebook or a function, so it travels by value"
        if task.reference_module is None
        else f"an argument of {task.name}() holds code defined in __main__, a notebook or a "
        "function (a lambda, a local class), which travels by value"
    )
    raise ConfigurationError(
        f"The call to {task.name}() cannot run on this cluster: {what}, and code pickled by "
        f"value is only readable by the same Python minor version, but the cluster runs "
        f"Python {there} and this client Python {mine}. Nothing was submitted. Either move "
        "that code into a module beside your script (it then travels by reference, which any "
        f"Python 3.11 or later reads), or run the client with Python {there} (or give the "
        f"cluster a Python {mine}: python='/path/to/python{mine}')."
    )


def _claim(
    session: Session,
    task: SubmittedTask,
    resolved: Resolved,
    payloads: Sequence[bytes],
    depends_on: Sequence[str],
) -> _Claim:
    """Phase 4: in a running workflow, the journal entry of this call; a call the
    earlier run of the workflow already submitted is reattached."""
    journal = session.journal
    if journal is None:
        return _Claim()
    # The request as asked: what was learned since must not make it another call.
    digest = fingerprint(
        task.name,
        repr(sorted((resolved.asked or resolved.sbatch).items())),
        *payloads,
        ",".join(sorted(depends_on)),
    )
    seq, entry = journal.claim(task.name, digest)
    if entry is None:
        return _Claim(seq, digest)
    job_id = entry.job_id or session.slurm.find_by_comment(job_comment(entry.job_dir))
    if job_id is None:  # prepared, but never reached Slurm: submit now
        return _Claim(seq, digest, entry.job_dir)
    if entry.job_id is None:
        journal.complete(seq, job_id)
    # A call retried since: its Job follows the attempts file (Job.reload_attempts).
    logger.info("reattached %s to job %s (journal)", task.name, job_id)
    done = Submitted(
        job_id,
        entry.job_dir,
        None,
        resolved.policy,
        tuple(depends_on),
        resolved.limits,
        resolved.retry,
        resolved.rule,
        resolved.learn_key,
    )
    return _Claim(seq, digest, entry.job_dir, done)


def _render(
    session: Session,
    resolved: Resolved,
    prepared: Prepared,
    job_dir: str,
    array: str | None,
    dependency: str | None,
    *,
    packed: bool = False,
) -> tuple[dict[str, Any], str]:
    """Phase 5: the sbatch options of the script, and the script."""
    options = dict(resolved.sbatch)
    options.update(warning_flags(resolved.requeue_flags, options, resolved.policy))
    if array is not None:
        options["array"] = array
    options.setdefault("comment", job_comment(job_dir))
    # sbatch expands %-patterns in these paths: the job directory must stay literal.
    options["output"], options["error"] = log_patterns(
        literal_filename_pattern(job_dir), array=array is not None, packed=packed
    )
    if dependency:
        options["dependency"] = dependency
    setup = prepared.sdk.get("setup") or ()
    if isinstance(setup, str):
        setup = [setup]
    # modules= after setup=: a site may define `module` there
    setup = [*setup, *module_lines(prepared.sdk.get("modules"))]
    first: list[str] = []
    if "signal" in options and resolved.policy.requeue_grace is not None:
        # Slurm may send the time-limit warning up to a minute early, even before
        # Python has installed its handler: ignore USR1 until the runner takes it
        # over (an ignored signal stays ignored across exec; a default one kills),
        # from the script's first line on.
        first = ["trap '' USR1", *_warning_due(options, resolved.policy)]
    setup = [*setup, *ABSOLUTE_PYTHONPATH]  # the runner's sys.path: never the working dir
    command = [*prepared.launch.command, *RUNNER_ENTRY, job_dir]
    if array is not None:
        command.append("--array")
    if packed:
        command.append("--pack")  # each element runs several calls (slurm._job.pack)
    if is_multi_rank(options):
        command.append("--ranks")  # the runner starts one runner per rank with srun
    # Locally the job runs where this process runs, unless the task chose chdir=. A
    # node that cannot see this directory (a disk of the login host's own, /tmp) runs
    # it in its job directory, saying so on stderr; Slurm itself starts there.
    workdir = fallback = None
    if session.backend_type == "local" and not options.get("chdir"):
        workdir, fallback = os.getcwd(), job_dir
        options["chdir"] = job_dir
    container = prepared.container
    script = render_batch_script(
        options=options,
        command=command,
        # Where the runner drops its done marker: this session's own directory. In
        # the script, not the payload, so that the call's fingerprint (what a
        # restarted workflow matches its journal against) does not depend on it.
        env={
            DONE_DIR_VARIABLE: session.store.done_dir,
            **prepared.launch.env,
            **({CONTAINER_VARIABLE: container.to_json()} if container else {}),
        },
        workdir=workdir,
        fallback_dir=fallback,
        setup=list(setup),
        first=first,
    )
    return options, script


def warning_flags(
    flags: Mapping[str, Any], options: Mapping[str, Any], policy: RunPolicy
) -> dict[str, Any]:
    """The requeue flags of a job with these options: without the time-limit warning
    when the limit is no longer than its grace. That warning would be due as the job
    starts (the batch shell, which it kills before the script's first line, included)
    and no checkpoint could help: a requeue gets the same limit."""
    limit = time_seconds(options["time"]) if options.get("time") is not None else None
    grace = policy.requeue_grace
    if "signal" in flags and grace is not None and limit is not None and limit <= grace:
        return {key: value for key, value in flags.items() if key != "signal"}
    return dict(flags)


def _warning_due(options: Mapping[str, Any], policy: RunPolicy) -> list[str]:
    """The script line that tells the runner when Slurm's time-limit warning is due:
    Slurm sends it once, and one that came while the script ignored it is lost."""
    limit = time_seconds(options["time"]) if options.get("time") is not None else None
    if not limit or not policy.requeue_grace or limit <= policy.requeue_grace:
        return []
    now = "${EPOCHSECONDS:-$(date +%s)}"  # bash 5 has it without a fork
    return [f"export {WARN_AT_VARIABLE}=$(( {now} + {limit - policy.requeue_grace} ))"]


def _write_files(
    session: Session,
    job_dir: str,
    payloads: Sequence[bytes],
    script: str,
    depends: Sequence[tuple[str, str]],
    *,
    array: bool,
    callbacks: Sequence[Any] = (),
    plan: PackPlan | None = None,
) -> None:
    """Phase 6: the payload(s), the job's sys.path, the jobs it depends on, the callbacks
    whose hooks run on the node (if any) and the script, into its directory. ``depends``
    (kind, job id) lists the dependencies sbatch is not told of too (those already
    finished), for ``slurm jobs report``."""
    # On this machine the job may import what this process imports (but not from
    # the working directory, which "" stands for); a remote cluster gets the code
    # through its own environment (see packaging).
    sys_path = (
        [os.path.abspath(p) for p in sys.path if p] if session.backend_type == "local" else []
    )
    paths = JobPaths(job_dir)
    transport = session.transport
    if not array:
        transport.write_bytes(paths.payload, payloads[0])
    else:
        for directory in (paths.payloads_dir, paths.logs_dir, paths.results_dir):
            transport.mkdir(directory, mode=0o700)
        for index, data in enumerate(payloads):
            transport.write_bytes(JobPaths(job_dir, index).payload, data)
    if plan is not None:
        transport.write_text(paths.pack, plan.to_json())
    transport.write_text(paths.sys_path, "\n".join(sys_path) + "\n")
    if depends:
        transport.write_text(paths.depends_on, "".join(f"{k} {j}\n" for k, j in depends))
    pickled = dumps_callbacks(callbacks, _warn_callbacks) if callbacks else None
    if pickled:
        transport.write_bytes(paths.callbacks, pickled)
    transport.write_text(paths.script, script, mode=0o700)


def _warn_callbacks(message: str) -> None:
    logging.getLogger("slurm.callbacks").warning("%s", message)


def submit_parts(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    *,
    array: bool,
    max_concurrent: int | None = None,
    staged: Staged | None = None,
) -> tuple[list[tuple[str, str]], list[Placement]]:
    """:func:`slurm._client.calls.submit_calls` without the cache: one job, or arrays of
    at most MaxArraySize elements (``staged``: phases 1 and 2 done already)."""
    if not array:
        done = submit(session, task, calls[:1], array=None, staged=staged)
        return [(done.job_id, done.job_dir)], [Placement.of(done, done.job_id, None)]
    limit = session.max_array_size
    parts: list[tuple[str, str]] = []
    placements: list[Placement] = []
    for start in range(0, len(calls), limit):
        part = calls[start : start + limit]
        spec = f"0-{len(part) - 1}"
        if max_concurrent:
            spec += f"%{int(max_concurrent)}"
        done = submit(session, task, part, array=spec, staged=staged)
        parts.append((done.job_id, done.job_dir))
        placements += [Placement.of(done, f"{done.job_id}_{i}", i) for i in range(len(part))]
    return parts, placements


def submit_packed(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    packing: Packing,
    max_concurrent: int | None,
) -> tuple[list[tuple[str, str]], list[Placement]]:
    """A packed map: arrays of ``ceil(calls / K)`` elements; a placement per call.

    Raises:
        ConfigurationError: the task has several ranks, or the calls go to a worker
            pool; nothing was submitted.
    """
    sbatch, _ = session.options_for(task.name, task.options)
    if is_multi_rank(sbatch):
        raise ConfigurationError(
            f"{task.name}.map(pack=...): a task of several ranks (nodes, ntasks or "
            "ntasks_per_node above 1) cannot be packed, each call needs its own allocation. "
            "Nothing was submitted. Drop pack=, or run the ranks' work in one call."
        )
    if session.pool is not None:
        raise ConfigurationError(
            f"{task.name}.map(pack=...) inside a worker pool: the pool's workers already run "
            "many calls each. Nothing was submitted. Drop pack=, or map outside the pool."
        )
    whole = plan_for(session, task.name, len(calls), packing, sbatch)
    step = session.max_array_size * whole.per_element
    parts: list[tuple[str, str]] = []
    placements: list[Placement] = []
    for start in range(0, len(calls), step):
        part = calls[start : start + step]
        plan = PackPlan(len(part), whole.per_element, whole.parallel)
        spec = f"0-{plan.elements - 1}"
        if max_concurrent:
            spec += f"%{int(max_concurrent)}"
        done = submit(session, task, part, array=spec, plan=plan)
        parts.append((done.job_id, done.job_dir))
        for i in range(len(part)):
            element = plan.element_of(i)
            placements.append(Placement.of(done, f"{done.job_id}_{element}", i, element))
    return parts, placements


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


def resubmit(
    session: Session,
    placement: Placement,
    *,
    name: str,
    state: str,
    retried: Attempt | None = None,
    limits: Mapping[str, str] | None = None,
    rule: str = "grown",
    attempt: int = 1,
    resubmissions: int = 0,
) -> Placement:
    """Submit a call again, as a new Slurm job; the call's ``Job`` adopts the placement.

    The same job directory, payload and script are used, so it is the same
    call. Without ``retried``: an interrupted job Slurm could not requeue
    (preempted, node lost; ``resubmissions`` so far, counted against
    ``max_requeues``). With ``retried`` (the task's :class:`~slurm.Retry`):
    that attempt (number ``attempt``) ended in a state the Retry covers; it
    is recorded in the call's attempts file (which a restarted workflow and
    ``get_job`` follow) and the new job gets ``limits``, chosen by ``rule``.
    Either way the job keeps its current limits unless told. ``state`` is how
    the job ended. A retry that excludes a failed node and that sbatch refuses
    (every node of the partition excluded, or one the task asked for by name)
    is sent again without the new exclusion.
    """
    old_id, index = placement.job_id, placement.array_index
    new_limits = dict(placement.limits if limits is None else limits)
    flags = [f"--array={index}"] if index is not None else []
    if placement.element is not None:  # a packed call: its element, running this call alone
        flags = [f"--array={placement.element}", f"--export=ALL,{PACK_CALLS_VARIABLE}={index}"]
    # Command-line flags win over the script's #SBATCH lines.
    flags += [f"--{key.replace('_', '-')}={value}" for key, value in sorted(new_limits.items())]
    paths = JobPaths(placement.job_dir, index)
    transport = session.transport
    if retried is not None:
        if retried.state == "FAILED":  # retried on an exception: keep that result aside
            transport.run(["mv", "-f", paths.result, f"{paths.result}.{old_id}"], check=False)
        # The runner counts requeues per attempt: this line starts a new count.
        _append(session, paths.runs, retry_line(old_id, state))
    submitted = time.time()
    # The earlier job carries the same comment: a lost answer cannot be looked up.
    try:
        new_id = session.slurm.sbatch(paths.script, comment=None, flags=flags)
    except SubmissionError as exc:
        if rule != "exclude" or not exc.refused:
            raise
        logger.warning(
            "sbatch refused job %s's retry with --exclude=%s (%s): retrying on any node",
            old_id,
            new_limits.get("exclude"),
            exc,
        )
        kept = placement.limits.get("exclude")
        new_limits = {k: v for k, v in new_limits.items() if k != "exclude"}
        new_limits.update({"exclude": kept} if kept else {})
        rule = "same"
        flags = [f for f in flags if not f.startswith("--exclude=")]
        flags += [f"--exclude={kept}"] if kept else []
        submitted = time.time()
        new_id = session.slurm.sbatch(paths.script, comment=None, flags=flags)
    if index is not None:
        new_id = f"{new_id}_{index if placement.element is None else placement.element}"
    if retried is not None:
        line = retried.to_json(
            next_id=new_id, next_limits=new_limits, next_submitted=submitted, next_rule=rule
        )
        _append(session, paths.attempts, line + "\n")
        changed = {k: v for k, v in new_limits.items() if placement.limits.get(k) != v}
        grown = ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "the same limits"
        logger.warning(
            "job %s (%s) ended %s: retrying as job %s with %s (%s; attempt %d of %d)",
            old_id,
            name,
            state,
            new_id,
            grown,
            rule,
            attempt + 1,
            placement.retry.max_attempts if placement.retry else 0,
        )
    else:
        logger.warning(
            "job %s (%s) ended %s and Slurm did not requeue it (the cluster's PreemptMode or "
            "JobRequeue do not allow it): resubmitted the same call as job %s (%d of %d)",
            old_id,
            name,
            state,
            new_id,
            resubmissions + 1,
            placement.max_requeues,
        )
    session.store.record(new_id.split("_", 1)[0], placement.job_dir)
    return record.replace(
        placement,
        job_id=new_id,
        limits=new_limits,
        submitted=submitted,
        rule=rule if retried is not None else placement.rule,
    )


def _append(session: Session, path: str, text: str) -> None:
    """Add ``text`` to a small file of the job directory (read and rewritten: any transport)."""
    try:
        before = session.transport.read_text(path)
    except FileNotFoundError:
        before = ""
    session.transport.write_text(path, before + text)
