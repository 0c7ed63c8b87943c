"""Slurm's warning signals in the job: checkpoints, and requeues at the time limit."""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable

from slurm._job.context import requeue_callbacks, requeue_event
from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    import signal
    import subprocess
    from pathlib import Path
    from types import FrameType
else:  # signal.py is this and enum, threading a Python layer over _thread: ~6 ms of a start
    import _signal as signal
from slurm._job.progress import fingerprint, outcome_text, start_watching, stop_watching

__all__ = ["Guard", "Interrupted", "requeue_request", "requeue_self", "squeue_time_left"]


_SIGNAL_NAMES: dict[int, str] = {signal.SIGUSR1: "SIGUSR1", signal.SIGTERM: "SIGTERM"}


def _in_thread(target: Callable[[], None]) -> None:
    """Run ``target`` in a thread the interpreter does not wait for at exit (a daemon
    thread's way, without importing :mod:`threading` at every job's start)."""
    _thread.start_new_thread(target, ())


class Interrupted(BaseException):
    """Raised in the task's thread when Slurm warns the job (not an error of the task)."""

    def __init__(self, signum: int) -> None:
        super().__init__(_SIGNAL_NAMES.get(signum, f"signal {signum}"))
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

    Slurm checks its warnings every 30 seconds or so and sends USR1 up to a
    minute before the ``grace`` asked for: with ``time=1`` and a 45-second grace
    the warning may come as the job starts, before the task registered its
    checkpoint. So a USR1 that comes early is held until ``grace`` seconds are
    left (``squeue`` tells the time left), and one that comes before the
    runner has read the call's policy waits for it (:meth:`configure`).

    Slurm sends that warning once. One that came while the batch script still
    ignored USR1 (before Python installed its handler) is lost, so the runner
    also keeps its own time: at ``warn_at`` (when the warning was due, from the
    script's start and the job's time limit) with no warning seen, it asks
    ``squeue`` as for an early one and warns itself.

    A requeued call whose checkpoint callbacks wrote nothing new since the run
    before (the same :func:`~slurm._job.progress.fingerprint` as
    ``previous_progress``) is not requeued again: it runs on into its TIMEOUT,
    and ``record("no-progress", ...)`` notes it in the run log.
    """

    def __init__(self) -> None:
        self.in_task = False
        self.can_requeue = False
        #: Requeue at the time limit only if the call registered a checkpoint
        #: (``on_requeue``): one that would start from scratch ends in TIMEOUT.
        self.needs_checkpoint = True
        self.signum: int | None = None
        #: Seconds before the time limit the task asked to be warned (None: act at once).
        self.grace: float | None = None
        self.job_id = ""
        self._configured = False
        self._warned_early = False  # a USR1 came before configure(): act on it then
        self._holding = False  # a thread holds back an early USR1
        self._due = False  # the held USR1 is due now
        #: How long the job has left, in seconds (``squeue``'s answer; None: unknown).
        self.time_left: Callable[[str], float | None] = squeue_time_left
        self.sleep: Callable[[float], None] = time.sleep
        #: The fingerprint of what the checkpoint callbacks wrote at the last warning of
        #: the run before (from the run log), and at this run's (None: no callbacks ran).
        self.previous_progress: str | None = None
        self.progress: str | None = None
        #: Set when this run made no progress and is therefore not requeued.
        self.stalled = False
        #: Notes an event of the run log: (event, progress fingerprint).
        self.record: Callable[[str, str | None], None] = lambda event, progress: None
        #: When the warning is due (``time.time()``; None: unknown), by the batch script.
        self.warn_at: float | None = None
        self.clock: Callable[[], float] = time.time
        self._owner: int | None = None  # the process whose handlers these are
        self._keeping_time = False

    def install(self) -> None:
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, self._handle)
        self._owner = os.getpid()

    def configure(
        self,
        *,
        can_requeue: bool,
        needs_checkpoint: bool,
        grace: float | None,
        job_id: str,
        previous_progress: str | None = None,
        warn_at: float | None = None,
    ) -> None:
        """The call's policy, once the runner has read it; a warning that came before
        is handled now. ``warn_at``: when Slurm's warning is due (see the class)."""
        self.previous_progress = previous_progress
        self.can_requeue = can_requeue
        self.needs_checkpoint = needs_checkpoint
        self.grace = grace
        self.job_id = job_id
        self.warn_at = warn_at
        self._configured = True
        if self._warned_early:
            self._hold_until_due()
        elif can_requeue and grace is not None and warn_at is not None:
            self._keep_time()

    def _keep_time(self) -> None:
        """In a thread of the process that installed the handlers (not a forked call):
        at ``warn_at``, warn this process if Slurm's warning has not come."""
        if self._keeping_time or self._owner != os.getpid():
            return
        self._keeping_time = True
        _in_thread(self._warn_if_missed)

    def _warn_if_missed(self) -> None:
        if self.warn_at is not None and self.warn_at > self.clock():
            self.sleep(self.warn_at - self.clock())
        if not self._holding and not self._due and not requeue_event.is_set():
            print(
                "slurm-sdk: Slurm's time-limit warning did not reach the job (it came while "
                "the batch script was starting): the runner warns itself",
                file=sys.stderr,
                flush=True,
            )
            self._hold_until_due()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if signum == signal.SIGUSR1 and not self._due:
            if not self._configured:
                self._warned_early = True
                return
            if self.grace is not None and self.job_id:
                self._hold_until_due()
                return
        first = not requeue_event.is_set()
        requeue_event.set()
        if first:
            self._checkpoint(signum)
        helps = not self.needs_checkpoint or bool(requeue_callbacks)
        if (
            signum == signal.SIGUSR1
            and self.can_requeue
            and helps
            and not self.stalled
            and self.signum is None
        ):
            self.signum = signum
            if self.in_task:
                raise Interrupted(signum)

    def _checkpoint(self, signum: int) -> None:
        """Run the checkpoint callbacks, fingerprint what they wrote, and judge it."""
        callbacks = list(requeue_callbacks)
        if not callbacks:
            return
        outcomes: list[str] = []
        start_watching()
        try:
            for callback in callbacks:
                try:
                    outcomes.append(outcome_text(callback()))
                except Exception as exc:  # a failed checkpoint must not hide the requeue
                    outcomes.append(outcome_text(raised=exc))
                    print(
                        f"slurm-sdk: requeue callback {callback!r} failed: {exc!r}", file=sys.stderr
                    )
        finally:
            written = stop_watching()
        self.progress = fingerprint(outcomes, written)
        if signum != signal.SIGUSR1:  # preemption: the next run compares with this one
            self.record("checkpointed", self.progress)
            return
        if self.can_requeue and self.progress == self.previous_progress:
            self.stalled = True
            self.record("no-progress", self.progress)
            print(
                "slurm-sdk: not requeued at the time limit: the checkpoint callbacks wrote "
                "nothing new since the previous run (the same files with the same content, "
                f"the same return values: progress {self.progress}), so another run would "
                "stop at the same point. The job ends in TIMEOUT. Give the task more time= "
                "(or Retry(grow={'time': 2.0})), or make the checkpoint save how far it got.",
                file=sys.stderr,
                flush=True,
            )

    def _hold_until_due(self) -> None:
        """In a thread: wait until ``grace`` seconds are left, then deliver USR1 again."""
        if self._holding:
            return
        self._holding = True
        _in_thread(self._deliver_when_due)

    def _deliver_when_due(self) -> None:
        left = self.time_left(self.job_id) if self.grace is not None and self.job_id else None
        if left is None and self.warn_at is not None:  # squeue cannot tell: the script can
            left = (self.grace or 0) + self.warn_at - self.clock()
        if left is not None and self.grace is not None and left > self.grace + 1:
            self.sleep(left - self.grace)
        self._due = True
        os.kill(os.getpid(), signal.SIGUSR1)


