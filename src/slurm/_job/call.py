"""One call on the node: load its code, resolve its arguments, inject the contexts,
call the function, and turn what happened into an :class:`Envelope`.

A workflow's call also needs a cluster to submit its tasks to, made on its
own node: that is the :class:`WorkflowHost`'s job, handed in by the entry
point (:mod:`slurm.runner` passes the API layer's), so that the job side
never imports the client.

The callbacks that travelled with the job (:class:`~slurm._job.hooks.RunnerHooks`)
hear, in this order: ``on_begin_run_job_ctx``, ``on_workflow_begin_ctx`` (a
workflow), the function, ``on_workflow_end_ctx``, ``on_end_run_job_ctx``,
``on_completed_ctx``. None of them can fail the call.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Protocol

    from slurm._job.hookcontexts import WorkflowCallbackContext

from slurm._job.context import JobContext, set_current
from slurm._job.hooks import RunnerHooks
from slurm._job.inject import injected_parameters
from slurm._job.signals import Guard, Interrupted
from slurm._wire.layout import JobPaths
from slurm._wire.payload import (
    Envelope,
    JobRef,
    Payload,
    WorkflowSpec,
    envelope_for_exception,
    envelope_for_value,
)
from slurm.errors import ResultError

__all__ = [
    "Closable",
    "WorkflowHost",
    "call",
    "check_private",
    "extend_sys_path",
    "put_code_first",
    "resolve",
]


if TYPE_CHECKING:  # for type checkers only

    class Closable(Protocol):
        def close(self) -> None: ...

    class WorkflowHost(Protocol):
        """Makes what a running workflow submits its tasks through, on its own node."""

        def open(
            self, spec: WorkflowSpec, job_dir: Path, job_id: str, callbacks: Sequence[Any] = ()
        ) -> tuple[Closable, Any]:
            """The workflow's cluster (closed when the call ends) and its ``WorkflowContext``;
            ``callbacks`` (those that travelled with the workflow) go to its cluster."""
            ...


def resolve(ref: JobRef) -> Any:
    """The value a job reference in the arguments stands for: that job's result, unpickled
    only from a file this user's own job can have written (:func:`check_private`), as
    ``get_result()`` does on the client."""
    from pathlib import Path  # only for jobs given another job's result

    if ref.result_dirs:  # an ArrayJob: every element's result, array after array, in item order
        values: list[Any] = []
        for directory in ref.result_dirs:
            files = sorted(Path(directory).glob("*.pkl"), key=lambda p: int(p.stem))
            for file in files:
                check_private(file, ref.job_id)
                values.append(Envelope.from_bytes(file.read_bytes()).unwrap())
        return values
    path = Path(ref.result_path)
    if not path.exists():
        raise RuntimeError(
            f"The result of job {ref.job_id}, passed as an argument, is missing at {path}: "
            "that job has not finished successfully."
        )
    check_private(path, ref.job_id)
    return Envelope.from_bytes(path.read_bytes(), job_id=ref.job_id).unwrap()


def check_private(path: Path, job_id: str | None) -> None:
    """Refuse a result file that is not this user's own, in a directory only the user (and
    root) can write, under parents nobody else can swap (:mod:`slurm._transport.trust`).

    Raises:
        ResultError: it is not.
    """
    from slurm._transport import trust  # only for jobs given another job's result

    directory = str(path.parent)
    report = trust.local_report([directory], files="*.pkl")
    problems = trust.parse_output(report, [directory])
    uid = trust.parse_uid(report)
    owner_mode = trust.parse_files(report).get(0, {}).get(path.name)
    problem = problems[0] if problems else None
    if problem is None and uid is not None and owner_mode is not None:
        problem = trust.file_problem(str(path), *owner_mode, uid)
    elif problem is None:
        problem = trust.Problem(str(path), f"{path} could not be inspected", "run the job again")
    if problem is not None:
        raise ResultError(
            f"Refusing to unpickle {path}, the result of job {job_id} passed as an argument: "
            f"{problem.detail}. {problem.fix}.",
            job_id=job_id,
        )


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
    job_dir: str | Path,
    job_id: str | None,
    env: dict[str, str],
    host: WorkflowHost | None,
    guard: Guard | None = None,
    hooks: RunnerHooks | None = None,
    paths: JobPaths | None = None,
) -> Envelope:
    """Run the payload's call with its contexts injected; its value or exception, enveloped.

    ``hooks`` hear the call begin and end (``paths``: the files they are told of).

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
    hooks = hooks or RunnerHooks()
    paths = paths or JobPaths(str(job_dir))
    travelled = hooks.callbacks
    workflow_cluster: Closable | None = None
    workflow_context: Any = None
    try:
        for name, kind in injected.items():
            if name in kwargs:
                continue
            if kind == "job":
                kwargs[name] = job_context
            else:
                workflow_cluster, workflow_context = _open_workflow(
                    host, payload, job_dir, job_id, travelled
                )
                kwargs[name] = workflow_context
        if task.is_workflow and workflow_cluster is None:
            workflow_cluster, workflow_context = _open_workflow(
                host, payload, job_dir, job_id, travelled
            )
        if guard is not None and guard.signum is not None:
            raise Interrupted(guard.signum)  # warned while loading: do not start
        begun = hooks.begin(
            module=getattr(fn, "__module__", "") or "",
            function=getattr(fn, "__qualname__", "") or task.name,
            payload=paths.payload,
            output=paths.result,
            job_id=job_id,
            job_dir=str(job_dir),
            job_context=job_context,
        )
        workflow = None
        if task.is_workflow and hooks:
            from slurm._job.hookcontexts import WorkflowCallbackContext

            workflow = WorkflowCallbackContext(
                workflow_job_id=job_id or "",
                workflow_job_dir=_path(job_dir),
                workflow_name=task.name,
                workflow_context=workflow_context,
                timestamp=time.time(),
                cluster=workflow_cluster,
            )
            hooks.fire("on_workflow_begin_ctx", workflow)
        try:
            if guard is not None:
                guard.in_task = True
                if guard.signum is not None:  # warned since the check above
                    raise Interrupted(guard.signum)
            value = fn(*args, **kwargs)
        except Interrupted:
            raise
        except BaseException as exc:
            envelope = envelope_for_exception(exc, job_id=job_id)
            _end_workflow(hooks, workflow, exception=exc)
        else:
            envelope = envelope_for_value(value, job_id=job_id)
            _end_workflow(hooks, workflow, result=value)
        finally:
            if guard is not None:
                guard.in_task = False
        if hooks:
            hooks.end(begun, envelope.outcome(), stdout=paths.stdout, stderr=paths.stderr)
        return envelope
    finally:
        if workflow_cluster is not None:
            workflow_cluster.close()


