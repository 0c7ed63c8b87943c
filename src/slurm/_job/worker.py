"""A pool's worker: ``python -P -m slurm.runner --pool POOL_DIR`` in each worker job.

It takes calls from the pool's queue (:class:`~slurm._job.claims.LocalQueue`)
one at a time and runs each in this process with the runner's own
:func:`~slurm._job.entry.run_job` (one start and one import of the user's
modules for all of them), its stdout and stderr sent to the call's own log
files. A thread renews the lease of the call in hand. TERM (``scancel``,
preemption, the time limit) gives the call back to the queue before the worker
exits; a worker killed outright loses its lease, and another worker takes the
call again. With nothing to do it looks again, less and less often (up to half
a second), and exits after ``idle_timeout`` seconds if more than
``min_workers`` workers are alive, or at once once the client has left the
block (``closing``) and the queue is empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from slurm._job.claims import LocalQueue, TrustCheck
from slurm._job.entry import run_job
from slurm._job.outputs import commit_once, drop_marker
from slurm._types import TYPE_CHECKING
from slurm._wire.env import DONE_DIR_VARIABLE
from slurm._wire.layout import JobPaths
from slurm._wire.payload import envelope_for_exception
from slurm._wire.queue import PoolPaths
from slurm.errors import JobTerminatedError

if TYPE_CHECKING:
    from slurm._job.call import WorkflowHost

__all__ = ["PoolSettings", "main", "run_worker"]

_MAX_IDLE_POLL = 0.5


class PoolSettings:
    """The pool's timings, as the client wrote them (``pool.json``)."""

    def __init__(self, text: str) -> None:
        record = json.loads(text)
        self.lease = float(record["lease"])
        self.heartbeat = float(record["heartbeat"])
        self.idle_timeout = float(record["idle_timeout"])
        self.min_workers = int(record["min_workers"])


def worker_id(env: dict[str, str]) -> str:
    """This worker's Slurm id (``ARRAY_ELEMENT``), or ``local-PID`` outside Slurm."""
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    return env.get("SLURM_JOB_ID") or f"local-{os.getpid()}"


@contextlib.contextmanager
def _logs_to(stdout: str, stderr: str) -> Iterator[None]:
    """The call's output goes to its own files (fd 1 and 2), the worker's back after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (out, err, *saved):
            os.close(fd)


def run_worker(
    pool_dir: str,
    env: dict[str, str] | None = None,
    *,
    host: WorkflowHost | None = None,
    trusted: TrustCheck | None = None,
) -> int:
    """Take and run the pool's calls until there is nothing left to do; the exit code."""
    env = dict(os.environ if env is None else env)
    worker = worker_id(env)
    log_fd = os.dup(2)

    def log(message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        os.write(log_fd, f"{stamp} slurm-sdk worker {worker}: {message}\n".encode())

    paths = PoolPaths(pool_dir)
    settings = PoolSettings(Path(paths.settings).read_text(encoding="utf-8"))
    queue = LocalQueue(pool_dir, worker, lease=settings.lease, log=log, trusted=trusted)
    queue.touch_worker()
    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        del frame
        claim = queue.current
        if claim is not None:
            queue.release(claim, "INTERRUPTED")
        queue.leave()
        log(f"stopped by signal {signum}")
        signal.signal(signum, signal.SIG_DFL)  # and end as the signal says
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_term)
    beat = threading.Thread(
        target=_beat, args=(queue, settings.heartbeat, stopping, log), daemon=True
    )
    beat.start()
    log(f"started (lease {settings.lease:g} s, idle timeout {settings.idle_timeout:g} s)")
    ran = 0
    idle_since = time.monotonic()
    delay = 0.005
    try:
        while True:
            claim = queue.claim()
            if claim is None:
                queue.reclaim_expired()
                if _time_to_go(queue, paths, settings, idle_since):
                    break
                time.sleep(delay)
                delay = min(delay * 1.5, _MAX_IDLE_POLL)
                continue
            for index, call_id in claim.entry.call_ids():
                call_env = {**env, **dict(claim.entry.env)}
                job_paths = JobPaths(claim.entry.job_dir, index)
                if os.path.exists(job_paths.cancel):
                    _cancelled(job_paths, call_id, call_env, log)
                    continue
                with _logs_to(job_paths.stdout, job_paths.stderr):
                    run_job(claim.entry.job_dir, call_env, host=host, pooled=(index, call_id))
                ran += 1
            queue.done(claim)
            idle_since = time.monotonic()
            delay = 0.005
    finally:
        stopping.set()
        queue.leave()
    log(f"ran {ran} call(s); exiting")
    return 0


def _cancelled(
    paths: JobPaths, call_id: str, env: dict[str, str], log: Callable[[str], None]
) -> None:
    """A call cancelled before it ran: its outcome says so, and it never runs."""
    error = JobTerminatedError(
        f"The call {call_id} was cancelled (job.cancel()) before a worker of its pool ran it.",
        job_id=call_id,
        state="CANCELLED",
    )
    envelope = envelope_for_exception(error, job_id=call_id)
    outcome = envelope.outcome().to_json().encode("utf-8")
    if commit_once(Path(paths.outcome), outcome, Path(paths.result), envelope.to_bytes()):
        drop_marker(env.get(DONE_DIR_VARIABLE), call_id)
        log(f"skipped the call {call_id}: cancelled")


def _time_to_go(
    queue: LocalQueue, paths: PoolPaths, settings: PoolSettings, idle_since: float
) -> bool:
    if os.path.exists(paths.closing):
        return True
    if time.monotonic() - idle_since < settings.idle_timeout:
        return False
    return queue.live_workers() > settings.min_workers


def _beat(
    queue: LocalQueue, every: float, stopping: threading.Event, log: Callable[[str], None]
) -> None:
    # TERM is the main thread's: never handled here, so that holding it there (while a
    # result is written) holds it for the whole process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    while not stopping.wait(every):
        if not queue.heartbeat():
            log("the call in hand was given to another worker (its lease had expired)")


def main(
    argv: list[str], *, host: WorkflowHost | None = None, trusted: TrustCheck | None = None
) -> int:
    """``--pool POOL_DIR``: run a worker of that pool."""
    if len(argv) != 2 or argv[0] != "--pool":
        print("usage: python -m slurm.runner --pool POOL_DIR", file=sys.stderr)
        return 2
    return run_worker(argv[1], host=host, trusted=trusted)
