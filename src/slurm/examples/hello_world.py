"""Hello world: one task, one job, its result back.

python -m slurm.examples.hello_world --backend local --partition debug
"""

from __future__ import annotations

import argparse
import socket
import sys

from slurm.cluster import Cluster
from slurm.decorators import task


@task(time="00:01:00", mem="128M")
def hello(name: str) -> str:
    """Greet from the compute node."""
    return f"Hello, {name}, from {socket.gethostname()}!"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.examples.hello_world")
    Cluster.add_argparse_args(parser)
    parser.add_argument("--name", default="world")
    args = parser.parse_args(argv)
    with Cluster.from_args(args):
        job = hello(args.name)
        print(f"Submitted job {job.id}")
        print(job.get_result())
    return 0


if __name__ == "__main__":
    sys.exit(main())
