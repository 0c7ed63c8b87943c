"""The client's subtle paths against the in-memory Slurm (``fakeslurm``), in seconds.

The same paths are exercised against the real dev cluster by the integration
tests; these pin the logic: a lost sbatch answer, transient refusals,
resubmission, the tracker's controller calls, journal replay, dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeslurm import FakeSlurm

import slurm
from slurm import Cluster, Retry, as_completed, task, wait
from slurm._slurm.commands import JobState
from slurm._wire.journal import Journal
from slurm.errors import (
    ConfigurationError,
    DependencyError,
    JobTerminatedError,
    JobTimeoutError,
    NotSubmittableError,
    SubmissionError,
)


@task(time="00:01:00")
def add(a: int, b: int) -> int:
    return a + b


@task(time="00:01:00", max_requeues=2)
def boom(message: str) -> None:
    raise ValueError(message)


@task(time="00:01:00")
def total(values: list[int]) -> int:
    return sum(values)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    # The preflight of the cluster's Python is the integration tests' business.
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")  # the machine's is not the fake's
    return FakeSlurm()


@pytest.fixture()
def cluster(fake: FakeSlurm, tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "jobs"), python="python3") as c:
        yield c


def test_call_runs_and_its_result_comes_home(cluster: Cluster, fake: FakeSlurm) -> None:
    job = add(2, 3)
    assert fake.calls("sbatch") == 1
    fake.run_all()
    assert job.get_result(timeout=10) == 5
    assert job.state is JobState.COMPLETED and job.done() and job.is_successful()
    assert cluster.get_job(job.id).get_result(timeout=10) == 5  # reattached from the index
    assert "add" in job.get_script() and job.get_stdout() == ""


def test_remote_exception_comes_home_with_its_type(cluster: Cluster, fake: FakeSlurm) -> None:
    job = boom("no luck")
    fake.run_all()
    with pytest.raises(ValueError, match="no luck") as info:
        job.get_result(timeout=10)
    assert "remote traceback" in info.value.__notes__[0]
    assert isinstance(job.exception(timeout=10), ValueError)
    assert job.state is JobState.FAILED and not job.is_successful()


def test_lost_sbatch_answer_is_found_by_its_comment_not_submitted_twice(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    fake.lose_next_sbatch_answer()
    job = add(1, 1)
    assert fake.calls("sbatch") == 1 and len(fake.jobs) == 1
    assert job.id == next(iter(fake.jobs))
    fake.run_all()
    assert job.get_result(timeout=10) == 2


def test_transient_refusal_is_retried_once_the_queue_says_it_is_not_there(
    cluster: Cluster, fake: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("slurm._slurm.client.time.sleep", lambda s: None)
    fake.fail_next_sbatch("Socket timed out on send/recv operation", times=2)
    job = add(1, 2)
    assert fake.calls("sbatch") == 3 and len(fake.jobs) == 1
    lookups = [argv for argv in fake.commands if "--format=%i|%k" in argv]
    assert len(lookups) == 2  # looked for the comment before each retry (not the tracker)
    fake.run_all()
    assert job.get_result(timeout=10) == 3


def test_final_refusal_raises_and_records_nothing(cluster: Cluster, fake: FakeSlurm) -> None:
    fake.fail_next_sbatch("Invalid partition name specified")
    with pytest.raises(SubmissionError, match="Invalid partition"):
        add(1, 2)
    assert cluster.store.job_ids() == []


def test_unpicklable_argument_is_refused_before_anything_is_written(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    import threading

    with pytest.raises(ConfigurationError, match="cannot be pickled"):
        total(threading.Lock())
    assert fake.calls("sbatch") == 0
    assert not Path(cluster.base_dir).exists() or list(Path(cluster.base_dir).iterdir()) == []


def test_job_that_dies_without_result_reports_state_and_stderr(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    job = add(1, 2)
    Path(job.stderr_path).write_text("oom-kill event in step 0\n")
    fake.finish(job.id, "OUT_OF_MEMORY", exit_code="0:9")
    with pytest.raises(JobTerminatedError, match="OUT_OF_MEMORY") as info:
        job.get_result(timeout=10)
    assert "ask for more `mem=`" in str(info.value) and "oom-kill" in str(info.value)
    assert info.value.exit_code == "0:9"


def test_job_gone_from_the_queue_is_judged_by_accounting(cluster: Cluster, fake: FakeSlurm) -> None:
    job = add(1, 2)
    fake.finish(job.id, "TIMEOUT", exit_code="0:15")
    fake.purge()
    with pytest.raises(JobTerminatedError, match="TIMEOUT"):
        job.get_result(timeout=10)
    assert cluster.tracker.accounting is True


def test_without_accounting_a_forgotten_job_ends_after_a_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    fake = FakeSlurm(accounting=False)
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3"):
        job = add(1, 2)
        fake.finish(job.id, "CANCELLED", exit_code="0:15")
        fake.purge()
        with pytest.raises(JobTerminatedError, match="ended"):
            job.get_result(timeout=20)
        assert job.session.tracker.accounting is False


def test_preempted_job_slurm_could_not_requeue_is_resubmitted(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    job = add(3, 4)
    first = job.id
    job.max_requeues = 1
    fake.finish(first, "PREEMPTED", exit_code="0:15")
    fake.purge()
    assert not job.wait(timeout=3)  # resubmitted: now waiting for the new job
    assert job.id != first and job.previous_ids == [first]
    assert fake.jobs[job.id].comment == fake.jobs[first].comment
    fake.run_job(job.id)
    assert job.get_result(timeout=10) == 7
    assert cluster.get_job(job.id).get_result(timeout=10) == 7


def test_timeout_passes_and_keeps_the_job(cluster: Cluster) -> None:
    job = add(1, 1)
    with pytest.raises(JobTimeoutError, match="did not finish within"):
        job.get_result(timeout=0.2)
    assert not job.done()


def test_cancel_ends_the_wait(cluster: Cluster, fake: FakeSlurm) -> None:
    job = add(1, 1)
    job.cancel()
    with pytest.raises(JobTerminatedError, match="CANCELLED"):
        job.get_result(timeout=10)


def test_job_argument_becomes_its_result_with_afterok(cluster: Cluster, fake: FakeSlurm) -> None:
    first = add(1, 2)
    second = add(first, 10)
    assert fake.jobs[second.id].dependency == f"afterok:{first.id}"
    assert second.dependencies == [first.id]
    fake.run_job(first.id)
    assert first.get_result(timeout=10) == 3
    fake.run_job(second.id)
    assert second.get_result(timeout=10) == 13


def test_afterok_on_a_failed_job_is_refused_before_submission(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    bad = boom("x")
    fake.run_all()
    bad.wait(timeout=10)
    with pytest.raises(DependencyError, match="already failed"):
        add.after(bad)(1, 2)
    assert fake.calls("sbatch") == 1
    after_any = add.after(bad, kind="afterany")(1, 2)
    assert fake.jobs[after_any.id].dependency == f"afterany:{bad.id}"


def test_dependency_that_fails_later_is_never_satisfied(cluster: Cluster, fake: FakeSlurm) -> None:
    first = boom("later")
    second = add.after(first)(1, 2)
    fake.run_job(first.id)
    with pytest.raises(JobTerminatedError, match="can never start"):
        second.get_result(timeout=10)
    assert fake.jobs[second.id].state == "CANCELLED"  # the client cancelled it


def test_map_is_split_over_max_array_size_and_keeps_item_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    conf = tmp_path / "slurm.conf"  # read instead of asking the controller (scontrol)
    conf.write_text("ClusterName=fake  # the client is on the cluster\nmaxarraysize=2\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    fake = FakeSlurm(max_array_size=1001)
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as here:
        array = add.map([(i, 1) for i in range(5)])
        assert fake.calls("scontrol") == 0
        assert len(array.array_ids) == 3 and array.id == array.array_ids[0] and len(array) == 5
        fake.run_all()
        assert array.get_results(timeout=10) == [1, 2, 3, 4, 5]
        assert [job.name for job in array][:2] == ["add[0]", "add[1]"]
        summed = total(array)
        assert fake.jobs[summed.id].dependency == "afterok:" + ":".join(array.array_ids)
        fake.run_job(summed.id)
        assert summed.get_result(timeout=10) == 15
        assert summed.dependencies == array.array_ids
        element = here.get_job(array[3].id)
        assert element.name == "add[1]" and element.get_result(timeout=10) == 4


def test_failed_element_does_not_hide_the_others(cluster: Cluster, fake: FakeSlurm) -> None:
    @task
    def maybe(x: int) -> int:
        if x == 2:
            raise KeyError(x)
        return x

    array = maybe.map([1, 2, 3])
    fake.run_all()
    assert array.get_results(timeout=10, return_exceptions=True)[0::2] == [1, 3]
    with pytest.raises(KeyError) as info:
        array.get_results(timeout=10)
    assert "indices 1" in info.value.__notes__[-1]


def test_as_completed_and_wait(cluster: Cluster, fake: FakeSlurm) -> None:
    jobs = [add(i, i) for i in range(4)]
    fake.run_job(jobs[2].id)
    first = next(as_completed(jobs, timeout=10))
    assert first is jobs[2]
    fake.run_all()
    done, pending = wait(jobs, timeout=10)
    assert len(done) == 4 and not pending
    assert sorted(j.get_result() for j in done) == [0, 2, 4, 6]


def test_tracker_asks_the_controller_in_batches(cluster: Cluster, fake: FakeSlurm) -> None:
    jobs = [add(i, 0) for i in range(20)]
    before = fake.calls("squeue") + fake.calls("sacct")
    fake.run_all()
    assert [j.get_result(timeout=10) for j in jobs] == list(range(20))
    # Results were found by their done markers: at most a few looks at the controller.
    assert fake.calls("squeue") + fake.calls("sacct") - before <= 3


def test_journal_replays_calls_of_a_restarted_workflow(fake: FakeSlurm, tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.jsonl"
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as first:
        first.session.journal = Journal(journal_path)
        a, b = add(1, 1), add(2, 2)
    assert fake.calls("sbatch") == 2
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as again:
        again.session.journal = Journal(journal_path)
        assert add(1, 1).id == a.id and add(2, 2).id == b.id  # reattached, not submitted
        assert fake.calls("sbatch") == 2
        c = add(3, 3)  # a new call past the journal's end is submitted
        assert fake.calls("sbatch") == 3 and c.id not in (a.id, b.id)


def test_journal_entry_whose_answer_was_lost_is_found_by_comment(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    journal_path = tmp_path / "journal.jsonl"
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as first:
        first.session.journal = Journal(journal_path)
        fake.crash_after_next_sbatch()
        with pytest.raises(KeyboardInterrupt):
            add(5, 5)
    submitted = next(iter(fake.jobs))
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as again:
        again.session.journal = Journal(journal_path)
        assert add(5, 5).id == submitted


def test_settings_are_refused_when_the_cluster_is_made() -> None:
    with pytest.raises(ConfigurationError, match="packaging"):
        Cluster(packaging="bogus")
    with pytest.raises(ConfigurationError, match="port must be"):
        Cluster("ssh", hostname="h", port=0)
    with pytest.raises(ConfigurationError, match="accept_new_host_key must be true or false"):
        Cluster("ssh", hostname="h", accept_new_host_key="false")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a hostname"):
        Cluster("ssh")
    with pytest.raises(ConfigurationError, match="Unknown backend"):
        Cluster("slurmrestd")


def test_batch_turns_a_burst_of_calls_into_one_array_per_option_set(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    with cluster.batch():
        sums = [add(i, 1) for i in range(30)]
        slow = [add.with_options(time="00:05:00")(i, 2) for i in range(3)]
        lone = total([1, 2])
        assert not sums[0].submitted and "not submitted yet" in repr(sums[0])
        with pytest.raises(NotSubmittableError, match="batch"):
            sums[0].get_result()
    assert fake.calls("sbatch") == 3  # 30 + 3 calls in two arrays, one single job
    assert len({job.id.split("_")[0] for job in sums}) == 1
    assert sums[4].id.endswith("_4") and lone.id.isdigit()
    fake.run_all()
    assert [job.get_result(timeout=10) for job in sums] == [i + 1 for i in range(30)]
    assert [job.get_result(timeout=10) for job in slow] == [2, 3, 4]
    assert lone.get_result(timeout=10) == 3
    # Elements are ordinary jobs: dependencies, reattachment, cancellation.
    after = add(sums[29], 0)
    assert after.dependencies == [sums[29].id]  # (already done: sbatch gets no afterok)
    fake.run_job(after.id)
    assert after.get_result(timeout=10) == 30
    assert cluster.get_job(sums[7].id).get_result(timeout=10) == 8


def test_batch_that_raises_submits_nothing(cluster: Cluster, fake: FakeSlurm) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"), cluster.batch():
        add(1, 2)
        raise RuntimeError("changed my mind")
    assert fake.calls("sbatch") == 0


def test_batched_job_cannot_be_an_argument_inside_its_block(cluster: Cluster) -> None:
    with pytest.raises(ConfigurationError, match="batch"), cluster.batch():
        first = add(1, 2)
        add(first, 1)


def test_awaiting_many_jobs_shares_the_one_tracker(cluster: Cluster, fake: FakeSlurm) -> None:
    import asyncio
    import threading

    jobs = [add(i, 1) for i in range(50)]
    threads_before = threading.active_count()

    async def main() -> list[int]:
        async def finish_later() -> None:
            await asyncio.sleep(0.2)
            fake.run_all()

        runner = asyncio.ensure_future(finish_later())
        values = list(await asyncio.gather(*(job for job in jobs)))
        await runner
        return values

    assert asyncio.run(main()) == [i + 1 for i in range(50)]
    assert threading.active_count() <= threads_before + 2  # the tracker, an executor worker


def test_waits_one_after_another_keep_one_tracker_thread(
    cluster: Cluster, fake: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain of calls, each waited on before the next: the thread that read one result
    is the one that reads the next, not a new one per wait."""
    import threading
    import time

    monkeypatch.setattr("slurm._client.tracker._IDLE_GRACE", 60.0)  # the test's pauses
    started: list[str] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    for i in range(3):
        job = add(i, 1)
        fake.run_all()
        assert job.get_result(timeout=10) == i + 1
        time.sleep(0.3)  # longer than a look: a thread that leaves when idle has left
    assert len([name for name in started if name.startswith("slurm-tracker")]) == 1