def _ask_slurm(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | Exception:
    """Run a Slurm command from the job's ``PATH``: its outcome, or why it could not run."""
    import subprocess

    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        return exc


def squeue_time_left(job_id: str) -> float | None:
    """Seconds job ``job_id`` has left by ``squeue`` (``%L``); None when it cannot tell."""
    from slurm._slurm.usage import parse_duration

    done = _ask_slurm(["squeue", "-h", "-j", job_id, "-o", "%L"], timeout=20)
    if isinstance(done, Exception) or done.returncode != 0 or not done.stdout.split():
        return None
    return parse_duration(done.stdout.split()[0])


def requeue_self(job_id: str) -> bool:
    """Ask Slurm to requeue this job (time limits are not requeued by Slurm itself)."""
    done = _ask_slurm(["scontrol", "requeue", job_id], timeout=30)
    if isinstance(done, Exception):
        print(f"slurm-sdk: could not requeue job {job_id}: {done}", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(
            f"slurm-sdk: scontrol requeue {job_id} failed: {done.stderr.strip()}",
            file=sys.stderr,
        )
    return done.returncode == 0


def requeue_request(job_dir: str | Path, job_id: str) -> str:
    """Left in the job directory by a runner in a container that wants its job requeued."""
    return os.path.join(job_dir, f"requeue-{job_id}.request")
