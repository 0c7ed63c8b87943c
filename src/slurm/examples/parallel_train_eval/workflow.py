"""The tutorial's workflow: capped, resumable training segments per epoch, with
evaluation submitted after each epoch and never waited for before the next.

Run it (see the tutorial, section 5)::

    python -m slurm.examples.parallel_train_eval.workflow \\
        --hostname your-slurm-host --username $USER --partition debug \\
        --epochs 3 --epoch-steps 10 --steps-per-job-cap 4

``--backend local`` runs it from a machine that has ``sbatch`` itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional

from slurm.cluster import Cluster
from slurm.decorators import workflow
from slurm.examples.parallel_train_eval.eval_task import evaluate_epoch
from slurm.examples.parallel_train_eval.state import write_json
from slurm.examples.parallel_train_eval.train_task import train_epoch_segment
from slurm.logging import configure_logging
from slurm.workflow import WorkflowContext


@workflow(time="00:20:00", mem="512M", cpus_per_task=1)
def parallel_train_eval_workflow(
    epochs: int,
    epoch_steps: int,
    steps_per_job_cap: int,
    partition_train: Optional[str],
    partition_eval: Optional[str],
    ctx: WorkflowContext,
) -> str:
    workdir_path = Path(ctx.shared_dir)
    (workdir_path / "checkpoints").mkdir(parents=True, exist_ok=True)
    (workdir_path / "metrics").mkdir(parents=True, exist_ok=True)

    eval_jobs: List[tuple[int, Any]] = []

    for epoch in range(epochs):
        steps_completed = 0
        job_index = 0
        last_train_job = None
        checkpoint_path = None

        while steps_completed < epoch_steps:
            job_index += 1
            steps_this_job = min(steps_per_job_cap, epoch_steps - steps_completed)

            train_task = train_epoch_segment
            if partition_train:
                train_task = train_task.with_options(partition=partition_train)

            train_job = train_task(
                epoch=epoch,
                start_step=steps_completed,
                steps_to_run=steps_this_job,
                epoch_steps=epoch_steps,
                workdir=str(workdir_path),
                job_index=job_index,
            )
            last_train_job = train_job

            result = train_job.get_result()
            steps_completed = int(result["steps_completed"])
            checkpoint_path = str(result["checkpoint_path"])

        eval_task = evaluate_epoch
        if partition_eval:
            eval_task = eval_task.with_options(partition=partition_eval)

        eval_job = eval_task.after(last_train_job)(
            epoch=epoch,
            checkpoint_path=checkpoint_path,
            workdir=str(workdir_path),
        )
        eval_jobs.append((epoch, eval_job))

    for epoch, eval_job in eval_jobs:
        eval_job.wait()

    # Beyond the tutorial's core loop: record the run so it can be inspected later.
    write_json(
        workdir_path / "state.json",
        {
            "workflow_job_id": ctx.workflow_job_id,
            "epochs": epochs,
            "epoch_steps": epoch_steps,
            "steps_per_job_cap": steps_per_job_cap,
            "checkpoints": sorted(str(p) for p in (workdir_path / "checkpoints").glob("*.json")),
            "metrics": sorted(str(p) for p in (workdir_path / "metrics").glob("*.json")),
            "eval_jobs": {str(epoch): job.id for epoch, job in eval_jobs},
            "eval_succeeded": {str(epoch): job.is_successful() for epoch, job in eval_jobs},
        },
    )
    return str(workdir_path / "state.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m slurm.examples.parallel_train_eval.workflow",
        description="Parallel train + eval workflow: resumable training segments, "
        "evaluation beside them.",
    )
    Cluster.add_argparse_args(parser)
    parser.add_argument("--partition-workflow", help="partition of the workflow job itself")
    parser.add_argument("--partition-train", help="partition of the training jobs")
    parser.add_argument("--partition-eval", help="partition of the evaluation jobs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-steps", type=int, default=10)
    parser.add_argument("--steps-per-job-cap", type=int, default=4)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("epochs", "epoch_steps", "steps_per_job_cap"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    configure_logging()
    flow = parallel_train_eval_workflow
    if args.partition_workflow:
        flow = flow.with_options(partition=args.partition_workflow)
    with Cluster.from_args(args):
        job = flow(
            epochs=args.epochs,
            epoch_steps=args.epoch_steps,
            steps_per_job_cap=args.steps_per_job_cap,
            partition_train=args.partition_train,
            partition_eval=args.partition_eval,
        )
        print(f"Submitted workflow job {job.id} (directory {job.job_dir})", flush=True)
        state_path = job.get_result()
    print(f"Workflow finished. State written to: {state_path}")
    print(f"Artifacts: {Path(state_path).parent}/checkpoints and {Path(state_path).parent}/metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
