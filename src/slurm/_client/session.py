"""``Session``: everything one cluster holds while a program uses it.

A :class:`~slurm.Cluster` is a thin facade over one session. The session owns
the settings and the task defaults, makes each part on first use (the
transport, the Slurm client, the job store, the tracker) and closes them; it
also holds the cluster's event stream (:mod:`slurm._client.events`) and what
the client learns about the cluster while it runs, each
piece in one place with one owner: the interpreters prepared for its jobs
(written by :mod:`slurm._client.packaging`; the ``python_version`` ones found
by :mod:`slurm._client.packaging.pythons`), the container images built or
handed down (:mod:`slurm._client.packaging.images`), the source closures
already on the cluster (:mod:`slurm._client.packaging.sources`) and whether
its ``srun`` knows pyxis (asked here, once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slurm._client.events import Emitter
from slurm._client.settings import ClusterSettings
from slurm._client.store import DEFAULT_JOB_BASE_DIR, JobStore
from slurm._client.tracker import Tracker
from slurm._slurm.client import SlurmClient
from slurm._slurm.options import merge_options, split_options
from slurm._transport.base import Transport
from slurm._wire.payload import WorkflowSpec
from slurm._wire.record import field, record
from slurm.errors import CommandError

if TYPE_CHECKING:
    from slurm._client.learned import LearnedSizes
    from slurm._client.packaging.pythons import FoundPython
    from slurm._client.packaging.registry import ImageReference
    from slurm._client.packaging.remote import Environment
    from slurm._client.preflight import PreflightReport
    from slurm._client.tasks import CallQueue
    from slurm._transport.sshauth import InteractiveAuth
    from slurm._wire.journal import Journal

__all__ = ["ImageState", "InterpreterState", "Session"]


@record
class InterpreterState:
    """What the client knows of one interpreter setting on one cluster (see packaging)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    report: PreflightReport | None = None
    plan: tuple[str, str] | None = None  # ("as-is" | "env", interpreter) once checked
    environments: dict[tuple[str, ...], Environment] = field(default_factory=dict)
    provided: frozenset[str] | None = None


