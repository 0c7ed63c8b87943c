"""Callbacks: objects whose hooks hear what happens to jobs, on the client and on the node.

Subclass :class:`BaseCallback`, override the hooks you care about and pass
``Cluster(callbacks=[...])``. Every hook takes one context object::

    client (where you submit)                     node (where the job runs)
    on_begin_package_ctx    PackagingBeginContext
    on_end_package_ctx      PackagingEndContext
    on_begin_submit_job_ctx SubmitBeginContext
    on_end_submit_job_ctx   SubmitEndContext
    on_submit(job)          (the Job itself)
    on_job_status_update_ctx JobStatusUpdatedContext
                                                  on_begin_run_job_ctx  RunBeginContext
                                                  on_workflow_begin_ctx WorkflowCallbackContext
                                                  on_workflow_end_ctx   WorkflowCallbackContext
                                                  on_end_run_job_ctx    RunEndContext
    on_workflow_task_submitted_ctx WorkflowTaskSubmitContext
    on_completed_ctx        CompletedContext      on_completed_ctx      CompletedContext

``execution_loci`` moves a hook (``{"on_workflow_begin_ctx": "client"}``);
``on_completed_ctx`` runs on both sides by default (``ctx.emitted_by`` says
which). A callback with a node-side hook is pickled and travels with each job
(``requires_pickling = False`` keeps it home). ``poll_interval_secs`` bounds
how long the cluster's tracker waits between two looks at Slurm while such a
callback listens. A hook that raises or does not return within
``hook_timeout_secs`` gets a warning naming it, and the job goes on.

The client's hooks are called from the cluster's event stream
(:mod:`slurm.callbacks.dispatch`); the node's by the runner
(:mod:`slurm._job.hooks`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from slurm._job.hookcontexts import (
    CompletedContext,
    RunBeginContext,
    RunEndContext,
    WorkflowCallbackContext,
)
from slurm._job.hooks import DEFAULT_HOOK_TIMEOUT, RUNNER_HOOKS, locus_of, runs_on
from slurm._job.locus import ExecutionLocus

__all__ = [
    "BaseCallback",
    "BenchmarkCallback",
    "CompletedContext",
    "ExecutionLocus",
    "JobStatusUpdatedContext",
    "LoggerCallback",
    "PackagingBeginContext",
    "PackagingEndContext",
    "RichLoggerCallback",
    "RunBeginContext",
    "RunEndContext",
    "SubmitBeginContext",
    "SubmitEndContext",
    "WorkflowCallbackContext",
    "WorkflowTaskSubmitContext",
    "travels",
]

WORKFLOW_METRICS_FILENAME = ".slurm_benchmark_metrics.json"


# --- the client's contexts ---------------------------------------------------------------


@dataclass
class PackagingBeginContext:
    """Before the task's code is prepared (interpreter, shipped source, image)."""

    task: Any
    packaging_config: dict[str, Any] | None = None
    cluster: Any = None
    timestamp: float = field(default_factory=time.time)


@dataclass
class PackagingEndContext:
    """The code is ready: ``packaging_result`` has ``python`` (the interpreter on the
    cluster) and ``image`` (the container image, or None)."""

    task: Any
    packaging_result: Any
    cluster: Any = None
    timestamp: float = field(default_factory=time.time)
    duration: float | None = None


@dataclass
class SubmitBeginContext:
    """Just before ``sbatch``: the job directory is written.

    ``pre_submission_id`` is the job directory's name, known before Slurm gives an id.
    """

    task: Any
    sbatch_options: dict[str, Any]
    pre_submission_id: str
    target_job_dir: str
    cluster: Any = None
    packaging_strategy: Any = None
    backend_type: str | None = None
    timestamp: float = field(default_factory=time.time)


@dataclass
class SubmitEndContext:
    """Slurm accepted the job: ``job`` is the :class:`~slurm.Job` (or ArrayJob) you got,
    ``task`` the task it runs (new here: the earlier SDK's context had no task)."""

    job: Any
    job_id: str
    pre_submission_id: str
    target_job_dir: str
    sbatch_options: dict[str, Any]
    cluster: Any = None
    timestamp: float = field(default_factory=time.time)
    backend_type: str | None = None
    task: Any = None


