"""torch.distributed across ranks: one task of several ranks, one process group.

``nodes`` and ``ntasks_per_node`` make the task a job of several ranks started
by ``srun``; each rank runs the function with its own ``JobContext``, whose
``torch_distributed_env()`` gives the variables ``init_method="env://"`` reads
(``MASTER_ADDR``/``MASTER_PORT`` agreed for the job, ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``). ``get_results()`` returns every rank's value, in rank order.
torch is imported on the nodes only (the CPU wheel and the gloo backend do;
use ``"nccl"`` and ``gpus_per_node`` on GPUs).

    python -m slurm.examples.torch_distributed --backend local --partition debug \\
        --nodes 2 --ntasks-per-node 2
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from slurm import Cluster, JobContext, task


@task(time="00:05:00", mem="1G")
def all_reduce(ctx: JobContext) -> dict[str, Any]:
    """Every rank contributes ``rank + 1``; each ends with the sum over all ranks."""
    import torch
    import torch.distributed as dist

    os.environ.update(ctx.torch_distributed_env())
    dist.init_process_group("gloo", init_method="env://")
    try:
        tensor = torch.tensor([float(ctx.rank + 1)])
        dist.all_reduce(tensor)
        return {"rank": dist.get_rank(), "sum": float(tensor.item()), "host": socket.gethostname()}
    finally:
        dist.destroy_process_group()


def run(cluster: Cluster, nodes: int, ntasks_per_node: int) -> list[dict[str, Any]]:
    with cluster:
        job = all_reduce.with_options(nodes=nodes, ntasks_per_node=ntasks_per_node)()
        results: list[dict[str, Any]] = job.get_results()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.examples.torch_distributed")
    Cluster.add_argparse_args(parser)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--ntasks-per-node", type=int, default=2)
    args = parser.parse_args(argv)
    for rank in run(Cluster.from_args(args), args.nodes, args.ntasks_per_node):
        print(f"rank {rank['rank']} on {rank['host']}: sum = {rank['sum']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
