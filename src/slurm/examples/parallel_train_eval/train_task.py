from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from slurm.decorators import task
from slurm.logging import configure_logging

from slurm.examples.parallel_train_eval.state import write_json


@task(time="00:05:00", mem="256M", cpus_per_task=1)
def train_epoch_segment(
    epoch: int,
    start_step: int,
    steps_to_run: int,
    epoch_steps: int,
    workdir: str,
    job_index: int,
) -> Dict[str, Any]:
    configure_logging()
    logger = logging.getLogger(__name__)

    remaining_steps = max(epoch_steps - start_step, 0)
    steps_this_job = min(steps_to_run, remaining_steps)
    end_step = start_step + steps_this_job

    checkpoint_path = (
        Path(workdir).expanduser()
        / "checkpoints"
        / f"epoch_{epoch:03d}.json"
    )
    write_json(
        checkpoint_path,
        {
            "epoch": epoch,
            "job_index": job_index,
            "start_step": start_step,
            "steps_this_job": steps_this_job,
            "steps_completed": end_step,
            "epoch_steps": epoch_steps,
        },
    )

    logger.info("Epoch %s job %s -> steps %s", epoch, job_index, end_step)
    return {"steps_completed": end_step, "checkpoint_path": str(checkpoint_path)}
