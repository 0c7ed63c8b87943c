"""Packed arrays (issue 27): the checks and arithmetic, and the client's and runner's
paths against the in-memory Slurm (``fakeslurm``), which runs the real runner here."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import test_inmemory_slurm
from fakeslurm import FakeSlurm

from slurm import Cluster, Retry, task
from slurm._slurm.commands import JobState
from slurm._slurm.pack import (
    Packing,
    auto_per_element,
    check_packing,
    element_options,
    idle_cpus,
    sinfo_cpus_argv,
)
from slurm._wire.layout import done_marker, log_patterns
from slurm._wire.pack import PackPlan
from slurm.errors import ConfigurationError, JobTerminatedError, ResultError

# --- pure: options, plan, arithmetic ---------------------------------------------------------


@pytest.mark.parametrize("pack", [0, -1, 1.5, True, "2", "many", None])
def test_bad_pack_is_refused_with_what_to_pass(pack: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"pack=.*Nothing was submitted.*whole number"):
        check_packing("f.map()", pack)


@pytest.mark.parametrize("parallel", [0, -2, 2.0, False])
def test_bad_pack_parallel_is_refused(parallel: Any) -> None:
    with pytest.raises(ConfigurationError, match="pack_parallel="):
        check_packing("f.map()", 4, parallel)


def test_bad_pack_target_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="pack_target="):
        check_packing("f.map()", "auto", 1, "ten minutes")


def test_good_packing() -> None:
    assert check_packing("f", 5) == Packing(5, 1, 600)
    assert check_packing("f", "auto", 2, "00:02:00") == Packing(None, 2, 120)


def test_plan_gives_each_element_its_calls_in_order() -> None:
    plan = PackPlan(calls=7, per_element=3)
    assert plan.elements == 3
    assert [list(plan.calls_of(e)) for e in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [plan.element_of(c) for c in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    assert PackPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    "text", ['{"calls": 3, "per_element": 0, "parallel": 1, "version": 1}', "{}", "[1]", "x"]
)
def test_a_foreign_plan_is_a_clear_error(text: str) -> None:
    with pytest.raises(ResultError, match=r"pack\.json"):
        PackPlan.from_json(text)


def _auto(
    calls: int = 1000,
    idle: int | None = 8,
    cpus: int = 1,
    parallel: int = 1,
    seconds: float | None = None,
) -> int:
    return auto_per_element(
        calls, idle=idle, cpus_per_call=cpus, parallel=parallel, call_seconds=seconds, target_s=600
    )


def test_auto_fills_the_free_cpus_and_keeps_elements_under_the_target() -> None:
    assert _auto() == 125  # eight elements
    assert _auto(cpus=2) == 250  # four fit
    assert _auto(calls=5) == 1  # fewer calls than CPUs: one each
    assert _auto(idle=None) == 1000  # sinfo silent: one element
    # Calls of 60 s before: at most ten to an element of ten minutes.
    assert _auto(seconds=60.0) == 10
    assert _auto(seconds=60.0, parallel=2) == 20


def test_an_element_asks_for_its_calls_time_and_cpus() -> None:
    options = {"time": "00:02:00", "mem": "1G", "cpus_per_task": 2}
    assert element_options(options, 5, 1) == {**options, "time": "0-00:10:00"}
    assert element_options(options, 5, 2) == {**options, "time": "0-00:06:00", "cpus_per_task": 4}
    assert element_options({"mem": "1G"}, 5, 1) == {"mem": "1G"}  # the partition's default


def test_sinfo_idle_cpus() -> None:
    assert sinfo_cpus_argv("debug") == ["sinfo", "-h", "-o", "%C", "-p", "debug"]
    assert idle_cpus("3/5/0/8\n") == 5
    assert idle_cpus("3/5/0/8\n0/16/0/16\n") == 21
    assert idle_cpus("") is None


def test_file_names_of_packed_calls() -> None:
    assert done_marker("12_3") == "12_3"
    assert done_marker("12_3", 7) == "12_3+7"
    assert log_patterns("/j", array=True, packed=True) == (
        "/j/logs/element-%a.out",
        "/j/logs/element-%a.err",
    )


# --- the client and the runner, against the in-memory Slurm ----------------------------------

fake = test_inmemory_slurm.fake  # the same fixtures: an in-memory Slurm, a cluster on it
cluster = test_inmemory_slurm.cluster


@task(time="00:01:00")
def square(x: int) -> int:
    print(f"out {x}")
    if x == 3:
        raise ValueError("three is bad")
    return x * x


_flaky_lock = threading.Lock()


@task(time="00:01:00", mem="100M", retry=Retry(max_attempts=2, exceptions=(OSError,)))
def flaky(x: int, marker: str) -> int:
    with _flaky_lock:
        if x == 1 and not Path(marker).exists():
            Path(marker).touch()
            raise OSError("first try fails")
    return x


def test_one_sbatch_and_one_element_per_k_calls(cluster: Cluster, fake: FakeSlurm) -> None:
    runs = square.map(range(5), pack=2)
    assert fake.calls("sbatch") == 1
    assert len(fake.jobs) == 3  # elements 0-2
    assert [job.id for job in runs] == [f"{runs.id}_{e}" for e in (0, 0, 1, 1, 2)]
    script = runs[0].get_script()
    assert "--pack" in script and "#SBATCH --time=0-00:02:00" in script  # two calls' time
    fake.run_all()
    results = runs.get_results(timeout=10, return_exceptions=True)
    assert results[:3] == [0, 1, 4] and results[4] == 16
    assert isinstance(results[3], ValueError)
    assert [job.get_stdout() for job in runs] == [f"out {x}\n" for x in range(5)]
    assert runs[3].state is JobState.FAILED and runs[2].state is JobState.COMPLETED


def test_a_requeued_element_never_runs_a_finished_call_again(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    runs = square.map([0, 1, 2], pack=3)
    key = runs[0].id
    fake.run_job(key)
    first = Path(runs[0].runs_path).read_text()
    Path(runs[2].result_path).unlink()  # as if the element was preempted in its last call
    fake.jobs[key].state = "PENDING"
    fake.run_job(key)
    assert Path(runs[0].runs_path).read_text() == first  # not even looked at again
    assert Path(runs[2].runs_path).read_text().count(" start ") == 2
    assert runs.get_results(timeout=10) == [0, 1, 4]


def test_each_packed_call_keeps_its_own_retry(
    cluster: Cluster, fake: FakeSlurm, tmp_path: Path
) -> None:
    marker = str(tmp_path / "failed-once")
    runs = flaky.map([(i, marker) for i in range(3)], pack=3)
    fake.run_all()
    # Call 1 failed with an OSError: only it runs again, alone, in a new job of its element.
    assert not runs[1].wait(timeout=3)  # retried: waiting for the second attempt
    retried = fake.jobs[runs[1].id]
    assert retried.options["array"] == "0" and retried.env == {"SLURM_SDK_PACK_CALLS": "1"}
    fake.run_job(runs[1].id)
    assert runs.get_results(timeout=10) == [0, 1, 2]
    assert runs[1].attempt == 2 and runs[0].attempt == runs[2].attempt == 1
    for job in (runs[0], runs[2]):  # the retry did not run them again
        assert Path(job.runs_path).read_text().count(" start ") == 1


def test_a_cancelled_call_is_skipped_and_its_element_runs_on(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    runs = square.map([0, 1, 2], pack=3)
    runs[1].cancel()
    assert fake.calls("scancel") == 0  # the element runs the other calls
    fake.run_all()
    assert runs[0].get_result(timeout=10) == 0 and runs[2].get_result(timeout=10) == 4
    with pytest.raises(JobTerminatedError, match="cancelled before it ran"):
        runs[1].get_result(timeout=10)
    assert runs[1].state is JobState.CANCELLED
    assert runs[1].get_stdout() == ""  # it never ran


def test_pack_parallel_runs_calls_in_children(cluster: Cluster, fake: FakeSlurm) -> None:
    runs = square.map([0, 1, 2, 3], pack=4, pack_parallel=2)
    assert "#SBATCH --cpus-per-task=2" in runs[0].get_script()
    fake.run_all()
    results = runs.get_results(timeout=10, return_exceptions=True)
    assert results[:3] == [0, 1, 4] and isinstance(results[3], ValueError)
    assert [job.get_stdout() for job in runs] == [f"out {x}\n" for x in range(4)]


def test_batch_packs_calls_too(cluster: Cluster, fake: FakeSlurm) -> None:
    with cluster.batch(pack=10):
        jobs = [square(x) for x in (4, 5, 6)]
    assert len(fake.jobs) == 1 and len({job.id for job in jobs}) == 1
    fake.run_all()
    assert [job.get_result(timeout=10) for job in jobs] == [16, 25, 36]


def test_bad_input_submits_nothing(cluster: Cluster, fake: FakeSlurm) -> None:
    for pack in (0, -3, 2.5):
        with pytest.raises(ConfigurationError, match="pack="):
            square.map(range(3), pack=pack)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pack="), cluster.batch(pack=0):
        pass
    lock = threading.Lock()
    with pytest.raises(
        ConfigurationError, match=r"call 2 of 3 \(<unlocked _th.*of square\(\) cannot be sent"
    ):
        square.map([1, 2, lock], pack=2)
    assert fake.calls("sbatch") == 0
    assert not list(Path(cluster.base_dir).glob("square-*"))


def test_auto_asks_sinfo_and_the_earlier_runs(cluster: Cluster, fake: FakeSlurm) -> None:
    fake.sinfo_cpus = "6/2/0/8"  # two idle CPUs: two elements
    first = square.map(range(8), pack="auto")
    assert len(fake.jobs) == 2 and fake.commands[0][:4] == ["sinfo", "-h", "-o", "%C"]
    fake.run_all()
    assert first.get_results(timeout=10, return_exceptions=True)[4] == 16
    # Those calls took 30 s each (so says the runner's file): an element of at most
    # one minute (pack_target) runs two of them.
    usage = Path(first[0].paths.usage)
    record = json.loads(usage.read_text())
    usage.write_text(json.dumps({**record, "ended": record["started"] + 30}))
    second = square.map(range(8), pack="auto", pack_target="00:01:00")
    assert len({job.id for job in second}) == 4


def test_a_packed_call_is_found_again_by_its_marker(cluster: Cluster, fake: FakeSlurm) -> None:
    runs = square.map([0, 1, 2, 4], pack=2)
    fake.run_all()
    assert runs[3].done_marker == f"{runs.id}_1+3"
    again = cluster.get_job(runs[3].done_marker)  # another process, after the fact
    assert (again.id, again.array_index, again.packed) == (runs[3].id, 3, True)
    assert again.get_result(timeout=10) == 16 and again.get_stdout() == "out 4\n"


def test_the_calls_of_one_element_are_tracked_apart(cluster: Cluster, fake: FakeSlurm) -> None:
    runs = square.map([0, 1], pack=2)
    key = runs[0].id
    # The element has run its first call and is still in its second: only call 0 runs
    # here, and the element stays RUNNING (Slurm's word would take two looks to end it).
    fake.jobs[key].env = {"SLURM_SDK_PACK_CALLS": "0"}
    fake.run_job(key)
    fake.jobs[key].state = "RUNNING"
    assert runs[0].get_result(timeout=10) == 0
    # get_status() looks now: .state is the tracker's last look, which may not have come
    # yet when call 0's result file (found first, without Slurm) ended the wait above.
    assert not runs[1].done() and runs[1].get_status() == JobState.RUNNING
    assert runs[1].state is JobState.RUNNING