@dataclass
class JobStatusUpdatedContext:
    """The cluster's tracker saw the job in a new state.

    ``status`` is the dict the earlier SDK gave (``JobState``, ``ExitCode``,
    ``Reason``, ``NodeList``...); ``is_terminal`` on the last one.
    """

    job: Any
    job_id: str
    status: dict[str, Any]
    timestamp: float
    previous_state: str | None = None
    is_terminal: bool = False


@dataclass
class WorkflowTaskSubmitContext:
    """A workflow submitted a task (or another workflow).

    On the node, as the workflow submits it (for callbacks that travelled with
    the workflow); on the client, from the workflow's journal once the workflow
    is over, in submission order (``timestamp`` is then when it was reported).
    """

    parent_workflow_id: str
    parent_workflow_dir: Path
    parent_workflow_name: str
    child_job_id: str
    child_job_dir: Path
    child_task_name: str
    child_is_workflow: bool
    timestamp: float
    cluster: Any = None


# --- the base class -------------------------------------------------------------------


class BaseCallback:
    """Override the hooks you care about; each takes one context (see the module's table).

    Class attributes (set them on your subclass or instance):
        execution_loci: hook name -> ``ExecutionLocus`` (or ``"client"``, ``"runner"``,
            ``"both"``) for the hooks that run elsewhere than by default.
        poll_interval_secs: the longest wait between two status looks while this
            callback listens (None: the tracker's own back-off, up to 15 s).
        requires_pickling: False keeps the callback on the client: its node-side
            hooks then never run.
        hook_timeout_secs: how long one hook may take before the job goes on
            without it (None: as long as it takes).
        job_modules: top-level modules the node-side hooks import; where the SDK
            builds the job's environment, the installed distributions that provide
            them join it, at this client's versions.
    """

    execution_loci: ClassVar[Mapping[str, ExecutionLocus | str]] = {}
    poll_interval_secs: float | None = None
    requires_pickling: bool = True
    hook_timeout_secs: float | None = DEFAULT_HOOK_TIMEOUT
    job_modules: tuple[str, ...] = ()

    def on_submit(self, job: Any) -> None:
        """Right after a job (or array) was accepted by sbatch, with the Job (or ArrayJob)."""

    def on_begin_package_ctx(self, ctx: PackagingBeginContext) -> None:
        """Before the task's code is prepared (client)."""

    def on_end_package_ctx(self, ctx: PackagingEndContext) -> None:
        """Once the code is ready (client)."""

    def on_begin_submit_job_ctx(self, ctx: SubmitBeginContext) -> None:
        """Just before sbatch (client)."""

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        """Once Slurm accepted the job (client)."""

    def on_job_status_update_ctx(self, ctx: JobStatusUpdatedContext) -> None:
        """When the tracker sees the job in a new state (client)."""

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        """On the node, just before the function runs."""

    def on_end_run_job_ctx(self, ctx: RunEndContext) -> None:
        """On the node, once the function returned or raised."""

    def on_completed_ctx(self, ctx: CompletedContext) -> None:
        """When the job is over: on the node and on the client (``ctx.emitted_by``)."""

    def on_workflow_begin_ctx(self, ctx: WorkflowCallbackContext) -> None:
        """On the node, when a workflow's function starts (after ``on_begin_run_job_ctx``)."""

    def on_workflow_end_ctx(self, ctx: WorkflowCallbackContext) -> None:
        """On the node, when a workflow's function is done (before ``on_end_run_job_ctx``)."""

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        """When a workflow submitted a task (client: reported from its journal)."""

    # --- where hooks run ---------------------------------------------------------------
    def get_execution_locus(self, hook_name: str) -> ExecutionLocus:
        return locus_of(self, hook_name)

    def should_run_on_client(self, hook_name: str) -> bool:
        return runs_on(self, hook_name, ExecutionLocus.CLIENT)

    def should_run_on_runner(self, hook_name: str) -> bool:
        return runs_on(self, hook_name, ExecutionLocus.RUNNER)

    def get_poll_interval(self) -> float | None:
        """``poll_interval_secs`` as a positive number of seconds, else None."""
        try:
            interval = float(self.poll_interval_secs)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return interval if interval > 0 else None

    def requires_runner_transport(self) -> bool:
        """Whether this callback travels with each job (see :func:`travels`)."""
        return travels(self)


