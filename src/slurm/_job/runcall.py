"""One call run to its end on the node: what the runner does between loading a call's
payload and leaving its result, for a lone job, an array element or a rank (from
:mod:`slurm._job.entry`) and for each call of a packed element (:mod:`slurm._job.pack`).

It loads the payload, turns job references into their results, runs the call
(:mod:`slurm._job.call`), requeues the job when Slurm's time-limit warning
interrupts it (:mod:`slurm._job.signals`), and writes the usage figures, the
outcome and the result envelope atomically, then the done marker.
"""

from __future__ import annotations

import os
import sys

from slurm._job.call import call, extend_sys_path, put_code_first, resolve
from slurm._job.hooks import RunnerHooks
from slurm._job.outputs import (
    atomic_write,
    commit_once,
    drop_marker,
    log_run,
    measure,
    previous_progress,
    previous_starts,
)
from slurm._job.signals import Guard, Interrupted, requeue_request, requeue_self
from slurm._types import TYPE_CHECKING
from slurm._wire.env import (
    CODE_DIR_VARIABLE,
    CONTAINER_VARIABLE,
    DONE_DIR_VARIABLE,
    WARN_AT_VARIABLE,
)
from slurm._wire.layout import JobPaths
from slurm._wire.payload import Envelope, envelope_for_exception, loads_payload

if TYPE_CHECKING:  # paths are str here: pathlib would cost every job's start
    from pathlib import Path

    from slurm._job.call import WorkflowHost

__all__ = ["element", "run_call", "write_result"]


def element(env: dict[str, str], array: bool) -> tuple[int | None, str | None]:
    """Which array element this is (``None`` outside an array) and its id, ``ARRAY_INDEX``."""
    job_id = env.get("SLURM_JOB_ID")
    if not array:
        return None, job_id
    index = int(env.get("SLURM_ARRAY_TASK_ID") or 0)
    if env.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{index}"
    return index, job_id


def run_call(
    job_dir: str | Path,
    paths: JobPaths,
    env: dict[str, str],
    job_id: str | None,
    guard: Guard,
    host: WorkflowHost | None,
    *,
    started: float,
    rank: int | None = None,
    marker: str | None = None,
    cpu_before: float | None = None,
    packed: bool = False,
    exclusive: bool = False,
) -> int | None:
    """Run the call whose files ``paths`` names and write its result; the exit code,
    or ``None`` when Slurm's warning interrupted it and the job was requeued.

    ``rank``: one rank of a multi-rank job (it writes ``ranks/RANK.pkl``);
    ``marker``: the done marker's name (the job id unless told); ``cpu_before``:
    the CPU seconds this process had used before the call (the calls of a packed
    element or of a pool's worker share one process, each measured on its own);
    ``exclusive``: the outcome is created exclusively (a call a pool's worker runs,
    which two workers may have taken: it completes once). ``packed``: a call of a
    packed element, which requeues at the time-limit warning even without a
    checkpoint (the calls done keep their results; this one runs again).
    """
    restart = int(env.get("SLURM_RESTART_COUNT") or 0)
    result_path = paths.result if rank is None else paths.rank_result(rank)
    runs_path = _beside(result_path, ".runs")
    # Earlier starts count too: a job the client had to resubmit (the cluster could
    # not requeue it) gets a new id and a fresh SLURM_RESTART_COUNT.
    restart = max(restart, previous_starts(runs_path))
    env["SLURM_RESTART_COUNT"] = str(restart)
    guard.record = lambda event, made: log_run(runs_path, event, restart, progress=made)
    # Requeued after it had finished: never run twice.
    if rank is None and os.path.exists(result_path):
        log_run(runs_path, "already-finished", restart)
        return 0
    log_run(runs_path, "start", restart)
    envelope: Envelope
    done_dir = env.get(DONE_DIR_VARIABLE)
    try:
        with open(paths.payload, "rb") as handle:
            raw = handle.read()
        with open(paths.sys_path) as handle:
            sys_path = handle.read().splitlines()
        extend_sys_path(sys_path)
        put_code_first(env.get(CODE_DIR_VARIABLE))
        payload = loads_payload(raw, resolve)
        max_requeues = payload.policy.max_requeues
        # A task that is retried with more time (Retry on TIMEOUT) is not requeued
        # with the same limit: it runs on until Slurm stops it, and the client retries.
        at_time_limit = payload.policy.requeue_on_time_limit
        guard.configure(
            can_requeue=restart < max_requeues and at_time_limit is not False,
            needs_checkpoint=at_time_limit is None and not packed,
            grace=payload.policy.requeue_grace,
            job_id=env.get("SLURM_JOB_ID", ""),
            previous_progress=previous_progress(runs_path),
            # Slurm warns the batch step, never a rank: ranks keep no time of their own.
            warn_at=_number(env.get(WARN_AT_VARIABLE)) if rank is None else None,
        )
        if restart > max_requeues:
            raise RuntimeError(
                f"job {job_id} was requeued {restart} times, more than max_requeues="
                f"{max_requeues}; raise max_requeues or give the task more time"
            )
        hooks = _runner_hooks(job_dir)
        envelope = call(payload, job_dir, job_id, env, host, guard, hooks, paths)
    except Interrupted:
        if rank is None and CONTAINER_VARIABLE in env:  # in a container: no scontrol here
            request = requeue_request(job_dir, env.get("SLURM_JOB_ID", ""))
            atomic_write(request, b"")  # the batch step outside requeues
            log_run(runs_path, "requeued-time-limit", restart, progress=guard.progress)
            return None
        if rank is None and requeue_self(env.get("SLURM_JOB_ID", "")):
            log_run(runs_path, "requeued-time-limit", restart, progress=guard.progress)
            return None
        log_run(runs_path, "requeue-failed", restart, progress=guard.progress)
        return 1
    except BaseException as exc:
        envelope = envelope_for_exception(exc, job_id=job_id)
    if not write_result(
        paths, envelope, env, started, rank=rank, cpu_before=cpu_before, exclusive=exclusive
    ):
        log_run(runs_path, "already-finished", restart)
        return 0
    log_run(runs_path, "finished" if envelope.ok else "failed", restart)
    if rank is None:
        drop_marker(done_dir, marker or job_id)
    return 0 if envelope.ok else 1


