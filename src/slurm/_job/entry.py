"""The job side's entry point: ``python -P -m slurm.runner JOB_DIR`` lands here.

``-P`` keeps the job's working directory off ``sys.path``: a stray module
there (a ``cloudpickle.py`` in ``$HOME``) is never imported.

Loads the payload, turns job references into their results, runs the call
(:mod:`slurm._job.call`) and writes the result envelope atomically; the
batch step of several ranks is :mod:`slurm._job.ranks`, of a container
:mod:`slurm._job.container`; Slurm's warnings are :mod:`slurm._job.signals`.
Kept light: nothing heavy is imported before the user's code, and nothing of
the client at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from slurm._job.call import WorkflowHost, call, extend_sys_path, put_code_first, resolve
from slurm._job.container import hand_over_to_container
from slurm._job.hooks import RunnerHooks
from slurm._job.outputs import (
    atomic_write,
    commit_once,
    cpu_seconds,
    drop_marker,
    log_run,
    measure,
    previous_progress,
    previous_starts,
)
from slurm._job.ranks import element, run_ranks
from slurm._job.signals import Guard, Interrupted, requeue_request, requeue_self
from slurm._wire.callbacks import loads_callbacks
from slurm._wire.env import CODE_DIR_VARIABLE, CONTAINER_VARIABLE, DONE_DIR_VARIABLE
from slurm._wire.layout import JobPaths
from slurm._wire.payload import Envelope, envelope_for_exception, loads_payload

__all__ = ["main", "run_job", "run_ranks"]


def run_job(
    job_dir: str | Path,
    env: dict[str, str] | None = None,
    *,
    array: bool = False,
    rank: int | None = None,
    host: WorkflowHost | None = None,
    pooled: tuple[int | None, str] | None = None,
) -> int:
    """Run the call stored in ``job_dir``; return the process exit code.

    ``array``: the job is an element of a Slurm array (``SLURM_ARRAY_TASK_ID``
    says which) and writes its own result file. ``rank``: one rank of a
    multi-rank job, started by :func:`run_ranks` through ``srun``; it writes
    ``ranks/RANK.pkl`` and leaves the job's result to :func:`run_ranks`.
    ``host`` makes a workflow's cluster (see :class:`~slurm._job.call.WorkflowHost`).
    ``pooled``: (array index, call id) of a call a pool's worker runs
    (:mod:`slurm._job.worker`): Slurm's signals are the worker's, and the outcome
    is created exclusively, so that a call taken by two workers completes once.
    """
    started = time.time()
    cpu_before = cpu_seconds() if pooled is not None else None
    job_dir = Path(job_dir)
    env = dict(os.environ if env is None else env)
    guard = Guard()
    if env.get("SLURM_JOB_ID") and pooled is None:
        guard.install()
    index, job_id = element(env, array) if pooled is None else pooled
    restart = int(env.get("SLURM_RESTART_COUNT") or 0)
    paths = JobPaths(str(job_dir), index)
    result_path = Path(paths.result if rank is None else paths.rank_result(rank))
    runs_path = result_path.with_suffix(".runs")
    # Earlier starts count too: a job the client had to resubmit (the cluster could
    # not requeue it) gets a new id and a fresh SLURM_RESTART_COUNT.
    restart = max(restart, previous_starts(runs_path))
    env["SLURM_RESTART_COUNT"] = str(restart)
    guard.record = lambda event, made: log_run(runs_path, event, restart, progress=made)
    if result_path.exists() and rank is None:  # requeued after it had finished: never run twice
        log_run(runs_path, "already-finished", restart)
        return 0
    log_run(runs_path, "start", restart)
    envelope: Envelope
    done_dir = env.get(DONE_DIR_VARIABLE)
    try:
        raw = Path(paths.payload).read_bytes()
        sys_path = Path(paths.sys_path).read_text().splitlines()
        extend_sys_path(sys_path)
        put_code_first(env.get(CODE_DIR_VARIABLE))
        payload = loads_payload(raw, resolve)
        max_requeues = payload.policy.max_requeues
        # A task that is retried with more time (Retry on TIMEOUT) is not requeued
        # with the same limit: it runs on until Slurm stops it, and the client retries.
        at_time_limit = payload.policy.requeue_on_time_limit
        guard.configure(
            can_requeue=restart < max_requeues and at_time_limit is not False,
            needs_checkpoint=at_time_limit is None,
            grace=payload.policy.requeue_grace,
            job_id=env.get("SLURM_JOB_ID", ""),
            previous_progress=previous_progress(runs_path),
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
            return 0
        if rank is None and requeue_self(env.get("SLURM_JOB_ID", "")):
            log_run(runs_path, "requeued-time-limit", restart, progress=guard.progress)
            return 0
        log_run(runs_path, "requeue-failed", restart, progress=guard.progress)
        return 1
    except BaseException as exc:
        envelope = envelope_for_exception(exc, job_id=job_id)
    # A rank keeps its figures and outcome beside its result: the job's own are
    # written by run_ranks once every rank is done.
    usage_path = Path(paths.usage) if rank is None else result_path.with_suffix(".usage")
    outcome_path = Path(paths.outcome) if rank is None else result_path.with_suffix(".json")
    with contextlib.suppress(OSError):  # the figures must never cost the result
        atomic_write(usage_path, measure(paths, env, started, cpu_before))
    # The outcome first: whoever sees the result file (the job is over) finds it.
    outcome = envelope.outcome().to_json().encode("utf-8")
    if pooled is None:
        atomic_write(outcome_path, outcome)
        atomic_write(result_path, envelope.to_bytes())
    elif not commit_once(outcome_path, outcome, result_path, envelope.to_bytes()):
        log_run(runs_path, "already-finished", restart)
        return 0
    log_run(runs_path, "finished" if envelope.ok else "failed", restart)
    if rank is None:
        drop_marker(done_dir, job_id)
    return 0 if envelope.ok else 1


def _stderr(message: str) -> None:
    print(f"slurm-sdk: {message}", file=sys.stderr, flush=True)


def _runner_hooks(job_dir: Path) -> RunnerHooks:
    """The callbacks that travelled with the job (``callbacks.pkl``), if any."""
    path = Path(JobPaths(str(job_dir)).callbacks)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return RunnerHooks()
    except OSError as exc:
        _stderr(f"the callbacks file {path} cannot be read ({exc}); no hook runs here")
        return RunnerHooks()
    return RunnerHooks(loads_callbacks(data, _stderr), _stderr)


def main(argv: list[str] | None = None, *, host: WorkflowHost | None = None) -> int:
    """``python -m slurm.runner JOB_DIR [--array] [--ranks | --rank]``; the exit code."""
    args = sys.argv[1:] if argv is None else argv
    mode = args[1:]
    # --array: an element of an array; --ranks: the batch step of several ranks; --rank: one rank.
    modes: list[list[str]] = [[], ["--ranks"], ["--rank"]]
    if len(args) < 1 or mode not in [*modes, *(["--array", *m] for m in modes)]:
        print("usage: python -m slurm.runner JOB_DIR [--array] [--ranks | --rank]", file=sys.stderr)
        return 2
    array = "--array" in mode
    container = os.environ.get(CONTAINER_VARIABLE)
    if CONTAINER_VARIABLE in os.environ:  # set with it for this runner (-P), not the task's
        os.environ.pop("PYTHONSAFEPATH", None)
    if container and "--rank" not in mode:
        return hand_over_to_container(args[0], mode, container)
    if "--ranks" in mode:
        return run_ranks(args[0], array=array)
    if "--rank" in mode:
        rank = int(os.environ.get("SLURM_PROCID") or 0)
        return run_job(args[0], array=array, rank=rank, host=host)
    return run_job(args[0], array=array, host=host)
