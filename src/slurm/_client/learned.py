"""``LearnedSizes``: the last request that succeeded, per task and option set.

``Retry(learn=True)`` makes a call start where the last successful call of the
same task with the same options ended up, instead of at the task's own request
that a retry had to grow: the second call of a task that needed 3 GB does not
start at 1 GB again. One small JSON file per task and option set, under the
job base directory (shared, so a workflow's children learn too)::

    BASE/.learned/NAME-KEY.json   {"version": 1, "task": ..., "limits": {...}, ...}

``KEY`` is a digest of the task (its module and name) and of every sbatch
option it was submitted with, as asked (before learning): another ``mem=`` or
partition is another option set, which learns on its own. Only time and memory
are learned (never an ``--exclude``: a node failure is not a property of the
task).

The files are written atomically (a temporary name, renamed) by the
transport, 0600 in a 0700 directory, and read only when the directory and the
file are the user's own (the trust check of the job store): JSON, never
unpickled. A file that fails the check, is corrupt or of another version is a
miss, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from slurm._slurm.retry import mem_megabytes, time_seconds
from slurm._slurm.sizing import LIMIT_KEYS
from slurm._transport import trust
from slurm._transport.base import Transport
from slurm.errors import SlurmError

__all__ = ["LEARNED_VERSION", "LearnedSizes", "learned_key"]

LEARNED_VERSION = 1
logger = logging.getLogger(__name__)


def learned_key(task: str, sbatch_options: Mapping[str, Any]) -> str:
    """The file name (without ``.json``) for ``task`` with these sbatch options."""
    text = json.dumps(
        [task, sorted((str(k), repr(v)) for k, v in sbatch_options.items())], sort_keys=True
    )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)[-60:] or "task"
    return f"{safe}-{digest}"


def _valid(limits: object) -> dict[str, str] | None:
    """Learned limits as sbatch values, or None when any is not a time or a size."""
    if not isinstance(limits, dict) or not limits:
        return None
    out: dict[str, str] = {}
    for key, value in limits.items():
        if key not in LIMIT_KEYS or not isinstance(value, str):
            return None
        parsed = time_seconds(value) if key == "time" else mem_megabytes(value)
        if parsed is None:
            return None
        out[key] = value
    return out


class LearnedSizes:
    """The learned requests of one job base directory, over a transport."""

    def __init__(self, transport: Transport, directory: str) -> None:
        self.transport = transport
        self.directory = directory
        self._known: dict[str, dict[str, str]] = {}

    def _path(self, key: str) -> str:
        return f"{self.directory}/{key}.json"

    def _check(self, key: str) -> bool:
        """Whether ``key``'s file may be read: the directory and the file are the user's.

        One command (the job store's trust check, with the directory's ``*.json`` files);
        a missing directory is a plain miss.
        """
        out = self.transport.ownership_report([self.directory], files="*.json")
        problems = trust.parse_output(out, [self.directory])
        uid = trust.parse_uid(out)
        if problems or uid is None:
            detail = problems[0].detail if problems else "the check did not run"
            if "cannot create or inspect" not in detail:
                logger.warning("not using the learned sizes in %s: %s", self.directory, detail)
            return False
        entry = trust.parse_files(out).get(0, {}).get(f"{key}.json")
        if entry is None:
            return False
        problem = trust.file_problem(self._path(key), *entry, uid)
        if problem is not None:
            logger.warning("not using the learned size %s: %s", self._path(key), problem.detail)
            return False
        return True

    def get(self, key: str) -> dict[str, str] | None:
        """The learned limits for ``key``, or None (nothing learned, or not usable).

        A hit is kept for the session; a miss is asked again next time (another
        process, a workflow's child, may have learned since).
        """
        known = self._known.get(key)
        if known:
            return dict(known)
        found: dict[str, str] | None = None
        try:
            if self._check(key):
                record = json.loads(self.transport.read_text(self._path(key)))
                if not isinstance(record, dict) or record.get("version") != LEARNED_VERSION:
                    version = record.get("version") if isinstance(record, dict) else None
                    raise ValueError(f"version {version!r}, not {LEARNED_VERSION}")
                found = _valid(record.get("limits"))
                if found is None:
                    raise ValueError(f"limits {record.get('limits')!r} are not time and memory")
        except FileNotFoundError:
            found = None
        except (ValueError, OSError, SlurmError) as exc:
            logger.warning("ignoring the learned size %s: %s", self._path(key), exc)
            found = None
        if found:
            self._known[key] = found
        return dict(found) if found else None

    def remember(self, key: str, task: str, limits: Mapping[str, str], job_id: str) -> None:
        """Record ``limits`` (their time and memory) as the last request that succeeded.

        Nothing is written when it is already the one recorded; a failure to write is
        a warning (learning must never cost a result).
        """
        learned = {k: str(v) for k, v in limits.items() if k in LIMIT_KEYS}
        if not learned or self.get(key) == learned:
            return
        record = {
            "version": LEARNED_VERSION,
            "task": task,
            "limits": learned,
            "job_id": job_id,
            "time": time.time(),
        }
        try:
            self.transport.mkdir(self.directory, mode=0o700)
            self.transport.write_text(self._path(key), json.dumps(record, sort_keys=True) + "\n")
        except (OSError, SlurmError) as exc:
            logger.warning("could not record the learned size %s: %s", self._path(key), exc)
            return
        self._known[key] = learned