def _beside(result_path: str, suffix: str) -> str:
    """The file beside a result: ``X.pkl`` -> ``X`` + ``suffix``."""
    return os.path.splitext(result_path)[0] + suffix


def _number(text: str | None) -> float | None:
    """A number the batch script set, or None when it did not (or not as a number)."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


def write_result(
    paths: JobPaths,
    envelope: Envelope,
    env: dict[str, str],
    started: float,
    *,
    rank: int | None = None,
    cpu_before: float | None = None,
    exclusive: bool = False,
) -> bool:
    """The call's usage figures, its outcome (JSON), then its result: the last one's
    appearance means the call is over. False when ``exclusive`` and another run of the
    call wrote its outcome first (nothing is written then)."""
    result_path = paths.result if rank is None else paths.rank_result(rank)
    # A rank keeps its figures and outcome beside its result: the job's own are
    # written by run_ranks once every rank is done.
    usage_path = paths.usage if rank is None else _beside(result_path, ".usage")
    outcome_path = paths.outcome if rank is None else _beside(result_path, ".json")
    try:  # noqa: SIM105 (contextlib would cost every job's start)
        atomic_write(usage_path, measure(paths, env, started, cpu_before))
    except OSError:  # the figures must never cost the result
        pass
    # The outcome first: whoever sees the result file (the job is over) finds it.
    outcome = envelope.outcome().to_json().encode("utf-8")
    if exclusive:
        return commit_once(outcome_path, outcome, result_path, envelope.to_bytes())
    atomic_write(outcome_path, outcome)
    atomic_write(result_path, envelope.to_bytes())
    return True


def _stderr(message: str) -> None:
    print(f"slurm-sdk: {message}", file=sys.stderr, flush=True)


def _runner_hooks(job_dir: str | Path) -> RunnerHooks:
    """The callbacks that travelled with the job (``callbacks.pkl``), if any."""
    path = JobPaths(os.fspath(job_dir)).callbacks
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return RunnerHooks()
    except OSError as exc:
        _stderr(f"the callbacks file {path} cannot be read ({exc}); no hook runs here")
        return RunnerHooks()
    from slurm._wire.callbacks import loads_callbacks  # only a job with callbacks

    return RunnerHooks(loads_callbacks(data, _stderr), _stderr)
