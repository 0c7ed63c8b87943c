"""Callback hooks, called safely: where each hook runs, the contexts made on the node,
and the one function that calls a hook (here and on the client).

A callback is any object with some of the eleven ``on_*_ctx`` methods of
:class:`slurm.callbacks.BaseCallback`; the job side reads it by duck typing
and never imports :mod:`slurm.callbacks`. Each hook runs where its
:class:`ExecutionLocus` says: the client's hooks from the event stream
(:mod:`slurm.callbacks.dispatch`), the runner's around the call on the node
(:class:`RunnerHooks`), for the callbacks that travelled in ``callbacks.pkl``
(:mod:`slurm._wire.callbacks`).

A hook that raises, or does not return within its callback's
``hook_timeout_secs`` (default :data:`DEFAULT_HOOK_TIMEOUT`; ``None``: no
limit), gets a warning naming the callback and the hook, and the job goes on:
it never fails a task nor stops a submission. A hook runs in a helper thread
(with the caller's context variables) so that the caller can stop waiting.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time
from collections.abc import Callable, Sequence

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from slurm._job.hookcontexts import RunBeginContext
    from slurm._job.locus import ExecutionLocus

from slurm._job.context import JobContext

__all__ = [
    "DEFAULT_HOOK_LOCI",
    "DEFAULT_HOOK_TIMEOUT",
    "HOOKS",
    "RUNNER_HOOKS",
    "RunnerHooks",
    "call_hook",
    "locus_of",
    "runs_on",
]

#: How long a hook may take before the job goes on without it (seconds).
DEFAULT_HOOK_TIMEOUT = 60.0


#: Where each hook runs unless a callback says otherwise (an :class:`ExecutionLocus`'s value:
#: a job without callbacks does not import :mod:`enum` for it).
DEFAULT_HOOK_LOCI: dict[str, str] = {
    "on_begin_package_ctx": "client",
    "on_end_package_ctx": "client",
    "on_begin_submit_job_ctx": "client",
    "on_end_submit_job_ctx": "client",
    "on_job_status_update_ctx": "client",
    "on_begin_run_job_ctx": "runner",
    "on_end_run_job_ctx": "runner",
    "on_completed_ctx": "both",
    "on_workflow_begin_ctx": "runner",
    "on_workflow_end_ctx": "runner",
    "on_workflow_task_submitted_ctx": "client",
}
HOOKS = tuple(DEFAULT_HOOK_LOCI)
#: The hooks the node can call (the others are about submission and tracking).
RUNNER_HOOKS = (
    "on_begin_run_job_ctx",
    "on_end_run_job_ctx",
    "on_completed_ctx",
    "on_workflow_begin_ctx",
    "on_workflow_end_ctx",
)


def locus_of(callback: Any, hook: str) -> ExecutionLocus:
    """Where ``hook`` of ``callback`` runs: its ``execution_loci`` entry, else the default."""
    from slurm._job.locus import ExecutionLocus  # only where a callback is

    chosen = (getattr(callback, "execution_loci", None) or {}).get(hook)
    if chosen is not None:
        try:
            return ExecutionLocus(chosen)
        except ValueError:
            pass  # a wrong value: the default (the client says so when the cluster is made)
    return ExecutionLocus(DEFAULT_HOOK_LOCI.get(hook, "client"))


def runs_on(callback: Any, hook: str, side: ExecutionLocus | str) -> bool:
    """Whether ``hook`` of ``callback`` runs on ``side`` (CLIENT or RUNNER)."""
    return locus_of(callback, hook) in (side, "both")


def _timeout_of(callback: Any) -> float | None:
    value = getattr(callback, "hook_timeout_secs", DEFAULT_HOOK_TIMEOUT)
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_HOOK_TIMEOUT
    return seconds if seconds > 0 else None


def call_hook(callback: Any, hook: str, ctx: Any, warn: Callable[[str], None]) -> str:
    """Call ``callback.hook(ctx)`` if it has that hook: ``"ok"``, ``"raised"`` or ``"hung"``.

    Never raises: what went wrong is passed to ``warn`` (a sentence naming the
    callback and the hook). A hung hook is left running in its daemon thread;
    whoever called it should not call that callback again.
    """
    method = getattr(callback, hook, None)
    if method is None:
        return "ok"
    name = f"{type(callback).__qualname__.rpartition('<locals>.')[2]}.{hook}"
    failure: list[BaseException] = []

    def run() -> None:
        try:
            method(ctx)
        except BaseException as exc:  # SystemExit in a hook must not end the job either
            failure.append(exc)

    timeout = _timeout_of(callback)
    if timeout is None:
        run()
    else:
        import threading  # only a job with callbacks

        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(run,), name=f"hook {name}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            warn(
                f"callback {name} did not return within {timeout:g} s: going on without it "
                "(it is not called again here; set hook_timeout_secs on the callback to give "
                "it longer, or None for no limit)"
            )
            return "hung"
    if failure:
        exc = failure[0]
        warn(f"callback {name} raised {type(exc).__name__}: {exc}; going on without it")
        return "raised"
    return "ok"


def _stderr(message: str) -> None:
    print(f"slurm-sdk: {message}", file=sys.stderr, flush=True)


# --- the runner's side --------------------------------------------------------------


class RunnerHooks:
    """The runner-side hooks of the callbacks that travelled with one job.

    Args:
        callbacks: the rebuilt callbacks (see :func:`slurm._wire.callbacks.loads_callbacks`).
        warn: where a failed hook is reported (the job's stderr).
    """

    def __init__(self, callbacks: Sequence[Any] = (), warn: Callable[[str], None] = _stderr):
        self.callbacks = list(callbacks)
        self._warn = warn

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def fire(self, hook: str, ctx: Any) -> None:
        """Call ``hook`` on every callback that runs it on the node, in their order; one that
        raises or hangs is warned about (and, having hung, left out from then on)."""
        for callback in list(self.callbacks):
            if not runs_on(callback, hook, "runner"):
                continue
            if call_hook(callback, hook, ctx, self._warn) == "hung":
                self.callbacks.remove(callback)

    def begin(
        self,
        *,
        module: str,
        function: str,
        payload: str,
        output: str,
        job_id: str | None,
        job_dir: str,
        job_context: JobContext,
    ) -> RunBeginContext | None:
        """``on_begin_run_job_ctx``; the context, which :meth:`end` continues from (None
        when no callback travelled: nothing is gathered for nobody)."""
        if not self.callbacks:
            return None
        from slurm._job.hookcontexts import RunBeginContext  # only a job with callbacks

        ctx = RunBeginContext(
            module=module,
            function=function,
            args_file=payload,
            kwargs_file=payload,
            output_file=output,
            job_id=job_id,
            job_dir=job_dir,
            hostname=os.uname().nodename,
            python_executable=sys.executable,
            python_version=sys.version,
            working_directory=os.getcwd(),
            environment_snapshot={k: v for k, v in os.environ.items() if k.startswith("SLURM")},
            job_context=job_context,
        )
        self.fire("on_begin_run_job_ctx", ctx)
        return ctx

    def end(self, begun: RunBeginContext | None, outcome: Any, *, stdout: str, stderr: str) -> None:
        """``on_end_run_job_ctx`` then ``on_completed_ctx`` (runner), from the call's outcome."""
        if begun is None or not self.callbacks:
            return
        from slurm._job.hookcontexts import CompletedContext, RunEndContext
        from slurm._job.locus import ExecutionLocus

        ended = time.time()
        failed = not outcome.ok
        error_type = outcome.type_name if failed else None
        error_message = outcome.message if failed else None
        traceback = outcome.traceback if failed else None
        self.fire(
            "on_end_run_job_ctx",
            RunEndContext(
                status="failure" if failed else "success",
                output_file=begun.output_file,
                error_type=error_type,
                error_message=error_message,
                traceback=traceback,
                job_id=begun.job_id,
                job_dir=begun.job_dir,
                hostname=begun.hostname,
                stdout_path=stdout,
                stderr_path=stderr,
                start_time=begun.start_time,
                end_time=ended,
                duration=ended - begun.start_time,
                job_context=begun.job_context,
            ),
        )
        self.fire(
            "on_completed_ctx",
            CompletedContext(
                job=None,
                job_id=begun.job_id,
                job_dir=begun.job_dir,
                job_state="FAILED" if failed else "COMPLETED",
                exit_code="1" if failed else "0",
                reason=None,
                stdout_path=stdout,
                stderr_path=stderr,
                start_time=begun.start_time,
                end_time=ended,
                duration=ended - begun.start_time,
                error_type=error_type,
                error_message=error_message,
                traceback=traceback,
                result_path=begun.output_file,
                emitted_by=ExecutionLocus.RUNNER,
                job_context=begun.job_context,
            ),
        )