def travels(callback: Any) -> bool:
    """Whether ``callback`` is pickled into each job: it has a node-side hook of its own
    (one its class defines, not BaseCallback's no-op) and does not opt out."""
    if not getattr(callback, "requires_pickling", True):
        return False
    for hook in RUNNER_HOOKS:
        if not runs_on(callback, hook, ExecutionLocus.RUNNER):
            continue
        method = getattr(type(callback), hook, None)
        if method is not None and method is not getattr(BaseCallback, hook, None):
            return True
    return False


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", None) or getattr(task, "__name__", "task"))


# --- the callbacks the SDK ships -----------------------------------------------------


class LoggerCallback(BaseCallback):
    """Log every step through the standard ``logging`` module, on the client and the node.

    Args:
        logger: the logger (default ``slurm.callbacks``).
        poll_interval: seconds between status looks while it listens (default 2).
        log_level: the level it configures on the node.
        configure_logging: configure logging on the node (``slurm.logging.configure_logging``)
            before the first record there.
    """

    poll_interval_secs: float | None = 2.0

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        poll_interval: float | None = None,
        log_level: int = logging.INFO,
        configure_logging: bool = True,
    ) -> None:
        self.logger = logger or logging.getLogger("slurm.callbacks")
        if poll_interval is not None:
            self.poll_interval_secs = poll_interval
        self.log_level = log_level
        self.configure_logging = configure_logging
        self._last_state: dict[str, str] = {}

    def on_begin_package_ctx(self, ctx: PackagingBeginContext) -> None:
        self.logger.info("packaging task %r", _task_name(ctx.task))

    def on_end_package_ctx(self, ctx: PackagingEndContext) -> None:
        took = f" in {ctx.duration:.2f}s" if ctx.duration is not None else ""
        self.logger.info("packaging of %r finished%s", _task_name(ctx.task), took)

    def on_begin_submit_job_ctx(self, ctx: SubmitBeginContext) -> None:
        self.logger.info(
            "submitting %s via the %s backend (partition=%s)",
            ctx.pre_submission_id,
            ctx.backend_type or "unknown",
            ctx.sbatch_options.get("partition", "default"),
        )

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        self.logger.info(
            "submitted %s as job %s (%s)",
            getattr(ctx.job, "name", ctx.pre_submission_id),
            ctx.job_id,
            ctx.target_job_dir,
        )

    def on_job_status_update_ctx(self, ctx: JobStatusUpdatedContext) -> None:
        state = str(ctx.status.get("JobState") or "UNKNOWN")
        if self._last_state.get(ctx.job_id) != state:
            self._last_state[ctx.job_id] = state
            self.logger.info("[%s] status=%s", ctx.job_id, state)

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        if self.configure_logging:
            from slurm.logging import configure_logging

            configure_logging(self.log_level, rich=False)
        self.logger.info(
            "starting %s.%s on %s", ctx.module, ctx.function, ctx.hostname or "unknown"
        )

    def on_end_run_job_ctx(self, ctx: RunEndContext) -> None:
        if ctx.status == "success":
            self.logger.info("the call completed in %.2fs", ctx.duration or 0.0)
        else:
            self.logger.error("the call failed: %s: %s", ctx.error_type, ctx.error_message)

    def on_completed_ctx(self, ctx: CompletedContext) -> None:
        if ctx.emitted_by is ExecutionLocus.CLIENT:
            self.logger.info(
                "job %s finished with state=%s exit=%s",
                ctx.job_id,
                ctx.job_state or "UNKNOWN",
                ctx.exit_code or "?",
            )

    def on_workflow_begin_ctx(self, ctx: WorkflowCallbackContext) -> None:
        self.logger.info("[workflow] %r started (job %s)", ctx.workflow_name, ctx.workflow_job_id)

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        kind = "workflow" if ctx.child_is_workflow else "task"
        self.logger.info(
            "[%s] -> %s %r (job %s)",
            ctx.parent_workflow_name,
            kind,
            ctx.child_task_name,
            ctx.child_job_id,
        )

    def on_workflow_end_ctx(self, ctx: WorkflowCallbackContext) -> None:
        if ctx.exception is not None:
            self.logger.error("[workflow] %r failed: %s", ctx.workflow_name, ctx.exception)
        else:
            self.logger.info("[workflow] %r completed", ctx.workflow_name)


