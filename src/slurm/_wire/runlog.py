"""The run log of a call (``result.runs``): one line per event, its one writer and parser.

The runner appends a line when it starts, finishes, fails, requeues itself
at the time limit (or could not), or finds the call already finished; the
client appends one when a ``Retry`` runs the call again::

    1764612345.123 start restart=0 began=1764612344.801 host=node1
    1764612399.456 requeued-time-limit restart=0 host=node1 progress=3f2a9c0d1b7e4a55
    1764612401.002 retry after=123 TIMEOUT

``progress`` is the fingerprint of what the checkpoint callbacks wrote at
Slurm's warning (:mod:`slurm._job.progress`): on ``requeued-time-limit``, on
``checkpointed`` (a preemption's warning) and on ``no-progress`` (a requeued
run that wrote the same as the run before, so not requeued again: it ends in
TIMEOUT).

Requeues are counted per attempt: a ``retry`` line starts a new count. A
``start`` line may say when the job's batch process ``began`` (to about 10 ms;
sacct has whole seconds), for the timeline of ``slurm jobs report``.
"""

from __future__ import annotations

import os
import time

from slurm._wire.record import record

__all__ = [
    "EVENTS",
    "RunEvent",
    "event_line",
    "last_progress",
    "parse_run_log",
    "retry_line",
    "starts_since_retry",
]

#: What the runner records (``cancelled``: a packed call skipped), and ``retry`` (the client's).
EVENTS = frozenset(
    {
        "start",
        "finished",
        "failed",
        "already-finished",
        "requeued-time-limit",
        "requeue-failed",
        "checkpointed",
        "no-progress",
        "retry",
        "cancelled",
    }
)


@record(frozen=True)
class RunEvent:
    """One line of the run log."""

    time: float
    event: str
    restart: int | None = None
    host: str | None = None
    began: float | None = None  # start: when the batch step's process began
    after: str | None = None  # retry: the job id of the attempt that ended
    state: str | None = None  # retry: how that attempt ended
    progress: str | None = None  # what the checkpoint callbacks wrote (a fingerprint)


def event_line(
    event: str,
    restart: int,
    *,
    host: str | None = None,
    began: float | None = None,
    progress: str | None = None,
) -> str:
    """The runner's line for ``event`` (``host`` defaults to this node)."""
    node = host if host is not None else os.uname().nodename
    since = f" began={began:.3f}" if began is not None else ""
    made = f" progress={progress}" if progress else ""
    return f"{time.time():.3f} {event} restart={restart}{since} host={node}{made}\n"


def retry_line(after: str, state: str) -> str:
    """The client's line when a Retry submits the call again after job ``after``."""
    return f"{time.time():.3f} retry after={after} {state}\n"


def parse_run_log(text: str) -> list[RunEvent]:
    """Every well-formed line of a run log, in order; a torn or foreign line is skipped."""
    events: list[RunEvent] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[1] not in EVENTS:
            continue
        try:
            stamp = float(words[0])
        except ValueError:
            continue
        fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        bare = [w for w in words[2:] if "=" not in w]
        restart = fields.get("restart")
        try:
            began = float(fields["began"]) if "began" in fields else None
        except ValueError:
            began = None
        events.append(
            RunEvent(
                stamp,
                words[1],
                restart=int(restart) if restart and restart.isdigit() else None,
                host=fields.get("host"),
                began=began,
                after=fields.get("after"),
                state=bare[0] if bare else None,
                progress=fields.get("progress"),
            )
        )
    return events


def _since_retry(events: list[RunEvent]) -> list[RunEvent]:
    last = max((i for i, e in enumerate(events) if e.event == "retry"), default=-1)
    return events[last + 1 :]


def starts_since_retry(events: list[RunEvent]) -> int:
    """Starts of the current attempt (the events after the last ``retry``)."""
    return sum(1 for e in _since_retry(events) if e.event == "start")


def last_progress(events: list[RunEvent]) -> str | None:
    """The latest progress fingerprint of the current attempt, or None."""
    return next((e.progress for e in reversed(_since_retry(events)) if e.progress), None)