def test_a_result_returned_has_left_no_done_marker(
    cluster: Cluster, fake: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The markers a look read are removed before the waiters wake, so a program that
    lists the done directory after get_results finds none of its calls' (a slow removal
    made the race that a CI run once lost)."""
    import os
    import time

    real_remove = FakeSlurm.remove_files

    def slow_remove(self: FakeSlurm, paths: list[str]) -> bool:
        time.sleep(0.3)
        return real_remove(self, paths)

    monkeypatch.setattr(FakeSlurm, "remove_files", slow_remove)
    array = add.map([(i, 1) for i in range(5)])
    fake.run_all()
    assert array.get_results(timeout=10) == [i + 1 for i in range(5)]
    assert not set(os.listdir(cluster.done_dir)) & {job.done_marker for job in array}


def test_as_completed_async_and_result_async_timeout(cluster: Cluster, fake: FakeSlurm) -> None:
    import asyncio

    jobs = [add(i, i) for i in range(3)]

    async def main() -> list[str]:
        with pytest.raises(JobTimeoutError):
            await jobs[0].result_async(timeout=0.1)
        fake.run_job(jobs[1].id)
        order = []
        async for job in slurm.as_completed_async(jobs, timeout=10):
            order.append(job.id)
            if len(order) == 1:
                fake.run_all()
        return order

    order = asyncio.run(main())
    assert order[0] == jobs[1].id and sorted(order) == sorted(j.id for j in jobs)


def test_cancelling_the_awaiting_coroutine_leaves_the_job_alone(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    import asyncio

    job = add(2, 2)

    async def main() -> None:
        waiter = asyncio.ensure_future(job.result_async())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    assert fake.jobs[job.id].state == "PENDING" and fake.calls("scancel") == 0
    fake.run_all()
    assert asyncio.run(job.result_async(timeout=10)) == 4


def test_tracker_backs_off_while_nothing_changes_and_when_the_controller_fails(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    import time

    job = add(1, 1)  # stays PENDING: nothing changes
    start = fake.calls("squeue")
    time.sleep(6)
    quiet = fake.calls("squeue") - start
    assert 1 <= quiet <= 4  # 1 s, then 1.5x longer each time: not one a second
    fake.squeue_down = True
    start = fake.calls("squeue")
    time.sleep(6)
    failing = fake.calls("squeue") - start
    assert failing <= 3  # the interval doubles on each failure
    fake.squeue_down = False
    fake.run_all()
    assert job.get_result(timeout=30) == 2  # and tracking goes on once it answers


# --- usage and retry -------------------------------------------------------------------

RETRY = Retry(max_attempts=3, grow={"time": 2.0, "mem": 1.5})


@task(time=1, mem="200M", retry=RETRY)
def sized(x: int) -> int:
    return x * 10


@task(time=1, retry=Retry(on={"TIMEOUT"}, exceptions=(ConnectionError,)))
def flaky(path: str) -> str:
    marker = Path(path)
    if not marker.exists():
        marker.write_text("failed once")
        raise ConnectionResetError("the first try fails")
    return "second try"


def test_timeout_is_retried_with_twice_the_time(cluster: Cluster, fake: FakeSlurm) -> None:
    job = sized(4)
    first = job.id
    fake.finish(first, "TIMEOUT", exit_code="0:15", elapsed=60, cpu="00:00.010")
    assert not job.wait(timeout=3)  # retried: now waiting for the second attempt
    assert job.id != first and fake.jobs[job.id].options["time"] == "0-00:02:00"
    assert fake.jobs[job.id].options["mem"] == "200M"  # only what ran out grows
    fake.run_job(job.id)
    assert job.get_result(timeout=10) == 40
    first_attempt, second = job.attempts
    assert (first_attempt.job_id, first_attempt.state) == (first, "TIMEOUT")
    assert first_attempt.limits == {"time": "1", "mem": "200M"}
    assert first_attempt.usage is not None and first_attempt.usage.elapsed_s == 60.0
    assert (second.job_id, second.state, second.limits["time"]) == (
        job.id,
        "COMPLETED",
        "0-00:02:00",
    )
    assert job.previous_ids == []  # a retry is not a requeue
    again = cluster.get_job(first)  # reattached by its first id: follows the retry
    assert again.id == job.id and len(again.attempts) == 2


def test_out_of_memory_is_retried_with_more_memory_up_to_max_attempts(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    job = sized(1)
    # 210M x 1.5 beats 200M x 1.5; then 315M x 1.5 beats 210M x 1.5.
    for expected, rule in (("315M", "measured"), ("473M", "grown")):
        fake.finish(job.id, "OUT_OF_MEMORY", exit_code="0:125", max_rss="210M")
        assert not job.wait(timeout=3)
        assert fake.jobs[job.id].options["mem"] == expected
        assert job.rule == rule and job.attempts[-1].rule == rule
    fake.finish(job.id, "OUT_OF_MEMORY", exit_code="0:125")
    with pytest.raises(JobTerminatedError, match="OUT_OF_MEMORY"):
        job.get_result(timeout=10)  # the third attempt was the last
    assert [a.state for a in job.attempts] == ["OUT_OF_MEMORY"] * 3
    assert job.attempts[0].usage is not None
    assert job.attempts[0].usage.max_rss_bytes == 210 * 1024**2
    assert fake.calls("sbatch") == 3


def test_a_node_failure_is_retried_off_that_node(cluster: Cluster, fake: FakeSlurm) -> None:
    job = sized(5)
    fake.jobs[job.id].node = "node7"
    fake.finish(job.id, "NODE_FAIL", exit_code="0:0")
    assert not job.wait(timeout=3)
    assert fake.jobs[job.id].options["exclude"] == "node7"
    assert (job.rule, job.limits["exclude"]) == ("exclude", "node7")
    # Its next node fails too, and sbatch refuses to exclude both (a partition of two):
    # sent again with only the exclusion it had.
    fake.jobs[job.id].node = "node8"
    fake.fail_next_sbatch(
        "Batch job submission failed: Requested node configuration is not available"
    )
    fake.finish(job.id, "NODE_FAIL", exit_code="0:0")
    assert not job.wait(timeout=3)
    assert fake.jobs[job.id].options["exclude"] == "node7"
    assert [a.rule for a in job.attempts] == ["asked", "exclude", "same"]
    fake.run_job(job.id)
    assert job.get_result(timeout=10) == 50


def test_a_memory_kill_slurm_reports_as_failed_is_retried_as_out_of_memory(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    job = sized(3)
    # Slurm 22.05 with JobAcctGatherParams=OverMemoryKill: FAILED, 0:9, and this stderr.
    Path(job.stderr_path).write_text(
        "slurmstepd-vm: error: StepId=7.batch exceeded memory limit (329900032 > 209715200), "
        "being killed\nslurmstepd-vm: error: Exceeded job memory limit\n"
    )
    fake.finish(job.id, "FAILED", exit_code="0:9", max_rss="100M")
    assert not job.wait(timeout=3)
    # Sized from what slurmstepd saw at the kill (329900032 bytes) x 1.5, not sacct's sample.
    assert fake.jobs[job.id].options["mem"] == "472M" and job.rule == "measured"
    assert job.attempts[0].state == "OUT_OF_MEMORY"
    assert job.attempts[0].usage is not None
    assert job.attempts[0].usage.max_rss_source == "slurmstepd"


def test_an_exception_is_retried_only_when_asked(
    cluster: Cluster, fake: FakeSlurm, tmp_path: Path
) -> None:
    job = flaky(str(tmp_path / "marker"))
    fake.run_job(job.id)
    assert not job.wait(timeout=3)  # ConnectionResetError is a ConnectionError: retried
    fake.run_job(job.id)
    assert job.get_result(timeout=10) == "second try"
    assert [a.state for a in job.attempts] == ["FAILED", "COMPLETED"]
    plain = boom("no retry asked")
    fake.run_job(plain.id)
    with pytest.raises(ValueError, match="no retry asked"):
        plain.get_result(timeout=10)
    assert len(plain.attempts) == 1


def test_a_preemption_is_not_an_attempt(cluster: Cluster, fake: FakeSlurm) -> None:
    job = sized(2)
    fake.finish(job.id, "TIMEOUT", exit_code="0:15")
    assert not job.wait(timeout=3)
    preempted = job.id
    fake.finish(preempted, "PREEMPTED", exit_code="0:15")
    fake.purge()
    assert not job.wait(timeout=3)  # resubmitted under max_requeues, grown limit kept
    assert job.previous_ids == [preempted]
    assert fake.jobs[job.id].options["time"] == "0-00:02:00"
    fake.run_job(job.id)
    assert job.get_result(timeout=10) == 20
    assert [a.state for a in job.attempts] == ["TIMEOUT", "COMPLETED"]


def test_retry_without_a_limit_to_grow_is_refused_before_submission(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    with pytest.raises(ConfigurationError, match="sets no `mem=`"):
        add.with_options(retry=Retry())(1, 2)
    with pytest.raises(ConfigurationError, match=r"must be a slurm.Retry"):
        add.with_options(retry=3)(1, 2)
    assert fake.calls("sbatch") == 0


def test_journal_replays_a_retried_call_without_resubmitting(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    journal_path = tmp_path / "journal.jsonl"
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as first:
        first.session.journal = Journal(journal_path)
        job = sized(5)
        fake.finish(job.id, "TIMEOUT", exit_code="0:15")
        assert not job.wait(timeout=3)
        fake.run_job(job.id)
        assert job.get_result(timeout=10) == 50
    assert fake.calls("sbatch") == 2
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as again:
        again.session.journal = Journal(journal_path)
        replayed = sized(5)
        assert replayed.id == job.id and replayed.get_result(timeout=10) == 50
        assert [a.state for a in replayed.attempts] == ["TIMEOUT", "COMPLETED"]
    assert fake.calls("sbatch") == 2


def test_usage_from_accounting_and_from_the_runner(tmp_path: Path, fake: FakeSlurm) -> None:
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "a"), python="python3"):
        job = add(1, 1)
        fake.run_job(job.id)
        job.wait(timeout=10)
        usage = job.usage
        assert usage is not None and usage.source == "sacct"
        assert usage.mem_bytes == 2 * 1024**3 and usage.time_limit_s == 3600.0
        assert usage.max_rss_source == "runner" and usage.max_rss_bytes  # sacct had no sample
    off = FakeSlurm(accounting=False)
    with Cluster(transport=off, job_base_dir=str(tmp_path / "b"), python="python3"):
        array = add.map([(1, 2), (3, 4)])
        off.run_all()
        assert array.get_results(timeout=10) == [3, 7]
        element = array[1].usage
        assert element is not None and element.source == "runner"
        assert element.elapsed_s is not None and element.cpu_time_s is not None
        summary = array.usage
        assert summary.count == 2 and summary.sources == {"runner": 2}


def test_usage_without_limits_is_asked_again(tmp_path: Path, fake: FakeSlurm) -> None:
    """Accounting's first row of a job that just ended may lack its limits: not kept."""
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "a"), python="python3"):
        job = add(1, 1)
        fake.run_job(job.id)
        job.wait(timeout=10)
        fake.partial_usage_answers = 1
        first = job.usage
        assert first is not None and first.time_limit_s is None
        again = job.usage
        assert again is not None and again.time_limit_s == 3600.0
        assert job.usage is again  # complete: kept, sacct is not asked a third time


def test_max_array_size_is_asked_of_the_controller_when_slurm_conf_includes_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    conf = tmp_path / "slurm.conf"
    conf.write_text("MaxArraySize=50\nInclude /etc/slurm/site.conf\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    fake = FakeSlurm(max_array_size=3)
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "j"), python="python3") as cluster:
        assert cluster.max_array_size == 3
        assert fake.calls("scontrol") == 1
