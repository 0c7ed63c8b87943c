# mypy: ignore-errors
# (written as a user of the earlier SDK writes, without type hints to satisfy --strict)
"""A script as a user of the earlier slurm-sdk (0.4.x) writes one, by the facts of
/work/shared/reference/original-slurm-sdk.md and the calls of issue 23: its import
paths, argparse options, callbacks, submit/with_dependencies, get_status()'s dict,
get_queue()/get_jobs()/get_cluster_info(), map() and a workflow with its context.
Run unchanged by tests/integration/test_earlier_calls.py; prints one JSON line.

python reference_style.py --backend local --partition debug --job-base-dir DIR
"""

import argparse
import json
import socket

from slurm.callbacks.callbacks import LoggerCallback
from slurm.cluster import Cluster
from slurm.decorators import task, workflow
from slurm.logging import configure_logging
from slurm.runtime import JobContext
from slurm.workflow import WorkflowContext


@task(time="00:02:00", mem="128M", cpus_per_task=1)
def square(x: int) -> int:
    return x * x


@task(time="00:02:00", memory="128M", name="where-am-i")
def where(ctx: JobContext) -> dict:
    return {"host": socket.gethostname(), "job": ctx.job_id, "world": ctx.world_size}


@workflow(time="00:05:00", mem="256M")
def total(n: int, ctx: WorkflowContext) -> dict:
    squares = square.map(list(range(n)))
    return {"sum": sum(squares.get_results()), "workflow_job_id": ctx.workflow_job_id}


def main() -> None:
    parser = argparse.ArgumentParser()
    Cluster.add_argparse_args(parser)
    args = parser.parse_args()
    configure_logging("INFO", use_rich=False)
    cluster = Cluster.from_args(args, callbacks=[LoggerCallback()])
    out = {}

    job = cluster.submit(square)(7)
    assert job.wait() is True
    status = job.get_status()
    out["status"] = {"JobState": status["JobState"], "ExitCode": status.get("ExitCode", "")}
    out["square"] = job.get_result()
    out["completed"] = job.is_completed() and job.is_successful()

    with cluster:
        here = where()
        out["where"] = here.get_result()
        array = square.map([1, 2, (3,), {"x": 4}])
        out["map"] = array.get_results()
        out["results_dir_exists"] = bool(str(array.get_results_dir()))

    flow = cluster.submit(total).with_dependencies([square])(4)
    queue = cluster.get_queue()  # the workflow is queued or running now
    out["queued"] = {row["JOBID"]: row["STATE"] for row in queue}
    out["queue_keys"] = sorted({key for row in queue for key in row})
    out["jobs"] = [j.id for j in cluster.get_jobs()]
    out["workflow"] = flow.get_result()
    out["flow"] = flow.id
    info = cluster.get_cluster_info()
    out["partitions"] = sorted({p["PARTITION"] for p in info["partitions"]})
    again = cluster.get_job(job.id)
    out["again"] = again.get_status()["JobState"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
