"""The contexts the runner's hooks get on the node: dataclasses, as the earlier SDK's.

Imported only when a job has callbacks (:class:`slurm._job.hooks.RunnerHooks`
makes them) and by :mod:`slurm.callbacks`: a job without callbacks never
imports :mod:`dataclasses` (docs/many-calls.md, the job's start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from slurm._job.context import JobContext
from slurm._job.locus import ExecutionLocus

__all__ = ["CompletedContext", "RunBeginContext", "RunEndContext", "WorkflowCallbackContext"]


@dataclass
class RunBeginContext:
    """Given to ``on_begin_run_job_ctx`` on the node, just before the function runs.

    ``args_file`` and ``kwargs_file`` are both the call's payload (its arguments
    travel in one file); ``output_file`` is where the result will be.
    """

    module: str
    function: str
    args_file: str
    kwargs_file: str
    output_file: str
    job_id: str | None = None
    job_dir: str | None = None
    hostname: str | None = None
    python_executable: str | None = None
    python_version: str | None = None
    working_directory: str | None = None
    environment_snapshot: dict[str, str] | None = None
    start_time: float = field(default_factory=time.time)
    job_context: JobContext | None = None


@dataclass
class RunEndContext:
    """Given to ``on_end_run_job_ctx`` on the node, once the function returned or raised.

    ``status`` is ``"success"`` or ``"failure"`` (then the error's type, message
    and traceback are set).
    """

    status: str
    output_file: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    job_id: str | None = None
    job_dir: str | None = None
    hostname: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    job_context: JobContext | None = None


@dataclass
class CompletedContext:
    """Given to ``on_completed_ctx`` when a job is over: on the node once its result is
    written (``emitted_by=RUNNER``), on the client once the tracker sees it end
    (``emitted_by=CLIENT``, with ``job`` and Slurm's state)."""

    job: Any
    job_id: str | None
    job_dir: str | None
    job_state: str | None
    exit_code: str | None
    reason: str | None
    stdout_path: str | None
    stderr_path: str | None
    start_time: float | None
    end_time: float | None
    duration: float | None
    status: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    result_path: str | None = None
    emitted_by: ExecutionLocus = ExecutionLocus.CLIENT
    job_context: JobContext | None = None


@dataclass
class WorkflowCallbackContext:
    """Given to ``on_workflow_begin_ctx`` and ``on_workflow_end_ctx``.

    On the node (the default): when the workflow's function starts, and when it
    has returned (``result``) or raised (``exception``), with its
    ``WorkflowContext`` and its cluster. On the client (``execution_loci``
    asking for it): when the tracker first sees the workflow run, and when it is
    over (``result`` and ``workflow_context`` are then None).
    """

    workflow_job_id: str
    workflow_job_dir: Any  # a pathlib.Path
    workflow_name: str
    workflow_context: Any
    timestamp: float
    result: Any = None
    exception: BaseException | None = None
    cluster: Any = None
