"""A worker pool on the real dev cluster: calls in worker jobs, each with its own Job.

Slurm's own records (``squeue``, ``sacct``) judge what ran where: a pool's calls
make no jobs of their own, a worker killed with a call in hand shows in sacct as
the call's attempts say, and idle workers end on their own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from nodepython import node_python
from poolfuncs import PoolError, fail, hold, pooled_children, shout, total

from slurm import Cluster, JobState, task
from slurm._wire.layout import JobPaths
from slurm._wire.runlog import parse_run_log
from slurm.devcluster import SshInfo
from slurm.errors import ConfigurationError, JobTerminatedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.integration

_TIMEOUT = 180.0


def _until(what: str, predicate: Callable[[], Any], timeout: float = _TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"never: {what}")
        time.sleep(0.2)


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        jid, _, state = line.partition("|")
        if jid == job_id:
            return state.split()[0] if state else ""
    return ""


def _queued(job_id: str) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True
    ).stdout
    return any(line.split()[0] == job_id for line in out.splitlines() if line.split())


def _finished(job_paths: JobPaths) -> list[str]:
    return [e.event for e in parse_run_log(Path(job_paths.runs).read_text()) if e.event]


def _jobs_named(name: str, since: float) -> set[str]:
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 5))
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--name", name, "-S", start, "-E", "now", "-o", "JobID"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("_")[0] for line in out.split() if line}


def _names_of(job_ids: set[str]) -> dict[str, str]:
    """sacct's job name of each of ``job_ids`` it knows, asked by id.

    A worker cancelled while still pending, before the scheduler judged it
    eligible, has no eligible time: a search by name and time window skips it,
    while a search by id finds it.
    """
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(sorted(job_ids)), "-o", "JobID,JobName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = (line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {jid.split("_")[0]: name for jid, name in rows}


def test_pooled_calls_keep_results_exceptions_and_logs(cluster: Cluster) -> None:
    since = time.time()
    with cluster.pool(workers=2, idle_timeout=5, time="00:05:00", mem="128M") as pool:
        one = shout(3)
        many = shout.map(list(range(12)))
        bad = fail(7)
    assert one.id.startswith("pool-") and many[4].id == f"{many.id}_4"
    assert one.get_result() == 9
    assert many.get_results() == [i * i for i in range(12)]
    # Each call's output in its own files, none of the others'.
    assert many[5].get_stdout() == "stdout of call 5\n"
    assert many[5].get_stderr() == "stderr of call 5\n"
    assert one.get_stdout() == "stdout of call 3\n"
    error = bad.exception()
    assert isinstance(error, PoolError) and str(error) == "call 7 failed"
    assert "raise PoolError" in "".join(getattr(error, "__notes__", []))
    assert len(one.attempts) == 1 and one.usage is not None
    # After the block, a plain job takes the pooled map's results as its argument.
    assert total(many).get_result(timeout=_TIMEOUT) == sum(i * i for i in range(12))
    # 14 calls, and no Slurm job but the workers (one or two).
    assert 1 <= len(pool.worker_ids) <= 2
    assert _jobs_named("shout", since) == _jobs_named("fail", since) == set()
    _until("sacct has the one plain job", lambda: len(_jobs_named("total", since)) == 1)
    workers = {w.split("_")[0] for w in pool.worker_ids}
    _until(
        "sacct lists the workers",
        lambda: _names_of(workers) == dict.fromkeys(workers, "slurm-pool"),
    )


@pytest.mark.parametrize(
    ("signal", "lost_as"), [("TERM", "INTERRUPTED"), ("KILL", "LEASE_EXPIRED")]
)
def test_worker_killed_with_a_call_in_hand_finishes_elsewhere_once(
    cluster: Cluster, home_tmp: Path, signal: str, lost_as: str
) -> None:
    log, go = home_tmp / "log", home_tmp / "go"
    with cluster.pool(workers=1, lease=6, idle_timeout=30, time="00:05:00", mem="128M") as pool:
        job = hold(str(log), str(go))
        first = _until("the call started", lambda: log.exists() and log.read_text().split())
        worker = first[1]
        assert worker in pool.worker_ids
        # TERM: the worker gives the call back; KILL (the batch shell is the worker): its
        # lease expires and the next worker takes the call again.
        subprocess.run(
            ["scancel", f"--signal={signal}", "--batch", worker]
            if signal == "KILL"
            else ["scancel", worker],
            check=True,
        )
        lines = _until(
            "a second worker ran it",
            lambda: log.read_text().count("start") == 2 and log.read_text().split(),
        )
        go.write_text("")
        assert job.get_result(timeout=_TIMEOUT) == "held"
    second = lines[3]
    assert second != worker and second in pool.worker_ids
    assert log.read_text().count("end") == 1  # the killed run never got that far
    attempts = job.attempts
    assert [(a.job_id, a.state) for a in attempts[:-1]] == [(worker, lost_as)]
    assert attempts[-1].job_id == job.id and attempts[-1].state == "COMPLETED"
    # Slurm agrees: the first worker was stopped, the second ran on.
    stopped = _until("sacct has the first worker", lambda: _sacct_state(worker))
    assert stopped in ("CANCELLED", "FAILED"), stopped
    assert _finished(job.paths).count("finished") == 1


def test_a_call_cancelled_while_it_waits_is_skipped(cluster: Cluster, home_tmp: Path) -> None:
    log, go = home_tmp / "log", home_tmp / "go"
    with cluster.pool(workers=1, idle_timeout=30, time="00:05:00", mem="128M"):
        busy = hold(str(log), str(go))  # keeps the one worker busy
        _until("the first call started", lambda: log.exists() and log.read_text())
        waiting = shout(5)  # queued behind it (calls are taken in no set order)
        assert (busy.state, waiting.state) == (JobState.RUNNING, JobState.PENDING)
        waiting.cancel()
        go.write_text("")
    assert busy.get_result() == "held"
    error = waiting.exception()
    assert isinstance(error, JobTerminatedError) and "cancelled" in str(error)
    assert waiting.get_stdout() == ""  # it never ran


def test_a_pool_asks_slurm_nothing_while_its_workers_are_known(
    cluster: Cluster, home_tmp: Path
) -> None:
    log, go = home_tmp / "log", home_tmp / "go"
    with cluster.pool(workers=1, idle_timeout=30, time="00:05:00", mem="128M") as pool:
        job = hold(str(log), str(go))
        _until("the call started", lambda: log.exists() and log.read_text())
        started = pool.commands  # sbatch --test-only, sbatch
        time.sleep(7)  # three looks at the queue, a call in hand each time
        assert pool.commands == started == 2
        go.write_text("")
        assert job.get_result(timeout=_TIMEOUT) == "held"
    # Leaving: the one worker had started (its file says so): nothing to cancel.
    assert pool.commands == 2
    (worker,) = pool.worker_ids
    _until("the worker left", lambda: not _queued(worker))
    assert _until("sacct has it", lambda: _sacct_state(worker)) == "COMPLETED"


def test_a_workflows_children_in_a_pool(cluster: Cluster) -> None:
    flow = pooled_children(5)
    answer = flow.get_result(timeout=_TIMEOUT)
    assert answer["results"] == [i * i for i in range(5)]
    assert all(i.startswith("pool-") for i in answer["ids"])
    assert 1 <= len(answer["workers"]) <= 2


def test_idle_workers_exit_and_new_calls_start_new_ones(cluster: Cluster) -> None:
    with cluster.pool(workers=1, idle_timeout=1, time="00:05:00", mem="128M") as pool:
        assert shout(2).get_result(timeout=_TIMEOUT) == 4
        (first,) = pool.worker_ids
        _until("the idle worker left", lambda: not _queued(first))
        assert _until("sacct has it", lambda: _sacct_state(first)) == "COMPLETED"
        assert shout(4).get_result(timeout=_TIMEOUT) == 16
        assert len(pool.worker_ids) == 2 and pool.worker_ids[0] == first


def test_bad_pool_input_is_refused_before_anything_is_submitted(cluster: Cluster) -> None:
    with pytest.raises(ConfigurationError, match="workers must be a whole number >= 1"):
        cluster.pool(workers=0)
    refused = pytest.raises(ConfigurationError, match="Slurm would refuse the pool's workers")
    with refused as info, cluster.pool(workers=2, partition="no-such-partition"):
        pytest.fail("the block ran")
    assert "partition" in str(info.value).lower()
    assert not any(p.name.startswith("pool-") for p in Path(cluster.base_dir).iterdir())


# --- over SSH ------------------------------------------------------------------------


def _tasks() -> Any:
    @task(time="00:02:00", mem="64M")
    def cube(x: int) -> int:
        print(f"cube {x}")
        return x**3

    return cube


cube = _tasks()


@pytest.fixture()
def ssh_cluster(devcluster_ssh: SshInfo, tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        python=node_python(),
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
    ) as c:
        yield c


def test_a_pool_over_ssh(ssh_cluster: Cluster) -> None:
    with ssh_cluster.pool(workers=2, idle_timeout=5, time="00:05:00", mem="128M") as pool:
        jobs = cube.map(list(range(6)))
    assert jobs.get_results() == [i**3 for i in range(6)]
    assert jobs[2].get_stdout() == "cube 2\n"
    assert 1 <= len(pool.worker_ids) <= 2
