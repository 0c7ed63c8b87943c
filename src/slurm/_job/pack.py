"""A packed array element: several calls in one Python process, each with its own files.

``python -P -m slurm.runner JOB_DIR --array --pack`` lands here. The element
reads the plan (``pack.json``, :class:`~slurm._wire.pack.PackPlan`) and runs
its calls in order, each exactly as a lone array element would run it
(:func:`slurm._job.entry.run_call`): its own payload, result, outcome, usage,
run log and done marker, its stdout and stderr redirected to its own log
files (``logs/i.out``, ``logs/i.err``: file descriptors 1 and 2, so that what
a subprocess prints lands there too). The interpreter starts, and the user's
module is imported, once for all of them.

A call that already has a result is skipped (a requeued element resumes at
the first call without one); so is a call the user cancelled before it ran
(``results/i.cancel``), which gets a result saying so. With ``parallel`` above
one, each call runs in a child forked from this process (the module already
imported), ``parallel`` at a time. Slurm's time-limit warning stops the
element from starting further calls and interrupts the running one (with a
checkpoint or not: the calls done keep their results): it requeues itself,
and the calls left run after the requeue.

The element exits 0 once every one of its calls has a result, whatever the
calls returned: each call's outcome is its own (``results/i.json``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from slurm._job.context import requeue_callbacks, requeue_event
from slurm._job.outputs import cpu_seconds, drop_marker, log_run
from slurm._job.runcall import element, run_call, write_result
from slurm._job.signals import Guard, requeue_self
from slurm._types import TYPE_CHECKING
from slurm._wire.env import DONE_DIR_VARIABLE, PACK_CALLS_VARIABLE
from slurm._wire.layout import JobPaths, done_marker
from slurm._wire.pack import PackPlan
from slurm._wire.payload import envelope_for_exception
from slurm.errors import JobTerminatedError

if TYPE_CHECKING:
    from slurm._job.call import WorkflowHost

__all__ = ["run_pack"]


@dataclass(frozen=True)
class _Element:
    """What every call of this element runs with."""

    job_dir: Path
    env: dict[str, str]
    job_id: str | None
    host: WorkflowHost | None


def run_pack(
    job_dir: str | Path, env: dict[str, str] | None = None, *, host: WorkflowHost | None = None
) -> int:
    """Run this element's calls (``SLURM_ARRAY_TASK_ID`` says which element); the exit code."""
    env = dict(os.environ if env is None else env)
    guard = Guard()
    if env.get("SLURM_JOB_ID"):
        guard.install()
    index, job_id = element(env, True)
    here = _Element(Path(job_dir), env, job_id, host)
    plan = PackPlan.from_json(Path(JobPaths(str(job_dir)).pack).read_text(encoding="utf-8"))
    chosen = env.get(PACK_CALLS_VARIABLE, "").strip()
    calls = [int(c) for c in chosen.split(",")] if chosen else list(plan.calls_of(index or 0))
    todo = [c for c in calls if not Path(JobPaths(str(job_dir), c).result).exists()]
    left: list[int] | None
    if plan.parallel > 1:
        left = _forked(here, todo, guard, plan.parallel)
    else:
        left = _sequential(here, todo, guard)
    if left is None:  # interrupted inside a call: run_call has requeued the element
        return 0
    if left:  # warned between calls: the calls left run after the requeue
        return 0 if requeue_self(env.get("SLURM_JOB_ID", "")) else 1
    return 0


def _sequential(here: _Element, calls: list[int], guard: Guard) -> list[int] | None:
    """Run the calls one after the other: those left when warned, or None (requeued)."""
    for position, number in enumerate(calls):
        if guard.signum is not None:
            return calls[position:]
        if _run_one(here, number, guard) is None:
            return None
    return []


def _forked(here: _Element, calls: list[int], guard: Guard, parallel: int) -> list[int]:
    """Run each call in a child of this process, ``parallel`` at a time: the calls not
    started when Slurm's time-limit warning came."""
    running: set[int] = set()
    queue = list(calls)
    sys.stdout.flush()
    sys.stderr.flush()
    while queue or running:
        while queue and len(running) < parallel and guard.signum is None:
            number = queue.pop(0)
            pid = os.fork()
            if pid == 0:  # the child: one call, then out without the parent's cleanup
                code = 1
                try:
                    code = _run_one(here, number, Guard()) or 0
                finally:
                    os._exit(code)
            running.add(pid)
        if not running:
            break
        with contextlib.suppress(InterruptedError, ChildProcessError):
            pid, _ = os.wait()
            running.discard(pid)
    return queue


def _run_one(here: _Element, number: int, guard: Guard) -> int | None:
    """One call of the element, its output in its own log files."""
    paths = JobPaths(str(here.job_dir), number)
    job_id, env = here.job_id, here.env
    marker = done_marker(job_id, number) if job_id else None
    call_env = dict(env)
    call_env.pop("SLURM_JOB_START_TIME", None)  # the call's own start is its start
    started, cpu_base = time.time(), cpu_seconds()
    # What one call registered (a checkpoint, a requeue seen) is not the next one's.
    requeue_callbacks.clear()
    requeue_event.clear()
    if Path(paths.cancel).exists():
        _skip_cancelled(paths, env, job_id, marker, started)
        return 0
    with _redirected(paths):
        return run_call(
            here.job_dir,
            paths,
            call_env,
            job_id,
            guard,
            here.host,
            started=started,
            marker=marker,
            cpu_before=cpu_base,
            packed=True,
        )


def _skip_cancelled(
    paths: JobPaths, env: dict[str, str], job_id: str | None, marker: str | None, started: float
) -> None:
    """A call cancelled before it ran: its result says so, and it never runs."""
    error = JobTerminatedError(
        f"Call {paths.index} of packed job {job_id} was cancelled before it ran.",
        job_id=job_id,
        state="CANCELLED",
    )
    write_result(paths, envelope_for_exception(error, job_id=job_id), env, started)
    log_run(Path(paths.runs), "cancelled", int(env.get("SLURM_RESTART_COUNT") or 0))
    drop_marker(env.get(DONE_DIR_VARIABLE), marker)


@contextlib.contextmanager
def _redirected(paths: JobPaths) -> Iterator[None]:
    """File descriptors 1 and 2, and ``sys.stdout``/``sys.stderr`` (whatever they were
    replaced with), to the call's own log files."""
    streams = sys.stdout, sys.stderr
    for stream in streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    try:
        for fd, path in ((1, paths.stdout), (2, paths.stderr)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout, sys.stderr = (
            open(fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
            for fd in (1, 2)
        )
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # flushes; fds 1 and 2 stay open
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
