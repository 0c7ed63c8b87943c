"""What jobs used, and retries with more time or memory, on the real dev cluster."""

from __future__ import annotations

import subprocess
import time

import jobfuncs
import pytest

from slurm import Cluster, Job
from slurm.job import gather_usage
from slurm.usage import Usage, runner_usage

MB = 1024 * 1024


def _from_accounting(cluster: Cluster, job: Job[object]) -> Usage:
    """The job's usage from sacct (accounting may record a job's end a moment later)."""
    usage = None
    for _ in range(40):
        usage = gather_usage(cluster, [job]).get(job.id)
        if usage is not None and usage.source == "sacct" and usage.state == "COMPLETED":
            return usage
        time.sleep(0.5)
    raise AssertionError(f"sacct never recorded the end of job {job.id}: {usage}")


def test_usage_matches_what_the_tasks_did_with_and_without_accounting(cluster: Cluster) -> None:
    sleeper = jobfuncs.sleep_then(5, "done")
    # Sampled every second, so that sacct catches the peak of a 4-second job.
    holder = jobfuncs.hold_memory.with_options(mem="1G", acctg_freq="task=1")(300, 4)
    assert sleeper.get_result(timeout=120) == "done"
    assert holder.get_result(timeout=120) == 300 * MB

    slept = _from_accounting(cluster, sleeper)
    assert slept.elapsed_s is not None and slept.elapsed_s >= 5
    assert slept.cpu_time_s is not None and slept.cpu_time_s < 2.0
    assert slept.queue_wait_s is not None and slept.queue_wait_s >= 0
    assert slept.mem_bytes == 64 * MB and slept.time_limit_s == 120 and slept.nodes
    held = _from_accounting(cluster, holder)
    assert held.max_rss_bytes is not None and held.max_rss_bytes >= 300 * MB
    assert held.mem_efficiency is not None and 0.29 < held.mem_efficiency < 1

    # Without accounting: the runner's own figures, written beside the result.
    for job in (sleeper, holder):
        text = cluster.transport.read_text(job.paths.usage)
        measured = runner_usage(text)
        assert measured is not None and measured.source == "runner"
    cluster.tracker.accounting = False  # as on a cluster where sacct does not answer
    slept, held = (gather_usage(cluster, [job])[job.id] for job in (sleeper, holder))
    assert slept.source == held.source == "runner"
    assert slept.elapsed_s is not None and slept.elapsed_s >= 5
    assert slept.cpu_time_s is not None and slept.cpu_time_s < 2.0
    assert held.max_rss_bytes is not None and held.max_rss_bytes >= 300 * MB
    assert held.mem_bytes == 1024 * MB and slept.queue_wait_s is not None


def test_array_usage_summary(cluster: Cluster) -> None:
    array = jobfuncs.sleep_then.map([(1, 0), (3, 1)])
    assert array.get_results(timeout=120) == [0, 1]
    summary = array.usage
    assert summary.count == 2 and summary.elapsed_s is not None
    assert summary.elapsed_s.max >= 3 and summary.elapsed_s.worst == 1


@pytest.mark.timeout(600)  # two attempts of up to 2 minutes, and a preemption or two
def test_a_task_past_its_one_minute_limit_succeeds_with_twice_the_time(cluster: Cluster) -> None:
    # 110 s: slurmctld checks time limits every 30 s, so the first attempt ends between
    # 60 and 90 s; the second, with 120 s, finishes.
    job = jobfuncs.outlast_one_minute(110)
    first = job.id
    assert job.get_result(timeout=540) == "slept 110 s"
    first_attempt, second = job.attempts
    assert (first_attempt.job_id, first_attempt.state) == (first, "TIMEOUT")
    assert first_attempt.limits["time"] == "1"
    assert (second.state, second.limits["time"]) == ("COMPLETED", "0-00:02:00")
    assert second.usage is not None and second.usage.elapsed_s is not None
    assert second.usage.elapsed_s >= 110


def _memory_enforced() -> bool:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    return "OverMemoryKill" in config or "task/cgroup" in config


def test_a_task_past_its_memory_limit_succeeds_with_more_memory(cluster: Cluster) -> None:
    if not _memory_enforced():
        pytest.skip(
            "this dev cluster does not enforce memory limits yet: it was started by an older "
            "`slurm devcluster up`; run `slurm devcluster up` again (it restarts the daemons "
            "with JobAcctGatherParams=OverMemoryKill)"
        )
    job = jobfuncs.outgrow_memory(300)
    first = job.id
    assert job.get_result(timeout=300) == 300 * MB
    first_attempt, second = job.attempts
    assert (first_attempt.job_id, first_attempt.state) == (first, "OUT_OF_MEMORY")
    assert (first_attempt.limits["mem"], second.limits["mem"]) == ("200M", "400M")
