"""The job-side entry point: ``python -m slurm.runner JOB_DIR``.

Loads the payload, turns job references into their results, injects the
job/workflow contexts, calls the function and writes the result envelope
atomically. Kept light: nothing heavy is imported before the user's code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from slurm.payload import (
    Envelope,
    JobRef,
    envelope_for_exception,
    envelope_for_value,
    loads_payload,
)
from slurm.runtime import JobContext, _set_current

__all__ = ["main", "run_job"]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _resolve(ref: JobRef) -> Any:
    path = Path(ref.result_path)
    if path.is_dir():  # an ArrayJob: every element's result, in item order
        files = sorted(path.glob("*.pkl"), key=lambda p: int(p.stem))
        return [Envelope.from_bytes(f.read_bytes(), job_id=ref.job_id).unwrap() for f in files]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"The result of job {ref.job_id}, passed as an argument, is missing at {path}: "
            "that job has not finished successfully."
        ) from None
    return Envelope.from_bytes(data, job_id=ref.job_id).unwrap()


def _extend_sys_path(entries: list[str]) -> None:
    for entry in entries:
        if entry not in sys.path and os.path.isdir(entry):
            sys.path.append(entry)


def run_job(job_dir: str | Path, env: dict[str, str] | None = None) -> int:
    """Run the call stored in ``job_dir``; return the process exit code."""
    job_dir = Path(job_dir)
    env = dict(os.environ if env is None else env)
    job_id = env.get("SLURM_JOB_ID")
    index_text = env.get("SLURM_ARRAY_TASK_ID")
    result_path = job_dir / "result.pkl"
    envelope: Envelope
    try:
        raw = (job_dir / "payload.pkl").read_bytes()
        sys_path = (job_dir / "sys_path.txt").read_text().splitlines()
        _extend_sys_path(sys_path)
        payload = loads_payload(raw, _resolve)
        args: tuple[Any, ...] = tuple(payload["args"])
        kwargs: dict[str, Any] = dict(payload["kwargs"])
        if payload.get("items") is not None:
            index = int(index_text or 0)
            result_path = job_dir / "results" / f"{index}.pkl"
            args, kwargs = payload["items"][index]
            if env.get("SLURM_ARRAY_JOB_ID"):
                job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{index}"
        envelope = _call(payload, args, kwargs, job_dir, job_id, env)
    except BaseException as exc:
        envelope = envelope_for_exception(exc, job_id=job_id)
    _atomic_write(result_path, envelope.to_bytes())
    return 0 if envelope.ok else 1


def _call(
    payload: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    job_dir: Path,
    job_id: str | None,
    env: dict[str, str],
) -> Envelope:
    from slurm.task import injected_parameters

    task = payload["task"]
    fn = task.unwrapped
    job_context = JobContext.from_environment(env, output_dir=str(job_dir))
    _set_current(job_context)
    injected = injected_parameters(fn, workflow=task.is_workflow)
    workflow_cluster = None
    try:
        for name, kind in injected.items():
            if name in kwargs:
                continue
            if kind == "job":
                kwargs[name] = job_context
            else:
                workflow_cluster, workflow_context = _workflow_context(payload, job_dir, job_id)
                kwargs[name] = workflow_context
        if task.is_workflow and workflow_cluster is None:
            workflow_cluster, _ = _workflow_context(payload, job_dir, job_id)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            return envelope_for_exception(exc, job_id=job_id)
        return envelope_for_value(value, job_id=job_id)
    finally:
        if workflow_cluster is not None:
            workflow_cluster.close()


def _workflow_context(payload: dict[str, Any], job_dir: Path, job_id: str | None) -> Any:
    from slurm import context
    from slurm.cluster import Cluster
    from slurm.workflow import WorkflowContext

    spec = dict(payload.get("cluster_spec") or {})
    cluster = Cluster._for_workflow(spec, job_dir=str(job_dir))
    context.set_process_default(cluster)
    shared = job_dir / "shared"
    shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    ctx = WorkflowContext(
        cluster=cluster,
        workflow_job_id=job_id or "",
        workflow_job_dir=job_dir,
        shared_dir=shared,
    )
    return cluster, ctx


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m slurm.runner JOB_DIR", file=sys.stderr)
        return 2
    return run_job(args[0])


if __name__ == "__main__":
    sys.exit(main())
