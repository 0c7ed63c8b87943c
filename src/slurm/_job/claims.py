"""A pool's queue as one worker sees it: claim, heartbeat, release, reclaim (local files).

The names and the entry record are :mod:`slurm._wire.queue`'s; here are the
operations, each one ``rename`` (atomic on one file system, so two workers
never hold the same claim):

- :meth:`LocalQueue.claim` renames ``pending/NAME`` to ``claimed/NAME@WORKER``
  (its mtime refreshed first: the lease starts now) and reads it; an entry of
  several calls is split into one entry per call, written back to
  ``pending/``, before the worker takes the first;
- :meth:`LocalQueue.heartbeat` touches the claim and the worker's own file;
- :meth:`LocalQueue.release` (the worker is being stopped) and
  :meth:`LocalQueue.reclaim_expired` (a claim whose heartbeat is older than the
  lease: its worker was killed) rename the claim back to ``pending/NAME`` and
  add a line to the call's attempts file naming the worker that lost it;
- :meth:`LocalQueue.done` removes the claim once the call's result is written.

A name in ``pending/`` that is not an entry, an entry that does not parse, is
not the user's own file, or names a directory outside the job base directory
is moved to ``queue/skipped/`` with a line on the worker's log, and never read
further. The trust check itself is handed in (``trusted``): the job side does
not import the transport layer.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slurm._slurm.retry import Attempt
from slurm._wire.layout import JobPaths
from slurm._wire.queue import (
    PoolPaths,
    QueueEntry,
    claim_name,
    is_entry_name,
    is_expired,
    parse_claim_name,
)
from slurm.errors import ResultError

__all__ = ["Claim", "LocalQueue"]

#: ``trusted(path)``: why the file or directory at ``path`` may not be read, or None.
TrustCheck = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Claim:
    """One entry a worker holds: its name in ``pending/``, where it lies now, what it says."""

    name: str
    path: str
    entry: QueueEntry
    since: float


def _private(path: str) -> str | None:
    """The rule of the trust check for one file, for when none is handed in."""
    st = os.stat(path)
    if st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"{path} has mode {st.st_mode & 0o7777:04o}: others may have changed it"
    return None


class LocalQueue:
    """The queue of the pool in ``pool_dir``, for ``worker`` (its Slurm id)."""

    def __init__(
        self,
        pool_dir: str,
        worker: str,
        *,
        lease: float,
        log: Callable[[str], None],
        trusted: TrustCheck | None = None,
    ) -> None:
        self.paths = PoolPaths(pool_dir)
        self.worker = worker
        self.lease = lease
        self._log = log
        self._trusted = trusted or _private
        self._base_dir = os.path.dirname(os.path.abspath(pool_dir))
        self._listing: list[str] = []
        self._skipped = f"{pool_dir}/queue/skipped"
        self.current: Claim | None = None
        for directory in (self.paths.pending, self.paths.claimed, self.paths.workers):
            os.makedirs(directory, mode=0o700, exist_ok=True)

    # --- taking -------------------------------------------------------------------
    def claim(self) -> Claim | None:
        """Take the next entry (one call), or None when ``pending/`` has none."""
        while True:
            if not self._listing:
                self._listing = self._names()
                if not self._listing:
                    return None
            name = self._listing.pop()
            source = f"{self.paths.pending}/{name}"
            target = f"{self.paths.claimed}/{claim_name(name, self.worker)}"
            try:
                os.utime(source)  # the lease starts now, not when the entry was written
                os.rename(source, target)
            except FileNotFoundError:
                continue  # another worker took it first
            claim = self._read(name, target)
            if claim is None:
                continue
            if claim.entry.size > 1:
                self._split(claim)
                continue
            self.current = claim
            return claim

    def _names(self) -> list[str]:
        """The entries waiting, in an order of this worker's own (fewer collisions),
        popped from the end; names that are not entries are moved aside."""
        try:
            names = os.listdir(self.paths.pending)
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            if name.startswith("."):  # being written (the transport's temporary name)
                continue
            if not is_entry_name(name):
                self._skip(f"{self.paths.pending}/{name}", name, "its name is not a queue entry's")
                continue
            entries.append(name)
        entries.sort(reverse=True)  # the oldest first (popped from the end)
        if len(entries) > 1:
            turn = zlib.crc32(self.worker.encode()) % len(entries)
            entries = entries[turn:] + entries[:turn]
        return entries

    def _read(self, name: str, path: str) -> Claim | None:
        """The claimed entry, checked before anything in it is used; None if skipped."""
        try:
            problem = self._trusted(path)
            if problem is None:
                entry = QueueEntry.from_json(Path(path).read_text(encoding="utf-8"))
                problem = self._foreign(entry)
        except (OSError, UnicodeDecodeError, ResultError) as exc:
            problem = str(exc)
        if problem is not None:
            self._skip(path, name, problem)
            return None
        return Claim(name, path, entry, time.time())

    def _foreign(self, entry: QueueEntry) -> str | None:
        """Why the directory ``entry`` names may not be run from, or None."""
        job_dir = entry.job_dir
        if os.path.normpath(job_dir) != job_dir or os.path.dirname(job_dir) != self._base_dir:
            return f"it names {job_dir!r}, not a job directory of {self._base_dir}"
        problem = self._trusted(job_dir)
        if problem is None and entry.size == 1:  # the payload it would unpickle
            index = entry.first if entry.array else None
            problem = self._trusted(JobPaths(job_dir, index).payload)
        return problem

    def _skip(self, path: str, name: str, why: str) -> None:
        self._log(f"skipped the queue entry {name}: {why}; moved to {self._skipped}")
        os.makedirs(self._skipped, mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            os.rename(path, f"{self._skipped}/{name}")

    def _split(self, claim: Claim) -> None:
        """One entry per call of a range, back into ``pending/``; then drop the range."""
        for index in range(claim.entry.first, claim.entry.last + 1):
            single = claim.entry.single(index)
            if os.path.exists(JobPaths(single.job_dir, index).result):
                continue  # split before by a worker that was lost meanwhile
            name = single.name()
            tmp = f"{self.paths.pending}/.{name}.{os.getpid()}"
            Path(tmp).write_text(single.to_json(), encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.rename(tmp, f"{self.paths.pending}/{name}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claim.path)
        self._listing = []

    # --- holding --------------------------------------------------------------------
    def heartbeat(self) -> bool:
        """Renew the lease of the call in hand and the worker's own file; False when
        the claim was taken away (it was reclaimed: the call may run elsewhere)."""
        self.touch_worker()
        claim = self.current
        if claim is None:
            return True
        try:
            os.utime(claim.path)
        except FileNotFoundError:
            return False
        return True

    def touch_worker(self) -> None:
        path = f"{self.paths.workers}/{self.worker}"
        try:
            os.utime(path)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                Path(path).touch(mode=0o600)

    def leave(self) -> None:
        """The worker exits: its file goes, its name is left in ``left/``."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.paths.workers}/{self.worker}")
        with contextlib.suppress(OSError):
            Path(f"{self.paths.left}/{self.worker}").touch(mode=0o600)

    def live_workers(self, now: float | None = None) -> int:
        """Workers whose file was touched within the lease (this one included)."""
        now = time.time() if now is None else now
        count = 0
        for name in _listdir(self.paths.workers):
            with contextlib.suppress(FileNotFoundError):
                if not is_expired(
                    os.stat(f"{self.paths.workers}/{name}").st_mtime, now, self.lease
                ):
                    count += 1
        return count

    def done(self, claim: Claim) -> None:
        """The call's result is written: the claim goes."""
        self.current = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claim.path)

    # --- giving back ------------------------------------------------------------------
    def release(self, claim: Claim, state: str) -> None:
        """Give the call back (this worker is stopped): recorded, then pending again."""
        self.current = None
        self._give_back(claim.path, claim.name, self.worker, state, claim.since)

    def reclaim_expired(self, now: float | None = None) -> int:
        """Give back every claim whose lease expired (its worker is gone); how many."""
        now = time.time() if now is None else now
        count = 0
        for name in _listdir(self.paths.claimed):
            parsed = parse_claim_name(name)
            if parsed is None:
                continue
            entry_name, worker = parsed
            path = f"{self.paths.claimed}/{name}"
            try:
                heartbeat = os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if is_expired(heartbeat, now, self.lease) and self._give_back(
                path, entry_name, worker, "LEASE_EXPIRED", None
            ):
                count += 1
        return count

    def _give_back(
        self, path: str, name: str, worker: str, state: str, since: float | None
    ) -> bool:
        try:
            entry = QueueEntry.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ResultError):
            entry = None
        # Moved aside first, so that of two workers giving it back only one records it.
        aside = f"{self.paths.claimed}/.{name}.{os.getpid()}.back"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if entry is not None:
            for index, call_id in entry.call_ids():
                self._record_attempt(entry, index, call_id, worker, state, since)
        os.rename(aside, f"{self.paths.pending}/{name}")
        self._listing = []
        self._log(f"the call {name} went back to the queue: worker {worker} {state}")
        return True

    @staticmethod
    def _record_attempt(
        entry: QueueEntry,
        index: int | None,
        call_id: str,
        worker: str,
        state: str,
        since: float | None,
    ) -> None:
        paths = JobPaths(entry.job_dir, index)
        if os.path.exists(paths.result):
            return  # it finished before its worker was lost: nothing to record
        line = Attempt(worker, state, {}, None, since).to_json(
            next_id=call_id, next_limits={}, next_submitted=time.time()
        )
        with contextlib.suppress(OSError), open(paths.attempts, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _listdir(path: str) -> list[str]:
    try:
        return [n for n in os.listdir(path) if not n.startswith(".")]
    except FileNotFoundError:
        return []
