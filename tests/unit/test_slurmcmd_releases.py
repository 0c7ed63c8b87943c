"""The parsers on real outputs of Slurm 24.11 and 26.05 (the 22.05 ones: test_slurmcmd.py).

Captured by ``tests/unit/golden/capture_slurm_output.py --out golden/real-R`` on the
dev cluster of each release (``slurm devcluster up --slurm R``, two nodes), the same
jobs as for 22.05; ids in each directory's ``job_ids.json``. What differs from 22.05
and is pinned here:

- a job whose ``afterok`` dependency was cancelled stays ``PENDING`` with the reason
  ``DependencyNeverSatisfied`` (22.05 here ended it ``CANCELLED``): the tracker cancels
  such a job itself (docs/dependencies.md), so both end the same for the SDK;
- ``sinfo -V`` and every client command need a configuration (``SLURM_CONF``) from
  24.11 on; without one they fail on a DNS SRV lookup;
- ``squeue --only-job-state`` exists (24.05 and later): the job id and the state only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slurm._client.doctor.checks import parse_partitions
from slurm._slurm.commands import (
    JobState,
    parse_sacct,
    parse_show_config,
    parse_squeue,
    squeue_says_invalid_id,
)

GOLDEN = Path(__file__).parent / "golden"
RELEASES = ["24.11", "26.05"]
NODES = {"node1", "node2"}


@pytest.fixture(params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def real(release: str, name: str) -> str:
    return (GOLDEN / f"real-{release}" / name).read_text(encoding="utf-8")


def ids_of(release: str) -> dict[str, str]:
    ids: dict[str, str] = json.loads(real(release, "job_ids.json"))
    return ids


def test_the_outputs_are_of_that_release(release: str) -> None:
    assert real(release, "sinfo_version.stdout").split()[-1].startswith(release + ".")
    config = parse_show_config(real(release, "scontrol_show_config.stdout"))
    assert config["SLURM_VERSION"].startswith(release + ".")


def test_squeue_live(release: str) -> None:
    ids = ids_of(release)
    jobs = parse_squeue(real(release, "squeue_live.stdout"))
    array = ids["array"]
    assert {f"{array}_{i}" for i in range(21)} <= set(jobs)
    assert array not in jobs
    assert jobs[f"{array}_20"].state is JobState.PENDING
    assert jobs[f"{array}_20"].reason == "JobArrayTaskLimit"
    assert jobs[f"{array}_20"].node is None
    assert jobs[ids["dependent"]].reason == "Dependency"
    assert jobs[ids["failed"]].state is JobState.FAILED
    assert jobs[ids["failed"]].reason == "NonZeroExitCode"
    assert jobs[ids["running"]].state is JobState.RUNNING
    assert jobs[ids["running"]].node in NODES
    assert all(info.exit_code is None for info in jobs.values())


def test_squeue_compressed_array_is_expanded(release: str) -> None:
    array = ids_of(release)["array"]
    jobs = parse_squeue(real(release, "squeue_array_compressed.stdout"))
    assert set(jobs) == {f"{array}_{i}" for i in range(21)}
    assert jobs[f"{array}_20"].state is JobState.PENDING


def test_squeue_after_cancel_and_requeue(release: str) -> None:
    ids = ids_of(release)
    jobs = parse_squeue(real(release, "squeue_after_cancel_requeue.stdout"))
    assert jobs[ids["cancelled"]].state is JobState.CANCELLED
    requeued = jobs[ids["requeued"]]
    assert requeued.state is JobState.PENDING
    assert requeued.reason == "BeginTime"
    assert requeued.end is None


def test_squeue_invalid_ids(release: str) -> None:
    assert real(release, "squeue_invalid_id.returncode").strip() == "1"
    assert squeue_says_invalid_id(real(release, "squeue_invalid_id.stderr"))
    assert parse_squeue(real(release, "squeue_invalid_id.stdout")) == {}
    one = parse_squeue(real(release, "squeue_one_invalid_one_valid.stdout"))
    assert set(one) == {ids_of(release)["failed"]}
    assert real(release, "scontrol_show_job_invalid.returncode").strip() == "1"
    assert "Invalid job id specified" in real(release, "scontrol_show_job_invalid.stderr")


def test_sacct_live(release: str) -> None:
    ids = ids_of(release)
    jobs = parse_sacct(real(release, "sacct_live.stdout"))
    failed = jobs[ids["failed"]]
    assert (failed.state, failed.exit_code, failed.signal) == (JobState.FAILED, 3, 0)
    signalled = jobs[ids["signalled"]]
    assert (signalled.state, signalled.exit_code, signalled.signal) == (JobState.FAILED, 0, 9)
    assert jobs[ids["dependent"]].node is None  # "None assigned"
    assert jobs[ids["running"]].node in NODES


def test_sacct_after_cancel_and_requeue(release: str) -> None:
    ids = ids_of(release)
    jobs = parse_sacct(real(release, "sacct_after_cancel_requeue.stdout"))
    cancelled = jobs[ids["cancelled"]]
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.raw_state.startswith("CANCELLED by ")
    assert jobs[ids["requeued"]].state is JobState.PENDING


def test_sacct_steps_are_skipped(release: str) -> None:
    text = real(release, "sacct_with_steps.stdout")
    assert ".batch|" in text
    jobs = parse_sacct(text)
    assert not any("." in job_id for job_id in jobs)
    assert jobs[ids_of(release)["signalled"]].state is JobState.FAILED


def test_sacct_duplicates_keep_the_last(release: str) -> None:
    text = real(release, "sacct_duplicates_requeued.stdout")
    assert JobState.parse(text.splitlines()[0].split("|")[1]) is JobState.REQUEUED
    assert parse_sacct(text)[ids_of(release)["requeued"]].state is JobState.PENDING


def test_final_states(release: str) -> None:
    ids = ids_of(release)
    jobs = parse_sacct(real(release, "sacct_final.stdout"))
    array = ids["array"]
    assert all(jobs[f"{array}_{i}"].state is JobState.COMPLETED for i in range(21))
    assert jobs[ids["timeout"]].state is JobState.TIMEOUT
    assert jobs[ids["running"]].state is JobState.CANCELLED
    assert jobs[ids["failed"]].exit_code == 3
    # A dependency that can never be satisfied: still pending here (see the docstring).
    never = jobs[ids["dependent"]]
    assert never.state is JobState.PENDING and never.node is None and never.start is None
    squeue = parse_squeue(real(release, "squeue_final.stdout"))
    assert squeue[ids["dependent"]].reason == "DependencyNeverSatisfied"
    assert all(
        info.state.is_terminal for job_id, info in jobs.items() if job_id != ids["dependent"]
    )


def test_show_config(release: str) -> None:
    config = parse_show_config(real(release, "scontrol_show_config.stdout"))
    assert config["MaxArraySize"] == "1001"
    assert config["MinJobAge"] == "30 sec"
    assert config["PreemptMode"] == "REQUEUE"
    assert config["JobRequeue"] == "1"
    assert config["PreemptType"] == "preempt/partition_prio"
    assert config["ClusterName"].startswith("devcluster")
    assert len(config) > 150


def test_partitions(release: str) -> None:
    parts = parse_partitions(real(release, "scontrol_show_partition.stdout"))
    assert [p.name for p in parts] == ["debug", "compute", "urgent"]
    debug = parts[0]
    assert (debug.default, debug.state, debug.max_time, debug.total_cpus) == (
        True,
        "UP",
        "UNLIMITED",
        "8",
    )
    assert debug.extra["PreemptMode"] == "REQUEUE"


def test_hostile_names_and_paths_reach_slurm_intact(release: str) -> None:
    expected = json.loads(real(release, "hostile_expected.json"))
    jobs = parse_squeue(real(release, "hostile_squeue.stdout"))
    assert set(jobs) | set(parse_sacct(real(release, "hostile_sacct.stdout"))) >= {
        e["job_id"] for e in expected
    }
    for item in expected:
        assert item["output_text"] == f"arg=a b; $(c) name={item['name']}\n"


def test_squeue_only_job_state(release: str) -> None:
    """24.05 and later: ``squeue --only-job-state`` answers with ids and states only."""
    lines = real(release, "squeue_only_job_state.stdout").splitlines()
    assert lines[0].split() == ["JOBID", "ST"]
    rows = dict(line.split() for line in lines[1:])
    ids = ids_of(release)
    assert rows[ids["running"]] == "R"
    assert rows[ids["dependent"]] == "PD"
    assert rows[f"{ids['array']}_[4-20]"] == "PD"  # pending elements stay compressed


def test_sinfo_node_states(release: str) -> None:
    lines = real(release, "sinfo_nodes.stdout").splitlines()
    assert {line.split()[0] for line in lines} == NODES
    assert {line.split()[1] for line in lines} <= {"idle", "mixed", "allocated"}
