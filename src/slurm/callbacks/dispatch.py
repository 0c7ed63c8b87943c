"""The cluster's listener that turns its event stream into callback hooks.

A :class:`~slurm.Cluster` makes one :class:`Dispatcher` and adds it to its
session's event stream (:mod:`slurm._client.events`). Each record becomes
the context object of the earlier SDK's hooks and is handed to the callbacks
whose hook runs on the client (:func:`slurm._job.hooks.call_hook`: a hook
that raises or hangs is warned about, the job goes on, and a hung callback is
not called again). It also gives the session the pickled callbacks that
travel with each job.

A workflow's own events on the client follow from its job: the workflow
begins when the tracker first sees it run; once it is over, the tasks it
submitted are read from its journal (and, for a workflow among them, from its
own journal) and reported in order, then its end, then its completion. On the
workflow's node, its cluster reports each task as the workflow submits it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from slurm._client.events import (
    Completed,
    Event,
    PackagingBegan,
    PackagingEnded,
    StatusChanged,
    SubmitBegan,
    Submitted,
)
from slurm._client.store import parse_job_dir
from slurm._client.tracker import Tracker
from slurm._job.hooks import HOOKS, call_hook, runs_on
from slurm._job.locus import ExecutionLocus
from slurm._slurm.commands import JobInfo
from slurm._transport.base import Transport
from slurm._wire.journal import read_entries
from slurm._wire.layout import JobPaths
from slurm.errors import ConfigurationError, SlurmfileInvalidError

# The contexts (dataclasses, with the callbacks' classes: 3 ms of a client's start) are
# imported where a callback is there to hear an event: a cluster without callbacks never
# loads them.


class Cluster(Protocol):
    """What the dispatcher reads of its cluster (a :class:`~slurm.Cluster`)."""

    callbacks: list[Any]

    @property
    def packaging(self) -> Any: ...

    @property
    def tracker(self) -> Tracker: ...

    @property
    def transport(self) -> Transport: ...


__all__ = ["Dispatcher", "callbacks_from_specs", "check_callbacks", "status_dict"]

logger = logging.getLogger("slurm.callbacks")

_MAX_NESTING = 20  # workflows inside workflows, reported from their journals


def status_dict(info: JobInfo | None) -> dict[str, Any]:
    """The earlier SDK's status dict of a job (``JobState``, ``ExitCode``, ``Reason``...)."""
    if info is None:
        keys = ("JobId", "ExitCode", "Reason", "NodeList", "StartTime", "EndTime")
        return {"JobState": "UNKNOWN", **dict.fromkeys(keys)}
    exit_code = None if info.exit_code is None else f"{info.exit_code}:{info.signal or 0}"
    return {
        "JobId": info.job_id,
        "JobState": info.state.value,
        "ExitCode": exit_code,
        "Reason": info.reason or None,
        "NodeList": info.node,
        "StartTime": info.start,
        "EndTime": info.end,
    }


def check_callbacks(callbacks: list[Any]) -> None:
    """Refuse a callback whose ``execution_loci`` names an unknown hook or place.

    Raises:
        ConfigurationError: naming the callback and listing the valid names.
    """
    places = [locus.value for locus in ExecutionLocus]
    for callback in callbacks:
        loci = getattr(callback, "execution_loci", None) or {}
        if not hasattr(loci, "items"):
            raise ConfigurationError(
                f"{type(callback).__qualname__}.execution_loci must be a dict of hook name -> "
                f"place, got {loci!r}. Example: {{'on_workflow_begin_ctx': 'client'}}."
            )
        for hook, place in loci.items():
            if hook not in HOOKS:
                raise ConfigurationError(
                    f"{type(callback).__qualname__}.execution_loci names {hook!r}, which is no "
                    f"hook. The hooks are: {', '.join(HOOKS)}."
                )
            if getattr(place, "value", place) not in places:
                raise ConfigurationError(
                    f"{type(callback).__qualname__}.execution_loci[{hook!r}] is {place!r}; "
                    f"it must be one of {', '.join(places)} (or slurm.callbacks.ExecutionLocus)."
                )


