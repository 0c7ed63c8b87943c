"""The client's side of a worker pool: the queue it writes, the workers it starts.

``with cluster.pool(workers=N, **sbatch):`` makes a :class:`Pool`: a directory
under the job base directory (laid out by :mod:`slurm._wire.queue`) and, from
the first call on, worker jobs (one Slurm array; more elements as the queue
grows) that take calls from it (:mod:`slurm._job.worker`). Submission
(:mod:`slurm._client.submission`) prepares each call as always (its own job
directory, payload and logs) and, instead of ``sbatch``, writes one queue entry
per submission (a map is one entry: the worker that takes it splits it), so a
call costs no Slurm command at all. Its ``Job`` follows the result files, as
every job does; nobody asks Slurm about a pooled call's id.

A thread looks at the queue every couple of seconds (listings of it, and an
``squeue`` of the workers only while calls wait and the last count of workers
may be out of date: a worker named in ``left/`` since, or a lease passed) and
starts workers up to ``workers`` while calls wait and fewer are queued or
running; workers exit on their own after ``idle_timeout`` seconds without a
call (keeping ``min_workers``). :meth:`Pool.close` tells the workers that the
block is over and cancels those that never started (no file of theirs in
``workers/`` or ``left/``).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slurm._client.tasks import SubmittedTask
from slurm._slurm.options import check_task_options, literal_filename_pattern, merge_options
from slurm._slurm.script import render_batch_script
from slurm._wire.env import DONE_DIR_VARIABLE
from slurm._wire.layout import log_patterns
from slurm._wire.queue import PoolPaths, QueueEntry, is_entry_name
from slurm.errors import ConfigurationError, SlurmError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["Pool", "PoolSpec", "check_pool"]

logger = logging.getLogger(__name__)

_TICK = 2.0  # seconds between two looks at the queue (sooner when a call arrives)


@dataclass(frozen=True)
class PoolSpec:
    """A pool's size, timings and the sbatch options of its workers, checked."""

    workers: int
    min_workers: int = 0
    idle_timeout: float = 60.0
    lease: float = 30.0
    heartbeat: float = 5.0
    options: Mapping[str, Any] = field(default_factory=dict)


def _number(name: str, value: Any, *, whole: bool, least: float) -> float:
    ok = isinstance(value, int) if whole else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or value < least:
        kind = "a whole number" if whole else "a number of seconds"
        raise ConfigurationError(
            f"cluster.pool({name}={value!r}): {name} must be {kind} >= {least:g}. Nothing was "
            f"submitted. Example: cluster.pool(workers=4, min_workers=0, idle_timeout=60)."
        )
    return float(value)


def check_pool(
    workers: Any,
    *,
    min_workers: Any = 0,
    idle_timeout: Any = 60.0,
    lease: Any = 30.0,
    options: Mapping[str, Any] | None = None,
) -> PoolSpec:
    """The pool's settings checked (pure: nothing is submitted or written).

    Raises:
        ConfigurationError: a count or timing out of range.
        InvalidOptionError: an sbatch option the workers could not be submitted with.
    """
    _number("workers", workers, whole=True, least=1)
    _number("min_workers", min_workers, whole=True, least=0)
    if min_workers > workers:
        raise ConfigurationError(
            f"cluster.pool(workers={workers}, min_workers={min_workers}): min_workers cannot "
            "be more than workers. Nothing was submitted."
        )
    _number("idle_timeout", idle_timeout, whole=False, least=0.1)
    _number("lease", lease, whole=False, least=2)
    merged = merge_options(options or {})
    check_task_options(merged, where="cluster.pool(...)")
    for refused in ("array", "ntasks", "nodes", "ntasks_per_node"):
        if refused in merged:
            raise ConfigurationError(
                f"cluster.pool({refused}=...): a pool's worker is one process on one node, "
                f"and the pool makes its own array. Nothing was submitted. Leave {refused} out "
                "(workers= sets how many run)."
            )
    return PoolSpec(
        int(workers),
        int(min_workers),
        float(idle_timeout),
        float(lease),
        max(1.0, float(lease) / 6),
        merged,
    )


