"""Tasks of several ranks (nodes/ntasks > 1): srun starts one runner per rank."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from nodepython import node_python

from slurm import Cluster
from slurm.devcluster import Status


def four_ranks(devcluster: Status) -> dict[str, int]:
    """2 nodes x 2 tasks; 1 node x 4 tasks on the one-node layout."""
    if len(devcluster.nodes) > 1:
        return {"nodes": 2, "ntasks_per_node": 2}
    return {"nodes": 1, "ntasks_per_node": 4}


def test_every_rank_runs_and_get_results_lists_them_in_rank_order(
    cluster: Cluster, devcluster: Status
) -> None:
    job = jobfuncs.rank_facts.with_options(**four_ranks(devcluster))()
    results = job.get_results(timeout=180)
    assert [r["rank"] for r in results] == [0, 1, 2, 3]
    assert job.get_result() == results[0]
    assert {r["world_size"] for r in results} == {4}
    if len(devcluster.nodes) > 1:
        assert sorted(r["local_rank"] for r in results) == [0, 0, 1, 1]
        assert sorted(r["node_rank"] for r in results) == [0, 0, 1, 1]
        assert {r["host"] for r in results} == {"node1", "node2"}
    else:
        assert sorted(r["local_rank"] for r in results) == [0, 1, 2, 3]
    # Every rank agrees on where to meet.
    meeting = {(r["torch"]["MASTER_ADDR"], r["torch"]["MASTER_PORT"]) for r in results}
    assert len(meeting) == 1
    assert [r["torch"]["RANK"] for r in results] == ["0", "1", "2", "3"]
    assert "--ranks" in Path(job.script_path).read_text()


def test_a_failed_rank_fails_the_job_naming_the_rank_and_host(
    cluster: Cluster, devcluster: Status
) -> None:
    job = jobfuncs.rank_facts.with_options(**four_ranks(devcluster))(fail_rank=2)
    with pytest.raises(jobfuncs.CustomError, match="rank 2 gives up") as info:
        job.get_result(timeout=180)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    host = "node" if len(devcluster.nodes) > 1 else devcluster.nodes[0].name
    assert "(rank 2 of 4)" in notes and f"on {host}" in notes


def two_ranks(devcluster: Status) -> dict[str, int]:
    """2 nodes x 1 task; 1 node x 2 tasks on the one-node layout."""
    if len(devcluster.nodes) > 1:
        return {"nodes": 2, "ntasks_per_node": 1}
    return {"nodes": 1, "ntasks_per_node": 2}


def _check_element(results: list[dict[str, Any]], element: int, index: int, nodes: int) -> None:
    assert [(r["element"], r["rank"]) for r in results] == [(element, 0), (element, 1)]
    assert {r["array_task_id"] for r in results} == {index}
    assert {r["world_size"] for r in results} == {2}
    assert len({tuple(r["meeting"]) for r in results}) == 1  # agreed within the element
    if nodes > 1:
        assert {r["host"] for r in results} == {"node1", "node2"}


def test_every_element_of_a_mapped_array_runs_every_rank(
    cluster: Cluster, devcluster: Status
) -> None:
    array = jobfuncs.element_rank_host.with_options(**two_ranks(devcluster)).map([10, 11])
    assert array.get_results(timeout=180) == [job.get_result() for job in array]
    for index, job in enumerate(array):
        results = job.get_results(timeout=60)
        _check_element(results, 10 + index, index, len(devcluster.nodes))
        assert job.get_result() == results[0]
    assert "--array --ranks" in Path(array[0].script_path).read_text()


def test_a_batch_becomes_an_array_of_multi_rank_elements_one_failing_alone(
    cluster: Cluster, devcluster: Status
) -> None:
    two = jobfuncs.element_rank_host.with_options(**two_ranks(devcluster))
    with cluster.batch():
        ok = two(0)
        bad = two(1, fail_rank=1)
    assert ok.id.split("_")[0] == bad.id.split("_")[0]  # one array
    _check_element(ok.get_results(timeout=180), 0, 0, len(devcluster.nodes))
    with pytest.raises(jobfuncs.CustomError, match="element 1: rank 1 gives up") as info:
        bad.get_results(timeout=60)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    host = "node" if len(devcluster.nodes) > 1 else devcluster.nodes[0].name
    assert "(rank 1 of 2)" in notes and f"on {host}" in notes and bad.id in notes


def test_one_task_keeps_the_plain_path(cluster: Cluster) -> None:
    job = jobfuncs.add(1, 2)
    assert job.get_results(timeout=120) == [3]
    assert "--ranks" not in Path(job.script_path).read_text()


def test_torch_gloo_all_reduce_across_two_nodes_of_two_tasks(
    devcluster: Status, tmp_path: Path
) -> None:
    # Installed here means installed on every node (a shared environment); not imported
    # here, where its import warns that numpy is missing.
    if importlib.util.find_spec("torch") is None:
        pytest.fail(
            "torch is not installed in this environment: `make torch` installs the CPU wheel "
            "(`make test` does it first)",
            pytrace=False,
        )
    # The SDK's example imports torch in its body, which no closure walk sees: from a
    # clone under /tmp the nodes' environment gets it by name.
    with Cluster(
        backend_type="local", job_base_dir=str(tmp_path / "jobs"), default_partition="debug",
        python=node_python("torch"),
    ) as cluster:  # fmt: skip
        job = cluster.submit(jobfuncs.torch_allreduce.with_options(**four_ranks(devcluster)))()
        results = job.get_results(timeout=300)
    assert [r["rank"] for r in results] == [0, 1, 2, 3]
    assert [r["sum"] for r in results] == [10.0] * 4  # 1 + 2 + 3 + 4
    if len(devcluster.nodes) > 1:
        assert {r["host"] for r in results} == {"node1", "node2"}


def test_the_torch_example_all_reduces_across_its_ranks(devcluster: Status, tmp_path: Path) -> None:
    """The earlier SDK's torch topic, as our example (slurm.examples.torch_distributed) runs it."""
    if importlib.util.find_spec("torch") is None:
        pytest.fail(
            "torch is not installed here: `make torch` installs the CPU wheel", pytrace=False
        )
    shape = four_ranks(devcluster)
    out = subprocess.run(
        [node_python("torch"), "-m", "slurm.examples.torch_distributed", "--backend", "local",
         "--job-base-dir", str(tmp_path), "--partition", "debug",
         "--nodes", str(shape["nodes"]), "--ntasks-per-node", str(shape["ntasks_per_node"])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ranks = [line for line in out.stdout.splitlines() if line.startswith("rank ")]
    assert [line.split()[1] for line in ranks] == ["0", "1", "2", "3"]
    assert all(line.endswith("sum = 10.0") for line in ranks), out.stdout
