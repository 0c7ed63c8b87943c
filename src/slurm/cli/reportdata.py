"""What ``slurm jobs report`` knows of a job, an array or a workflow: the record and its parsers.

Pure: the text of one ``sacct --duplicates`` and of the runner's logs go in (the
job directories' files are read by :mod:`slurm.cli.jobfiles`' commands); a
:class:`Report` comes out, which :mod:`slurm.cli.timeline` draws and ``--json``
prints. Nothing here runs a command or reads a file.

Where the times come from: accounting gives each run of a job (a requeued job
has one row per run with ``--duplicates``) to the second. The runner's log
(``result.runs``) has the same runs to the millisecond: ``began=`` (the batch
step's process start) and its end event. A run found in both takes the runner's
times when they fall inside the second sacct gives, so a job of a few hundred
milliseconds is drawn as it ran. Without accounting, the runner's log alone.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slurm import JobState, Usage
from slurm.inspect import (
    USAGE_SACCT_FIELDS,
    expand_array_ids,
    parse_exit_code,
    parse_run_log,
    parse_usage_sacct,
)

__all__ = [
    "REPORT_SACCT_FIELDS",
    "Call",
    "Edge",
    "Report",
    "RunnerRun",
    "SacctRun",
    "Segment",
    "build_segments",
    "overlap",
    "parse_report_sacct",
    "parse_runs",
    "report_sacct_argv",
]

#: The usage fields, then what the timeline needs; ``Reason`` last (it may hold a ``|``).
REPORT_SACCT_FIELDS = (*USAGE_SACCT_FIELDS, "ExitCode", "Partition", "Reason")
_N_USAGE = len(USAGE_SACCT_FIELDS)

_FAILED_STATES = frozenset(
    {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
     "PREEMPTED"}
)  # fmt: skip

_SLURM_ENDS = frozenset({"OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED"})

#: The runner's end events, and the state each stands for.
_END_EVENTS = {
    "finished": "COMPLETED",
    "failed": "FAILED",
    "requeued-time-limit": "REQUEUED",
    "requeue-failed": "TIMEOUT",
}


# --------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Segment:
    """One run of a call: from its start to its end on one node.

    Attributes:
        job_id: the Slurm job it was (a retry or a resubmission has another id).
        state: how the run ended (``REQUEUED``, ``PREEMPTED``, ``COMPLETED``...);
            ``RUNNING`` while it runs.
        start, end: seconds since the epoch; ``end`` is None while it runs, or
            when nobody knows (without accounting, a run killed without a word).
        node: where it ran.
        source: ``"sacct"``, ``"sacct+runner"`` (times refined by the runner's
            log) or ``"runner"``.
    """

    job_id: str
    state: str
    start: float
    end: float | None
    node: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Edge:
    """``src`` had to come first: ``kind`` is ``afterok`` (and the other sbatch kinds) for
    a dependency, ``child`` for a workflow (``src``) and a task it submitted (``dst``)."""

    src: str
    dst: str
    kind: str


@dataclass(frozen=True)
class Call:
    """One call of a task (a job, or one element of an array), with all its runs.

    Attributes:
        key: its first job id (``A_i`` for an array element).
        name: the task's name.
        job_dir: its job directory.
        parent: the key of the workflow that submitted it, if any.
        ids: every Slurm job it was, in order (retries, resubmissions).
        state: how it ended (or its state now).
        exit_code: ``EXIT:SIGNAL`` from accounting, when known.
        node: where it ran last.
        segments: its runs, in order.
        usage: what its last run used (see :class:`slurm.usage.Usage`).
        error: the first lines of its error, when it failed.
        advice: what to change, when it failed.
        workflow: it is a workflow (it submitted tasks).
    """

    key: str
    name: str
    job_dir: str
    parent: str | None
    ids: tuple[str, ...]
    state: str
    exit_code: str | None = None
    node: str | None = None
    segments: tuple[Segment, ...] = ()
    usage: Usage | None = None
    error: tuple[str, ...] = ()
    advice: str = ""
    workflow: bool = False

    @property
    def failed(self) -> bool:
        """It ended without success (an exception, or Slurm stopped it)."""
        return self.state in _FAILED_STATES

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["segments"] = [s.to_dict() for s in self.segments]
        data["usage"] = self.usage.to_dict() if self.usage else None
        data["ids"], data["error"] = list(self.ids), list(self.error)
        return data


@dataclass(frozen=True)
class Report:
    """Everything ``slurm jobs report`` shows.

    Attributes:
        root: the id asked about; ``kind`` is ``job``, ``array`` or ``workflow``.
        name: the root's task name.
        generated: when the report was made (seconds since the epoch).
        accounting: whether sacct answered (else: the runner's files alone).
        calls: the root first, then its children in submission order.
        edges: dependencies and a workflow's children.
        notes: what the reader should know about the figures.
    """

    root: str
    kind: str
    name: str
    generated: float
    accounting: bool
    calls: tuple[Call, ...]
    edges: tuple[Edge, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (``--json``); times are seconds since the epoch."""
        return {
            "root": self.root,
            "kind": self.kind,
            "name": self.name,
            "generated": self.generated,
            "generated_iso": _iso(self.generated),
            "accounting": self.accounting,
            "calls": [c.to_dict() for c in self.calls],
            "edges": [dataclasses.asdict(e) for e in self.edges],
            "notes": list(self.notes),
        }


def _iso(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC).isoformat(timespec="seconds")


def overlap(a: Segment, b: Segment, *, now: float) -> float:
    """Seconds during which both runs ran (0 when they did not; a running one ends ``now``)."""
    a_end = now if a.end is None else a.end
    b_end = now if b.end is None else b.end
    return max(0.0, min(a_end, b_end) - max(a.start, b.start))


# ------------------------------------------------------------------------- sacct


@dataclass(frozen=True)
class SacctRun:
    """One allocation row of ``sacct --duplicates``: one run of a job."""

    job_id: str
    state: str
    submit: float | None
    start: float | None
    end: float | None
    node: str | None
    exit_code: str | None
    partition: str
    reason: str


def report_sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """One sacct for many jobs: every run (``--duplicates``), steps too (for MaxRSS), times
    as seconds since the epoch (``SLURM_TIME_FORMAT=%s``: no time zone to guess)."""
    return [
        "env",
        "SLURM_TIME_FORMAT=%s",
        "sacct",
        "--noheader",
        "--parsable2",
        "--duplicates",
        f"--jobs={','.join(job_ids)}",
        f"--format={','.join(REPORT_SACCT_FIELDS)}",
    ]


def _epoch(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def _node(text: str) -> str | None:
    text = text.strip()
    return None if not text or text in ("None assigned", "(null)") else text


def parse_report_sacct(stdout: str) -> tuple[dict[str, list[SacctRun]], dict[str, Usage]]:
    """Parse :func:`report_sacct_argv` output: each job's runs in order, and its usage.

    Compressed array ranges (``7_[2-4]``, pending elements) are expanded. The
    usage is :func:`slurm.usage.parse_usage_sacct`'s, its queue wait taken from
    the last run.
    """
    runs: dict[str, list[SacctRun]] = {}
    usage_lines = []
    for line in stdout.splitlines():
        fields = line.strip().split("|", len(REPORT_SACCT_FIELDS) - 1)
        if len(fields) != len(REPORT_SACCT_FIELDS) or not fields[0]:
            continue
        usage_lines.append("|".join(fields[:_N_USAGE]))
        id_text = fields[0]
        if "." in id_text:  # a step: only its MaxRSS counts (in the usage)
            continue
        state, submit, start, end = fields[1], fields[2], fields[3], fields[4]
        exit_code, signal = parse_exit_code(fields[_N_USAGE])
        for job_id in expand_array_ids(id_text):
            runs.setdefault(job_id, []).append(
                SacctRun(
                    job_id=job_id,
                    state=JobState.parse(state).value,
                    submit=_epoch(submit),
                    start=_epoch(start),
                    end=_epoch(end),
                    node=_node(fields[11]),
                    exit_code=None if exit_code is None else f"{exit_code}:{signal or 0}",
                    partition=fields[_N_USAGE + 1].strip(),
                    reason=fields[_N_USAGE + 2].strip(),
                )
            )
    usages = parse_usage_sacct("\n".join(usage_lines))
    for job_id, usage in usages.items():
        rows = runs.get(job_id)
        last = rows[-1] if rows else None
        if last is not None and last.submit is not None and last.start is not None:
            usage = dataclasses.replace(usage, queue_wait_s=max(last.start - last.submit, 0.0))
        usages[job_id] = dataclasses.replace(usage, state=JobState.parse(usage.state).value)
    return runs, usages


# ---------------------------------------------------------------- the runner's log


@dataclass(frozen=True)
class RunnerRun:
    """One run in the runner's log (``result.runs``).

    Attributes:
        start: when the runner logged its start; ``began``: when the batch step's
            process began (a little earlier: Python's start), if logged.
        end: when it logged the end, or None (killed, or still running).
        state: how it ended: ``COMPLETED``, ``FAILED``, ``REQUEUED`` (at its time
            limit), ``TIMEOUT``, the state of a retried attempt, ``INTERRUPTED``
            (another start followed without an end: preempted or its node lost),
            or ``""`` while it runs.
        host: where it ran.
        attempt: 1, then 2... after each retry.
    """

    start: float
    began: float | None
    end: float | None
    state: str
    host: str | None
    attempt: int


def parse_runs(text: str) -> list[RunnerRun]:
    """The runs in a runner's log, in order (unreadable lines are skipped).

    Example::

        >>> parse_runs("10.0 start restart=0 began=9.5 host=n1\\n11.0 finished restart=0\\n")
        [RunnerRun(start=10.0, began=9.5, end=11.0, state='COMPLETED', host='n1', attempt=1)]
    """
    runs: list[RunnerRun] = []
    open_run: dict[str, Any] | None = None
    attempt = 1

    def close(end: float | None, state: str) -> None:
        nonlocal open_run
        if open_run is not None:
            runs.append(RunnerRun(end=end, state=state, **open_run))
            open_run = None

    for event in parse_run_log(text):
        if event.event == "start":
            close(None, "INTERRUPTED")
            open_run = {
                "start": event.time,
                "began": event.began,
                "host": event.host,
                "attempt": attempt,
            }
        elif event.event in _END_EVENTS:
            close(event.time, _END_EVENTS[event.event])
        elif event.event == "already-finished":  # requeued after its result: a no-op run
            close(None, "INTERRUPTED")
            runs.append(RunnerRun(event.time, None, event.time, "COMPLETED", event.host, attempt))
        elif event.event == "retry":  # the client's line: how the attempt before ended
            state = JobState.parse(event.state).value if event.state else "UNKNOWN"
            close(None, state)
            attempt += 1
    close(None, "")
    return runs


# --------------------------------------------------------------------- the runs


def build_segments(
    ids: Sequence[str],
    sacct: Mapping[str, Sequence[SacctRun]] | None,
    runner: Sequence[RunnerRun],
    *,
    final: bool,
) -> list[Segment]:
    """A call's runs: from accounting (refined by the runner's log), else from the log.

    ``final``: the call is over, so a run the log leaves open did end (when is unknown).
    """
    rows = [r for job_id in ids for r in (sacct or {}).get(job_id, ()) if r.start is not None]
    if rows:
        unused = list(runner)
        segments = []
        for row in rows:
            start, end, source = row.start or 0.0, row.end, "sacct"
            match = _matching_run(row, unused)
            if match is not None:
                unused.remove(match)
                began = match.began if match.began is not None else match.start
                if start <= began < start + 1:
                    start, source = began, "sacct+runner"
                if match.end is not None and (end is None or end <= match.end < end + 1):
                    end, source = match.end, "sacct+runner"
            if end is not None and end < start:  # the runner began after sacct's whole second
                end = start
            state = row.state if row.end is not None or end is None else _ended(match)
            if state == "FAILED" and match is not None and match.state in _SLURM_ENDS:
                state = match.state  # Slurm 22.05 says FAILED for OverMemoryKill; a retry knew
            segments.append(Segment(row.job_id, state, start, end, row.node, source))
        return segments
    segments = []
    for index, run in enumerate(runner):
        last = index == len(runner) - 1
        state = run.state or ("UNKNOWN" if final or not last else "RUNNING")
        job_id = ids[min(run.attempt, len(ids)) - 1] if ids else ""
        began = run.began if run.began is not None else run.start
        segments.append(Segment(job_id, state, began, run.end, run.host, "runner"))
    return segments


def _ended(run: RunnerRun | None) -> str:
    return run.state if run is not None and run.state else "COMPLETED"


def _matching_run(row: SacctRun, runs: Sequence[RunnerRun]) -> RunnerRun | None:
    """The runner's run inside this allocation: it started within the row's seconds."""
    for run in runs:
        if (row.start or 0.0) <= run.start and (row.end is None or run.start < row.end + 1):
            return run
    return None
