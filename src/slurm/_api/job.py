"""``Job``: a future over one Slurm job id (one call).

A job is finished when its result file appears (the runner writes it
atomically) or when Slurm reports a terminal state; the cluster's single
tracker watches every job, so many ``wait()`` calls cost nothing extra.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from slurm._client.submission import Placement, resubmit
from slurm._slurm.commands import JobState
from slurm._slurm.retry import (
    Attempt,
    Retry,
    current_rule,
    ended_state,
    raised_one_of,
    read_attempts,
)
from slurm._slurm.sizing import Request, killed_at_rss, next_request
from slurm._slurm.status import JobStatus
from slurm._slurm.usage import Usage, runner_usage
from slurm._wire.cache import CacheEntry
from slurm._wire.layout import JobPaths, done_marker
from slurm._wire.payload import Envelope, JobRef, Outcome
from slurm._wire.queue import is_pool_call
from slurm._wire.runlog import parse_run_log
from slurm.errors import JobTerminatedError, JobTimeoutError, NotSubmittableError, ResultError

if TYPE_CHECKING:
    from slurm._api.why import Why
    from slurm._client.session import Session

T = TypeVar("T")

__all__ = ["Job", "gather_usage", "usage_of_many"]

logger = logging.getLogger(__name__)

#: One step of the wait loop: ("final", seconds to wait) or ("resubmit", None).
_Step = tuple[str, float | None]

_TAIL_BYTES = 64 * 1024
_STDERR_TAIL_LINES = 20


class Job(Generic[T]):
    """A submitted Slurm job: wait for it, fetch its result, read its logs, cancel it."""

    def __init__(
        self,
        session: Session,
        job_id: str,
        *,
        job_dir: str,
        name: str = "",
        array_index: int | None = None,
        element: int | None = None,
    ) -> None:
        #: The cluster's session this job is tracked by (see :mod:`slurm._client.session`).
        self.session = session
        self.name = name
        self._locate(job_id, job_dir, array_index, element)
        self._envelope: Envelope | None = None
        self._outcome: Outcome | None = None
        self.max_requeues = 0  # set at submission: how often the client may resubmit
        self.previous_ids: list[str] = []
        #: The ids of the jobs this one waited for (``.after()`` and Job arguments).
        self.dependencies: list[str] = []
        #: The task's ``retry=`` policy (set at submission), or None.
        self.retry: Retry | None = None
        #: The time and memory limits of the current attempt (sbatch option values).
        self.limits: dict[str, str] = {}
        #: Which rule chose :attr:`limits` (see :class:`~slurm.Attempt`).
        self.rule = "asked"
        self._learn_key: str | None = None
        self._earlier: list[Attempt] = []
        self._usage: Usage | None = None
        self._cancel_skipped: bool | None = None
        #: The cache entry that answered this call (a task with ``cache=True`` whose key had a
        #: result): its ``job_id`` and ``job_dir`` are the run that made it. None: it ran.
        self.cached: CacheEntry | None = None
        #: The container image the call runs in, as resolved before submission: a registry
        #: reference with the digest it is pinned to (``docker://HOST/NAME:TAG@sha256:...``),
        #: else the image given; None without a container.
        self.image: str | None = None

    def _locate(
        self, job_id: str, job_dir: str, array_index: int | None, element: int | None = None
    ) -> None:
        """Where the job is: its Slurm id and its files (set once it is submitted).

        A call of a packed array (``map(items, pack=K)``) has the id of the array
        element that runs it (``123_4``, shared with the element's other calls),
        its own files under ``array_index``, and ``element`` set.
        """
        self.id = job_id
        self.job_dir = job_dir
        self.array_index = array_index
        #: The Slurm array element running this call when it is packed with others.
        self.element = element
        paths = JobPaths(job_dir, array_index)
        self.result_path = paths.result
        self.outcome_path = paths.outcome
        self.stdout_path = paths.stdout
        self.stderr_path = paths.stderr
        self.script_path = paths.script
        self.runs_path = paths.runs

    @property
    def done_marker(self) -> str:
        """The name of the done marker the runner drops when this call ends."""
        return done_marker(self.id, self.array_index if self.element is not None else None)

    @property
    def packed(self) -> bool:
        """True for a call that shares its Slurm array element with others (``pack=``)."""
        return self.element is not None

    def adopt(self, placement: Placement) -> None:
        """Take the placement submission gave (where the call runs now) and be watched.

        A call reattached from a workflow's journal may have been retried since:
        its attempts file tells which job runs it now.
        """
        self._locate(placement.job_id, placement.job_dir, placement.array_index, placement.element)
        self.max_requeues = placement.max_requeues
        self.dependencies = list(placement.dependencies)
        self.retry, self.limits = placement.retry, dict(placement.limits)
        self.cached = placement.cached
        self.image = placement.image or self.image
        self.rule, self._learn_key = placement.rule, placement.learn_key
        if placement.submitted is None:
            self.reload_attempts()
        finished = placement.cached is not None  # done already: nothing to ask Slurm
        self.session.tracker.watch(self, submitted=placement.submitted, finished=finished)

    def _placement(self) -> Placement:
        return Placement(
            self.id,
            self.job_dir,
            self.array_index,
            self.max_requeues,
            tuple(self.dependencies),
            self.retry,
            dict(self.limits),
            None,
            self.rule,
            self._learn_key,
            element=self.element,
            image=self.image,
        )

    @property
    def submitted(self) -> bool:
        """False only for a call collected by an open ``cluster.batch()`` block."""
        return bool(self.id)

    def _check_submitted(self) -> None:
        if not self.id:
            raise NotSubmittableError(
                f"The call to {self.name}() is part of an open `with cluster.batch():` block: "
                "it is submitted (and gets an id) when the block ends. Wait for it, or pass "
                "it to other tasks, after the block."
            )

    def __repr__(self) -> str:
        if not self.id:
            return f"<Job (batched, not submitted yet) {self.name!r}>"
        cached = " (cached)" if self.cached is not None else ""
        return f"<Job {self.id} {self.name!r} {self.state.value}{cached}>"

    @property
    def job_id(self) -> str:
        return self.id

    def __slurm_job_ref__(self) -> JobRef:
        """How a payload names this job (an argument of another call, or ``.after()``)."""
        self._check_submitted()
        return JobRef((self.id,), result_path=self.result_path)

    # --- state ---------------------------------------------------------------
    @property
    def state(self) -> JobState:
        """The last state seen by the tracker (COMPLETED/FAILED once a result exists).

        A call in a worker pool is PENDING until a worker started it (its run log
        says so), then RUNNING.
        """
        self._check_submitted()
        outcome = self._load_outcome()
        if outcome is not None:
            if outcome.ok:
                return JobState.COMPLETED
            return JobState.CANCELLED if self._skipped() else JobState.FAILED
        if is_pool_call(self.id):
            return JobState.RUNNING if self._runs_log() else JobState.PENDING
        return self.session.tracker.state_of(self)

    def _skipped(self) -> bool:
        """A packed call cancelled before it ran (its element skipped it)."""
        if self._cancel_skipped is None:
            self._cancel_skipped = self.packed and self.session.transport.exists(self.paths.cancel)
        return self._cancel_skipped

    def get_status(self) -> JobStatus:
        """Ask now (result file, then Slurm's batched look) and return the job's status.

        A :class:`~slurm._slurm.status.JobStatus`: equal to the job's
        :class:`JobState` (``job.get_status() == JobState.RUNNING``), and the
        earlier SDK's dict (``status["JobState"]``, ``status["ExitCode"]``,
        ``status.get("NodeList")``). Use :attr:`state` where you compare with
        ``is``.
        """
        self._check_submitted()
        self.session.tracker.refresh([self])
        state = self.state
        outcome = self._load_outcome()
        files = {
            "JobName": self.name,
            "WorkDir": self.job_dir,
            "StdOut": self.stdout_path,
            "StdErr": self.stderr_path,
        }
        return JobStatus.of(
            state,
            self.session.tracker.info_of(self),
            job_id=self.id,
            ok=None if outcome is None else outcome.ok,
            files=files,
        )

    @property
    def requeue_count(self) -> int:
        """How many times this call was requeued or resubmitted so far."""
        events = parse_run_log(self._runs_log())
        return max((e.restart for e in events if e.restart is not None), default=0)

    @property
    def usage(self) -> Usage | None:
        """What the job used, once it has ended (None before, or when nothing was measured).

        From Slurm's accounting (``source="sacct"``) when it is on, else from
        the runner's own measurements written beside the result
        (``source="runner"``). See :class:`~slurm._slurm.usage.Usage`.
        """
        if self._usage is None and self.done():
            usage = gather_usage(self.session, [self]).get(self.done_marker)
            if usage is None or not _partial(usage):
                self._usage = usage
            return usage
        return self._usage

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt of this call, the current one last: id, state, limits, usage.

        One attempt unless the task's ``retry=`` ran it again; a preemption is
        not an attempt. A call in a pool has one attempt more for each worker that
        lost it (cancelled, preempted, killed: state ``INTERRUPTED`` or
        ``LEASE_EXPIRED``, the worker's Slurm id as ``job_id``).
        """
        if is_pool_call(self.id):
            self.reload_attempts()  # written by the workers, not by this process
        done = self.done()
        current = Attempt(
            self.id,
            self.state.value,
            dict(self.limits),
            self.usage if done else None,
            rule=self.rule,
        )
        return [*self._earlier, current]

    @property
    def earlier_attempts(self) -> list[Attempt]:
        """The attempts before the current one (empty unless the call was retried)."""
        return list(self._earlier)

    @property
    def attempt(self) -> int:
        """The number of the current attempt (1 unless the call was retried)."""
        return len(self._earlier) + 1

    def reload_attempts(self) -> None:
        """Follow a call that was retried before this object knew it (reattached, get_job)."""
        try:
            text = self.session.transport.read_text(self.paths.attempts)
        except FileNotFoundError:
            return
        earlier, current, limits = read_attempts(text)
        if current is not None:
            self._earlier, self.id, self.limits = earlier, current, limits
            self.rule = current_rule(text)

    @property
    def paths(self) -> JobPaths:
        return JobPaths(self.job_dir, self.array_index)

    def outcome(self) -> Outcome | None:
        """How the call ended, once its result exists (read as JSON: nothing is unpickled):
        ``ok``, and the exception's type, message and traceback when it raised."""
        self._check_submitted()
        return self._load_outcome()

    def done(self) -> bool:
        """True when the job has finished, one way or another."""
        self._check_submitted()
        return self._load_outcome() is not None or self.session.tracker.is_final(self)

    def is_running(self) -> bool:
        return self.get_status().state is JobState.RUNNING

    def is_completed(self) -> bool:
        """True when the job has finished (successfully or not)."""
        self.get_status()
        return self.done()

    def is_successful(self) -> bool:
        outcome = self._load_outcome()
        return outcome is not None and outcome.ok

    # --- waiting and results --------------------------------------------------
    def wait(self, timeout: float | None = None, poll_interval: float | None = None) -> bool:
        """Block until the job finishes. True if it succeeded, False if it failed
        or ``timeout`` seconds passed first. ``poll_interval`` is accepted for
        compatibility; the cluster's tracker decides how often to look."""
        del poll_interval
        if not self.wait_final(timeout):
            return False
        return self.is_successful()

    def _final_steps(self, timeout: float | None) -> Generator[_Step, bool, bool]:
        """The one wait loop, synchronous and asyncio alike: wait until final, then
        resubmit when Slurm could not requeue an interrupted job or the task's Retry
        covers how it ended, and wait again. It yields what to do (``("final",
        seconds)``: wait that long for the job to be final; ``("resubmit", None)``:
        resubmit it if it must run again) and is sent whether that succeeded;
        it returns False when ``timeout`` passed first."""
        self._check_submitted()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not (yield ("final", remaining)):
                return False
            if not (yield ("resubmit", None)):
                return True

    def wait_final(self, timeout: float | None = None) -> bool:
        """Block until the job is final (after any resubmission it needed); False when
        ``timeout`` seconds passed first. Unlike :meth:`wait`, success does not count."""
        steps = self._final_steps(timeout)
        answer: bool | None = None
        try:
            while True:
                what, seconds = steps.send(answer) if answer is not None else next(steps)
                if what == "final":
                    answer = self.session.tracker.wait(self, seconds)
                else:
                    answer = self._resubmit_if_needed()
        except StopIteration as stop:
            done: bool = stop.value
            return done

    async def wait_final_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait_final` for asyncio: no thread and no poll of its own (the tracker
        calls back into the loop); resubmitting runs in the loop's default executor."""
        import asyncio

        loop = asyncio.get_running_loop()
        steps = self._final_steps(timeout)
        answer: bool | None = None
        try:
            while True:
                what, seconds = steps.send(answer) if answer is not None else next(steps)
                if what == "final":
                    try:
                        await asyncio.wait_for(self._final_once(), seconds)
                        answer = True
                    except TimeoutError:
                        answer = False
                else:
                    answer = await loop.run_in_executor(None, self._resubmit_if_needed)
        except StopIteration as stop:
            done: bool = stop.value
            return done

    async def _final_once(self) -> None:
        """Until the tracker says this job is final (one callback, no polling)."""
        import asyncio

        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(settle)

        forget = self.session.tracker.when_final(self, wake)
        try:
            await done
        finally:
            forget()

    def _resubmit_if_needed(self) -> bool:
        """The job just ended: submit it again if it must run again; True if it was."""
        retry = self._retry()
        if retry is not None:
            ended, request = retry
            self._resubmit(ended.state, retried=ended, request=request)
            self._earlier.append(ended)
            self._envelope, self._outcome, self._usage = None, None, None
            return True
        if self._needs_resubmission():
            info = self.session.tracker.info_of(self)
            previous = self.id
            self._resubmit(info.state.value if info else "UNKNOWN")
            self.previous_ids.append(previous)
            return True
        self._learn()
        return False

    def _learn(self) -> None:
        """``Retry(learn=True)``: a call that succeeded with another request than its own
        leaves that request for the next call of the task with the same options."""
        if self._learn_key is None or (self.rule == "asked" and not self._earlier):
            return
        if self.is_successful():
            self.session.learned.remember(self._learn_key, self.name, self.limits, self.id)

    def _resubmit(
        self, state: str, *, retried: Attempt | None = None, request: Request | None = None
    ) -> None:
        """Submit the call again (the same directory and script) and follow the new job."""
        placement = resubmit(
            self.session,
            self._placement(),
            name=self.name,
            state=state,
            retried=retried,
            limits=request.limits if request else None,
            rule=request.rule if request else "same",
            attempt=self.attempt,
            resubmissions=len(self.previous_ids),
        )
        self.id, self.limits, self.rule = placement.job_id, dict(placement.limits), placement.rule
        self.session.tracker.watch(self, submitted=placement.submitted)

    def _retry(self) -> tuple[Attempt, Request] | None:
        """The attempt that just ended and the request to retry with, or None (no retry)."""
        if self.retry is None:
            return None
        envelope = self._load_envelope()
        usage: Usage | None
        if envelope is not None:
            if envelope.ok or not raised_one_of(envelope, self.retry.exceptions):
                return None
            state = JobState.FAILED.value
            if len(self._earlier) + 1 >= self.retry.max_attempts:
                return None
            request: Request | None = Request(dict(self.limits), "same")
            usage = self.usage
        else:
            info = self.session.tracker.info_of(self)
            state = info.state.value if info else ""
            if state == JobState.FAILED.value:
                state = ended_state(state, self.stderr_tail())
            if state not in self.retry.on or len(self._earlier) + 1 >= self.retry.max_attempts:
                return None
            usage = self._usage_for_retry(state)
            request = next_request(
                self.retry,
                state,
                len(self._earlier) + 1,
                self.limits,
                usage,
                nodes=info.node if info else None,
            )
        if request is None:
            return None
        ended = Attempt(self.id, state, dict(self.limits), usage, None, self.rule)
        return ended, request

    def _usage_for_retry(self, state: str) -> Usage | None:
        """What the ended attempt used, with the figure its retry is sized from.

        Accounting may record an ended job's MaxRSS (or Elapsed) a moment after its
        end: asked again, a few times a second apart, for up to 10 s; without it
        the retry grows by its factor alone. A step the accounting gatherer killed
        for memory says in its stderr what it had reached: that counts too.
        """
        figure = {"OUT_OF_MEMORY": "max_rss_bytes", "TIMEOUT": "elapsed_s"}.get(state)
        usage = self.usage
        killed = killed_at_rss(self.stderr_tail()) if state == "OUT_OF_MEMORY" else None
        if killed is not None and (usage is None or (usage.max_rss_bytes or 0) < killed):
            base = usage or Usage("runner")
            usage = dataclasses.replace(base, max_rss_bytes=killed, max_rss_source="slurmstepd")
        deadline = time.monotonic() + 10
        while (
            figure is not None
            and (usage is None or getattr(usage, figure) is None)
            and self.session.tracker.accounting is not False
            and time.monotonic() < deadline
        ):
            time.sleep(1.0)
            usage = self.measured_usage()
        return usage

    def _needs_resubmission(self) -> bool:
        """Interrupted (preempted, node lost) and Slurm could not requeue it: not an attempt."""
        if self.session.tracker.has_result(self) or len(self.previous_ids) >= self.max_requeues:
            return False
        info = self.session.tracker.info_of(self)
        if info is None:
            return False
        if info.state in (JobState.PREEMPTED, JobState.NODE_FAIL, JobState.BOOT_FAIL):
            return True
        if info.state is not JobState.TIMEOUT:
            return False
        return any(e.event == "requeue-failed" for e in parse_run_log(self._runs_log()))

    def _runs_log(self) -> str:
        try:
            return self.session.transport.read_text(self.runs_path)
        except FileNotFoundError:
            return ""

    def get_result(self, timeout: float | None = None, *, trusted: bool = True) -> T:
        """Wait for the job and return its value, or raise its exception.

        Raises the task's own exception (with the remote traceback as a note),
        :class:`~slurm.errors.TaskFailedError` when that type cannot be rebuilt,
        :class:`~slurm.errors.JobTerminatedError` when the job ended without a
        result, :class:`~slurm.errors.JobTimeoutError` when ``timeout`` passed.

        Unpickling runs code: whoever controls the cluster's login node (a host key
        accepted on first use, an administrator) could write a result that runs code
        here. ``trusted=False`` rebuilds only plain data (numbers, strings, bytes,
        containers, dates, decimals, paths; :class:`~slurm.errors.ResultError` for
        anything else) and never the remote exception: a
        :class:`~slurm.errors.TaskFailedError` names it instead.
        """
        if not self.wait_final(timeout):
            raise JobTimeoutError(
                f"Job {self.id} ({self.name}) did not finish within {timeout} s; it is "
                f"{self.state.value}. Call get_result() again to keep waiting.",
                job_id=self.id,
            )
        envelope = self._load_envelope(trusted=trusted)
        if envelope is None:
            raise self._terminated_error()
        value: T = envelope.unwrap(trusted=trusted)
        return value

    result = get_result

    async def result_async(self, timeout: float | None = None) -> T:
        """``get_result`` for asyncio: the event loop runs on while the job does.

        Cancelling the awaiting coroutine leaves the Slurm job running.
        """
        if not await self.wait_final_async(timeout):
            raise JobTimeoutError(
                f"Job {self.id} ({self.name}) did not finish within {timeout} s. Await it "
                "again to keep waiting.",
                job_id=self.id,
            )
        import asyncio

        loop = asyncio.get_running_loop()
        value: T = await loop.run_in_executor(None, self.get_result, 0)
        return value

    def __await__(self) -> Generator[Any, None, T]:
        """``await job`` is ``await job.result_async()``."""
        return self.result_async().__await__()

    def get_results(self, timeout: float | None = None) -> list[T]:
        """Every rank's value, in rank order, for a task of several ranks (``nodes``,
        ``ntasks`` or ``ntasks_per_node`` above 1); ``[get_result()]`` for one task.
        An element of an array of such a task (``map``, ``cluster.batch()``) gives
        its own ranks' values.

        Raises what :meth:`get_result` raises; when a rank failed, that is its
        error, the remote traceback's note naming the rank and its host.

        Example::

            job = allreduce.with_options(nodes=2, ntasks_per_node=2)(x)
            assert len(job.get_results(timeout=300)) == 4
        """
        first = self.get_result(timeout)
        paths = JobPaths(self.job_dir, self.array_index)
        transport = self.session.transport
        try:
            world = int(transport.read_bytes(paths.world_size).decode().strip())
        except (OSError, ValueError):
            return [first]
        values = [first]
        for rank in range(1, world):
            # Unpickled only from a file only this user can have written, as get_result().
            self.session.store.check_private(paths.rank_result(rank), job_id=self.id)
            data = transport.read_bytes(paths.rank_result(rank))
            values.append(Envelope.from_bytes(data, job_id=self.id).unwrap())
        return values

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error ``get_result()`` would raise, or None if the job succeeded.

        A task that raised ``SystemExit`` or ``KeyboardInterrupt`` is returned
        as :class:`~slurm.errors.TaskFailedError` naming it; a Ctrl-C while
        waiting here stops the program as usual.
        """
        try:
            self.get_result(timeout)
        except JobTimeoutError:
            raise
        except Exception as exc:
            return exc
        return None

    def _load_outcome(self) -> Outcome | None:
        """How the call ended (JSON, never unpickled), once its result exists."""
        if self._outcome is None and self.session.tracker.has_result(self):
            try:
                text = self.session.transport.read_text(self.outcome_path)
            except FileNotFoundError:
                text = ""  # a result without an outcome: another SDK version wrote it
            try:
                if not text:
                    raise ResultError(
                        f"{self.outcome_path} is missing (another slurm-sdk version?)",
                        job_id=self.id,
                    )
                self._outcome = Outcome.from_json(text, job_id=self.id)
            except ResultError as exc:  # truncated or foreign: the job failed, get_result says why
                self._outcome = Outcome(
                    ok=False, type_name="slurm.errors.ResultError", message=str(exc), job_id=self.id
                )
        return self._outcome

    def _load_envelope(self, *, trusted: bool = True) -> Envelope | None:
        """The result envelope, unpickled only from a file only this user can have written
        (``trusted=False``: and only if it is plain data)."""
        if self._envelope is None and self.session.tracker.has_result(self):
            self.session.store.check_private(self.result_path, job_id=self.id)
            data = self.session.transport.read_bytes(self.result_path)
            self._envelope = Envelope.from_bytes(data, job_id=self.id, trusted=trusted)
            self._outcome = self._outcome or self._envelope.outcome()
        return self._envelope

    def _terminated_error(self) -> JobTerminatedError:
        info = self.session.tracker.final_info(self)
        tail = self.stderr_tail()
        state = ended_state(info.state.value, tail) if info else "UNKNOWN"
        reason = info.reason if info else ""
        exit_code = None
        if info and info.exit_code is not None:
            exit_code = f"{info.exit_code}:{info.signal or 0}"
        why = {
            "TIMEOUT": "it hit its time limit; ask for more `time=`",
            "OUT_OF_MEMORY": "it ran out of memory; ask for more `mem=`",
            "CANCELLED": "it was cancelled",
            "NODE_FAIL": "its node failed",
            "BOOT_FAIL": "its node failed to boot",
            "DEADLINE": "it missed its deadline",
            "PREEMPTED": "it was preempted and not requeued",
        }.get(state, "it ended without writing a result")
        if state == "TIMEOUT" and any(
            e.event == "no-progress" for e in parse_run_log(self._runs_log())
        ):
            why = (
                "it hit its time limit and was not requeued again, because its previous run "
                "made no progress: its checkpoint callbacks wrote nothing new (the same files "
                "with the same content as the run before; see the `no-progress` line in "
                f"{self.runs_path}). Ask for more `time=`, or make the checkpoint record how "
                "far it got"
            )
        if state in ("NODE_FAIL", "BOOT_FAIL") and info and info.node:
            why = why.replace("its node", f"its node {info.node}")
        if reason == "DependencyNeverSatisfied":
            why = "a job it depends on failed, so it can never start (it was cancelled)"
        if state == "FAILED" and not tail and not self.session.transport.exists(self.stderr_path):
            # Slurm opens the logs before the script runs: none means the node could not.
            node = f"node {info.node}" if info and info.node else "its node"
            why = (
                f"{node} could not even create its log files in {self.job_dir}, so the "
                f"compute nodes probably cannot see the job base directory "
                f"{self.session.store.base_dir} (a disk of the submitting machine's own, "
                "such as /tmp); give job_base_dir= a directory on a file system the nodes share"
            )
        if info is None:
            why += ", and Slurm no longer lists it (squeue forgets ended jobs after MinJobAge)"
            if self.session.tracker.sacct_failed:
                why += (
                    "; accounting (sacct) did not answer, so how it ended is unknown: once "
                    f"slurmdbd is back, `sacct -j {self.id}` tells"
                )
        message = f"Job {self.id} ({self.name}) ended in state {state}: {why}."
        if exit_code:
            message += f" Exit code {exit_code}."
        if tail:
            message += f"\n--- last lines of {self.stderr_path} ---\n{tail}"
        else:
            message += f" Its stderr ({self.stderr_path}) is empty or missing."
        return JobTerminatedError(
            message, job_id=self.id, state=state, exit_code=exit_code, stderr_tail=tail
        )

    def stderr_tail(self, lines: int = _STDERR_TAIL_LINES) -> str:
        """The last ``lines`` lines of stderr: only its last 64 KiB are read, however long."""
        try:
            data, _ = self.session.transport.read_range(self.stderr_path, -_TAIL_BYTES, _TAIL_BYTES)
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def measured_usage(self) -> Usage | None:
        """What the job used, asked now (sacct, else the runner's figures); see :attr:`usage`."""
        return gather_usage(self.session, [self]).get(self.done_marker)

    def why(self) -> Why:
        """Why the job is pending, or why it failed: one answer with what to change.

        The same record ``slurm jobs why ID`` prints (:class:`slurm.inspect.Why`):
        for a pending job Slurm's reason in a sentence (the dependency it waits
        on and that job's state, the partition's limit it exceeds, a hold); for
        an ended one its state, exit code, node, the first lines of its error and
        its usage against the request.

        Example::

            job = train.with_options(mem="100M")(data)
            job.wait()
            print(job.why().render())  # MaxRSS 416 MB of 100 MB ... ask for mem=624M
        """
        self._check_submitted()
        from slurm._api.why import why_of  # reasons and their advice: when asked

        return why_of(self)

    # --- control and logs ------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the job (no error if it already ended).

        A call in a worker pool that no worker has taken yet is skipped (it ends with
        a ``JobTerminatedError``, state ``CANCELLED``); one already running runs on.
        A call packed with others (``pack=``) is skipped by its element when the
        element comes to it; one already running or done runs on (its element's
        other calls are not cancelled: ``ArrayJob.cancel()`` cancels them all).
        """
        self._check_submitted()
        if self.packed or is_pool_call(self.id):
            self.session.transport.write_text(self.paths.cancel, "")
            self._cancel_skipped = None
            return
        self.session.slurm.cancel([self.id])
        self.session.tracker.refresh([self])
        self.session.tracker.ending_soon()

    def get_stdout(self) -> str:
        return self._read_log(self.stdout_path)

    def get_stderr(self) -> str:
        return self._read_log(self.stderr_path)

    def get_script(self) -> str:
        """The batch script that was submitted."""
        return self.session.transport.read_text(self.script_path)

    def _read_log(self, path: str) -> str:
        try:
            return self.session.transport.read_bytes(path).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def _partial(usage: Usage) -> bool:
    """Accounting's first row of a job that has just ended may lack its limits: not kept,
    so that the next look asks again."""
    return usage.source == "sacct" and (usage.time_limit_s is None or usage.mem_bytes is None)


def usage_of_many(jobs: Sequence[Job[Any]]) -> dict[int, Usage]:
    """The usage of every finished job among ``jobs`` (by position): one sacct call for all
    that were not measured yet, kept on each job as :attr:`Job.usage` keeps its own."""
    ended = [job for job in jobs if job._usage is None and job.done()]
    fresh = gather_usage(ended[0].session, ended) if ended else {}
    for job in ended:
        usage = fresh.get(job.done_marker)
        if usage is not None and not _partial(usage):
            job._usage = usage
    known = {i: job._usage or fresh.get(job.done_marker) for i, job in enumerate(jobs)}
    return {i: usage for i, usage in known.items() if usage is not None}


def gather_usage(session: Session, jobs: Sequence[Job[Any]]) -> dict[str, Usage]:
    """Usage of ended jobs by id (a packed call's by its :attr:`Job.done_marker`, ``123_4+7``):
    one sacct call, the runner's files where it has nothing.

    sacct's MaxRSS is sampled (``JobAcctGatherFrequency``): a job shorter than
    one sample has none, and the runner's own peak stands in
    (``max_rss_source="runner"``).
    """
    if not jobs:
        return {}
    found: dict[str, Usage] = {}
    # A packed call shares its element (and its accounting) with others: its own
    # figures are the runner's.
    accounted = [job.id for job in jobs if not job.packed]
    if session.tracker.accounting is not False and accounted:
        answer = session.slurm.usage(accounted)
        found = answer or {}
    result: dict[str, Usage] = {}
    for job in jobs:
        usage = None if job.packed else found.get(job.id)
        if usage is None or usage.max_rss_bytes is None:
            measured = _runner_usage(session, job)
            if usage is None:
                usage = measured
            elif measured is not None and measured.max_rss_bytes is not None:
                usage = dataclasses.replace(
                    usage, max_rss_bytes=measured.max_rss_bytes, max_rss_source="runner"
                )
        if usage is not None:
            result[job.done_marker] = usage
    return result


def _runner_usage(session: Session, job: Job[Any]) -> Usage | None:
    try:
        text = session.transport.read_text(job.paths.usage)
    except FileNotFoundError:
        return None
    outcome = job._outcome  # no look at Slurm from here (slurm jobs show, list --usage)
    state = "" if outcome is None else "COMPLETED" if outcome.ok else "FAILED"
    return runner_usage(text, state=state)
