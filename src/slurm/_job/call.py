"""One call on the node: load its code, resolve its arguments, inject the contexts,
call the function, and turn what happened into an :class:`Envelope`.

A workflow's call also needs a cluster to submit its tasks to, made on its
own node: that is the :class:`WorkflowHost`'s job, handed in by the entry
point (:mod:`slurm.runner` passes the API layer's), so that the job side
never imports the client.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Protocol

from slurm._job.context import JobContext, set_current
from slurm._job.inject import injected_parameters
from slurm._job.signals import Guard, Interrupted
from slurm._wire.payload import (
    Envelope,
    JobRef,
    Payload,
    WorkflowSpec,
    envelope_for_exception,
    envelope_for_value,
)

__all__ = ["Closable", "WorkflowHost", "call", "extend_sys_path", "put_code_first", "resolve"]


class Closable(Protocol):
    def close(self) -> None: ...


class WorkflowHost(Protocol):
    """Makes what a running workflow submits its tasks through, on its own node."""

    def open(self, spec: WorkflowSpec, job_dir: Path, job_id: str) -> tuple[Closable, Any]:
        """The workflow's cluster (closed when the call ends) and its ``WorkflowContext``."""
        ...


def resolve(ref: JobRef) -> Any:
    """The value a job reference in the arguments stands for: that job's result."""
    if ref.result_dirs:  # an ArrayJob: every element's result, array after array, in item order
        values: list[Any] = []
        for directory in ref.result_dirs:
            files = sorted(Path(directory).glob("*.pkl"), key=lambda p: int(p.stem))
            values.extend(Envelope.from_bytes(f.read_bytes()).unwrap() for f in files)
        return values
    path = Path(ref.result_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"The result of job {ref.job_id}, passed as an argument, is missing at {path}: "
            "that job has not finished successfully."
        ) from None
    return Envelope.from_bytes(data, job_id=ref.job_id).unwrap()


def extend_sys_path(entries: list[str]) -> None:
    """The client's ``sys.path`` entries (local backend) after the job's own."""
    for entry in entries:
        if entry not in sys.path and os.path.isdir(entry):
            sys.path.append(entry)


def put_code_first(code_dir: str | None) -> None:
    """The shipped source goes first on sys.path, and the working directory that
    ``python -m`` put there goes: no other file in it may shadow or add a module."""
    if not code_dir:
        return
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd, code_dir)]
    sys.path.insert(0, code_dir)


def call(
    payload: Payload,
    job_dir: Path,
    job_id: str | None,
    env: dict[str, str],
    host: WorkflowHost | None,
    guard: Guard | None = None,
) -> Envelope:
    """Run the payload's call with its contexts injected; its value or exception, enveloped.

    Raises:
        Interrupted: Slurm warned the job before or while the function ran (the
            runner requeues it).
    """
    task = payload.task
    fn = task.unwrapped
    args, kwargs = tuple(payload.call.args), dict(payload.call.kwargs)
    job_context = JobContext.from_environment(env, output_dir=str(job_dir))
    set_current(job_context)
    injected = injected_parameters(fn, workflow=task.is_workflow)
    workflow_cluster: Closable | None = None
    try:
        for name, kind in injected.items():
            if name in kwargs:
                continue
            if kind == "job":
                kwargs[name] = job_context
            else:
                workflow_cluster, kwargs[name] = _open_workflow(host, payload, job_dir, job_id)
        if task.is_workflow and workflow_cluster is None:
            workflow_cluster, _ = _open_workflow(host, payload, job_dir, job_id)
        if guard is not None and guard.signum is not None:
            raise Interrupted(guard.signum)  # warned while loading: do not start
        try:
            if guard is not None:
                guard.in_task = True
            value = fn(*args, **kwargs)
        except Interrupted:
            raise
        except BaseException as exc:
            return envelope_for_exception(exc, job_id=job_id)
        finally:
            if guard is not None:
                guard.in_task = False
        return envelope_for_value(value, job_id=job_id)
    finally:
        if workflow_cluster is not None:
            workflow_cluster.close()


def _open_workflow(
    host: WorkflowHost | None, payload: Payload, job_dir: Path, job_id: str | None
) -> tuple[Closable, Any]:
    if host is None:
        raise RuntimeError(
            "this runner was started without a workflow host: start workflows with "
            "`python -m slurm.runner JOB_DIR`"
        )
    spec = payload.workflow or WorkflowSpec({}, f"{job_dir}/tasks/.index")
    return host.open(spec, job_dir, job_id or "")
