"""The event stream of one cluster: what the client does and sees, as plain records.

Packaging, submission and the tracker report what happens through the
:class:`Emitter` their :class:`~slurm._client.session.Session` holds; whoever
wants to know listens on it. The API layer's listener
(:mod:`slurm.callbacks.dispatch`) turns the records into the callbacks'
context objects and calls their hooks; a command-line progress display or a
dashboard can listen the same way. Nothing here knows a callback::

    packaging ----- PackagingBegan, PackagingEnded --.
    submission ---- SubmitBegan --------------------+--> Emitter --> listeners
    Cluster ------- Submitted (the Job has its id) -+        (slurm.callbacks.dispatch, ...)
    tracker ------- StatusChanged, Completed -------'

Records are emitted in the thread that did the work (the tracker's events
from its own thread); a listener that raises is logged and the others still
hear the event. Listeners must be quick: calling user code safely (time
limits, warnings) is the listener's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from slurm._slurm.commands import JobInfo
from slurm._wire.record import field, record

__all__ = [
    "Completed",
    "Emitter",
    "Event",
    "PackagingBegan",
    "PackagingEnded",
    "StatusChanged",
    "SubmitBegan",
    "Submitted",
]

logger = logging.getLogger(__name__)


@record(frozen=True)
class PackagingBegan:
    """Submission is about to prepare the code of ``task`` (interpreter, source, image)."""

    task: Any
    options: Mapping[str, Any]
    timestamp: float = field(default_factory=time.time)


@record(frozen=True)
class PackagingEnded:
    """The code of ``task`` is ready: ``python`` runs it, ``image`` holds it (if any)."""

    task: Any
    python: str
    image: str | None
    duration: float
    timestamp: float = field(default_factory=time.time)


@record(frozen=True)
class SubmitBegan:
    """The job directory is written; ``sbatch`` comes next."""

    task: Any
    sbatch_options: Mapping[str, Any]
    job_dir: str
    backend: str
    array: str | None = None
    timestamp: float = field(default_factory=time.time)


@record(frozen=True)
class Submitted:
    """Slurm accepted a submission and ``job`` (a Job or an ArrayJob) knows its id.

    ``reattached``: a restarted workflow found the job in its journal (no sbatch).
    """

    job: Any
    task: Any
    job_id: str
    job_dir: str
    backend: str
    reattached: bool = False
    timestamp: float = field(default_factory=time.time)


@record(frozen=True)
class StatusChanged:
    """The tracker saw a watched job in a new state."""

    job: Any
    job_id: str
    info: JobInfo
    previous: str | None
    timestamp: float = field(default_factory=time.time)


@record(frozen=True)
class Completed:
    """A watched job is over (its result appeared, or Slurm says it ended without one).

    Emitted before anyone waiting on the job is woken, so that what listeners
    do is done when ``wait()`` returns.
    """

    job: Any
    job_id: str
    info: JobInfo | None
    has_result: bool
    timestamp: float = field(default_factory=time.time)


Event = PackagingBegan | PackagingEnded | SubmitBegan | Submitted | StatusChanged | Completed


class Emitter:
    """Hands each event to every listener, in the order they were added."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], object]] = []
        self._lock = threading.Lock()

    def listen(self, listener: Callable[[Event], object]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on; returns what stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    @property
    def listened(self) -> bool:
        """Whether anyone listens (emitters skip building costly records otherwise)."""
        return bool(self._listeners)

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # one listener must not cost the others, nor the job
                logger.warning(
                    "a listener of the event stream failed on %s",
                    type(event).__name__,
                    exc_info=True,
                )
