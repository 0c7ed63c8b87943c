"""What jobs used, and retries with more time or memory, on the real dev cluster."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobfuncs
import pytest

from slurm import Cluster, Job
from slurm._api.job import gather_usage
from slurm._slurm.retry import format_minutes, mem_megabytes, time_seconds
from slurm._slurm.usage import Usage, parse_size, runner_usage

MB = 1024 * 1024


def _from_accounting(cluster: Cluster | None, job: Job[Any]) -> Usage:
    """The job's usage from sacct (accounting may record a job's end a moment later, and
    a job that started and ended within a second without its limits at first)."""
    usage = None
    for _ in range(40):
        usage = gather_usage(job.session, [job]).get(job.id)
        if (
            usage is not None
            and usage.source == "sacct"
            and usage.state == "COMPLETED"
            and usage.time_limit_s is not None
        ):
            return usage
        time.sleep(0.5)
    raise AssertionError(f"sacct never recorded the end of job {job.id}: {usage}")


@pytest.fixture(scope="module")
def over_time(devcluster: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job[str]]:
    """Submitted when this module starts, checked at its end: a task that runs into its
    1-minute limit (ended 60 to 90 s in: slurmctld checks limits every 30 s) while the
    other tests run, then is retried with 2 minutes."""
    del devcluster
    base = tmp_path_factory.mktemp("over_time")
    with Cluster(backend_type="local", job_base_dir=str(base / "jobs"), default_partition="debug"):
        yield jobfuncs.outlast_one_minute(str(base / "first-attempt-started"))


def test_usage_matches_what_the_tasks_did_with_and_without_accounting(
    cluster: Cluster, over_time: Job[str]
) -> None:
    del over_time  # submitted first, so that its minute passes during this module
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
    slept, held = (gather_usage(cluster.session, [job])[job.id] for job in (sleeper, holder))
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
    assert first_attempt.limits["mem"] == "200M"
    # Sized from what it used: at least sacct's MaxRSS of the killed attempt times 2.0 (the
    # growth factor), and never below 200M x 2.0.
    rss = _sacct(first, "MaxRSS")
    assert rss, f"sacct recorded no MaxRSS for job {first}"
    asked = mem_megabytes(second.limits["mem"])
    assert asked is not None and asked >= max(max(rss) / MB * 2.0, 400)
    assert second.rule == "measured"
    assert _sacct(second.job_id, "ReqMem") == [asked * MB]  # Slurm's record agrees


def _sacct(job_id: str, field: str) -> list[int]:
    """``field`` (a size: MaxRSS, ReqMem) of the job's rows that have it, in bytes."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-j", job_id, "-o", field], capture_output=True, text=True
    ).stdout
    return [size for line in out.split() if (size := parse_size(line.rstrip("n"))) is not None]


def test_learn_starts_the_next_call_at_the_request_that_succeeded(
    devcluster: object, tmp_path: Path
) -> None:
    """Retry(learn=True): the first call needs more than its 200M and succeeds on a
    measured retry; a second call, from another Cluster object on the same job base
    directory, starts there (sacct's ReqMem agrees) and needs one attempt."""
    del devcluster
    if not _memory_enforced():
        pytest.skip("this dev cluster does not enforce memory limits: `slurm devcluster up`")
    base = str(tmp_path / "jobs")
    with Cluster(backend_type="local", job_base_dir=base, default_partition="debug"):
        first = jobfuncs.learn_memory(300)
        assert first.get_result(timeout=300) == 300 * MB
        assert [a.rule for a in first.attempts] == ["asked", "measured"]
        learned = first.limits["mem"]
    assert len(list(Path(base, ".learned").glob("*.json"))) == 1
    with Cluster(backend_type="local", job_base_dir=base, default_partition="debug"):
        second = jobfuncs.learn_memory(300)
        assert second.get_result(timeout=300) == 300 * MB
        assert [(a.rule, a.limits["mem"]) for a in second.attempts] == [("learned", learned)]
        asked = mem_megabytes(learned)
        assert asked is not None and _sacct(second.id, "ReqMem") == [asked * MB]
        # Another option set learns on its own: it starts at its own request.
        other = jobfuncs.learn_memory.with_options(mem="1G")(10)
        assert other.get_result(timeout=300) == 10 * MB
        assert [(a.rule, a.limits["mem"]) for a in other.attempts] == [("asked", "1G")]


@pytest.mark.timeout(400)  # up to 90 s to the first limit, a second attempt, a preemption
def test_a_task_past_its_one_minute_limit_succeeds_with_twice_the_time(
    over_time: Job[str],
) -> None:
    job, first = over_time, over_time.id
    assert job.get_result(timeout=300) == "done on the next attempt"
    first_attempt, second = job.attempts
    assert (first_attempt.job_id, first_attempt.state) == (first, "TIMEOUT")
    assert first_attempt.limits["time"] == "1"
    # Twice what it ran (Elapsed, past its limit while Slurm noticed), never below twice
    # its limit.
    assert first_attempt.usage is not None and first_attempt.usage.elapsed_s is not None
    ran = max(first_attempt.usage.elapsed_s, 60.0)
    assert second.state == "COMPLETED"
    assert second.limits["time"] == format_minutes(ran * 2.0)
    assert second.rule == ("measured" if math.ceil(ran * 2 / 60) > 2 else "grown")
    # Slurm's own record: the second attempt ran with that time.
    assert _from_accounting(None, job).time_limit_s == time_seconds(second.limits["time"])
