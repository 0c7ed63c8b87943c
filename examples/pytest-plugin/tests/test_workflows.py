"""Your workflows, tested on a real Slurm: each test runs once locally and once over SSH."""

from __future__ import annotations

import pytest

from slurm import Cluster, task


@task(time="00:02:00", mem="100M")
def word_count(text: str) -> int:
    return len(text.split())


@task(time="00:02:00", mem="100M")
def total(counts: list[int]) -> int:
    return sum(counts)


def test_one_job(slurm_cluster: Cluster) -> None:
    job = word_count("the quick brown fox")
    assert job.get_result(timeout=240) == 4


def test_an_array_then_a_job_that_depends_on_it(slurm_cluster: Cluster) -> None:
    counts = word_count.map(["a b", "c d e", "f"])
    assert counts.get_results(timeout=240) == [2, 3, 1]
    assert total(counts.get_results()).get_result(timeout=240) == 6


@pytest.mark.parametrize("slurm_backend", ["ssh"], indirect=True)
def test_only_over_ssh(slurm_cluster: Cluster) -> None:
    assert slurm_cluster.backend_type == "ssh"
    assert word_count("over ssh").get_result(timeout=240) == 2
