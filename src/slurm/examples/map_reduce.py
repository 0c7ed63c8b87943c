"""Map-reduce: one Slurm array for the map, an aggregate that depends on it.

The ArrayJob is passed straight to the reduce task: Slurm starts the reduce
only after every element succeeded (afterok), and on the compute node the
argument becomes the list of the elements' results, in item order.

    python -m slurm.examples.map_reduce --backend local --partition debug --n 10
"""

from __future__ import annotations

import argparse
import sys

from slurm.cluster import Cluster
from slurm.decorators import task


@task(time="00:01:00", mem="128M")
def square(x: int) -> int:
    return x * x


@task(time="00:01:00", mem="128M")
def total(values: list[int]) -> int:
    return sum(values)


def run(cluster: Cluster, n: int) -> int:
    with cluster:
        squares = square.map(range(n))
        result: int = total(squares).get_result()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.examples.map_reduce")
    Cluster.add_argparse_args(parser)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args(argv)
    value = run(Cluster.from_args(args), args.n)
    print(f"sum of squares of 0..{args.n - 1} = {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
