"""A task in a container: the batch step hands the call to a runner inside the image."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

from slurm._job.ranks import run_ranks
from slurm._job.signals import requeue_request, requeue_self
from slurm._slurm.container import ContainerSpec, code_paths, srun_prefix
from slurm._wire.env import CODE_DIR_VARIABLE
from slurm._wire.layout import JobPaths

__all__ = ["hand_over_to_container"]


def hand_over_to_container(job_dir: str, mode: list[str], spec_json: str) -> int:
    """The batch step of a task in a container: run the runner in the image through pyxis."""
    spec = ContainerSpec.from_json(spec_json)
    try:
        extra = Path(JobPaths(job_dir).sys_path).read_text().splitlines()
    except OSError:
        extra = []
    if os.environ.get(CODE_DIR_VARIABLE):  # shipped source, possibly outside the job base dir
        extra.append(os.environ[CODE_DIR_VARIABLE])
    launch, env_add = srun_prefix(spec, code_paths(extra), job_dir)
    env = {**os.environ, **env_add}
    if "--ranks" in mode:
        return run_ranks(job_dir, env=env, launch=launch, array="--array" in mode)
    import subprocess

    # argv list, never a shell; srun from the job's PATH, as in every batch step
    step = subprocess.Popen(  # noqa: S603
        ["srun", *launch, "-m", "slurm.runner", job_dir, *mode],  # noqa: S607
        env=env,
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        step.send_signal(signum)  # srun passes it on to the runner in the container

    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, forward)
    code = step.wait()
    request = requeue_request(job_dir, os.environ.get("SLURM_JOB_ID", ""))
    if request.exists():  # the time limit came: the runner inside checkpointed and asks
        request.unlink()
        return 0 if requeue_self(os.environ.get("SLURM_JOB_ID", "")) else 1
    return code
