"""Parallelization patterns: fan-out and fan-in, a pipeline, a sweep taken as it
finishes, and many small calls packed into a few jobs.

Every pattern is plain task calls; what makes them parallel is what each call
is given:

- **fan-out, fan-in**: ``load.map(shards)`` is one Slurm array; the ArrayJob
  given to ``summarize`` makes it wait for every element (``afterok``) and
  arrive on the node as the list of their results, in order.
- **a pipeline**: ``clean(parts[i])`` is given one element of that array, so
  each cleaning job starts as soon as its own shard is loaded, not when the
  slowest one is; a list of those jobs is again one argument.
- **a sweep**: independent calls, taken with ``as_completed`` in the order they
  finish.
- **many small calls**: ``map(..., pack=K)`` runs K calls in each array element
  (one Python start for K calls), and every call keeps its own result.

    python -m slurm.examples.parallel_patterns --backend local --partition debug
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from slurm import Cluster, as_completed, task


@task(time="00:01:00", mem="128M")
def load(shard: int) -> list[int]:
    """A shard of the data: ten numbers."""
    return list(range(shard * 10, shard * 10 + 10))


@task(time="00:01:00", mem="128M")
def clean(values: list[int]) -> list[int]:
    """Drop the multiples of three."""
    return [v for v in values if v % 3]


@task(time="00:01:00", mem="128M")
def summarize(parts: list[list[int]]) -> int:
    return sum(sum(part) for part in parts)


@task(time="00:01:00", mem="128M")
def score(rate: float) -> float:
    """A stand-in for a training run: best at a learning rate of 0.1."""
    return -((rate - 0.1) ** 2)


@task(time="00:01:00", mem="128M")
def square(x: int) -> int:
    return x * x


def run(cluster: Cluster, shards: int = 4) -> dict[str, Any]:
    with cluster:
        parts = load.map(range(shards))  # fan-out: one array
        loaded = summarize(parts)  # fan-in: after every element
        cleaned = [clean(parts[i]) for i in range(shards)]  # a pipeline, element by element
        kept = summarize(cleaned)
        rates = [0.01, 0.03, 0.1, 0.3]
        sweep = {score(rate): rate for rate in rates}
        finished = [sweep[job] for job in as_completed(list(sweep))]  # as they finish
        best = max(sweep, key=lambda job: job.get_result())
        packed = square.map(range(20), pack=5)  # 20 calls in 4 array elements
        return {
            "loaded": loaded.get_result(),
            "kept": kept.get_result(),
            "best_rate": sweep[best],
            "finished": finished,
            "squares": packed.get_results(),
            "elements": len({call.id for call in packed}),  # a call's id is its element's
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.examples.parallel_patterns")
    Cluster.add_argparse_args(parser)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)
    found = run(Cluster.from_args(args), args.shards)
    print(f"fan-out, fan-in: sum of the loaded shards = {found['loaded']}")
    print(f"pipeline: sum after cleaning = {found['kept']}")
    print(f"sweep: best rate = {found['best_rate']} (finished in the order {found['finished']})")
    squares = found["squares"]
    print(f"packed: {len(squares)} squares in {found['elements']} jobs, sum = {sum(squares)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
