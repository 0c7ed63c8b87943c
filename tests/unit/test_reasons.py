"""Slurm's reason codes and failures into sentences with the fix (pure; real scontrol output)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import slurm._slurm.reasons as reasons
from slurm._slurm.reasons import (
    NodeSize,
    PendingFacts,
    explain_failure,
    explain_pending,
    parse_dependency,
    parse_scontrol_record,
    parse_scontrol_records,
    request_mb,
)
from slurm._slurm.usage import Usage

REAL = Path(__file__).parent / "golden" / "real"


def _record(name: str) -> dict[str, str]:
    (record,) = parse_scontrol_records((REAL / name).read_text())
    return record


def _nodes() -> list[NodeSize]:
    return [
        NodeSize(r["NodeName"], int(r["CPUTot"]), request_mb(r["RealMemory"]) or 0)
        for r in parse_scontrol_records((REAL / "scontrol_show_node_two_nodes.stdout").read_text())
    ]


def test_doctests() -> None:
    assert doctest.testmod(reasons).failed == 0


def test_real_scontrol_records_parse() -> None:
    job = _record("scontrol_show_job_pending_partition_node_limit.stdout")
    assert job["JobState"] == "PENDING" and job["Reason"] == "PartitionNodeLimit"
    assert job["NumNodes"] == "3-3" and job["TRES"] == "cpu=3,mem=18G,node=3,billing=3"
    assert job["AllocNode:Sid"] == "localhost:4565" and job["Power"] == ""
    nodes = _nodes()
    assert [(n.name, n.cpus, n.mem_mb) for n in nodes] == [("node1", 4, 8192), ("node2", 4, 8192)]
    old = _record("scontrol_show_job_running.stdout")  # captured on the one-node layout
    assert old["JobState"] == "RUNNING"


def test_values_with_spaces_run_to_the_next_key() -> None:
    record = parse_scontrol_record(
        "JobId=5 JobState=PENDING Reason=ReqNodeNotAvail, UnavailableNodes:node[1-2] "
        "Dependency=(null)"
    )
    assert record["Reason"] == "ReqNodeNotAvail, UnavailableNodes:node[1-2]"
    assert record["Dependency"] == "(null)"


def test_dependency_text() -> None:
    assert parse_dependency("afterok:12_*(unfulfilled),afterany:13(failed)") == [
        ("afterok", "12_*", "unfulfilled"),
        ("afterany", "13", "failed"),
    ]
    assert parse_dependency("(null)") == [] and parse_dependency("") == []


@pytest.mark.parametrize(
    ("reason", "facts", "sentence", "fix"),
    [
        (
            "Dependency",
            PendingFacts(job={"Dependency": "afterok:41(unfulfilled)"},
                         dependency_states={"41": "RUNNING"}),
            "It waits for job 41 (RUNNING) to end.",
            "starts by itself",
        ),
        (
            "DependencyNeverSatisfied",
            PendingFacts(job={"Dependency": "afterok:41(failed)"},
                         dependency_states={"41": "FAILED"}),
            "It can never start: it depends on job 41 (FAILED)",
            "kind='afterany'",
        ),
        ("Priority", PendingFacts(job={"Partition": "debug"}),
         "Jobs of higher priority are ahead of it in the queue of debug.", "sprio -j ID"),
        ("Resources", PendingFacts(job={"Partition": "debug", "MinCPUsNode": "2"},
                                   nodes=[NodeSize("n1", 4, 8192)]),
         "It waits for free resources: the nodes of debug are busy", "asking for less"),
        ("Resources", PendingFacts(job={"Partition": "big", "MinCPUsNode": "1",
                                        "MinMemoryNode": "64G"}, nodes=[NodeSize("n1", 4, 8192)]),
         "It asks for 64 GB of memory on one node; the largest node of big has 8 GB.",
         "mem=8192M or less"),
        ("QOSMaxJobsPerUserLimit", PendingFacts(job={"QOS": "normal"}),
         "A limit of your QOS is reached: jobs per user (QOSMaxJobsPerUserLimit); QOS=normal.",
         "sacctmgr show qos"),
        ("AssocGrpCpuLimit", PendingFacts(),
         "A limit of your account (association) is reached: cpu", "sacctmgr show assoc"),
        ("PartitionTimeLimit",
         PendingFacts(job={"TimeLimit": "2-00:00:00", "Partition": "short"},
                      partition={"MaxTime": "04:00:00"}),
         "It asks for time=2-00:00:00, more than short allows (MaxTime=04:00:00).",
         "time=04:00:00 or less"),
        ("ReqNodeNotAvail, UnavailableNodes:node2", PendingFacts(),
         "The nodes it may use are unavailable: down, drained or reserved (node2).", "sinfo -R"),
        ("BeginTime", PendingFacts(job={"StartTime": "2026-12-02T08:00:00"}),
         "It was asked not to start before 2026-12-02T08:00:00.", "StartTime=now"),
        ("JobHeldUser", PendingFacts(), "It is held by you", "scontrol release ID"),
        ("JobHeldAdmin", PendingFacts(), "It is held by an admin", "administrators"),
        ("PartitionDown", PendingFacts(job={"Partition": "gpu"}), "gpu is down", "another"),
        ("InvalidQOS", PendingFacts(), "Its QOS is not valid for you", "sacctmgr show assoc"),
        ("JobArrayTaskLimit", PendingFacts(), "throttle (%N)", "larger throttle"),
        ("None", PendingFacts(job={"JobState": "PENDING"}), "Slurm gives no reason yet",
         "a few seconds"),
        ("SomethingNew", PendingFacts(), "Slurm says 'SomethingNew'.", "JOB REASON CODES"),
    ],
)  # fmt: skip
def test_pending_reasons(reason: str, facts: PendingFacts, sentence: str, fix: str) -> None:
    explanation = explain_pending(reason, facts)
    assert sentence in explanation.sentence
    assert fix in explanation.fix


def test_real_partition_node_limit() -> None:
    partition = parse_scontrol_records(
        (REAL / "scontrol_show_partition_debug_two_nodes.stdout").read_text()
    )[0]
    job = _record("scontrol_show_job_pending_partition_node_limit.stdout")
    explanation = explain_pending(job["Reason"], PendingFacts(job, partition, _nodes()))
    assert explanation.sentence == (
        "It asks for 3 nodes; debug allows MaxNodes=UNLIMITED and has 2."
    )
    assert explanation.fix == "Ask for nodes=2 or fewer, or choose a larger partition."


def test_real_partition_config_too_many_cpus() -> None:
    job = _record("scontrol_show_job_pending_partition_config.stdout")
    explanation = explain_pending(job["Reason"], PendingFacts(job, {}, _nodes()))
    assert explanation.sentence == (
        "It asks for 9 CPUs on one node; the largest node of debug has 4."
    )
    assert "cpus_per_task=4 or fewer" in explanation.fix
    # Without the nodes' sizes: the general answer.
    assert "does not fit how debug is configured" in explain_pending(job["Reason"]).sentence or (
        "configured" in explain_pending(job["Reason"], PendingFacts(job)).sentence
    )


GB = 1024**3


@pytest.mark.parametrize(
    ("state", "kwargs", "sentence", "fix"),
    [
        ("OUT_OF_MEMORY", {"usage": Usage("sacct", max_rss_bytes=int(1.9 * GB), mem_bytes=2 * GB)},
         "It ran out of memory: MaxRSS 1.9 GB of 2 GB; Slurm killed it.",
         "Ask for mem=3G, or use Retry(grow={'mem': 1.5})"),
        ("FAILED", {"error": ["slurmstepd: error: Detected 1 oom_kill event",
                              "slurmstepd: error: Exceeded job memory limit"]},
         "It ran out of memory", "more memory (mem=)"),
        ("TIMEOUT", {"usage": Usage("sacct", elapsed_s=61, time_limit_s=60)},
         "It reached its time limit: it ran 61 s of its 60 s limit", "Retry(grow={'time': 2.0})"),
        ("TIMEOUT", {"error": ["slurm-sdk: not requeued at the time limit: the checkpoint "
                               "callbacks wrote nothing new since the previous run (...)"]},
         "not requeued again: its previous run made no progress", "record how far it got"),
        ("FAILED", {"error": ["ValueError: bad"], "raised": True},
         "The task raised ValueError: bad.", "Retry(exceptions="),
        ("FAILED", {"exit_code": "1:0"}, "failed before the task returned (exit code 1:0)",
         "slurm jobs logs --stderr ID"),
        ("CANCELLED", {}, "It was cancelled", "Submit it again"),
        ("NODE_FAIL", {}, "Its node failed.", "Retry(on={'NODE_FAIL'})"),
        ("PREEMPTED", {}, "preempted it", "max_requeues="),
        ("DEADLINE", {}, "deadline", "later deadline"),
        ("WEIRD", {"exit_code": "3:0"}, "It ended WEIRD (exit code 3:0).", ""),
    ],
)  # fmt: skip
def test_failures(state: str, kwargs: dict, sentence: str, fix: str) -> None:  # type: ignore[type-arg]
    explanation = explain_failure(state, **kwargs)
    assert sentence in explanation.sentence
    assert fix in explanation.fix


def test_real_held_and_begin_time_records() -> None:
    held = _record("scontrol_show_job_held_user.stdout")  # scontrol uhold
    assert held["Reason"] == "JobHeldUser"
    assert "held by you" in explain_pending(held["Reason"], PendingFacts(held)).sentence
    later = _record("scontrol_show_job_pending_begin_time.stdout")  # sbatch --begin=now+1hour
    explanation = explain_pending(later["Reason"], PendingFacts(later))
    assert explanation.sentence == "It was asked not to start before 2026-12-01T21:05:17."
