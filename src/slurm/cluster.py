"""``Cluster``: the one facade over a Slurm cluster.

It owns the defaults (partition, account, options), the layout of job
directories, packaging of calls into payloads, submission through ``sbatch``
and the single job tracker. Where commands run (locally or over SSH) is the
transport's business.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from slurm import context
from slurm.errors import ConfigurationError, SlurmError
from slurm.job import ArrayJob, Job
from slurm.journal import Journal
from slurm.options import (
    merge_options,
    normalize_options,
    split_options,
)
from slurm.slurmcmd import (
    parse_show_config,
    scancel_argv,
    scontrol_show_config_argv,
)
from slurm.submission import resubmit, submit
from slurm.task import Task
from slurm.tracker import Tracker
from slurm.transport.base import CommandResult, Transport

if TYPE_CHECKING:
    from slurm.callbacks.callbacks import BaseCallback
    from slurm.transport.sshauth import InteractiveAuth

logger = logging.getLogger(__name__)

R = TypeVar("R")

__all__ = ["Cluster"]

DEFAULT_JOB_BASE_DIR = "~/.slurm-sdk/jobs"
_INHERITED_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SQUEUE_", "SACCT_", "SRUN_")
_KEEP_INHERITED = frozenset({"SLURM_CONF"})
_BACKENDS = ("local", "ssh")


class Cluster:
    """A Slurm cluster reached locally or over SSH.

    Args:
        backend_type: ``"local"`` (this machine has ``sbatch``) or ``"ssh"``.
        hostname, username, port, password, key_filename: SSH settings; the
            user's ``~/.ssh/config`` (aliases, ProxyJump, keys) is read too.
        job_base_dir: where job directories are created on the cluster
            (default ``~/.slurm-sdk/jobs``); it must be on a filesystem the
            compute nodes share.
        default_partition, default_account: defaults for every job.
        default_options: more sbatch defaults (lowest precedence).
        python: the interpreter that runs jobs on the cluster (default: this
            interpreter for the local backend, ``python3`` over SSH).
        callbacks: objects with ``on_submit(job)`` etc. (see ``slurm.callbacks``).
        accept_new_host_key: trust and record an SSH host key seen for the first time.
        interactive_auth: answers the SSH server's keyboard-interactive prompts
            (a one-time code after the key): a callable taking a
            :class:`slurm.AuthPrompt` and returning the answer. Default: ask on
            the terminal. Asked once; the connection is then reused.
        max_array_size: split ``map`` into arrays of at most this many elements
            (default: the cluster's ``MaxArraySize``).

    Use it as a context manager so that calling a task submits it::

        with Cluster(backend_type="local", default_partition="debug") as cluster:
            job = my_task(1, 2)
            print(job.get_result())

    Raises:
        ConfigurationError: on unknown arguments or an incomplete SSH setup.
    """

    def __init__(
        self,
        backend_type: str = "local",
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
        callbacks: Sequence[BaseCallback] | None = None,
        packaging: Any = None,
        accept_new_host_key: bool = False,
        transport: Transport | None = None,
        backend: str | None = None,
        max_array_size: int | None = None,
        interactive_auth: InteractiveAuth | None = None,
    ) -> None:
        backend_type = (backend or backend_type or "local").lower()
        if backend_type not in _BACKENDS:
            raise ConfigurationError(
                f"Unknown backend {backend_type!r}: use 'local' (on the cluster, sbatch on PATH) "
                "or 'ssh' (with hostname=...)."
            )
        if backend_type == "ssh" and not hostname and transport is None:
            raise ConfigurationError(
                "The ssh backend needs a hostname: Cluster(backend_type='ssh', "
                "hostname='login.example.org') or --hostname on the command line."
            )
        self.backend_type = backend_type
        self.hostname = hostname
        self.username = username
        self.port = port
        self.packaging = packaging
        defaults = dict(normalize_options(default_options or {}))
        if default_partition:
            defaults["partition"] = default_partition
        if default_account:
            defaults["account"] = default_account
        self.default_options = defaults
        self.callbacks = list(callbacks or [])
        self._python = python
        self._job_base_dir = job_base_dir or DEFAULT_JOB_BASE_DIR
        self._base_dir: str | None = None
        self._index_dir: str | None = None
        self._transport = transport
        self._password = password
        self._key_filename = key_filename
        self._accept_new_host_key = accept_new_host_key
        self._interactive_auth = interactive_auth
        self.tracker = Tracker(self)
        self._journal: Journal | None = None
        self._layout_ready = False
        self._session = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._max_array_size: int | None = max_array_size
        self._tokens: list[object] = []

    # --- construction helpers -----------------------------------------------------
    @property
    def default_partition(self) -> str | None:
        value = self.default_options.get("partition")
        return str(value) if value else None

    @property
    def default_account(self) -> str | None:
        value = self.default_options.get("account")
        return str(value) if value else None

    @staticmethod
    def add_argparse_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the standard cluster options (``--hostname``, ``--backend``, ...) to ``parser``."""
        group = parser.add_argument_group("cluster")
        group.add_argument(
            "--backend",
            choices=_BACKENDS,
            default=None,
            help="ssh (default when --hostname is given) or local",
        )
        group.add_argument("--hostname", help="login node or ~/.ssh/config alias (ssh backend)")
        group.add_argument("--port", type=int, help="SSH port")
        group.add_argument("--username", help="SSH user name")
        group.add_argument("--password", help="SSH password (prefer keys or the agent)")
        group.add_argument("--key-file", dest="key_filename", help="SSH private key file")
        group.add_argument(
            "--accept-new-host-key",
            action="store_true",
            help="trust an SSH host key seen for the first time",
        )
        group.add_argument(
            "--job-base-dir", help=f"job directories (default {DEFAULT_JOB_BASE_DIR})"
        )
        group.add_argument("--account", help="default Slurm account")
        group.add_argument("--partition", help="default Slurm partition")
        group.add_argument("--python", help="Python interpreter on the cluster")
        group.add_argument("--packaging", help="how code reaches the cluster")
        return parser

    @classmethod
    def from_args(cls, args: argparse.Namespace, **kwargs: Any) -> Cluster:
        """Build a cluster from the options added by :meth:`add_argparse_args`."""
        get = vars(args).get
        backend = get("backend") or ("ssh" if get("hostname") else "local")
        settings: dict[str, Any] = {
            "hostname": get("hostname"),
            "port": get("port"),
            "username": get("username"),
            "password": get("password"),
            "key_filename": get("key_filename"),
            "accept_new_host_key": bool(get("accept_new_host_key")),
            "job_base_dir": get("job_base_dir"),
            "default_account": get("account"),
            "default_partition": get("partition"),
            "python": get("python"),
            "packaging": get("packaging"),
        }
        settings.update(kwargs)
        return cls(backend, **settings)

    @classmethod
    def from_env(
        cls, env: str | None = None, *, path: str | None = None, **overrides: Any
    ) -> Cluster:
        """A cluster from an environment of a Slurmfile (see :mod:`slurm.config`).

        ``env`` defaults to ``$SLURM_ENV`` or ``default``; the file to
        ``$SLURMFILE`` or the nearest ``Slurmfile``/``Slurmfile.toml``.
        Keyword ``overrides`` win over the file.
        """
        from slurm.config import load_environment

        settings, _ = load_environment(path, env)
        settings.update(overrides)
        backend = settings.pop("backend_type", "local")
        return cls(backend, **settings)

    @classmethod
    def from_file(cls, path: str, env: str | None = None, **overrides: Any) -> Cluster:
        """A cluster from the Slurmfile at ``path`` (environment ``env``, or ``default``)."""
        return cls.from_env(env, path=path, **overrides)

    @classmethod
    def _for_workflow(cls, spec: Mapping[str, Any], *, job_dir: str) -> Cluster:
        """The cluster a workflow uses on its node: local commands, children under job_dir."""
        cluster = cls(
            "local",
            job_base_dir=f"{job_dir}/tasks",
            default_options=spec.get("default_options"),
            python=sys.executable,
        )
        cluster._index_dir = spec.get("index_dir")
        cluster._journal = Journal(f"{job_dir}/journal.jsonl")
        return cluster

    def _workflow_spec(self) -> dict[str, Any]:
        return {"default_options": dict(self.default_options), "index_dir": self.index_dir}

    # --- context manager ----------------------------------------------------------
    def __enter__(self) -> Cluster:
        self._tokens.append(context.push(self))
        return self

    def __exit__(self, *exc: object) -> None:
        context.pop(self._tokens.pop())

    def close(self) -> None:
        """Stop tracking and close the connection. Jobs keep running on Slurm."""
        self.tracker.stop()
        if self._transport is not None:
            if self._layout_ready:
                with contextlib.suppress(SlurmError):
                    self._run(["rm", "-rf", "--", self.done_dir], check=False)
            self._transport.close()

    def __repr__(self) -> str:
        where = self.hostname or "localhost"
        return f"<Cluster {self.backend_type} {where}>"

    # --- where things live --------------------------------------------------------
    @property
    def transport(self) -> Transport:
        if self._transport is None:
            if self.backend_type == "local":
                from slurm.transport.local import LocalTransport

                self._transport = LocalTransport()
            else:
                from slurm.transport.ssh import SSHTransport

                self._transport = SSHTransport(
                    str(self.hostname),
                    username=self.username,
                    port=self.port,
                    password=self._password,
                    key_filename=self._key_filename,
                    accept_new_host_key=self._accept_new_host_key,
                    interactive_auth=self._interactive_auth,
                )
        return self._transport

    @property
    def python(self) -> str:
        """The interpreter that runs jobs on the cluster (see :mod:`slurm.packaging`).

        ``python=`` as given; else this interpreter (local backend); else, over
        SSH, an environment built from wheels of your project and the SDK. The
        first use runs the preflight and may build and ship that environment.

        Raises:
            ConfigurationError: The preflight found problems or the versions differ.
        """
        from slurm.packaging import interpreter_for

        return interpreter_for(self)

    @property
    def base_dir(self) -> str:
        if self._base_dir is None:
            self._base_dir = self.transport.expand_path(self._job_base_dir).rstrip("/")
        return self._base_dir

    @property
    def index_dir(self) -> str:
        if self._index_dir is None:
            self._index_dir = f"{self.base_dir}/.index"
        return self._index_dir

    @property
    def max_array_size(self) -> int:
        """Slurm's MaxArraySize, read once from ``scontrol show config``."""
        if self._max_array_size is None:
            result = self._run(scontrol_show_config_argv(), check=False)
            value = parse_show_config(result.stdout).get("MaxArraySize", "")
            self._max_array_size = int(value) if value.isdigit() and int(value) > 0 else 1001
        return self._max_array_size

    @property
    def done_dir(self) -> str:
        """Where this cluster's runners drop a marker per finished job.

        One directory per ``Cluster`` object, so one listing finds exactly the
        markers of the jobs it watches; removed again by :meth:`close`.
        """
        return f"{self.index_dir.rsplit('/', 1)[0]}/.done/{self._session}"

    def _ensure_layout(self) -> None:
        """The index and done-marker directories, created once (before the first sbatch)."""
        if not self._layout_ready:
            self.transport.mkdir(self.index_dir, mode=0o700)
            self.transport.mkdir(self.done_dir, mode=0o700)
            self._layout_ready = True

    def _new_job_dir(self, name: str) -> str:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "job"
        path = f"{self.base_dir}/{safe}-{stamp}-{secrets.token_hex(3)}"
        self.transport.mkdir(path, mode=0o700)
        return path

    # --- running commands ------------------------------------------------------------
    def _run(self, argv: Sequence[str], *, check: bool = True, retry: bool = True) -> CommandResult:
        """Run a Slurm command on the cluster, without options inherited from a parent job."""
        argv = list(argv)
        if self.backend_type == "local":
            inherited = sorted(
                name
                for name in os.environ
                if name.startswith(_INHERITED_PREFIXES) and name not in _KEEP_INHERITED
            )
            if inherited:
                argv = ["env", *(f"-u{name}" for name in inherited), *argv]
        return self.transport.run(argv, check=check, retry=retry)

    def _cancel(self, job_ids: Sequence[str]) -> None:
        self._run(scancel_argv(list(job_ids)), check=False)

    # --- submission -------------------------------------------------------------------
    def submit(
        self, task: Task[Any, R] | Callable[..., R], **overrides: Any
    ) -> Callable[..., Job[R]]:
        """A callable that submits ``task`` with these sbatch overrides and returns its Job.

        ``cluster.submit(train, partition="gpu")(epoch=1)`` works without ``with cluster:``.
        """
        chosen = task if isinstance(task, Task) else Task(task)
        if overrides:
            chosen = chosen.with_options(**overrides)

        def submit_call(*args: Any, **kwargs: Any) -> Job[R]:
            return self._submit_call(chosen, args, kwargs)

        return submit_call

    def _options_for(self, task: Task[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        merged = merge_options(self.default_options, task.options)
        merged.setdefault("job_name", task.name)
        return split_options(merged)

    def _resubmit(self, job: Job[Any]) -> None:
        resubmit(self, job)

    def _record(self, job_id: str, job_dir: str) -> None:
        self._ensure_layout()
        self.transport.write_text(f"{self.index_dir}/{job_id}", job_dir + "\n")

    def _submit_call(
        self, task: Task[Any, R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Job[R]:
        task.bind_check(args, kwargs)
        payload: dict[str, Any] = {
            "task": task,
            "args": tuple(args),
            "kwargs": dict(kwargs),
            "items": None,
        }
        job_id, job_dir, submitted = submit(self, task, payload, {}, "stdout")
        job: Job[R] = Job(self, job_id, job_dir=job_dir, name=task.name)
        job.max_requeues = int(payload["policy"]["max_requeues"])
        self.tracker.watch(job, submitted=submitted)
        self._notify("on_submit", job)
        logger.info("submitted %s as job %s (%s)", task.name, job_id, job_dir)
        return job

    def _submit_map(
        self, task: Task[Any, R], items: Sequence[Any], max_concurrent: int | None
    ) -> ArrayJob[R]:
        if not items:
            raise ConfigurationError(f"{task.name}.map() got no items; nothing was submitted.")
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for item in items:
            if isinstance(item, dict):
                call: tuple[tuple[Any, ...], dict[str, Any]] = ((), dict(item))
            elif isinstance(item, tuple):
                call = (item, {})
            else:
                call = ((item,), {})
            task.bind_check(*call)
            calls.append(call)
        # Slurm caps array indices below MaxArraySize: larger maps become several
        # arrays, transparently (one ArrayJob, results still in item order).
        limit = self.max_array_size
        jobs: list[Job[R]] = []
        parts: list[tuple[str, str]] = []
        for start in range(0, len(calls), limit):
            part = calls[start : start + limit]
            spec = f"0-{len(part) - 1}"
            if max_concurrent:
                spec += f"%{int(max_concurrent)}"
            payload: dict[str, Any] = {"task": task, "args": (), "kwargs": {}, "items": part}
            array_id, job_dir, submitted = submit(self, task, payload, {"array": spec}, "logs/%a")
            parts.append((array_id, job_dir))
            for index in range(len(part)):
                job: Job[R] = self._array_element(array_id, job_dir, task.name, index)
                job.name = f"{task.name}[{start + index}]"
                job.max_requeues = int(payload["policy"]["max_requeues"])
                self.tracker.watch(job, submitted=submitted)
                jobs.append(job)
        array: ArrayJob[R] = ArrayJob(self, parts, jobs, name=task.name)
        self._notify("on_submit", array)
        return array

    def _array_element(self, array_id: str, job_dir: str, name: str, index: int) -> Job[Any]:
        job: Job[Any] = Job(
            self,
            f"{array_id}_{index}",
            job_dir=job_dir,
            name=f"{name}[{index}]",
            result_path=f"{job_dir}/results/{index}.pkl",
            stdout_path=f"{job_dir}/logs/{index}.out",
            stderr_path=f"{job_dir}/logs/{index}.err",
        )
        job.array_index = index
        return job

    def _notify(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception:
                logger.warning("callback %r.%s failed", callback, event, exc_info=True)

    # --- reattaching -------------------------------------------------------------------
    def get_job(self, job_id: str | int) -> Job[Any]:
        """Reattach to a job submitted earlier (from any process), even after Slurm purged it."""
        job_id = str(job_id)
        array_id, _, index = job_id.partition("_")
        try:
            job_dir = self.transport.read_text(f"{self.index_dir}/{array_id}").strip()
        except FileNotFoundError:
            raise ConfigurationError(
                f"Job {job_id} was not submitted through slurm-sdk with job_base_dir "
                f"{self.base_dir!r} (no record in {self.index_dir}). Pass the same "
                "job_base_dir the job was submitted with."
            ) from None
        name = job_dir.rsplit("/", 1)[-1].rsplit("-", 3)[0]
        if index:
            job = self._array_element(array_id, job_dir, name, int(index))
        else:
            job = Job(self, job_id, job_dir=job_dir, name=name)
        self.tracker.watch(job)
        return job

    # --- diagnostics -----------------------------------------------------------------
    def diagnose(self) -> dict[str, Any]:
        """Check the cluster can be used; every finding, as a dict (never raises for one).

        What ``slurm doctor`` checks (see :mod:`slurm.doctor`): connection and
        login, Slurm commands, controller and accounting, partitions and their
        limits, the Python that runs jobs and how code is shipped, the job base
        directory (writable, owner, free space) and clock skew.
        ``result["ok"]`` is False when something blocks submission;
        ``result["checks"]`` lists every check (name, status, detail, fix);
        ``result["problems"]`` the blocking ones, ``result["python"]`` the interpreter.
        """
        from slurm.doctor import diagnose

        return diagnose(self).to_dict()
