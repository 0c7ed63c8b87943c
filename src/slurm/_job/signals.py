"""Slurm's warning signals in the job: checkpoints, and requeues at the time limit."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from slurm._job.context import requeue_callbacks, requeue_event

__all__ = ["Guard", "Interrupted", "requeue_request", "requeue_self"]


class Interrupted(BaseException):
    """Raised in the task's thread when Slurm warns the job (not an error of the task)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Guard:
    """Turns Slurm's warning signals into checkpoints and requeues.

    USR1 (``--signal=B:USR1@grace``) means the time limit is near: the
    checkpoint callbacks run, the task is interrupted and the runner requeues
    the job itself (Slurm does not requeue time limits), unless ``max_requeues``
    is used up or the call registered no checkpoint (it would start from scratch
    and hit the same limit again; ``requeue_on_time_limit=True`` requeues it
    anyway), in which case the task just runs on into its TIMEOUT. TERM means preemption
    (Slurm requeues the job) or cancellation: the callbacks run and the task
    runs on until Slurm kills it; if it finishes first, its result counts and
    a requeued run returns at once.
    """

    def __init__(self) -> None:
        self.in_task = False
        self.can_requeue = False
        #: Requeue at the time limit only if the call registered a checkpoint
        #: (``on_requeue``): one that would start from scratch ends in TIMEOUT.
        self.needs_checkpoint = True
        self.signum: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        first = not requeue_event.is_set()
        requeue_event.set()
        if first:
            for callback in list(requeue_callbacks):
                try:
                    callback()
                except Exception as exc:  # a failed checkpoint must not hide the requeue
                    print(
                        f"slurm-sdk: requeue callback {callback!r} failed: {exc!r}", file=sys.stderr
                    )
        helps = not self.needs_checkpoint or bool(requeue_callbacks)
        if signum == signal.SIGUSR1 and self.can_requeue and helps and self.signum is None:
            self.signum = signum
            if self.in_task:
                raise Interrupted(signum)


def requeue_self(job_id: str) -> bool:
    """Ask Slurm to requeue this job (time limits are not requeued by Slurm itself)."""
    import subprocess

    try:
        done = subprocess.run(  # noqa: S603 (argv list, never a shell)
            ["scontrol", "requeue", job_id],  # noqa: S607 (Slurm from the job's PATH)
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"slurm-sdk: could not requeue job {job_id}: {exc}", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(
            f"slurm-sdk: scontrol requeue {job_id} failed: {done.stderr.strip()}",
            file=sys.stderr,
        )
    return done.returncode == 0


def requeue_request(job_dir: str | Path, job_id: str) -> Path:
    """Left in the job directory by a runner in a container that wants its job requeued."""
    return Path(job_dir) / f"requeue-{job_id}.request"