class RichLoggerCallback(LoggerCallback):
    """Progress on the terminal with rich: one line per job, from packaging through
    submission to its last state, and the node's steps printed in the job's log.

    Args:
        console: a ``rich.console.Console`` (default: one on stderr).
        poll_interval: seconds between status looks while it listens (default 2).
        verbose: print every step as a line too, not only the progress.
    """

    #: How far along the bar each phase is (the last state is 100).
    PHASES: ClassVar[dict[str, int]] = {
        "PACKAGING": 10,
        "PACKAGED": 20,
        "SUBMITTING": 30,
        "SUBMITTED": 40,
        "PENDING": 45,
        "CONFIGURING": 50,
        "RUNNING": 60,
        "COMPLETING": 80,
    }

    def __init__(
        self,
        *,
        console: Any = None,
        poll_interval: float | None = None,
        verbose: bool = False,
        log_level: int = logging.INFO,
        configure_logging: bool = True,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval, log_level=log_level, configure_logging=configure_logging
        )
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.verbose = verbose
        self._progress: Any = None
        self._rows: dict[str, Any] = {}  # job dir, then job id -> the progress row
        self._by_task: dict[int, Any] = {}  # a task being packaged -> its row

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("console", "_progress", "_rows", "_by_task"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from rich.console import Console

        self.__dict__.update(state)
        self.console = Console(stderr=True)
        self._progress, self._rows, self._by_task = None, {}, {}

    def _row(self, description: str) -> Any:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if self._progress is None:
            self._progress = Progress(
                TimeElapsedColumn(),
                TextColumn("[bold cyan]{task.description}"),
                BarColumn(),
                TextColumn("[cyan]{task.fields[phase]}"),
                TextColumn("[dim]{task.fields[info]}"),
                console=self.console,
            )
            self._progress.start()
        return self._progress.add_task(description, total=100, phase="", info="")

    def _set(self, row: Any, phase: str, info: str = "", *, done: bool = False) -> None:
        if self._progress is None:
            return
        completed = 100 if done else self.PHASES.get(phase, 0)
        self._progress.update(row, phase=phase, info=info, completed=completed)
        if done and all(t.finished for t in self._progress.tasks):
            self._progress.stop()
            self._progress, self._rows = None, {}

    def _say(self, message: str) -> None:
        if self.verbose:
            self.console.print(message)

    def on_begin_package_ctx(self, ctx: PackagingBeginContext) -> None:
        row = self._row(_task_name(ctx.task))
        self._by_task[id(ctx.task)] = row
        self._set(row, "PACKAGING")
        self._say(f"[cyan]packaging[/cyan] {_task_name(ctx.task)}")

    def on_end_package_ctx(self, ctx: PackagingEndContext) -> None:
        row = self._by_task.get(id(ctx.task))
        if row is not None:
            took = f"{ctx.duration:.1f}s" if ctx.duration is not None else ""
            self._set(row, "PACKAGED", took)

    def on_begin_submit_job_ctx(self, ctx: SubmitBeginContext) -> None:
        row = self._by_task.pop(id(ctx.task), None)
        if row is None:
            row = self._row(_task_name(ctx.task))
        self._rows[ctx.target_job_dir] = row
        self._set(row, "SUBMITTING", ctx.sbatch_options.get("partition", ""))

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        row = self._rows.pop(ctx.target_job_dir, None)
        if row is None:
            row = self._row(str(getattr(ctx.job, "name", ctx.job_id)))
        self._rows[ctx.job_id] = row
        self._set(row, "SUBMITTED", f"job {ctx.job_id}")
        self._say(f"[green]submitted[/green] job [bold]{ctx.job_id}[/bold] ({ctx.target_job_dir})")

    def on_job_status_update_ctx(self, ctx: JobStatusUpdatedContext) -> None:
        row = self._rows.get(ctx.job_id) or self._rows.get(ctx.job_id.split("_", 1)[0])
        state = str(ctx.status.get("JobState") or "UNKNOWN")
        if row is not None and not ctx.is_terminal:
            self._set(row, state, f"job {ctx.job_id}")

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        self.console.print(
            f"[cyan]running[/cyan] {ctx.module}.{ctx.function} on [bold]{ctx.hostname}[/bold]"
        )

    def on_end_run_job_ctx(self, ctx: RunEndContext) -> None:
        if ctx.status == "success":
            self.console.print(f"[green]done[/green] in {ctx.duration or 0.0:.2f}s")
        else:
            self.console.print(f"[red]failed[/red]: {ctx.error_type}: {ctx.error_message}")

    def on_completed_ctx(self, ctx: CompletedContext) -> None:
        if ctx.emitted_by is not ExecutionLocus.CLIENT or ctx.job_id is None:
            return
        row = self._rows.pop(ctx.job_id, None)
        state = ctx.job_state or "UNKNOWN"
        if row is not None:
            self._set(row, state, f"job {ctx.job_id} exit={ctx.exit_code or '?'}", done=True)
        self._say(f"job {ctx.job_id} finished: {state}")

    def on_workflow_begin_ctx(self, ctx: WorkflowCallbackContext) -> None:
        self.console.print(f"[blue]workflow[/blue] {ctx.workflow_name!r} started")

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        kind = "workflow" if ctx.child_is_workflow else "task"
        self._say(
            f"  {ctx.parent_workflow_name} -> {kind} {ctx.child_task_name} ({ctx.child_job_id})"
        )

    def on_workflow_end_ctx(self, ctx: WorkflowCallbackContext) -> None:
        if ctx.exception is not None:
            self.console.print(f"[red]workflow[/red] {ctx.workflow_name!r} failed: {ctx.exception}")
        else:
            self.console.print(f"[green]workflow[/green] {ctx.workflow_name!r} completed")


class BenchmarkCallback(BaseCallback):
    """Times each phase (packaging, submission, the run, the whole job) and each workflow
    (duration, child tasks, the intervals between their submissions).

    The workflow hooks run on both sides: on the node the metrics are measured as
    the workflow submits and written to ``.slurm_benchmark_metrics.json`` in its
    directory; on the client they are read back when the workflow is over
    (else counted from its journal).

    Example::

        benchmark = BenchmarkCallback()
        with Cluster(..., callbacks=[benchmark]):
            job = pipeline(data)
            job.get_result()
        print(benchmark.get_workflow_metrics(job.id)["child_count"])
    """

    execution_loci: ClassVar[Mapping[str, ExecutionLocus | str]] = {
        "on_workflow_begin_ctx": ExecutionLocus.BOTH,
        "on_workflow_end_ctx": ExecutionLocus.BOTH,
        "on_workflow_task_submitted_ctx": ExecutionLocus.BOTH,
    }

    def __init__(self) -> None:
        self.logger = logging.getLogger("slurm.callbacks")
        self.timings: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._workflows: dict[str, dict[str, Any]] = {}
        self._child_to_parent: dict[str, str] = {}

    def _took(self, phase: str, start_key: str, end: float) -> None:
        start = self._started.pop(start_key, None)
        if start is not None:
            self.timings[phase] = end - start
            self.logger.info("%s duration: %.2fs", phase, end - start)

    def on_begin_package_ctx(self, ctx: PackagingBeginContext) -> None:
        self._started["packaging"] = ctx.timestamp

    def on_end_package_ctx(self, ctx: PackagingEndContext) -> None:
        self._took("packaging", "packaging", ctx.timestamp)

    def on_begin_submit_job_ctx(self, ctx: SubmitBeginContext) -> None:
        self._started["submission"] = ctx.timestamp

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        self._took("submission", "submission", ctx.timestamp)

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        self._started["execution"] = ctx.start_time

    def on_end_run_job_ctx(self, ctx: RunEndContext) -> None:
        self._took("execution", "execution", ctx.end_time or time.time())

    def on_completed_ctx(self, ctx: CompletedContext) -> None:
        if ctx.duration is not None:
            self.timings["total"] = ctx.duration
        parent = self._child_to_parent.get(ctx.job_id or "")
        if parent in self._workflows:
            data = self._workflows[parent]
            data["completed_count"] += 1
            if ctx.duration:
                data["child_durations"].append(ctx.duration)

    def on_workflow_begin_ctx(self, ctx: WorkflowCallbackContext) -> None:
        self._workflows.setdefault(
            ctx.workflow_job_id,
            {
                "name": ctx.workflow_name,
                "start_time": ctx.timestamp,
                "end_time": None,
                "child_count": 0,
                "completed_count": 0,
                "submission_times": [],
                "child_durations": [],
            },
        )

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        data = self._workflows.get(ctx.parent_workflow_id)
        if data is not None and ctx.child_job_id not in self._child_to_parent:
            data["child_count"] += 1
            data["submission_times"].append(ctx.timestamp)
            self._child_to_parent[ctx.child_job_id] = ctx.parent_workflow_id

    def on_workflow_end_ctx(self, ctx: WorkflowCallbackContext) -> None:
        data = self._workflows.get(ctx.workflow_job_id)
        if data is None:
            return
        data["end_time"] = ctx.timestamp
        path = Path(str(ctx.workflow_job_dir)) / WORKFLOW_METRICS_FILENAME
        transport = getattr(ctx.cluster, "transport", None)
        if ctx.workflow_context is not None:  # on the node: measured live, keep it
            try:
                path.write_text(json.dumps(self._metrics(data), indent=2), encoding="utf-8")
            except OSError as exc:
                self.logger.debug("cannot write %s: %s", path, exc)
        elif transport is not None:  # on the client: the node's figures, when it wrote them
            with contextlib.suppress(OSError, ValueError):
                data["measured"] = json.loads(transport.read_text(str(path)))
        metrics = self.get_workflow_metrics(ctx.workflow_job_id) or {}
        self.logger.info(
            "[workflow] %r: %.2fs, %d child tasks",
            data["name"],
            metrics.get("duration_seconds", 0.0),
            metrics.get("child_count", 0),
        )

    @staticmethod
    def _metrics(data: Mapping[str, Any]) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "name": data["name"],
            "child_count": data["child_count"],
            "completed_count": data["completed_count"],
        }
        start, end = data.get("start_time"), data.get("end_time")
        if start is not None and end is not None and end >= start:
            metrics["duration_seconds"] = end - start
            if data["child_count"] and end > start:
                metrics["submission_throughput"] = data["child_count"] / (end - start)
        times = data["submission_times"]
        if len(times) >= 2:
            gaps = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
            metrics["orchestration_overhead_ms"] = sum(gaps) / len(gaps)
            metrics["min_submission_interval_ms"] = min(gaps)
            metrics["max_submission_interval_ms"] = max(gaps)
        durations = data["child_durations"]
        if durations:
            metrics["child_avg_duration"] = sum(durations) / len(durations)
            metrics["child_min_duration"] = min(durations)
            metrics["child_max_duration"] = max(durations)
        return metrics

    def get_workflow_metrics(self, workflow_id: str) -> dict[str, Any] | None:
        """The metrics of one workflow (``name``, ``duration_seconds``, ``child_count``,
        ``orchestration_overhead_ms``, ...), or None if it was not seen."""
        data = self._workflows.get(workflow_id)
        if data is None:
            return None
        measured = data.get("measured")
        return dict(measured) if isinstance(measured, dict) else self._metrics(data)

    def get_all_workflow_metrics(self) -> dict[str, dict[str, Any]]:
        """The metrics of every workflow seen, by job id."""
        found = {wf: self.get_workflow_metrics(wf) for wf in self._workflows}
        return {wf: metrics for wf, metrics in found.items() if metrics is not None}
