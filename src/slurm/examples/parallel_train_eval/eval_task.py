from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from slurm.decorators import task
from slurm.logging import configure_logging

from slurm.examples.parallel_train_eval.state import read_json, write_json


@task(time="00:03:00", mem="256M", cpus_per_task=1)
def evaluate_epoch(epoch: int, checkpoint_path: str, workdir: str) -> Dict[str, Any]:
    configure_logging()
    logger = logging.getLogger(__name__)

    checkpoint = read_json(Path(checkpoint_path))
    metrics_path = (
        Path(workdir).expanduser()
        / "metrics"
        / f"epoch_{epoch:03d}.json"
    )
    write_json(
        metrics_path,
        {
            "epoch": epoch,
            "checkpoint_path": checkpoint_path,
            "steps_completed": checkpoint.get("steps_completed"),
            "accuracy": round(0.75 + (epoch * 0.01), 4),
            "loss": round(1.0 / (1 + epoch + 1), 4),
        },
    )

    logger.info("Epoch %s eval -> %s", epoch, metrics_path)
    return {"metrics_path": str(metrics_path)}