def callbacks_from_specs(specs: list[dict[str, Any]], *, where: str) -> list[Any]:
    """The callbacks a Slurmfile names (``{"target": "module:Class", "args", "kwargs"}``).

    Raises:
        SlurmfileInvalidError: a target that cannot be imported, or that does not make
            a callback (an object with some of BaseCallback's hooks).
    """
    import importlib

    made = []
    for spec in specs:
        target = spec["target"]
        module_name, _, attr = target.partition(":") if ":" in target else target.rpartition(".")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SlurmfileInvalidError(
                f"{where}: cannot import callback {target!r} ({exc}). Name it as "
                "'module:Class', importable here (e.g. 'slurm.callbacks:LoggerCallback')."
            ) from exc
        try:
            callback = factory(*spec["args"], **spec["kwargs"])
        except Exception as exc:
            raise SlurmfileInvalidError(
                f"{where}: callback {target!r} could not be made with args={spec['args']!r} "
                f"kwargs={spec['kwargs']!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not any(hasattr(callback, hook) for hook in (*HOOKS, "on_submit")):
            raise SlurmfileInvalidError(
                f"{where}: {target!r} made {callback!r}, which has none of the callback hooks "
                "(subclass slurm.callbacks.BaseCallback)."
            )
        made.append(callback)
    return made


class _Workflow:
    """What the dispatcher knows of a workflow job it submitted."""

    def __init__(self, name: str, job_dir: str) -> None:
        self.name = name
        self.job_dir = job_dir
        self.begun = False
        self.start: float | None = None


class Dispatcher:
    """Calls the client-side hooks of ``cluster.callbacks`` for each event of its stream.

    Args:
        cluster: the cluster whose ``callbacks`` list is read at each event (so
            callbacks added later are heard too).
        workflow: on a workflow's node, the workflow's (job id, job directory): the
            tasks its cluster submits are reported as that workflow's.
    """

    def __init__(self, cluster: Cluster, *, workflow: tuple[str, str] | None = None) -> None:
        # Held, not weakly: a job outlives the Cluster object it came from
        # (`Cluster(...).submit(f)(1)`), and its end is still told to the callbacks.
        self._owner = cluster
        self._workflow = workflow
        self._submitted_at: dict[str, float] = {}
        self._begun: dict[str, SubmitBegan] = {}
        self._workflows: dict[str, _Workflow] = {}
        self._announced: set[tuple[int, str]] = set()
        self._hung: set[int] = set()
        self._lock = threading.Lock()

    def _cluster(self) -> Cluster | None:
        return self._owner

    # --- what the session asks -------------------------------------------------------
    def runner_callbacks(self) -> list[Any]:
        """The callbacks that travel with the next job (their node-side hooks run there)."""
        cluster = self._cluster()
        if cluster is None:
            return []
        if not cluster.callbacks:
            return []
        from slurm.callbacks.callbacks import travels

        return [cb for cb in cluster.callbacks if travels(cb) and id(cb) not in self._hung]

    # --- the stream ------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        cluster = self._cluster()
        if cluster is None:
            return
        if isinstance(event, SubmitBegan):
            self._begun[event.job_dir] = event
        if isinstance(event, (PackagingBegan, PackagingEnded, SubmitBegan)):
            if self._callbacks():
                self._begins(cluster, event)
        elif isinstance(event, Submitted):
            self._submitted(cluster, event)
        elif isinstance(event, StatusChanged):
            self._status(cluster, event)
        elif isinstance(event, Completed):
            self._completed(cluster, event)

    def _begins(
        self, cluster: Cluster, event: PackagingBegan | PackagingEnded | SubmitBegan
    ) -> None:
        from slurm.callbacks.callbacks import (
            PackagingBeginContext,
            PackagingEndContext,
            SubmitBeginContext,
        )

        if isinstance(event, PackagingBegan):
            ctx: Any = PackagingBeginContext(
                event.task, dict(event.options), cluster, event.timestamp
            )
            self._fire("on_begin_package_ctx", ctx)
        elif isinstance(event, PackagingEnded):
            result = {"python": event.python, "image": event.image}
            ctx = PackagingEndContext(event.task, result, cluster, event.timestamp, event.duration)
            self._fire("on_end_package_ctx", ctx)
        else:
            ctx = SubmitBeginContext(
                task=event.task,
                sbatch_options=dict(event.sbatch_options),
                pre_submission_id=_name_of(event.job_dir),
                target_job_dir=event.job_dir,
                cluster=cluster,
                packaging_strategy=cluster.packaging,
                backend_type=event.backend,
                timestamp=event.timestamp,
            )
            self._fire("on_begin_submit_job_ctx", ctx)

    def _callbacks(self) -> list[Any]:
        cluster = self._cluster()
        if cluster is None:
            return []
        return [cb for cb in cluster.callbacks if id(cb) not in self._hung]

    def _fire(self, hook: str, ctx: Any) -> None:
        for callback in self._callbacks():
            if not runs_on(callback, hook, ExecutionLocus.CLIENT):
                continue
            if call_hook(callback, hook, ctx, logger.warning) == "hung":
                self._hung.add(id(callback))

    def _submitted(self, cluster: Cluster, event: Submitted) -> None:
        begun = self._begun.pop(event.job_dir, None)
        self._submitted_at[event.job_id] = begun.timestamp if begun else event.timestamp
        options = dict(begun.sbatch_options) if begun is not None else {}
        if getattr(event.task, "is_workflow", False):
            self._workflows[event.job_id] = _Workflow(_task_name(event.task), event.job_dir)
        callbacks = self._callbacks()
        intervals = [_interval(cb) for cb in callbacks]
        wanted = [i for i in intervals if i is not None]
        cluster.tracker.status_interval = min(wanted) if wanted else None
        if not callbacks:
            return
        from slurm.callbacks.callbacks import SubmitEndContext, WorkflowTaskSubmitContext

        self._fire(
            "on_end_submit_job_ctx",
            SubmitEndContext(
                job=event.job,
                job_id=event.job_id,
                pre_submission_id=_name_of(event.job_dir),
                target_job_dir=event.job_dir,
                sbatch_options=options,
                cluster=cluster,
                timestamp=event.timestamp,
                backend_type=event.backend,
                task=event.task,
            ),
        )
        for callback in callbacks:  # our earlier hook, with the Job itself
            if call_hook(callback, "on_submit", event.job, logger.warning) == "hung":
                self._hung.add(id(callback))
        if self._workflow is not None:  # on a workflow's node: one of its tasks
            parent_id, parent_dir = self._workflow
            self._fire(
                "on_workflow_task_submitted_ctx",
                WorkflowTaskSubmitContext(
                    parent_workflow_id=parent_id,
                    parent_workflow_dir=Path(parent_dir),
                    parent_workflow_name=_name_of_task(parent_dir),
                    child_job_id=event.job_id,
                    child_job_dir=Path(event.job_dir),
                    child_task_name=_task_name(event.task),
                    child_is_workflow=bool(getattr(event.task, "is_workflow", False)),
                    timestamp=event.timestamp,
                    cluster=cluster,
                ),
            )

    def _status(self, cluster: Cluster, event: StatusChanged) -> None:
        if not self._callbacks():
            return
        from slurm.callbacks.callbacks import JobStatusUpdatedContext

        self._fire(
            "on_job_status_update_ctx",
            JobStatusUpdatedContext(
                job=event.job,
                job_id=event.job_id,
                status=status_dict(event.info),
                timestamp=event.timestamp,
                previous_state=event.previous,
            ),
        )
        workflow = self._workflows.get(event.job_id)
        if workflow is not None and not workflow.begun and event.info.state.value == "RUNNING":
            self._workflow_begins(cluster, event.job_id, workflow, event.timestamp)

    def _workflow_begins(
        self, cluster: Cluster, job_id: str, workflow: _Workflow, when: float
    ) -> None:
        from slurm.callbacks.callbacks import WorkflowCallbackContext

        workflow.begun, workflow.start = True, when
        self._fire(
            "on_workflow_begin_ctx",
            WorkflowCallbackContext(
                workflow_job_id=job_id,
                workflow_job_dir=Path(workflow.job_dir),
                workflow_name=workflow.name,
                workflow_context=None,
                timestamp=when,
                cluster=cluster,
            ),
        )

    def _completed(self, cluster: Cluster, event: Completed) -> None:
        key = (id(event.job), event.job_id)
        with self._lock:  # the tracker's thread and a waiting one may both see the end
            if key in self._announced or not self._callbacks():
                return
            self._announced.add(key)
        from slurm.callbacks.callbacks import CompletedContext, JobStatusUpdatedContext

        job = event.job
        status = status_dict(event.info)
        outcome = job.outcome() if hasattr(job, "outcome") else None
        state = getattr(getattr(job, "state", None), "value", None) or status["JobState"]
        if outcome is None and event.info is not None:
            state = event.info.state.value
        status["JobState"] = state
        self._fire(
            "on_job_status_update_ctx",
            JobStatusUpdatedContext(
                job=job,
                job_id=event.job_id,
                status=status,
                timestamp=event.timestamp,
                previous_state=event.info.state.value if event.info else None,
                is_terminal=True,
            ),
        )
        workflow = self._workflows.pop(event.job_id, None)
        if workflow is not None:
            self._workflow_ends(cluster, event, workflow, outcome)
        error = outcome if outcome is not None and not outcome.ok else None
        exit_code = status["ExitCode"] or (
            None if outcome is None else ("0:0" if outcome.ok else "1:0")
        )
        submitted = self._submitted_at.get(event.job_id.split("_", 1)[0])
        self._fire(
            "on_completed_ctx",
            CompletedContext(
                job=job,
                job_id=event.job_id,
                job_dir=getattr(job, "job_dir", None),
                job_state=state,
                exit_code=exit_code,
                reason=status["Reason"],
                stdout_path=getattr(job, "stdout_path", None),
                stderr_path=getattr(job, "stderr_path", None),
                start_time=submitted,
                end_time=event.timestamp,
                duration=None if submitted is None else event.timestamp - submitted,
                status=status,
                error_type=error.type_name if error else None,
                error_message=error.message if error else None,
                traceback=error.traceback if error else None,
                result_path=getattr(job, "result_path", None),
                emitted_by=ExecutionLocus.CLIENT,
            ),
        )

    def _workflow_ends(
        self, cluster: Cluster, event: Completed, workflow: _Workflow, outcome: Any
    ) -> None:
        from slurm.callbacks.callbacks import WorkflowCallbackContext

        if not workflow.begun:  # over before the tracker saw it run
            self._workflow_begins(cluster, event.job_id, workflow, workflow.start or time.time())
        self._report_children(cluster, event.job_id, workflow.name, workflow.job_dir, depth=0)
        error = None
        if outcome is not None and not outcome.ok:
            error = RuntimeError(f"{outcome.type_name}: {outcome.message}")
        self._fire(
            "on_workflow_end_ctx",
            WorkflowCallbackContext(
                workflow_job_id=event.job_id,
                workflow_job_dir=Path(workflow.job_dir),
                workflow_name=workflow.name,
                workflow_context=None,
                timestamp=event.timestamp,
                exception=error,
                cluster=cluster,
            ),
        )

    def _report_children(
        self, cluster: Cluster, parent_id: str, parent_name: str, parent_dir: str, *, depth: int
    ) -> None:
        """``on_workflow_task_submitted_ctx`` for each task in a workflow's journal, in
        order; a task that is itself a workflow (it has a journal) reports its own next."""
        from slurm.callbacks.callbacks import WorkflowTaskSubmitContext

        transport = cluster.transport
        try:
            text = transport.read_text(JobPaths(parent_dir).journal)
        except (FileNotFoundError, OSError):
            return
        for entry in read_entries(text):
            if entry.job_id is None:  # prepared, never reached Slurm
                continue
            journal = JobPaths(entry.job_dir).journal
            nested = transport.exists(journal)
            self._fire(
                "on_workflow_task_submitted_ctx",
                WorkflowTaskSubmitContext(
                    parent_workflow_id=parent_id,
                    parent_workflow_dir=Path(parent_dir),
                    parent_workflow_name=parent_name,
                    child_job_id=entry.job_id,
                    child_job_dir=Path(entry.job_dir),
                    child_task_name=entry.task,
                    child_is_workflow=nested,
                    timestamp=time.time(),
                    cluster=cluster,
                ),
            )
            if nested and depth < _MAX_NESTING:
                self._report_children(
                    cluster, entry.job_id, entry.task, entry.job_dir, depth=depth + 1
                )


def _interval(callback: Any) -> float | None:
    """The status interval a callback asks for, if it listens for status updates."""
    if not runs_on(callback, "on_job_status_update_ctx", ExecutionLocus.CLIENT):
        return None
    try:
        value = float(getattr(callback, "poll_interval_secs", None))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _name_of(job_dir: str) -> str:
    return job_dir.rstrip("/").rsplit("/", 1)[-1]


def _name_of_task(job_dir: str) -> str:
    return parse_job_dir(job_dir)[0]


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", None) or getattr(task, "__name__", "task"))
