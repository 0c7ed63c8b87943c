"""A task in a container: the batch step hands the call to a runner inside the image."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

from slurm._job.ranks import run_ranks
from slurm._job.signals import requeue_request, requeue_self
from slurm._slurm.container import ContainerSpec, code_paths, launch_prefix
from slurm._wire.env import CODE_DIR_VARIABLE
from slurm._wire.layout import JobPaths

__all__ = ["hand_over_to_container"]


def hand_over_to_container(job_dir: str, mode: list[str], spec_json: str) -> int:
    """The batch step of a task in a container: run the runner in the image, through pyxis
    (``srun``) or Apptainer (``apptainer exec``, a child of the batch step; for several
    ranks, a child of each rank's runner, which ``srun`` starts on the node)."""
    spec = ContainerSpec.from_json(spec_json)
    try:
        extra = Path(JobPaths(job_dir).sys_path).read_text().splitlines()
    except OSError:
        extra = []
    if os.environ.get(CODE_DIR_VARIABLE):  # shipped source, possibly outside the job base dir
        extra.append(os.environ[CODE_DIR_VARIABLE])
    if "--ranks" in mode and spec.runtime == "apptainer":
        # One container per rank: srun starts this runner (the cluster's Python) per rank,
        # and each, seeing --rank, runs `apptainer exec` with its own rank's variables.
        return run_ranks(job_dir, array="--array" in mode)
    launch, env = launch_prefix(spec, code_paths(extra), job_dir, os.environ)
    if "--ranks" in mode:  # pyxis: srun starts every rank in the image
        return run_ranks(job_dir, env=env, launch=launch[1:], array="--array" in mode)
    import subprocess

    # argv list, never a shell; srun or apptainer from the job's PATH, as in every batch step
    step = subprocess.Popen([*launch, "-m", "slurm.runner", job_dir, *mode], env=env)  # noqa: S603

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        step.send_signal(signum)  # srun or apptainer passes it on to the runner inside

    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, forward)
    code = step.wait()
    if "--rank" in mode:  # one rank of several: the batch step (run_ranks) ends the job
        return code
    request = requeue_request(job_dir, os.environ.get("SLURM_JOB_ID", ""))
    if os.path.exists(request):  # the time limit came: the runner inside checkpointed and asks
        os.unlink(request)
        return 0 if requeue_self(os.environ.get("SLURM_JOB_ID", "")) else 1
    return code
