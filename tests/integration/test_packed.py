"""Packed arrays on the dev cluster: many calls per array element, each its own Job.

Issue 27: ``task.map(items, pack=K)`` and ``cluster.batch(pack=K)`` run K calls
in one Python process per element; every call keeps its result, exception
(with traceback), stdout and stderr, usage, cancellation, and a preempted
element resumes at its first call without a result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import jobfuncs
import pytest
from test_preemption import _preempt, _runs_of
from test_ssh_cluster import _ssh_cluster

from slurm import Cluster, JobState, task
from slurm.devcluster import SshInfo
from slurm.errors import JobTerminatedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.integration


def test_packed_map_keeps_each_calls_result_exception_and_logs(cluster: Cluster) -> None:
    runs = jobfuncs.maybe_fail.map(range(5), pack=2)
    # Three elements (calls 0-1, 2-3, 4): ids shared within an element.
    assert len({job.id for job in runs}) == 3
    assert runs[0].id == runs[1].id != runs[2].id
    results = runs.get_results(timeout=180, return_exceptions=True)
    assert results[:2] == [0, 10] and results[3:] == [30, 40]
    error = results[2]
    assert isinstance(error, ValueError) and "item 2 is bad" in str(error)
    assert "maybe_fail" in "".join(getattr(error, "__notes__", []))  # the remote traceback
    assert [job.state for job in runs] == [JobState.COMPLETED] * 2 + [JobState.FAILED] + [
        JobState.COMPLETED
    ] * 2
    for job in runs:
        usage = job.usage
        assert usage is not None and usage.source == "runner"


def test_packed_calls_have_their_own_stdout_and_stderr(cluster: Cluster) -> None:
    with cluster.batch(pack=3):
        jobs = [jobfuncs.print_and_return(f"word{i}") for i in range(3)]
    assert [job.get_result(timeout=180) for job in jobs] == ["word0", "word1", "word2"]
    assert len({job.id for job in jobs}) == 1
    for i, job in enumerate(jobs):
        assert job.get_stdout() == f"word{i}\n"
        assert job.get_stderr() == f"err:word{i}\n"


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.1)


def test_preempted_element_resumes_at_its_first_unfinished_call(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    runs = jobfuncs.packed_step.map([(i, str(log), 1) for i in range(3)], pack=3)
    _wait_for(Path(f"{log}.blocked"))  # call 0 is done, call 1 runs
    _preempt(runs[0].id)
    assert runs.get_results(timeout=240) == [0, 1, 2]
    # Call 0 ran once, before the preemption; call 1 again after it; call 2 only after.
    lines = log.read_text().split("\n")
    assert lines[:2] == ["0 0", "1 0"], lines
    assert [line.split()[0] for line in lines[2:] if line] == ["1", "2"], lines
    assert runs[0].requeue_count == 0 and runs[1].requeue_count >= 1
    element_runs = _runs_of(runs[0].id)[runs[0].id]
    assert "PREEMPTED" in element_runs or "REQUEUED" in element_runs, element_runs


def test_a_cancelled_packed_call_is_skipped(cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    runs = jobfuncs.after_file.map([(str(gate), i) for i in range(3)], pack=3)
    runs[2].cancel()
    gate.touch()
    assert runs[0].get_result(timeout=180) == 0
    assert runs[1].get_result(timeout=180) == 1
    with pytest.raises(JobTerminatedError, match="cancelled before it ran"):
        runs[2].get_result(timeout=180)
    assert runs[2].state is JobState.CANCELLED
    events = Path(runs[2].runs_path).read_text().split()
    assert "cancelled" in events and "start" not in events  # it never ran
    assert runs[0].state is runs[1].state is JobState.COMPLETED  # the others ran on


@task(time="00:02:00", mem="64M")
def _shout(text: str) -> str:
    print(text.upper())
    if text == "boom":
        raise KeyError(text)
    return text * 2


@pytest.fixture()
def ssh_cluster(devcluster_ssh: SshInfo, tmp_path: Path) -> Iterator[Cluster]:
    with _ssh_cluster(devcluster_ssh, tmp_path / "jobs") as cluster:
        yield cluster


def test_packed_map_over_ssh(ssh_cluster: Cluster) -> None:
    runs = _shout.map(["a", "boom", "c", "d"], pack=2, pack_parallel=2)
    results = runs.get_results(timeout=240, return_exceptions=True)
    assert results[0] == "aa" and results[2:] == ["cc", "dd"]
    assert isinstance(results[1], KeyError)
    assert [job.get_stdout() for job in runs] == ["A\n", "BOOM\n", "C\n", "D\n"]
    assert runs[0].id == runs[1].id != runs[2].id == runs[3].id  # two elements of two calls


def test_a_packed_element_requeues_at_its_time_limit_and_resumes(cluster: Cluster) -> None:
    # Two calls of a minute: an element of two minutes, warned 60 s before its end while
    # call 1 runs. It requeues itself although the call set no checkpoint (the call
    # done keeps its result), and resumes at call 1.
    runs = jobfuncs.until_requeued.map([0, 1], pack=2)
    assert runs.get_results(timeout=400) == [0, 1]
    assert runs[0].requeue_count == 0 and runs[1].requeue_count == 1
    assert "requeued-time-limit" in Path(runs[1].runs_path).read_text()
