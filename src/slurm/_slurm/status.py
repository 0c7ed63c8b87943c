"""``JobStatus``: what ``Job.get_status()`` answers, the earlier SDK's dict and our state at once.

The earlier ``slurm-sdk`` answered ``get_status()`` with the dict of ``scontrol
show job`` (``status["JobState"]``, ``status.get("ExitCode")``); this SDK
answered with a :class:`~slurm._slurm.commands.JobState`. A ``JobStatus`` is
both: a read-only mapping with the earlier keys, which compares equal to its
``JobState`` (and that state's text), hashes like it and has its ``value``,
``name`` and ``is_*`` properties. Only identity differs: ``status is
JobState.RUNNING`` is always False; compare with ``==``, read
``status.state``, or use ``job.state`` (the enum itself).

The figures come from the tracker's batched look (squeue, then sacct), never
one ``scontrol`` per job: a job Slurm has purged still has a status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from slurm._slurm.commands import JobInfo, JobState

__all__ = ["STATUS_KEYS", "JobStatus"]

#: The keys a status may have (those Slurm did not tell are left out; ``JobState``,
#: ``JobId`` and ``ExitCode`` are always there).
STATUS_KEYS = (
    "JobId",
    "JobName",
    "JobState",
    "ExitCode",
    "Reason",
    "NodeList",
    "StartTime",
    "EndTime",
    "WorkDir",
    "StdOut",
    "StdErr",
)


class JobStatus(Mapping[str, str]):
    """A job's status: the earlier SDK's dict, equal to its :class:`JobState`.

    Example::

        >>> s = JobStatus(JobState.COMPLETED, {"JobId": "7", "ExitCode": "0:0"})
        >>> s == JobState.COMPLETED, s["JobState"], s.get("ExitCode", "").startswith("0:0")
        (True, 'COMPLETED', True)
    """

    __slots__ = ("_fields", "state")

    def __init__(self, state: JobState, fields: Mapping[str, str | None]) -> None:
        #: The state as the enum (``status.state is JobState.RUNNING``).
        self.state = state
        known = {k: v for k, v in fields.items() if v is not None}
        known["JobState"] = state.value
        known.setdefault("ExitCode", "0:0")  # what scontrol shows before a job ends
        self._fields = {k: known[k] for k in STATUS_KEYS if k in known}

    @classmethod
    def of(
        cls,
        state: JobState,
        info: JobInfo | None,
        *,
        job_id: str,
        ok: bool | None = None,
        files: Mapping[str, str] | None = None,
    ) -> JobStatus:
        """The status of a job in ``state``: Slurm's ``info`` when it has one, ``ok``
        (how the call ended, from its result) for the exit code when Slurm has none,
        and ``files`` (``JobName``, ``WorkDir``, ``StdOut``, ``StdErr``)."""
        exit_code = None
        if info is not None and info.exit_code is not None:
            exit_code = f"{info.exit_code}:{info.signal or 0}"
        elif ok is not None:
            exit_code = "0:0" if ok else "1:0"
        fields: dict[str, str | None] = {"JobId": job_id, "ExitCode": exit_code}
        if info is not None:
            fields.update(
                Reason=info.reason or "None",
                NodeList=info.node,
                StartTime=info.start,
                EndTime=info.end,
            )
        fields.update(files or {})
        return cls(state, fields)

    # --- the mapping -----------------------------------------------------------------
    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    # --- the state -------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobStatus):
            return self.state is other.state and self._fields == other._fields
        if isinstance(other, str):  # a JobState is a str too
            return self.state == other
        if isinstance(other, Mapping):
            return self._fields == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.state)

    @property
    def value(self) -> str:
        """The state's text (``"RUNNING"``), as ``JobState.value``."""
        return self.state.value

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def is_terminal(self) -> bool:
        """See :attr:`JobState.is_terminal`."""
        return self.state.is_terminal

    @property
    def is_active(self) -> bool:
        """See :attr:`JobState.is_active`."""
        return self.state.is_active

    def __str__(self) -> str:
        return self.state.value

    def __format__(self, spec: str) -> str:
        return format(self.state.value, spec)

    def __repr__(self) -> str:
        return f"JobStatus({self.state.value}, {self._fields!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields (JSON-ready)."""
        return dict(self._fields)