@record
class ImageState:
    """The container images of one cluster (see :mod:`slurm._client.packaging.images`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    built: dict[str, str] = field(default_factory=dict)  # ImageBuild.key -> reference
    checked: set[str] = field(default_factory=set)  # references found in their registry
    builds_here: bool = True  # False on a workflow's node: look up only
    # Apptainer registry references -> (.sif path, the reference with its digest)
    pulled: dict[str, tuple[str, ImageReference]] = field(default_factory=dict)
    # pyxis registry references by tag -> the same by its pinned digest
    pinned: dict[str, str] = field(default_factory=dict)


class Session:
    """The parts and the state of one cluster, made on first use, closed together.

    Args:
        settings: the validated settings.
        default_options: sbatch and SDK defaults of every task (already checked).
        transport: a transport to use instead of making one from the settings.
        interactive_auth: answers keyboard-interactive SSH prompts.
        index_dir: the index to record jobs in (a workflow's children: its submitter's).
        journal: a running workflow's journal (reattaching after a restart).
    """

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        default_options: Mapping[str, Any],
        transport: Transport | None = None,
        interactive_auth: InteractiveAuth | None = None,
        index_dir: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.settings = settings
        self.default_options = dict(default_options)
        self.journal = journal
        self.interpreters: dict[Hashable, InterpreterState] = {}
        self.interpreters_lock = threading.Lock()
        #: ``python_version`` requests resolved on the cluster (once per session), by
        #: (version, install directory, env); see :mod:`slurm._client.packaging.pythons`.
        self.pythons: dict[Hashable, FoundPython] = {}
        self.pythons_lock = threading.Lock()
        self.images = ImageState()
        #: Source closures known to be on the cluster (their final directories).
        self.shipped_sources: set[str] = set()
        #: The event stream of this cluster (see :mod:`slurm._client.events`).
        self.events = Emitter()
        #: The callbacks that travel with each job (their node-side hooks run there):
        #: submission ships their modules and pickles them beside the payload
        #: (``callbacks.pkl``). Set by whoever holds the callbacks.
        self.runner_callbacks: Callable[[], Sequence[Any]] = tuple
        #: The open ``cluster.pool()`` block's queue: calls go there instead of to sbatch.
        self.pool: CallQueue | None = None
        self._transport = transport
        self._interactive_auth = interactive_auth
        self._index_dir = index_dir
        self._slurm: SlurmClient | None = None
        self._store: JobStore | None = None
        self._tracker: Tracker | None = None
        self._learned: LearnedSizes | None = None
        self._srun_help: str | None = None
        self._apptainer: str | None = None

    @property
    def backend_type(self) -> str:
        return self.settings.backend

    @property
    def hostname(self) -> str | None:
        return self.settings.hostname

    @property
    def packaging(self) -> Any:
        return self.settings.packaging

    @property
    def default_partition(self) -> str | None:
        value = self.default_options.get("partition")
        return str(value) if value else None

    # --- the parts ----------------------------------------------------------------
    @property
    def transport(self) -> Transport:
        """Where commands run and files live: local, or one SSH connection."""
        if self._transport is None:
            s = self.settings
            if s.backend == "local":
                from slurm._transport.local import LocalTransport

                self._transport = LocalTransport()
            else:
                from slurm._transport.ssh import SSHTransport

                self._transport = SSHTransport(
                    str(s.hostname),
                    username=s.username,
                    port=s.port,
                    password=s.password,
                    key_filename=s.key_filename,
                    accept_new_host_key=s.accept_new_host_key,
                    host_key_policy=s.host_key_policy,
                    interactive_auth=self._interactive_auth,
                )
        return self._transport

    @property
    def slurm(self) -> SlurmClient:
        """The client of Slurm's commands on this cluster."""
        if self._slurm is None:
            self._slurm = SlurmClient(self.transport, strip_inherited=self.backend_type == "local")
        return self._slurm

    @property
    def store(self) -> JobStore:
        """The job directories and the index under the job base directory."""
        if self._store is None:
            self._store = JobStore(
                self.transport,
                self.settings.job_base_dir or DEFAULT_JOB_BASE_DIR,
                index_dir=self._index_dir,
            )
        return self._store

    @property
    def tracker(self) -> Tracker:
        """The one watcher of every job of this cluster."""
        if self._tracker is None:
            self._tracker = Tracker(self.slurm, self.store, events=self.events)
        return self._tracker

    @property
    def learned(self) -> LearnedSizes:
        """The requests that succeeded, per task and option set (``Retry(learn=True)``)."""
        if self._learned is None:
            from slurm._client.learned import LearnedSizes

            self._learned = LearnedSizes(self.transport, f"{self.base_dir}/.learned")
        return self._learned

    @property
    def base_dir(self) -> str:
        return self.store.base_dir

    @property
    def max_array_size(self) -> int:
        """``max_array_size=`` as given, else Slurm's ``MaxArraySize``."""
        return self.settings.max_array_size or self.slurm.max_array_size()

    def srun_help(self) -> str:
        """``srun --help`` on the cluster (what options its plugins add), asked once."""
        if self._srun_help is None:
            out = self.transport.run(["srun", "--help"], check=False, timeout=60)
            self._srun_help = out.stdout + out.stderr
        return self._srun_help

    def apptainer_version(self) -> str:
        """``apptainer --version`` on the cluster's login host (``"1.4.5"``), ``""`` when
        it has none; asked once."""
        if self._apptainer is None:
            try:
                out = self.transport.run(["apptainer", "--version"], check=False, timeout=60)
            except CommandError:  # not on its PATH
                self._apptainer = ""
            else:
                words = out.stdout.split()
                self._apptainer = words[-1] if out.returncode == 0 and words else ""
        return self._apptainer

    # --- what submissions need --------------------------------------------------------
    def options_for(
        self, name: str, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(sbatch options, SDK options) of a task named ``name`` with its own ``options``,
        this cluster's defaults merged under them."""
        merged = merge_options(self.default_options, options)
        merged.setdefault("job_name", name)
        return split_options(merged)

    def workflow_spec(self, defaults: Mapping[str, Any] | None = None) -> WorkflowSpec:
        """What a workflow submitted from here needs to make its own cluster: the
        defaults of its tasks (this cluster's, then ``defaults``) and the images built."""
        with self.images.lock:
            images = tuple(sorted(self.images.built.items()))
        return WorkflowSpec(
            {**self.default_options, **(defaults or {})}, self.store.index_dir, images
        )

    def close(self) -> None:
        """Stop tracking, remove the done-marker directory and close the connection.

        Safe to call twice; a closed session opens its parts again when used.
        """
        if self._tracker is not None:
            self._tracker.stop()
        if self._store is not None:
            self._store.close()
        if self._transport is not None:
            self._transport.close()
