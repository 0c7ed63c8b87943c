"""``Cluster``: the one facade over a Slurm cluster.

A thin layer over a :class:`~slurm._client.session.Session`, which holds the
settings, the parts (transport, Slurm client, job store, tracker, each made
on first use) and what the client learns of the cluster. The facade adds
what users call: the context manager that makes task calls submit here,
``submit``/``batch``/``get_job``, callbacks, and the constructors from
argparse options and Slurmfiles. Submission itself is
:mod:`slurm._client.submission`; a call's :class:`~slurm.Job` adopts the
placement it returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from slurm._api.array import ArrayJob
from slurm._api.job import Job
from slurm._api.task import BoundTask, Task, enter_cluster, leave_cluster
from slurm._client.cache import ResultCache
from slurm._client.calls import submit_batch, submit_calls
from slurm._client.events import Submitted
from slurm._client.session import Session
from slurm._client.settings import ClusterSettings, choose_backend, settings_from_namespace
from slurm._client.settings import add_argparse_args as _add_argparse_args
from slurm._client.store import DEFAULT_JOB_BASE_DIR, JobStore, parse_job_dir
from slurm._client.tracker import Tracker
from slurm._slurm.client import SlurmClient
from slurm._slurm.options import check_task_options, merge_options
from slurm._slurm.pack import DEFAULT_PACK_TARGET, Packing, check_packing
from slurm._transport.base import Transport
from slurm._wire.journal import Journal
from slurm._wire.layout import JobPaths
from slurm._wire.payload import Call, WorkflowSpec
from slurm.callbacks.dispatch import Dispatcher, callbacks_from_specs, check_callbacks
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    import argparse
    from contextvars import Token

    from slurm._api.pool import WorkerPool
    from slurm._api.task import Submitter
    from slurm._client.prune import PruneReport
    from slurm._transport.sshauth import InteractiveAuth

logger = logging.getLogger(__name__)

R = TypeVar("R")
P = ParamSpec("P")

__all__ = ["DEFAULT_JOB_BASE_DIR", "Cluster"]


class Cluster:
    """A Slurm cluster reached locally or over SSH.

    Args:
        backend_type: ``"local"`` (this machine has ``sbatch``) or ``"ssh"``;
            by default ``"ssh"`` when a ``hostname`` is given, else ``"local"``.
        hostname: the login node, or a ``Host`` alias of the user's
            ``~/.ssh/config`` (whose aliases, ProxyJump and keys are read too).
        username: SSH login name (default: the config's ``User``, else yours).
        port: SSH port (default: the config's ``Port``, else 22).
        password: SSH password; prefer keys or the agent.
        key_filename: SSH private key file, offered first.
        job_base_dir: where job directories are created on the cluster
            (default ``~/.slurm-sdk/jobs``); it must be on a filesystem the
            compute nodes share.
        default_partition: the partition of every job that names none.
        default_account: the account of every job that names none.
        default_options: more sbatch defaults (lowest precedence).
        python: the interpreter that runs jobs on the cluster (default: this
            interpreter for the local backend, ``python3`` over SSH).
        packaging: how code reaches the cluster (see :mod:`slurm._client.packaging`).
        callbacks: :class:`slurm.callbacks.BaseCallback` objects (or any object with
            some of its hooks): they hear packaging, submission, status and
            completion here, and their node-side hooks run in the jobs
            (see :mod:`slurm.callbacks`). ``cluster.callbacks`` is the live list.
        accept_new_host_key: trust and record an SSH host key seen for the first time.
        host_key_policy: the earlier SDK's spelling, for a host never seen before:
            ``"reject"`` (the default), ``"warn"`` (accept its key for this
            connection only, with a warning naming the fingerprint) or ``"auto"``
            (``accept_new_host_key=True``). A changed key is always refused.
        interactive_auth: answers the SSH server's keyboard-interactive prompts
            (a one-time code after the key): a callable taking a
            :class:`slurm.AuthPrompt` and returning the answer. Default: ask on
            the terminal. Asked once; the connection is then reused.
        max_array_size: split ``map`` into arrays of at most this many elements
            (default: the cluster's ``MaxArraySize``).
        default_packaging: the earlier SDK's name of ``packaging`` (e.g. ``"container"``);
            its ``default_packaging_dockerfile=``, ``default_packaging_registry=``, ...
            are the options ``packaging_dockerfile``, ... of every task
            (see :mod:`slurm._client.packaging.container`).

    Every setting is declared once in :mod:`slurm._client.settings`; the same names
    work as keyword arguments, command-line options and Slurmfile keys.

    Use it as a context manager: calling a task inside the block submits it,
    and leaving the outermost block closes what the cluster opened (the SSH
    connection, the tracker's thread, its done-marker directory)::

        with Cluster(backend_type="local", default_partition="debug") as cluster:
            job = my_task(1, 2)
            print(job.get_result())

    Raises:
        ConfigurationError: on unknown or invalid settings, or an incomplete SSH setup.
    """

    def __init__(
        self,
        backend_type: str | None = None,
        *,
        hostname: str | None = None,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        job_base_dir: str | None = None,
        default_partition: str | None = None,
        default_account: str | None = None,
        default_options: Mapping[str, Any] | None = None,
        python: str | None = None,
        callbacks: Sequence[object] | None = None,
        packaging: Any = None,
        accept_new_host_key: bool = False,
        host_key_policy: str | None = None,
        transport: Transport | None = None,
        backend: str | None = None,
        max_array_size: int | None = None,
        interactive_auth: InteractiveAuth | None = None,
        default_packaging: Any = None,
        _index_dir: str | None = None,
        _journal: Journal | None = None,
        _workflow: tuple[str, str] | None = None,
        **packaging_defaults: Any,
    ) -> None:
        from slurm._client.packaging.images import earlier_spellings

        packaging, default_options = earlier_spellings(
            packaging, default_packaging, default_options, packaging_defaults
        )
        chosen = choose_backend(backend or backend_type, hostname)
        settings = ClusterSettings.from_mapping(
            {
                "backend": chosen,
                "hostname": hostname,
                "username": username,
                "port": port,
                "password": password,
                "key_filename": key_filename,
                "job_base_dir": job_base_dir,
                "default_partition": default_partition,
                "default_account": default_account,
                "default_options": default_options,
                "python": python,
                "packaging": packaging,
                "accept_new_host_key": accept_new_host_key,
                "host_key_policy": host_key_policy,
                "max_array_size": max_array_size,
            },
            source="Cluster()",
        )
        if settings.backend == "ssh" and not hostname and transport is None:
            raise ConfigurationError(
                "The ssh backend needs a hostname: Cluster(backend_type='ssh', "
                "hostname='login.example.org') or --hostname on the command line."
            )
        defaults = merge_options(default_options)
        check_task_options(defaults, where="Cluster(default_options=...)")
        if default_partition:
            defaults["partition"] = default_partition
        if default_account:
            defaults["account"] = default_account
        #: The settings, the parts and the state of this cluster.
        self.session = Session(
            settings,
            default_options=defaults,
            transport=transport,
            interactive_auth=interactive_auth,
            index_dir=_index_dir,
            journal=_journal,
        )
        self.callbacks: list[Any] = list(callbacks or [])
        check_callbacks(self.callbacks)
        # The callbacks hear the session's event stream; the session asks for the
        # ones that travel with each job (see slurm.callbacks.dispatch).
        dispatcher = Dispatcher(self, workflow=_workflow)
        self.session.events.listen(dispatcher)
        self.session.runner_callbacks = dispatcher.runner_callbacks
        self._tokens: list[Token[Submitter | None]] = []
        self._batch: list[tuple[Task[Any, Any], Call, Job[Any]]] | None = None

    # --- settings -----------------------------------------------------------------
    @property
    def settings(self) -> ClusterSettings:
        return self.session.settings

    @property
    def default_options(self) -> dict[str, Any]:
        """The sbatch and SDK defaults of every task submitted here."""
        return self.session.default_options

    @property
    def journal(self) -> Journal | None:
        """A running workflow's journal (on its node), else None."""
        return self.session.journal

    @property
    def backend_type(self) -> str:
        return self.session.backend_type

    @property
    def hostname(self) -> str | None:
        return self.session.hostname

    @property
    def username(self) -> str | None:
        return self.settings.username

    @property
    def port(self) -> int | None:
        return self.settings.port

    @property
    def packaging(self) -> Any:
        return self.session.packaging

    @property
    def default_partition(self) -> str | None:
        return self.session.default_partition

    @property
    def default_account(self) -> str | None:
        value = self.default_options.get("account")
        return str(value) if value else None

    # --- other constructors ---------------------------------------------------------
    @staticmethod
    def add_argparse_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the standard cluster options (``--hostname``, ``--backend``, ...) to ``parser``."""
        return _add_argparse_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **kwargs: Any) -> Cluster:
        """Build a cluster from the options added by :meth:`add_argparse_args`.

        Keyword arguments (``callbacks=...``, or any setting) win over the options.
        """
        settings = settings_from_namespace(vars(args))
        settings.update(kwargs)
        return cls(settings.pop("backend", None), **settings)

    @classmethod
    def from_env(
        cls,
        slurmfile_path_or_env: str | os.PathLike[str] | None = None,
        *,
        env: str | None = None,
        path: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        callbacks: Sequence[object] | None = None,
        **more: Any,
    ) -> Cluster:
        """A cluster from an environment of a Slurmfile (see :mod:`slurm._client.config`).

        The first argument is the Slurmfile's path when it looks like one (an
        existing file, or text with ``/``, starting with ``.`` or ``~``, or ending in
        ``.toml``), else an environment's name, as in the earlier SDK. ``env``
        (default ``$SLURM_ENV``, else ``default``) and ``path`` (default
        ``$SLURMFILE`` or the nearest ``Slurmfile``/``Slurmfile.toml``) say it
        by name. ``overrides`` (a dict, the earlier spelling; its
        ``backend_config`` table is spread out) and keyword arguments win over the
        file; ``callbacks=`` over its ``callbacks`` (``[]``: none).

        Example::

            Cluster.from_env("production")
            Cluster.from_env("configs/Slurmfile.toml", env="dev", overrides={"username": "ann"})

        Raises:
            SlurmfileNotFoundError, SlurmfileInvalidError, SlurmfileEnvironmentNotFoundError:
                no file, a bad file or an unknown key, no such environment.
            ConfigurationError: a path given twice.
        """
        from slurm._client.config import load_environment

        if slurmfile_path_or_env is not None:
            first = os.fspath(slurmfile_path_or_env)
            if _looks_like_path(first):
                if path is not None and os.fspath(path) != first:
                    raise ConfigurationError(
                        f"Cluster.from_env({first!r}, path={os.fspath(path)!r}): two "
                        "Slurmfiles; give one."
                    )
                path = first
            elif env is None:  # env= wins, as in the earlier SDK
                env = first
        given = dict(overrides or {})
        given.update(given.pop("backend_config", None) or {})
        given.update(more)
        if callbacks is not None:
            given.setdefault("callbacks", list(callbacks))
        settings, file = load_environment(path, env)
        specs = settings.pop("callbacks", None)
        settings.update(given)
        if specs is not None and "callbacks" not in given:
            settings["callbacks"] = callbacks_from_specs(specs, where=f"Slurmfile {file}")
        backend = settings.pop("backend", None) or settings.pop("backend_type", None)
        return cls(backend, **settings)

    @classmethod
    def from_file(cls, path: str, env: str | None = None, **overrides: Any) -> Cluster:
        """A cluster from the Slurmfile at ``path`` (environment ``env``, or ``default``)."""
        return cls.from_env(path=path, env=env, **overrides)

    @classmethod
    def for_workflow(
        cls,
        spec: WorkflowSpec,
        *,
        job_dir: str,
        callbacks: Sequence[Any] = (),
        workflow_job_id: str = "",
    ) -> Cluster:
        """The cluster a running workflow submits its tasks to, on its own node.

        Slurm commands run locally; the children's directories live under the
        workflow's directory and are recorded in the submitter's index; the
        workflow's journal lets a restarted workflow reattach to them. The
        ``callbacks`` that travelled with the workflow hear its tasks' events
        (``on_workflow_task_submitted_ctx`` among them) and travel on with them.
        """
        from slurm._client.packaging.images import seed_images

        cluster = cls(
            "local",
            job_base_dir=f"{job_dir}/tasks",
            default_options=spec.default_options,
            python=sys.executable,
            callbacks=callbacks,
            _index_dir=spec.index_dir,
            _journal=Journal(JobPaths(job_dir).journal),
            _workflow=(workflow_job_id, job_dir),
        )
        seed_images(cluster.session, dict(getattr(spec, "images", ())))
        return cluster

    def workflow_spec(self, defaults: Mapping[str, Any] | None = None) -> WorkflowSpec:
        """What a workflow submitted from here needs to make its own cluster: the
        defaults of its tasks (this cluster's, then ``defaults``) and the images built."""
        return self.session.workflow_spec(defaults)

    # --- context manager ----------------------------------------------------------
    def __enter__(self) -> Cluster:
        self._tokens.append(enter_cluster(self))
        return self

    def __exit__(self, *exc: object) -> None:
        leave_cluster(self._tokens.pop())
        if not self._tokens:
            self.close()

    def close(self) -> None:
        """Stop tracking, remove the done-marker directory and close the connection.

        Jobs keep running on Slurm. Safe to call twice; a closed cluster opens
        again when it is used.
        """
        self.session.close()

    def __repr__(self) -> str:
        where = self.hostname or "localhost"
        return f"<Cluster {self.backend_type} {where}>"

    # --- the parts ----------------------------------------------------------------
    @property
    def transport(self) -> Transport:
        """Where commands run and files live: local, or one SSH connection."""
        return self.session.transport

    @property
    def slurm(self) -> SlurmClient:
        """The client of Slurm's commands on this cluster."""
        return self.session.slurm

    @property
    def store(self) -> JobStore:
        """The job directories and the index under the job base directory."""
        return self.session.store

    @property
    def tracker(self) -> Tracker:
        """The one watcher of every job of this cluster."""
        return self.session.tracker

    @property
    def python(self) -> str:
        """The interpreter that runs jobs on the cluster (see :mod:`slurm._client.packaging`).

        ``python=`` as given; else this interpreter (local backend); else, over
        SSH, an environment built from wheels of your project and the SDK. The
        first use runs the preflight and may build and ship that environment.

        Raises:
            ConfigurationError: The preflight found problems or the versions differ.
        """
        from slurm._client.packaging import interpreter_for

        return interpreter_for(self.session)

    @property
    def base_dir(self) -> str:
        return self.store.base_dir

    @property
    def index_dir(self) -> str:
        return self.store.index_dir

    @property
    def done_dir(self) -> str:
        return self.store.done_dir

    @property
    def max_array_size(self) -> int:
        """``max_array_size=`` as given, else Slurm's ``MaxArraySize``."""
        return self.session.max_array_size

    # --- submission -------------------------------------------------------------------
    @overload
    def submit(self, task: Task[P, R], **overrides: Any) -> BoundTask[P, R]: ...

    @overload
    def submit(self, task: Callable[P, R], **overrides: Any) -> BoundTask[P, R]: ...

    def submit(self, task: Task[Any, R] | Callable[..., R], **overrides: Any) -> BoundTask[Any, R]:
        """A callable that submits ``task`` with these sbatch overrides and returns its Job.

        ``cluster.submit(train, partition="gpu")(epoch=1)`` works without ``with cluster:``;
        ``cluster.submit(flow).with_dependencies([child])(data)`` builds ``child``'s
        image first (:meth:`Task.with_dependencies`).
        """
        chosen = task if isinstance(task, Task) else Task(task)
        if overrides:
            chosen = chosen.with_options(**overrides)
        return BoundTask(self, chosen)

    def options_for(self, task: Task[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(sbatch options, SDK options) of ``task`` on this cluster, defaults merged in."""
        return self.session.options_for(task.name, task.options)

    @contextlib.contextmanager
    def batch(
        self,
        *,
        pack: int | str | None = None,
        pack_parallel: int = 1,
        pack_target: str | int = DEFAULT_PACK_TARGET,
    ) -> Iterator[Cluster]:
        """Collect the task calls made inside the block; submit them as arrays when it ends.

        Calls of the same task with the same options and dependencies become
        one Slurm array (several, past ``MaxArraySize``), one payload per
        element: one ``sbatch`` for a hundred calls instead of a hundred.
        Each call still returns its own ordinary :class:`Job` (results,
        exceptions, dependencies, cancellation and ``get_job`` work per
        element); it gets its id when the block ends, so wait for it or pass
        it to another task after the block. When the block raises, nothing is
        submitted. Task calls inside the block go to this cluster, as inside
        ``with cluster:``; unlike that block, leaving it closes nothing.

        ``pack``, ``pack_parallel`` and ``pack_target`` pack each array as
        :meth:`Task.map <slurm.Task.map>` does (``pack=20``: twenty calls per
        element, one Python process for them, each call its own ``Job``); bad
        values are refused before the block runs.

        Example::

            with cluster.batch(pack=10):
                jobs = [simulate(seed) for seed in range(100)]
            results = [job.get_result() for job in jobs]
        """
        packing = None
        if pack is not None:
            packing = check_packing("cluster.batch()", pack, pack_parallel, pack_target)
        if self._batch is not None:
            raise ConfigurationError("cluster.batch() blocks do not nest; end the first one.")
        self._batch = []
        token = enter_cluster(self)  # calls in the block come here; leaving it closes nothing
        try:
            yield self
            collected, self._batch = self._batch, None
            placements = submit_batch(
                self.session, [(task, call) for task, call, _ in collected], packing
            )
            for (_, _, job), placement in zip(collected, placements, strict=True):
                job.adopt(placement)
            for (task, _, job), placement in zip(collected, placements, strict=True):
                if placement.cached is None:  # one answered from the cache was not submitted
                    self._announce(job, task, job.id, job.job_dir, placement.submitted is None)
        finally:
            leave_cluster(token)
            self._batch = None

    def pool(
        self,
        workers: int,
        *,
        min_workers: int = 0,
        idle_timeout: float = 60.0,
        lease: float = 30.0,
        **sbatch: Any,
    ) -> WorkerPool:
        """A block whose task calls and maps run in ``workers`` worker jobs, not one job each.

        Workers are Slurm jobs (an array, submitted with ``sbatch`` options such as
        ``partition=``, ``time=``, ``cpus_per_task=``, ``mem=``) that take calls from a
        queue directory under the job base directory: no server, no connection
        from the nodes back to this process. A call made after the workers started
        costs no Slurm command at all. Each call keeps its own :class:`Job` (result,
        exception with traceback, its own stdout and stderr, usage). A worker that is
        cancelled, preempted or killed leaves its call to another worker (it is
        given back at once, or once its ``lease`` of seconds expires); the call still
        completes once, and ``job.attempts`` names the workers that lost it. The
        pool starts up to ``workers`` workers while calls wait; a worker with
        nothing to do for ``idle_timeout`` seconds exits (``min_workers`` stay).
        Leaving the block waits for its calls, then lets the workers go.

        Example::

            with cluster.pool(workers=4, time="00:30:00") as pool:
                jobs = [simulate(seed) for seed in range(1000)]
            results = [job.get_result() for job in jobs]

        Raises:
            ConfigurationError: ``workers`` below 1, another bad count or timing, an
                option Slurm would refuse (asked with ``sbatch --test-only``), a pool
                already open; inside the block, a call a worker cannot run (a
                workflow, ``retry=``, several ranks, waiting for unfinished jobs).
        """
        from slurm._api.pool import WorkerPool

        if self._batch is not None:
            raise ConfigurationError(
                "cluster.pool() cannot open inside cluster.batch(); end the batch block first."
            )
        return WorkerPool(
            self,
            workers,
            min_workers=min_workers,
            idle_timeout=idle_timeout,
            lease=lease,
            options=sbatch,
        )

    def submit_call(
        self, task: Task[Any, R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Job[R]:
        """Submit one call of ``task`` (what calling a task in ``with cluster:`` does).

        Inside ``cluster.batch()`` the call is collected and submitted when the block ends.
        """
        task.bind_check(args, kwargs)
        job: Job[R] = Job(self.session, "", job_dir="", name=task.name)
        if self._batch is not None:
            self._batch.append((task, Call(tuple(args), dict(kwargs)), job))
            return job
        _, (placement,) = submit_calls(
            self.session, task, [Call(tuple(args), dict(kwargs))], array=False
        )
        job.adopt(placement)
        if placement.cached is None:  # one answered from the cache was not submitted
            self._announce(job, task, job.id, job.job_dir, placement.submitted is None)
        return job

    def submit_map(
        self,
        task: Task[Any, R],
        items: Sequence[Any],
        max_concurrent: int | None = None,
        packing: Packing | None = None,
    ) -> ArrayJob[R]:
        """Submit one element per item as a Slurm array (what ``task.map`` does); with
        ``packing``, several calls per element (``task.map(items, pack=K)``)."""
        if not items:
            raise ConfigurationError(f"{task.name}.map() got no items; nothing was submitted.")
        calls: list[Call] = []
        for item in items:
            if isinstance(item, dict):
                call = Call((), dict(item))
            elif isinstance(item, tuple):
                call = Call(item, {})
            else:
                call = Call((item,), {})
            task.bind_check(call.args, call.kwargs)
            calls.append(call)
        parts, placements = submit_calls(
            self.session, task, calls, array=True, max_concurrent=max_concurrent, packing=packing
        )
        jobs: list[Job[R]] = []
        for i, placement in enumerate(placements):
            job: Job[R] = Job(self.session, "", job_dir="", name=f"{task.name}[{i}]")
            job.adopt(placement)
            jobs.append(job)
        array: ArrayJob[R] = ArrayJob(self.session, parts, jobs, name=task.name)
        ran = [p for p in placements if p.cached is None]  # the others came from the cache
        if parts:
            self._announce(array, task, parts[0][0], parts[0][1], ran[0].submitted is None)
        return array

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel these jobs (no error for jobs that already ended)."""
        self.slurm.cancel(job_ids)

    def _announce(
        self, job: Any, task: Task[Any, Any], job_id: str, job_dir: str, reattached: bool
    ) -> None:
        """``job`` (a Job or an ArrayJob) has its id: say so on the event stream."""
        if not self.callbacks or not _has_logger(self.callbacks):
            logger.info("submitted %s as job %s (%s)", job.name, job.id, job.job_dir)
        self.session.events.emit(
            Submitted(job, task, job_id, job_dir, self.backend_type, reattached=reattached)
        )

    # --- reattaching -------------------------------------------------------------------
    def get_job(self, job_id: str | int, *, track: bool = True) -> Job[Any]:
        """Reattach to a job submitted earlier (from any process), even after Slurm purged it.

        A call of a packed array is named by its element's id and its index,
        ``1240_3+31`` (its :attr:`Job.done_marker`).

        ``track=False`` gives a Job for its files only (logs, script, result)
        without starting the tracker.

        Raises:
            ConfigurationError: not a job id, or no job of the SDK under this job base dir.
        """
        job_id, _, call = str(job_id).partition("+")  # a packed call: ARRAY_ELEMENT+CALL
        job_dir = self.store.job_dir_of(job_id)
        name, _ = parse_job_dir(job_dir)
        _, _, index = job_id.partition("_")
        if call.isdigit() and index:
            job: Job[Any] = Job(
                self.session,
                job_id,
                job_dir=job_dir,
                name=f"{name}[{call}]",
                array_index=int(call),
                element=int(index),
            )
        elif index:
            job = Job(
                self.session,
                job_id,
                job_dir=job_dir,
                name=f"{name}[{index}]",
                array_index=int(index),
            )
        else:
            job = Job(self.session, job_id, job_dir=job_dir, name=name)
        job.reload_attempts()
        if track:
            self.tracker.watch(job)
        return job

    def get_jobs(self) -> list[Job[Any]]:
        """The SDK's jobs of yours that Slurm has queued or running now, as Jobs
        (not those that ended, though squeue lists them for a while).

        One ``squeue --me`` and one listing of the index, whatever the number of
        jobs; a queued job this SDK did not submit under this job base directory
        (a plain ``sbatch``, another base directory) has no result to wait for and
        is left out (:meth:`get_queue` lists every job of yours). A pending array's
        elements are listed one by one.

        Example::

            running = [job for job in cluster.get_jobs() if job.is_running()]
        """
        from slurm._slurm.commands import JobState, expand_array_ids

        ours = set(self.store.job_ids())
        jobs = []
        for row in self.get_queue():
            if JobState.parse(row["STATE"]).is_terminal:  # ended, still listed (MinJobAge)
                continue
            for job_id in expand_array_ids(row["JOBID"]):
                if job_id.split("_", 1)[0] in ours:
                    jobs.append(self.get_job(job_id))
        return jobs

    def get_queue(self) -> list[dict[str, str]]:
        """Your jobs in Slurm's queue (``squeue --me``), one dict each, with the earlier
        SDK's keys: ``JOBID``, ``NAME``, ``STATE``, ``USER``, ``START_TIME``, ``TIME``,
        ``TIME_LIMIT``, ``PARTITION``, ``ACCOUNT``, ``NODES``, ``REASON`` (and ``NODELIST``).

        Only your own jobs (the earlier SDK listed every user's).

        Raises:
            CommandError: squeue failed (the earlier SDK answered an empty list).
        """
        from slurm._slurm.overview import parse_queue, queue_argv

        return parse_queue(self.slurm.run(queue_argv()).stdout)

    def get_cluster_info(self) -> dict[str, Any]:
        """The partitions, from ``sinfo``: ``{"partitions": [{"PARTITION", "AVAIL",
        "TIMELIMIT", "NODES", "STATE", "CPUS", "DEFAULT", "NODELIST"}, ...]}``, one
        entry per partition and node state (``CPUS`` is allocated/idle/other/total).

        Raises:
            CommandError: sinfo failed.
        """
        from slurm._slurm.overview import parse_partitions, sinfo_argv

        return {"partitions": parse_partitions(self.slurm.run(sinfo_argv()).stdout)}

    @property
    def cache(self) -> ResultCache:
        """The results of ``cache=True`` calls kept under the job base directory: ``list()``,
        ``show(key)``, ``clear(...)`` (see :class:`slurm.inspect.ResultCache`)."""
        return ResultCache(self.session)

    # --- diagnostics -----------------------------------------------------------------
    def prune(
        self,
        *,
        older_than_days: float,
        env_unused_days: float | None = None,
        cache_max_bytes: int | None = None,
        dry_run: bool = False,
        images_unused_days: float | None = None,
    ) -> PruneReport:
        """Remove old job directories, unused environments, wheels and ``.sif`` images;
        trim the local cache.

        See :func:`slurm._client.prune.prune` (it returns a
        :class:`~slurm._client.prune.PruneReport`); ``dry_run=True`` only lists what would go.
        """
        from slurm._client.prune import prune

        return prune(
            self.session,
            older_than_days=older_than_days,
            env_unused_days=env_unused_days,
            cache_max_bytes=cache_max_bytes,
            dry_run=dry_run,
            images_unused_days=images_unused_days,
        )

    def diagnose(self) -> dict[str, Any]:
        """Check the cluster can be used; every finding, as a dict (never raises for one).

        What ``slurm doctor`` checks (see :mod:`slurm._client.doctor`): connection and
        login, Slurm commands, controller and accounting, partitions and their
        limits, the Python that runs jobs and how code is shipped, the job base
        directory (writable, owner, free space) and clock skew.
        ``result["ok"]`` is False when something blocks submission;
        ``result["checks"]`` lists every check (name, status, detail, fix);
        ``result["problems"]`` the blocking ones, ``result["python"]`` the interpreter.
        """
        from slurm._client.doctor import diagnose

        return diagnose(self.session).to_dict()


def _looks_like_path(text: str) -> bool:
    """The first argument of ``from_env`` names a file rather than an environment."""
    return (
        os.path.isfile(os.path.expanduser(text))
        or "/" in text
        or text.startswith((".", "~"))
        or text.endswith(".toml")
    )


def _has_logger(callbacks: Sequence[Any]) -> bool:
    """Whether one of ``callbacks`` is a LoggerCallback (which says "submitted" itself)."""
    from slurm.callbacks.callbacks import LoggerCallback

    return any(isinstance(c, LoggerCallback) for c in callbacks)
