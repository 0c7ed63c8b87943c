"""The job side's entry point: ``python -P -m slurm.runner JOB_DIR`` lands here.

``-P`` keeps the job's working directory off ``sys.path``: a stray module
there (a ``cloudpickle.py`` in ``$HOME``) is never imported.

Picks what this job is and hands it on: one call (:mod:`slurm._job.runcall`:
load, run, write the result envelope atomically), a packed element of several
calls (:mod:`slurm._job.pack`), the batch step of several ranks
(:mod:`slurm._job.ranks`), a call in a container (:mod:`slurm._job.container`).
Kept light: nothing heavy is imported before the user's code, and nothing of
the client at all.
"""

from __future__ import annotations

import os
import sys
import time

from slurm._job.outputs import cpu_seconds
from slurm._job.runcall import element, run_call
from slurm._job.signals import Guard
from slurm._types import TYPE_CHECKING
from slurm._wire.env import CONTAINER_VARIABLE
from slurm._wire.layout import JobPaths

if TYPE_CHECKING:
    from pathlib import Path

    from slurm._job.call import WorkflowHost

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
    env = dict(os.environ if env is None else env)
    guard = Guard()
    if env.get("SLURM_JOB_ID") and pooled is None:
        guard.install()
    index, job_id = element(env, array) if pooled is None else pooled
    paths = JobPaths(str(job_dir), index)
    code = run_call(
        os.fspath(job_dir),
        paths,
        env,
        job_id,
        guard,
        host,
        started=started,
        rank=rank,
        cpu_before=cpu_before,
        exclusive=pooled is not None,
    )
    return 0 if code is None else code


def run_ranks(
    job_dir: str | Path,
    env: dict[str, str] | None = None,
    launch: list[str] | None = None,
    *,
    array: bool = False,
) -> int:
    """:func:`slurm._job.ranks.run_ranks` (imported only for a job of several ranks)."""
    from slurm._job.ranks import run_ranks as run

    return run(job_dir, env, launch, array=array)


def _per_rank(container: str) -> bool:
    """Whether each rank starts its own container (Apptainer: ``srun`` runs this runner
    per rank, which runs ``apptainer exec`` with its rank's environment), rather than
    ``srun`` starting the ranks in it (pyxis)."""
    from slurm._slurm.container import ContainerSpec

    return ContainerSpec.from_json(container).runtime == "apptainer"


def main(argv: list[str] | None = None, *, host: WorkflowHost | None = None) -> int:
    """``python -m slurm.runner JOB_DIR [--array [--pack]] [--ranks | --rank]``; the exit code."""
    args = sys.argv[1:] if argv is None else argv
    mode = args[1:]
    # --array: an element of an array; --pack: one running several calls (slurm._job.pack);
    # --ranks: the batch step of several ranks; --rank: one rank.
    modes: list[list[str]] = [[], ["--ranks"], ["--rank"]]
    known = [*modes, *(["--array", *m] for m in modes), ["--array", "--pack"]]
    if len(args) < 1 or mode not in known:
        print(
            "usage: python -m slurm.runner JOB_DIR [--array [--pack]] [--ranks | --rank]",
            file=sys.stderr,
        )
        return 2
    array = "--array" in mode
    container = os.environ.get(CONTAINER_VARIABLE)
    if CONTAINER_VARIABLE in os.environ:  # set with it for this runner (-P), not the task's
        os.environ.pop("PYTHONSAFEPATH", None)
    # What only some jobs need is imported when they need it: the job's start stays light.
    if container and ("--rank" not in mode or _per_rank(container)):
        from slurm._job.container import hand_over_to_container

        return hand_over_to_container(args[0], mode, container)
    if "--pack" in mode:
        from slurm._job.pack import run_pack

        return run_pack(args[0], host=host)
    if "--ranks" in mode:
        return run_ranks(args[0], array=array)
    if "--rank" in mode:
        rank = int(os.environ.get("SLURM_PROCID") or 0)
        return run_job(args[0], array=array, rank=rank, host=host)
    return run_job(args[0], array=array, host=host)