class Pool:
    """One pool of one session: its directory, its workers, the calls it queued.

    Attributes:
        pool_dir: the pool's directory (``None`` until :meth:`open`).
        worker_ids: the Slurm ids of the workers started so far (array elements).
        calls: how many calls were queued.
        commands: the Slurm commands the pool ran (sbatch, squeue, scancel).
    """

    def __init__(self, session: Session, spec: PoolSpec) -> None:
        self.session = session
        self.spec = spec
        self.token = secrets.token_hex(4)
        self.pool_dir: str | None = None
        self.worker_ids: list[str] = []
        self.calls = 0
        self.commands = 0
        self._sequence = 0
        self._array_id: str | None = None
        self._python: str | None = None
        self._sbatch, self._sdk = session.options_for("slurm-pool", dict(spec.options))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._alive = 0  # workers queued or running, as last known
        self._asked = 0.0  # when Slurm was last asked (time.monotonic())
        self._left = 0  # workers that had said they left when Slurm was last asked

    @property
    def paths(self) -> PoolPaths:
        if self.pool_dir is None:
            raise ConfigurationError("the pool is not open")
        return PoolPaths(self.pool_dir)

    # --- opening and closing --------------------------------------------------------
    def open(self) -> None:
        """Make the pool's directory; ask Slurm (``sbatch --test-only``) whether it
        would take the workers' options, so that a refusal comes before any call.

        Raises:
            ConfigurationError: Slurm would refuse the workers (its message included).
        """
        session = self.session
        session.store.ensure_layout()
        self.pool_dir = session.store.new_job_dir("pool")
        paths = self.paths
        transport = session.transport
        for directory in (paths.pending, paths.claimed, paths.workers, paths.left, paths.logs):
            transport.mkdir(directory, mode=0o700)
        settings = {
            "lease": self.spec.lease,
            "heartbeat": self.spec.heartbeat,
            "idle_timeout": self.spec.idle_timeout,
            "min_workers": self.spec.min_workers,
        }
        transport.write_text(paths.settings, json.dumps(settings, sort_keys=True))
        transport.write_text(paths.script, self._script(["true"]), mode=0o700)
        answer = session.slurm.run(["sbatch", "--test-only", paths.script], check=False)
        self.commands += 1
        if answer.returncode != 0:
            session.store.remove_job_dir(self.pool_dir)
            raise ConfigurationError(
                f"Slurm would refuse the pool's workers: {answer.stderr.strip() or 'no message'}. "
                "Nothing was submitted. Check the options given to cluster.pool(...) (partition, "
                "account, qos, time, mem) against what Slurm said."
            )
        self._thread = threading.Thread(
            target=self._loop, name=f"slurm-pool-{self.token}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """The block is over (its calls are done): workers exit, those still queued go."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self.pool_dir is None:
            return
        self.session.transport.write_text(self.paths.closing, "")
        started = set(self.session.transport.list_dir(self.paths.workers))
        started.update(self.session.transport.list_dir(self.paths.left))
        waiting = [job_id for job_id in self.worker_ids if job_id not in started]
        if not waiting:
            return
        try:
            self.session.slurm.cancel(waiting)
            self.commands += 1
        except SlurmError as exc:  # those that start now leave on their own (closing)
            logger.warning(
                "pool %s: could not cancel its workers still queued (%s); they exit as they "
                "start, finding the pool closed",
                self.token,
                exc,
            )

    # --- what submission asks -------------------------------------------------------
    def check(
        self,
        task: SubmittedTask,
        sbatch: Mapping[str, Any],
        sdk: Mapping[str, Any],
        dependency: str | None,
        python: str,
    ) -> None:
        """Refuse, before anything is written, a call a pool's worker cannot run.

        Raises:
            ConfigurationError: a workflow, a task with ``retry=``, a container, several
                ranks, a call waiting for unfinished jobs, another interpreter.
        """
        why = None
        if task.is_workflow:
            why = "a workflow runs as its own job; call it outside the pool block"
        elif sdk.get("retry"):
            why = "retry= is not supported in a pool yet; call the task outside the block"
        elif sdk.get("packaging_container") or sdk.get("container") or sdk.get("image"):
            why = "a pool's workers run outside containers; call it outside the pool block"
        elif any(
            str(sbatch.get(k, "1")).split("-")[0] not in ("", "1") for k in ("nodes", "ntasks")
        ):
            why = "a call of several ranks needs its own job; call it outside the pool block"
        elif dependency:
            why = (
                f"it waits for jobs that have not finished ({dependency}); a pool runs calls "
                "as soon as a worker is free. Wait for those jobs first, or call it outside "
                "the block"
            )
        elif self._python is not None and python != self._python:
            why = (
                f"its interpreter ({python}) is not the pool's ({self._python}); every call of "
                "a pool runs in the same workers"
            )
        if why is not None:
            raise ConfigurationError(
                f"The call to {task.name}() cannot go to the pool: {why}. Nothing was submitted."
            )

    def enqueue(
        self, job_dir: str, count: int, *, array: bool, env: Mapping[str, str], python: str
    ) -> str:
        """Queue the ``count`` calls prepared in ``job_dir``; their id (elements: ``ID_I``).

        The first call starts the workers (an array of ``min(workers, count)``, at least
        ``min_workers``).
        """
        with self._lock:
            self._sequence += 1
            call_id = f"pool-{self.token}-{self._sequence}"
            self.calls += count
        entry = QueueEntry(
            call_id, job_dir, array, 0, count - 1 if array else 0, tuple(sorted(env.items()))
        )
        transport = self.session.transport
        transport.write_text(f"{self.paths.pending}/{entry.name()}", entry.to_json())
        if self._array_id is None:
            self._start_workers(
                python, env, max(self.spec.min_workers, min(self.spec.workers, count))
            )
        with self._wake:
            self._wake.notify_all()
        return call_id

    # --- workers --------------------------------------------------------------------
    def _script(self, command: list[str], env: Mapping[str, str] | None = None) -> str:
        options: dict[str, Any] = {"job_name": "slurm-pool", **self._sbatch}
        options["output"], options["error"] = log_patterns(
            literal_filename_pattern(self.paths.pool_dir), array=True
        )
        options["requeue"] = False  # a stopped worker gives its call back; another starts
        options["comment"] = f"slurm-sdk:{self.paths.pool_dir.rsplit('/', 1)[-1]}"
        if self.session.backend_type == "local":
            options.setdefault("chdir", self.paths.pool_dir)
        setup = self._sdk.get("setup") or ()
        return render_batch_script(
            options=options,
            command=command,
            env={DONE_DIR_VARIABLE: self.session.store.done_dir, **(env or {})},
            setup=[setup] if isinstance(setup, str) else list(setup),
        )

    def _start_workers(self, python: str, env: Mapping[str, str], count: int) -> None:
        """The first workers: the script with the first call's interpreter, one array."""
        self._python = python
        paths = self.paths
        script = self._script([python, "-P", "-m", "slurm.runner", "--pool", paths.pool_dir], env)
        self.session.transport.write_text(paths.script, script, mode=0o700)
        comment = f"slurm-sdk:{paths.pool_dir.rsplit('/', 1)[-1]}"
        array_id = self.session.slurm.sbatch(
            paths.script, comment=comment, flags=[f"--array=0-{count - 1}"]
        )
        self.commands += 1
        self.session.store.record(array_id, paths.pool_dir)
        self._array_id = array_id
        self.worker_ids = [f"{array_id}_{i}" for i in range(count)]
        self._alive, self._asked = count, time.monotonic()
        logger.info("pool %s: started %d worker(s) as job %s", self.token, count, array_id)

    def _grow(self, count: int) -> None:
        """``count`` more workers (more elements of the same script; a new Slurm id)."""
        first = len(self.worker_ids)
        flags = [f"--array={first}-{first + count - 1}"]
        new_id = self.session.slurm.sbatch(self.paths.script, comment=None, flags=flags)
        self.commands += 1
        self.session.store.record(new_id, self.paths.pool_dir)
        self.worker_ids += [f"{new_id}_{i}" for i in range(first, first + count)]
        self._alive += count
        logger.info("pool %s: started %d more worker(s) as job %s", self.token, count, new_id)

    def backlog(self) -> int:
        """Calls waiting or in hand, from the names in the queue (two listings)."""
        transport = self.session.transport
        waiting = 0
        for name in transport.list_dir(self.paths.pending):
            if is_entry_name(name):
                parts = name.removesuffix(".json").split("-")
                waiting += int(parts[4]) - int(parts[3]) + 1 if len(parts) == 5 else 1
        return waiting + len(transport.list_dir(self.paths.claimed))

    def alive(self) -> int:
        """Workers Slurm has queued or running (one squeue)."""
        if not self.worker_ids:
            return 0
        self._left = len(self.session.transport.list_dir(self.paths.left))
        infos = self.session.slurm.squeue(self.worker_ids)
        self.commands += 1
        self._alive = sum(1 for info in infos.values() if not info.is_final(queued=True))
        self._asked = time.monotonic()
        return self._alive

    def _still_known(self) -> bool:
        """Whether the last count of live workers still holds, with no ``squeue``.

        It does while no worker has left since (a worker that exits, idle or stopped
        by a signal it can answer, leaves its name in ``left/``) and less than a
        lease has passed since Slurm was asked (a worker killed without a word
        leaves nothing, but its call cannot be taken again before its lease ends).
        """
        if time.monotonic() - self._asked >= self.spec.lease:
            return False
        return len(self.session.transport.list_dir(self.paths.left)) == self._left

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                self._wake.wait(_TICK)
                if self._closed:
                    return
            if self._array_id is None:
                continue
            try:
                self._tick()
            except Exception as exc:  # keep watching; the next tick tries again
                logger.warning("pool %s: looking at the workers failed (%s)", self.token, exc)

    def _tick(self) -> None:
        backlog = self.backlog()
        if backlog == 0:
            return
        want = min(self.spec.workers, max(self.spec.min_workers, backlog))
        alive = self._alive if self._still_known() else self.alive()
        if alive < want:
            self._grow(want - alive)