def _end_workflow(
    hooks: RunnerHooks,
    begun: WorkflowCallbackContext | None,
    *,
    result: Any = None,
    exception: BaseException | None = None,
) -> None:
    if begun is None:
        return
    from slurm._job.hookcontexts import WorkflowCallbackContext

    ended = WorkflowCallbackContext(
        workflow_job_id=begun.workflow_job_id,
        workflow_job_dir=begun.workflow_job_dir,
        workflow_name=begun.workflow_name,
        workflow_context=begun.workflow_context,
        timestamp=time.time(),
        result=result,
        exception=exception,
        cluster=begun.cluster,
    )
    hooks.fire("on_workflow_end_ctx", ended)


def _open_workflow(
    host: WorkflowHost | None,
    payload: Payload,
    job_dir: str | Path,
    job_id: str | None,
    callbacks: Sequence[Any] = (),
) -> tuple[Closable, Any]:
    if host is None:
        raise RuntimeError(
            "this runner was started without a workflow host: start workflows with "
            "`python -m slurm.runner JOB_DIR`"
        )
    spec = payload.workflow or WorkflowSpec({}, f"{job_dir}/tasks/.index")
    if callbacks:
        return host.open(spec, _path(job_dir), job_id or "", callbacks)
    return host.open(spec, _path(job_dir), job_id or "")


def _path(job_dir: str | Path) -> Path:
    """The job directory as a ``Path``, for a workflow (which imports pathlib anyway)."""
    from pathlib import Path

    return Path(job_dir)
