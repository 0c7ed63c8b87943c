"""One poller per cluster for every watched job.

Each tick first looks for result files (no controller call); jobs still
without a result are checked with one batched ``squeue`` call (on Slurm 24.05
and later, while every one was last seen running, the lighter ``squeue
--only-job-state`` first: see :mod:`slurm._slurm.states`), and those that
have left ``squeue`` with one batched ``sacct`` call. Intervals start short
after a submission and back off while nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Protocol

from slurm._client.events import Completed, Emitter, StatusChanged
from slurm._client.store import JobStore
from slurm._slurm.client import SlurmClient
from slurm._slurm.commands import JobInfo, JobState
from slurm._wire.queue import is_pool_call
from slurm._wire.record import field, record, replace

logger = logging.getLogger(__name__)

__all__ = ["Tracker", "Watched"]

_FILE_INTERVAL = (0.05, 1.0)
#: The longest wait between two looks at the files within this many seconds of the last
#: submission or result: short calls are seen as they end, long ones cost 1 look a second.
_BRISK_INTERVAL, _BRISK_FOR = 0.25, 30.0
#: After a look that found results, each this many calls still open add the shortest
#: interval to the next wait (up to the brisk one): a map of a thousand calls whose
#: results trickle in is looked at 4 times a second, not 20, until its last calls.
_CROWD = 100
_CONTROLLER_INTERVAL = (1.0, 15.0)
_ERROR_BACKOFF_MAX = 60.0
#: Seconds the thread stays once nothing is open, for the next wait (the next job of a
#: chain, the next result of a map).
_IDLE_GRACE = 1.0
_BACKOFF = 1.5
_CLOCK_SLACK = 600.0
_PROGRESS_HOLD = 60.0  # longest the controller waits while results keep arriving
_MISSING_GRACE = 2  # consecutive polls a job may be absent from squeue and sacct

#: The jobs whose end is being announced (``Completed``) in this context: a listener
#: told of one (or a callback's hook, which runs in a copy of this context) may wait
#: for it and gets it as final, while everyone else waits until the announcement is over.
_announcing: ContextVar[frozenset[str]] = ContextVar("slurm_announcing", default=frozenset())


class Watched(Protocol):
    """What the tracker needs of a job it watches: its current id, its result file and the
    name of the done marker the runner drops (the id; a packed call's is its own)."""

    @property
    def id(self) -> str: ...

    @property
    def result_path(self) -> str: ...

    @property
    def done_marker(self) -> str: ...


def _key(job: Watched) -> str:
    """A watch's key: the calls of a packed element share its id, never their marker."""
    return job.done_marker


@record
class _Watch:
    job_id: str
    result_path: str
    marker: str
    has_result: bool = False
    final: bool = False
    info: JobInfo | None = None
    since: float | None = None  # wall-clock submission time, when known
    expects_marker: bool = False  # submitted by us: the runner drops a done marker
    subject: Watched | None = None  # the job object watched (named in events)
    missing: int = 0
    terminal_without_result: int = 0
    on_final: list[Callable[[], object]] = field(default_factory=list)


def next_file_interval(
    current: float, *, changed: bool, quiet_for: float, waiting: int = 0
) -> float:
    """The wait before the next look at the result files.

    Results arriving: look again soon, the sooner the fewer calls are still
    ``waiting`` (50 ms for the last ones of a map, a quarter of a second while a
    thousand are open: each look then finds several). Otherwise back off, to a
    quarter of a second within half a minute of the last submission or result
    (short calls are seen as they end), to a second after that (a long job costs
    one look a second).
    """
    if changed:
        return min(_BRISK_INTERVAL, _FILE_INTERVAL[0] * (1 + waiting // _CROWD))
    cap = _BRISK_INTERVAL if quiet_for < _BRISK_FOR else _FILE_INTERVAL[1]
    return min(current * _BACKOFF, cap)


class Tracker:
    """Watches jobs for one cluster; thread-safe, one background thread.

    Args:
        slurm: asks Slurm about jobs without a result.
        store: where result files and the done markers are.
        events: where it reports a new state (``StatusChanged``) and a job that is
            over (``Completed``, before waiters wake), see :mod:`slurm._client.events`.

    Attributes:
        accounting: whether sacct answers here (``None`` until it was asked; once it
            has answered, it stays True).
        sacct_failed: whether the last sacct call failed.
        controller_calls: how many squeue/sacct/scancel calls it made.
    """

    def __init__(
        self, slurm: SlurmClient, store: JobStore, *, events: Emitter | None = None
    ) -> None:
        self._slurm = slurm
        self._events = events
        self._store = store
        self._files = store.transport
        self._watches: dict[str, _Watch] = {}
        # The watches not final yet, by key: what a look covers, without a pass over every
        # watch (a map of 1000 calls is looked at some hundred times while it runs).
        self._open: dict[str, _Watch] = {}
        self._unmarked: dict[str, _Watch] = {}  # of those, the ones no done marker announces
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._file_interval = _FILE_INTERVAL[0]
        self._last_news = time.monotonic()  # the last submission or result seen
        self._controller_interval = _CONTROLLER_INTERVAL[0]
        self._next_controller_poll = 0.0
        self._last_controller_poll = time.monotonic()
        self._last_progress = 0.0
        self.accounting: bool | None = None  # learnt from the first sacct call
        self.sacct_failed = False  # the last sacct call did not answer
        self.controller_calls = 0
        #: The longest wait between two looks at the controller while jobs run (None: the
        #: tracker's own back-off, up to 15 s); callbacks asking for status updates set it.
        self.status_interval: float | None = None

    # --- public ---------------------------------------------------------------
    def watch(
        self, job: Watched, *, submitted: float | None = None, finished: bool = False
    ) -> None:
        """Track ``job``; ``submitted`` (``time.time()``) narrows accounting look-ups.
        ``finished``: its result is known to be there (a call answered from the cache):
        final at once, without a look at Slurm or an event."""
        with self._cond:
            if finished and _key(job) not in self._watches:
                self._watches[_key(job)] = _Watch(
                    job.id,
                    job.result_path,
                    _key(job),
                    has_result=True,
                    final=True,
                    subject=job,
                )
                return
            news = _key(job) not in self._watches
            if news:
                watch = _Watch(
                    job.id,
                    job.result_path,
                    _key(job),
                    since=submitted,
                    expects_marker=submitted is not None,
                    subject=job,
                )
                self._watches[watch.marker] = self._open[watch.marker] = watch
                if not watch.expects_marker:
                    self._unmarked[watch.marker] = watch
                self._speed_up()  # only a new job: waiting on a known one changes nothing
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._loop, name=f"slurm-tracker-{id(self):x}", daemon=True
                )
                self._thread.start()
            elif news:  # the loop looks sooner; a wait on a known job does not wake it
                self._cond.notify_all()

    def wait(self, job: Watched, timeout: float | None) -> bool:
        """Block until ``job`` is final; False if ``timeout`` passed first."""
        self.watch(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._final(self._watches[_key(job)]):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
        return True

    def wait_any(self, jobs: Sequence[Watched], timeout: float | None) -> bool:
        """Block until one of ``jobs`` is final; False if ``timeout`` passed first."""
        for job in jobs:
            self.watch(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not any(self._final(self._watches[_key(job)]) for job in jobs):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
        return True

    def ending_soon(self) -> None:
        """Jobs were just cancelled: they end within the cluster's ``KillWait``, so
        ask the controller often again instead of at the backed-off interval."""
        with self._cond:
            self._speed_up()
            self._cond.notify_all()

    def refresh(self, jobs: Iterable[Watched]) -> None:
        """Look now, in this thread, at these jobs."""
        for job in jobs:
            self.watch(job)
        with self._cond:
            self._next_controller_poll = 0.0
        self._tick(force_controller=True)

    def _watch_for(self, job: Watched) -> _Watch:
        with self._cond:
            watch = self._watches.get(_key(job))
        if watch is None:
            self.refresh([job])
            with self._cond:
                watch = self._watches[_key(job)]
        return watch

    def has_result(self, job: Watched) -> bool:
        watch = self._watch_for(job)
        if not watch.has_result and not watch.final:
            return False
        if not watch.has_result:  # final without result: check once more
            watch.has_result = self._files.exists(watch.result_path)
        return watch.has_result

    def is_final(self, job: Watched) -> bool:
        return self._final(self._watch_for(job))

    @staticmethod
    def _final(watch: _Watch) -> bool:
        return watch.final or watch.marker in _announcing.get()

    def state_of(self, job: Watched) -> JobState:
        info = self._watch_for(job).info
        return info.state if info else JobState.UNKNOWN

    def info_of(self, job: Watched) -> JobInfo | None:
        return self._watch_for(job).info

    def final_info(self, job: Watched) -> JobInfo | None:
        """The job's last state with its exit code, from accounting when squeue lacked it.

        Only for reporting a job that ended without a result (one sacct call).
        """
        watch = self._watch_for(job)
        if (watch.info is not None and watch.info.exit_code is not None) or is_pool_call(job.id):
            return watch.info
        record = self._sacct([job.id], watch.since).get(job.id)  # one call, for reporting
        if record is not None and (watch.info is None or record.state.is_terminal):
            earlier = watch.info.reason if watch.info is not None else ""
            if earlier and (not record.reason or earlier == "DependencyNeverSatisfied"):
                # e.g. DependencyNeverSatisfied: squeue's why outlives sacct's what.
                record = replace(record, reason=earlier)
            watch.info = record
        return watch.info

    def stop(self) -> None:
        """Stop the thread. The cluster removes its done-marker directory next, so jobs
        still watched are looked for by their result files if waited on again."""
        with self._cond:
            self._stopped = True
            for watch in self._watches.values():
                watch.expects_marker = False
            self._unmarked.update(self._open)
            self._cond.notify_all()

    # --- the loop --------------------------------------------------------------
    def _speed_up(self) -> None:
        """A new submission: look at files often, and ask the controller soon."""
        self._file_interval = _FILE_INTERVAL[0]
        self._last_news = time.monotonic()
        self._controller_interval = _CONTROLLER_INTERVAL[0]
        self._next_controller_poll = min(
            self._next_controller_poll, time.monotonic() + self._controller_interval
        )

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._open and not self._stopped:
                    # A program that waits on its next job soon (get_results, a chain)
                    # finds this thread still here instead of starting one per wait.
                    self._cond.wait(_IDLE_GRACE)
                if self._stopped or not self._open:
                    self._thread = None
                    return
            try:
                changed = self._tick()
            except Exception as exc:  # keep tracking, but do not hammer a failing controller
                with self._cond:
                    self._controller_interval = min(
                        max(self._controller_interval, 1.0) * 2, _ERROR_BACKOFF_MAX
                    )
                    self._next_controller_poll = time.monotonic() + self._controller_interval
                logger.warning(
                    "job tracking failed (%s); retrying in %.0f s", exc, self._controller_interval
                )
                changed = False
            with self._cond:
                now = time.monotonic()
                if changed:
                    self._last_news = now
                self._file_interval = next_file_interval(
                    self._file_interval,
                    changed=changed,
                    quiet_for=now - self._last_news,
                    waiting=len(self._open),
                )
                self._cond.wait(self._file_interval)

    def _pending(self) -> list[_Watch]:
        with self._cond:
            return list(self._open.values())

    def _tick(self, *, force_controller: bool = False) -> bool:
        changed = self._scan_results()
        now = time.monotonic()
        if changed and not force_controller:
            # Results are arriving: the jobs are fine. The controller is only needed
            # to catch jobs that die without one, so it can wait (not past a bound).
            self._last_progress = now
            if now - self._last_controller_poll < _PROGRESS_HOLD:
                self._next_controller_poll = max(
                    self._next_controller_poll, now + self._controller_interval
                )
        if force_controller or now >= self._next_controller_poll:
            self._last_controller_poll = now
            moved = self._poll_controller()
            with self._cond:
                if not moved:
                    self._controller_interval = min(
                        self._controller_interval * _BACKOFF,
                        _CONTROLLER_INTERVAL[1],
                        self.status_interval or _CONTROLLER_INTERVAL[1],
                    )
                self._next_controller_poll = time.monotonic() + self._controller_interval
            changed = moved or changed
        return changed

    def _scan_results(self) -> bool:
        """Find new result files with as few file-system calls as possible.

        The runner drops a marker named after the job id into the cluster's
        ``.done`` directory: one listing of it covers every watched job; the
        result file itself is then checked only for the jobs it names.
        Jobs reattached from elsewhere may have no marker: their result files
        are checked directly, with one listing per directory holding several.
        A marker read is removed where that is cheap (:meth:`Transport.remove_files`).
        """
        with self._cond:
            if not self._open:
                return False
            pending = dict(self._open)
            unmarked = list(self._unmarked.values())
        transport = self._files
        done_dir = self._store.done_dir
        markers = transport.list_dir(done_dir)
        # What the listing names, then the few watches without a marker: never a pass in
        # Python over every open watch.
        found = [watch for watch in map(pending.get, markers) if watch is not None]
        by_dir: dict[str, list[_Watch]] = {}
        seen = {watch.marker for watch in found}
        for watch in unmarked:
            if watch.marker not in seen:
                by_dir.setdefault(watch.result_path.rsplit("/", 1)[0], []).append(watch)
        for directory, watches in by_dir.items():
            if len(watches) == 1:
                if transport.exists(watches[0].result_path):
                    found.append(watches[0])
                continue
            names = set(transport.list_dir(directory))
            found.extend(w for w in watches if w.result_path.rsplit("/", 1)[1] in names)
        ready = [
            watch
            for watch in found
            if watch.marker not in seen or transport.exists(watch.result_path)
        ]
        consumed = [f"{done_dir}/{watch.marker}" for watch in ready if watch.marker in seen]
        if consumed:
            # The directory is this session's: a marker read is never needed again, and
            # the next listing names only what is new (a map of 1000 calls lists 1000
            # names a look otherwise). Where removing costs a round trip, they stay.
            # Removed before the waiters wake: a result returned has left no marker.
            transport.remove_files(consumed)
        for watch in ready:
            watch.has_result = True
            self._finish(watch)
        return bool(ready)

    def _finish(self, watch: _Watch) -> None:
        if self._events is not None and not watch.final:
            # Before waiters wake: what listeners do is done when wait() returns.
            token = _announcing.set(_announcing.get() | {watch.marker})
            try:
                self._events.emit(
                    Completed(watch.subject, watch.job_id, watch.info, watch.has_result)
                )
            finally:
                _announcing.reset(token)
        with self._cond:
            watch.final = True
            self._open.pop(watch.marker, None)
            self._unmarked.pop(watch.marker, None)
            callbacks, watch.on_final = watch.on_final, []
            self._cond.notify_all()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a caller's callback must not stop the tracking of others
                logger.warning("job %s: a completion callback failed", watch.job_id, exc_info=True)

    def when_final(self, job: Watched, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` (from the tracker's thread, or now) once ``job`` is final.

        Returns a function that forgets the callback (an awaiting coroutine was
        cancelled). Used by the asyncio API: no thread and no poll per awaited job.
        """
        self.watch(job)
        with self._cond:
            watch = self._watches[_key(job)]
            if not watch.final:
                watch.on_final.append(callback)

                def forget() -> None:
                    with self._cond, contextlib.suppress(ValueError):
                        watch.on_final.remove(callback)

                return forget
        callback()
        return lambda: None

    def _poll_controller(self) -> bool:
        # A pooled call is no Slurm job: its worker writes its result, and only that.
        pending = [w for w in self._pending() if not w.has_result and not is_pool_call(w.job_id)]
        if not pending:
            return False
        times = [w.since for w in pending]
        since = None if None in times else min(t for t in times if t is not None)
        ids = list(dict.fromkeys(w.job_id for w in pending))  # a packed element's calls: once
        # Every one last seen running: its state alone answers (squeue --only-job-state).
        running = {
            w.job_id: w.info
            for w in pending
            if w.info is not None and w.info.state is JobState.RUNNING
        }
        look = self._slurm.look(
            ids,
            since=_sacct_start(since),
            accounting=self.accounting is not False,
            running=running if len(running) == len(ids) else None,
        )
        self.controller_calls += look.calls
        self._learn_accounting(look.accounting)
        changed = False
        never_satisfied: dict[str, None] = {}
        for watch in pending:
            info = look.infos.get(watch.job_id)
            changed = self._update(watch, info, queued=watch.job_id in look.queued) or changed
            if info and info.reason == "DependencyNeverSatisfied" and not watch.final:
                never_satisfied[watch.job_id] = None
                self._finish(watch)
        if never_satisfied:
            self.controller_calls += 1
            self._slurm.cancel(list(never_satisfied))
        return changed

    def _update(self, watch: _Watch, info: JobInfo | None, *, queued: bool) -> bool:
        previous = watch.info.state if watch.info else None
        if info is None:
            watch.missing += 1
            if watch.missing >= _MISSING_GRACE and not self._recheck_result(watch):
                self._finish(watch)
            return False
        watch.missing = 0
        watch.info = info
        if self._events is not None and info.state is not previous:
            self._events.emit(
                StatusChanged(
                    watch.subject, watch.job_id, info, previous.value if previous else None
                )
            )
        if not info.is_final(queued=queued):
            watch.terminal_without_result = 0
        else:
            # The result is written before the job ends; look once more, then give up.
            watch.terminal_without_result += 1
            if not self._recheck_result(watch) and watch.terminal_without_result >= 2:
                self._finish(watch)
        return info.state is not previous

    def _recheck_result(self, watch: _Watch) -> bool:
        if self._files.exists(watch.result_path):
            watch.has_result = True
            self._finish(watch)
            return True
        return False

    def _learn_accounting(self, answered: bool | None) -> None:
        """``accounting`` becomes False only on a cluster whose sacct never answered: once
        it has, a failure (slurmdbd restarting) is passing, and sacct is asked again."""
        if answered is None:
            return
        self.sacct_failed = not answered
        if answered:
            self.accounting = True
        elif self.accounting is True:
            logger.info("sacct did not answer (slurmdbd down?); asking it again later")
        else:
            if self.accounting is None:
                logger.info("sacct is not usable here; tracking without accounting")
            self.accounting = False

    def _sacct(self, job_ids: list[str], since: float | None) -> dict[str, JobInfo]:
        if self.accounting is False:
            return {}
        self.controller_calls += 1
        found = self._slurm.sacct(job_ids, _sacct_start(since))
        self._learn_accounting(found is not None)
        wanted = set(job_ids)
        return {k: v for k, v in (found or {}).items() if k in wanted}


def _sacct_start(since: float | None) -> str | None:
    """sacct's ``--starttime`` for jobs submitted at ``since``, with slack for clock skew."""
    if since is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - _CLOCK_SLACK))
