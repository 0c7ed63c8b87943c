"""A worker pool's queue directory: its file names, its entries, the lease rule.

A pool (``cluster.pool(workers=N)``) is a directory under the job base
directory; the client writes calls into it, worker jobs take them out. No
server: every hand-over is one atomic ``rename`` on the shared file system::

    POOL_DIR/job.sh  logs/K.out  logs/K.err         the worker jobs (an array)
             queue/pending/NAME.json               waiting calls (the client writes)
             queue/claimed/NAME.json@WORKER        taken by WORKER; its mtime is the
                                                   lease's heartbeat
             workers/WORKER                        a live worker (mtime: heartbeat)
             left/WORKER                           a worker that exited (and said so)
             closing                               the client left the block

An entry names calls of one job directory (the calls' own files stay there, as
for a plain job or an array: payload, result, logs, runs and attempts): calls
``first`` to ``last`` of an array directory (``array``), or the one call of a
single-job directory. An entry of several calls is split by the worker that
takes it into one entry per call. A worker renames ``pending/NAME`` to
``claimed/NAME@WORKER`` (one rename wins), touches it while the call runs and
removes it when the call's result is written; a claim whose heartbeat is older
than the lease is renamed back to ``pending/NAME`` by whoever sees it (a worker
killed with the call in hand), with an attempt recorded in the call's attempts
file. The call's outcome file is created exclusively, so a call taken twice
still completes once.

The id of a pooled call is ``pool-TOKEN-SEQ`` (``pool-TOKEN-SEQ_I`` for element
``I`` of a map): not a Slurm id, so nobody asks Slurm about it
(:func:`is_pool_call`). Pure string work: no file is touched here.
"""

from __future__ import annotations

import json
import re

from slurm._wire.record import record
from slurm.errors import ResultError

__all__ = [
    "ENTRY_VERSION",
    "PoolPaths",
    "QueueEntry",
    "claim_name",
    "entry_name",
    "is_entry_name",
    "is_expired",
    "is_pool_call",
    "parse_claim_name",
]

ENTRY_VERSION = 1
POOL_PREFIX = "pool-"
_ENTRY_RE = re.compile(r"^pool-[0-9a-f]+-[0-9]+(?:-[0-9]+){0,2}\.json$")
_WORKER_RE = re.compile(r"^[0-9]+(?:_[0-9]+)?$|^local-[0-9]+$")
_POOL_CALL_RE = re.compile(r"^pool-[0-9a-f]+-[0-9]+(?:_[0-9]+)?$")


def is_pool_call(job_id: str) -> bool:
    """Whether ``job_id`` names a call in a worker pool (never a Slurm job id)."""
    return job_id.startswith(POOL_PREFIX)


@record(frozen=True)
class PoolPaths:
    """Where one pool keeps its queue and its workers' files."""

    pool_dir: str

    @property
    def pending(self) -> str:
        return f"{self.pool_dir}/queue/pending"

    @property
    def claimed(self) -> str:
        return f"{self.pool_dir}/queue/claimed"

    @property
    def workers(self) -> str:
        """One file per live worker, touched while it runs."""
        return f"{self.pool_dir}/workers"

    @property
    def left(self) -> str:
        """One file per worker that exited and said so (the client counts them)."""
        return f"{self.pool_dir}/left"

    @property
    def logs(self) -> str:
        return f"{self.pool_dir}/logs"

    @property
    def closing(self) -> str:
        """Written when the client leaves the block: workers exit once the queue is empty."""
        return f"{self.pool_dir}/closing"

    @property
    def script(self) -> str:
        return f"{self.pool_dir}/job.sh"

    @property
    def settings(self) -> str:
        """The pool's lease, heartbeat and idle timeout (JSON), read by every worker."""
        return f"{self.pool_dir}/pool.json"


@record(frozen=True)
class QueueEntry:
    """Calls of one job directory, waiting in a pool's queue (a versioned JSON record).

    ``call_id`` is the id of the single call, or the base of the elements' ids
    (``CALL_ID_I``) when ``array``; ``env`` the variables its batch script
    would have exported (the shipped source's directory).
    """

    call_id: str
    job_dir: str
    array: bool
    first: int = 0
    last: int = 0
    env: tuple[tuple[str, str], ...] = ()
    version: int = ENTRY_VERSION

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def call_ids(self) -> list[tuple[int | None, str]]:
        """(array index or None, call id) of each call of the entry."""
        if not self.array:
            return [(None, self.call_id)]
        return [(i, f"{self.call_id}_{i}") for i in range(self.first, self.last + 1)]

    def name(self) -> str:
        """The entry's file name in ``pending/`` (unique per call range)."""
        return entry_name(self.call_id, self.first if self.array else None, self.last)

    def single(self, index: int) -> QueueEntry:
        """The entry of element ``index`` alone."""
        return QueueEntry(self.call_id, self.job_dir, True, index, index, self.env)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "call_id": self.call_id,
                "job_dir": self.job_dir,
                "array": self.array,
                "first": self.first,
                "last": self.last,
                "env": dict(self.env),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> QueueEntry:
        """Read an entry; anything but a well-formed entry of a known version is refused.

        Raises:
            ResultError: not JSON, another version, or a field of the wrong type.
        """
        try:
            record = json.loads(text)
            version = record["version"]
            if version != ENTRY_VERSION:
                raise ResultError(
                    f"a pool queue entry of version {version!r} (this worker reads version "
                    f"{ENTRY_VERSION}): written by another slurm-sdk version"
                )
            entry = cls(
                record["call_id"],
                record["job_dir"],
                record["array"],
                record["first"],
                record["last"],
                tuple(sorted(record["env"].items())),
            )
        except ResultError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ResultError(f"not a pool queue entry ({type(exc).__name__}: {exc})") from exc
        ok = (
            _POOL_CALL_RE.match(entry.call_id) is not None
            and "_" not in entry.call_id
            and isinstance(entry.job_dir, str)
            and isinstance(entry.array, bool)
            and isinstance(entry.first, int)
            and isinstance(entry.last, int)
            and 0 <= entry.first <= entry.last
            and (entry.array or entry.first == entry.last == 0)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in entry.env)
        )
        if not ok:
            raise ResultError(f"not a pool queue entry (a field is malformed): {text[:200]!r}")
        return entry


def entry_name(call_id: str, first: int | None, last: int = 0) -> str:
    """``CALL_ID.json`` for a single call, ``CALL_ID-I.json`` for element ``I``,
    ``CALL_ID-FIRST-LAST.json`` for a range of elements."""
    if first is None:
        return f"{call_id}.json"
    if first == last:
        return f"{call_id}-{first}.json"
    return f"{call_id}-{first}-{last}.json"


def is_entry_name(name: str) -> bool:
    """Whether ``name`` in ``pending/`` looks like an entry (others are skipped)."""
    return _ENTRY_RE.match(name) is not None


def claim_name(entry: str, worker: str) -> str:
    """The name of ``entry`` in ``claimed/`` once ``worker`` took it."""
    return f"{entry}@{worker}"


def parse_claim_name(name: str) -> tuple[str, str] | None:
    """(entry name, worker) of a name in ``claimed/``, or None for anything else."""
    entry, sep, worker = name.rpartition("@")
    if not sep or not is_entry_name(entry) or _WORKER_RE.match(worker) is None:
        return None
    return entry, worker


def is_expired(heartbeat: float, now: float, lease: float) -> bool:
    """A claim (or a worker) last heard of at ``heartbeat`` has lost its lease at ``now``."""
    return now - heartbeat > lease
