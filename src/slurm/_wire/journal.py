"""The workflow journal: what a restarted workflow needs to reattach instead of resubmitting.

A requeued workflow runs its function again from the top. Every task call it
makes is matched, in call order, against the journal of the earlier runs:
same task and same arguments -> the earlier job is reattached (a finished one
returns its stored result at once); a different call at the same position
means the workflow is not deterministic, and it stops with an error saying
where. Entries are appended as JSON lines, each flushed and synced, in two
steps around ``sbatch`` so that a crash in between is recognised too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from slurm._wire.record import record
from slurm.errors import WorkflowError

__all__ = ["Journal", "JournalEntry", "fingerprint", "read_entries"]


def fingerprint(*parts: bytes | str, size: int = 32) -> str:
    """A stable digest of a call: task name, options, pickled arguments (each part
    length-prefixed, so no two lists of parts collide); ``size`` hex digits of a SHA-256."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:size]


@record
class JournalEntry:
    seq: int
    task: str
    fingerprint: str
    job_dir: str
    job_id: str | None = None


def read_entries(text: str) -> list[JournalEntry]:
    """The entries of a journal's text, in call order (a line cut short by a crash is
    skipped; a later line of the same entry adds its job id)."""
    entries: dict[int, JournalEntry] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        entry = entries.get(record["seq"])
        if entry is None:
            entries[record["seq"]] = JournalEntry(**record)
        else:
            entry.job_id = record.get("job_id") or entry.job_id
    return [entries[seq] for seq in sorted(entries)]


class Journal:
    """Append-only record of a workflow's submissions, replayed in call order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[int, JournalEntry] = {}
        self._next = 0
        if self.path.exists():
            for entry in read_entries(self.path.read_text(encoding="utf-8")):
                self._entries[entry.seq] = entry

    @property
    def replaying(self) -> bool:
        return self._next < len(self._entries)

    def claim(self, task: str, digest: str) -> tuple[int, JournalEntry | None]:
        """Take the next position; return the earlier run's entry for it, if any."""
        with self._lock:
            seq = self._next
            self._next += 1
        entry = self._entries.get(seq)
        if entry is not None and (entry.task != task or entry.fingerprint != digest):
            what = "a different task" if entry.task != task else "different arguments"
            raise WorkflowError(
                f"The restarted workflow diverged from its journal at call #{seq + 1}: the "
                f"earlier run called {entry.task}() here (job {entry.job_id}), this run calls "
                f"{task}() with {what}. A workflow must make the same task calls in the same "
                f"order when it is restarted; keep random or time-dependent choices out of the "
                f"workflow function (journal: {self.path})."
            )
        return seq, entry

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def begin(self, entry: JournalEntry) -> None:
        """Record a submission about to happen (before sbatch)."""
        self._entries[entry.seq] = entry
        self._append(entry.__dict__)

    def complete(self, seq: int, job_id: str) -> None:
        """Record the job id sbatch returned."""
        self._entries[seq].job_id = job_id
        self._append({**self._entries[seq].__dict__, "job_id": job_id})
