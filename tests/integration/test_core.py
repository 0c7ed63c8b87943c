"""The core SDK against the real dev cluster: tasks, jobs, results, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jobfuncs
import pytest
from slurmrecords import wait_for_records

from slurm import (
    Cluster,
    ConfigurationError,
    DependencyError,
    InvalidOptionError,
    JobState,
    JobTerminatedError,
    JobTimeoutError,
    NotSubmittableError,
    ResultError,
    TaskFailedError,
    task,
)


def _submitted_under(base_dir: str) -> int:
    """Jobs squeue knows (any state) whose output goes into ``base_dir``: only this test's,
    where counting the whole queue would count other sessions' jobs coming and going on the
    shared cluster (and the preflight's probe of what the nodes see, which writes nowhere)."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "--Format=StdOut:4000"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(1 for path in out.stdout.splitlines() if path.strip().startswith(f"{base_dir}/"))


@pytest.fixture(scope="module")
def early_job(devcluster: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """Jobs submitted when this module starts and checked at its end: one to
    reattach to after Slurm purged it, one that runs into its 1-minute time limit."""
    base = str(tmp_path_factory.mktemp("early") / "jobs")
    with Cluster(backend_type="local", job_base_dir=base):
        job = jobfuncs.add(1, 1)
        # No checkpoint, requeueable by default: the time-limit warning must not requeue
        # it (it would start from scratch and hit the same limit again).
        too_long = jobfuncs.sleep_forever.with_options(time="00:01:00")()
        job.wait(timeout=60)
    return base, job.id, too_long.id


def test_result_comes_home_and_job_is_named_after_function(
    cluster: Cluster, early_job: tuple[str, str, str]
) -> None:
    job = jobfuncs.add(2, 3)
    assert job.get_result(timeout=60) == 5
    assert job.result() == 5
    assert job.done() and job.is_successful() and job.state is JobState.COMPLETED
    assert job.exception() is None
    named = jobfuncs.add.with_options(job_name="custom name")(1, 1)
    assert named.get_result(timeout=60) == 2
    records = wait_for_records(job.id, named.id)
    assert records[job.id]["JobName"] == "add"
    assert records[named.id]["JobName"] == "custom name"
    assert records[job.id]["Partition"] == "debug"


def test_bare_decorator_and_submit_overrides(cluster: Cluster) -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    job = cluster.submit(double, partition="compute", cpus_per_task=2)(21)
    assert job.get_result(timeout=60) == 42
    record = wait_for_records(job.id)[job.id]
    assert record["Partition"] == "compute"
    assert record["NCPUS"] == "2"


def test_option_typo_is_caught_before_anything_is_submitted(cluster: Cluster) -> None:
    with pytest.raises(InvalidOptionError, match="cpus_per_task"):
        task(cpu_per_task=2)(lambda: None)
    with pytest.raises(InvalidOptionError, match="partition"):
        jobfuncs.add.with_options(partitoin="debug")
    with pytest.raises(TypeError, match="nothing was submitted"):
        jobfuncs.add(1)
    with pytest.raises(ConfigurationError, match="cannot be pickled"):
        jobfuncs.echo(x for x in range(3))
    assert _submitted_under(cluster.base_dir) == 0
    # No job directory: only the SDK's own (.index, the probe's .seen-by-nodes, and the
    # .envs a checkout under /tmp needs, built before the call is pickled).
    assert not [p for p in Path(cluster.base_dir).iterdir() if not p.name.startswith(".")]


def test_calling_outside_a_cluster_says_what_to_do() -> None:
    with pytest.raises(NotSubmittableError, match=r"with cluster:.*unwrapped"):
        jobfuncs.add(1, 2)
    assert jobfuncs.add.unwrapped(1, 2) == 3


def test_remote_exception_keeps_its_type_and_traceback(cluster: Cluster) -> None:
    job = jobfuncs.fail_with("bad input", code=3)
    with pytest.raises(jobfuncs.CustomError) as info:
        job.get_result(timeout=60)
    assert info.value.code == 3
    note = "\n".join(info.value.__notes__)
    assert f"job {job.id}" in note and "fail_with" in note and "bad input" in note
    assert job.state is JobState.FAILED
    assert isinstance(job.exception(), jobfuncs.CustomError)
    assert wait_for_records(job.id)[job.id]["State"] == "FAILED"


def test_unrebuildable_exception_becomes_task_failed_error(cluster: Cluster) -> None:
    with pytest.raises(TaskFailedError) as info:
        jobfuncs.fail_unpicklable().get_result(timeout=60)
    assert info.value.type_name.endswith("_Unpicklable")
    assert "holds a lock" in info.value.remote_message
    assert "Traceback" in info.value.traceback_text


def test_unpicklable_return_value_is_reported_as_such(cluster: Cluster) -> None:
    with pytest.raises(ResultError, match="cannot be pickled"):
        jobfuncs.return_unpicklable().get_result(timeout=60)


def test_job_killed_without_result_names_state_and_stderr(cluster: Cluster) -> None:
    job = jobfuncs.kill_self()
    with pytest.raises(JobTerminatedError) as info:
        job.get_result(timeout=60)
    assert info.value.state in ("FAILED", "CANCELLED")
    assert job.id in str(info.value)
    assert job.wait(timeout=5) is False


def test_failure_before_python_starts(cluster: Cluster) -> None:
    job = jobfuncs.add.with_options(setup="echo 'no such module: cuda' >&2; exit 3")(1, 2)
    with pytest.raises(JobTerminatedError) as info:
        job.get_result(timeout=60)
    assert info.value.state == "FAILED"
    assert info.value.exit_code == "3:0"
    assert "no such module: cuda" in info.value.stderr_tail


def test_unusable_python_is_refused_before_submission(cluster: Cluster) -> None:
    broken = Cluster(
        backend_type="local", job_base_dir=cluster.base_dir, python="/nonexistent/python3"
    )
    with pytest.raises(ConfigurationError, match="/nonexistent/python3"):
        broken.submit(jobfuncs.add)(1, 2)
    assert _submitted_under(cluster.base_dir) == 0
    broken.close()


def test_cancel_ends_wait_with_cancelled_state(cluster: Cluster) -> None:
    job = jobfuncs.sleep_forever()
    deadline = time.monotonic() + 30
    while job.get_status() != JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    job.cancel()
    with pytest.raises(JobTerminatedError, match="CANCELLED"):
        job.get_result(timeout=60)
    assert job.state is JobState.CANCELLED


def test_wait_and_result_timeouts(cluster: Cluster) -> None:
    job = jobfuncs.sleep_then(3, "late")
    assert job.wait(timeout=0.5) is False
    with pytest.raises(JobTimeoutError):
        job.get_result(timeout=0.5)
    assert job.get_result(timeout=60) == "late"


def test_logs_script_and_directory(cluster: Cluster) -> None:
    job = jobfuncs.print_and_return("hello logs")
    job.wait(timeout=60)
    assert "hello logs" in job.get_stdout()
    assert "err:hello logs" in job.get_stderr()
    script = job.get_script()
    assert script.startswith("#!/bin/bash")
    assert "--job-name=print_and_return" in script and "slurm.runner" in script
    job_dir = Path(job.job_dir)
    assert job_dir.is_dir() and (job_dir.stat().st_mode & 0o777) == 0o700
    assert (job_dir / "result.pkl").is_file()


def test_dependencies_after_and_job_arguments(cluster: Cluster) -> None:
    first = jobfuncs.sleep_then(2, 10)
    second = jobfuncs.add(first, 5)  # a Job argument: its result, with afterok
    third = jobfuncs.echo.after(first)("after")
    assert second.get_result(timeout=60) == 15
    assert third.get_result(timeout=60) == "after"
    records = wait_for_records(first.id, second.id, third.id)
    assert records[second.id]["Start"] >= records[first.id]["End"]
    assert records[third.id]["Start"] >= records[first.id]["End"]


def test_after_any_runs_after_failure_and_afterok_never_does(cluster: Cluster) -> None:
    failing = jobfuncs.fail_after(3, "first fails")
    anyway = jobfuncs.echo.after(failing, kind="afterany")("ran anyway")
    never = jobfuncs.echo.after(failing)("never")  # submitted while `failing` still runs
    assert anyway.get_result(timeout=60) == "ran anyway"
    with pytest.raises(JobTerminatedError, match="depends on failed"):
        never.get_result(timeout=90)
    # Once the failure is known, an afterok call is refused before anything is submitted.
    with pytest.raises(DependencyError, match="already failed"):
        jobfuncs.echo.after(failing)("refused")
    with pytest.raises(DependencyError, match="already failed"):
        jobfuncs.echo(failing)


def test_map_results_in_order_and_failures_do_not_hide_others(cluster: Cluster) -> None:
    array = jobfuncs.maybe_fail.map(range(5), max_concurrent=3)
    assert len(array) == 5
    results = array.get_results(timeout=90, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 2] == [0, 10, 30, 40]
    assert isinstance(results[2], ValueError)
    with pytest.raises(ValueError, match="item 2") as info:
        array.get_results(timeout=30)
    assert "indices 2" in "\n".join(info.value.__notes__)
    assert array[4].get_result() == 40
    assert [job.id for job in array] == [f"{array.id}_{i}" for i in range(5)]


def test_a_result_read_leaves_no_done_marker_behind(cluster: Cluster) -> None:
    """The tracker lists the session's done directory at every look while calls run; the
    markers it has read are removed, so a look at a map of 1000 calls lists what is new,
    not 1000 names (issue 27: the client's CPU on W3)."""
    import os

    array = jobfuncs.add.map([(i, 1) for i in range(12)])
    assert array.get_results(timeout=90) == [i + 1 for i in range(12)]
    left = set(os.listdir(cluster.done_dir))
    assert not left & {job.done_marker for job in array}, sorted(left)


def test_map_items_as_tuples_and_dicts(cluster: Cluster) -> None:
    assert jobfuncs.add.map([(1, 2), {"a": 3, "b": 4}]).get_results(timeout=60) == [3, 7]


def test_job_context_is_injected(cluster: Cluster) -> None:
    facts = jobfuncs.job_facts.with_options(cpus_per_task=3)().get_result(timeout=60)
    assert facts["job_id"].isdigit()
    assert facts["world_size"] == 1 and facts["hostnames"]
    assert set(facts["torch"]) >= {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"}
    assert facts["cpus_per_task"] == "3"
    assert facts["job_name"] == "job_facts"


def test_reattach_from_another_process(cluster: Cluster, tmp_path: Path) -> None:
    job = jobfuncs.add(20, 22)
    job.wait(timeout=60)
    code = textwrap.dedent(
        f"""
        from slurm import Cluster
        c = Cluster(backend_type="local", job_base_dir={cluster.base_dir!r})
        job = c.get_job({job.id!r})
        print(job.get_result(timeout=30), job.state.value)
        c.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["42", "COMPLETED"]


def test_function_from_main_travels_by_value(devcluster: object, tmp_path: Path) -> None:
    script = tmp_path / "script with space.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from slurm import Cluster, task

            SECRET = 41

            @task(time="00:01:00")
            def compute(x):
                return x + SECRET

            with Cluster(backend_type="local", job_base_dir={str(tmp_path / "jobs")!r}) as c:
                print(compute(1).get_result(timeout=60))
                c.close()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_argparse_integration(devcluster: object, tmp_path: Path) -> None:
    import argparse

    parser = Cluster.add_argparse_args(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--backend", "local", "--partition", "compute", "--job-base-dir", str(tmp_path)]
    )
    cluster = Cluster.from_args(args)
    assert cluster.backend_type == "local" and cluster.default_partition == "compute"
    with cluster:
        facts = jobfuncs.job_facts().get_result(timeout=60)
    assert facts["partition"] == "compute"
    ssh = Cluster.from_args(parser.parse_args(["--hostname", "example.invalid"]))
    assert ssh.backend_type == "ssh"


def test_time_limit_ends_the_wait_with_timeout_state(early_job: tuple[str, str, str]) -> None:
    base, _, job_id = early_job
    cluster = Cluster(backend_type="local", job_base_dir=base)
    job = cluster.get_job(job_id)
    with pytest.raises(JobTerminatedError, match="TIMEOUT") as info:
        job.get_result(timeout=180)
    assert "time limit" in str(info.value)
    assert job.state is JobState.TIMEOUT
    assert job.requeue_count == 0
    runs = Path(job.runs_path).read_text()
    assert runs.count(" start ") == 1 and "requeued-time-limit" not in runs, runs
    cluster.close()


def test_purged_job_still_reattaches(early_job: tuple[str, str, str]) -> None:
    """After Slurm forgets a job (MinJobAge), reattaching still finds its result."""
    base, job_id, _ = early_job
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        probe = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
        if probe.returncode != 0:
            break
        time.sleep(2)
    else:
        pytest.fail(f"job {job_id} was never purged from the controller")
    cluster = Cluster(backend_type="local", job_base_dir=base)
    job = cluster.get_job(job_id)
    assert job.get_result(timeout=10) == 2
    assert job.state is JobState.COMPLETED
    cluster.close()


def test_hostile_job_directory(devcluster: object, tmp_path: Path) -> None:
    """Spaces, quotes, %-patterns, `;` and `$` in the base directory reach Slurm intact."""
    base = tmp_path / "we ird %j 'q' \"dq\" ; echo pwned $HOME"
    with Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug"):
        job = jobfuncs.print_and_return("through hostile paths")
        assert job.get_result(timeout=60) == "through hostile paths"
        assert "through hostile paths" in job.get_stdout()
        assert Path(job.job_dir).parent == base


def test_map_beyond_max_array_size_is_split_transparently(
    devcluster: object, tmp_path: Path
) -> None:
    # Read from the slurm.conf of $SLURM_CONF (the dev cluster's), not asked of the controller.
    assert Cluster(backend_type="local").max_array_size == 1001
    with Cluster(
        backend_type="local",
        job_base_dir=str(tmp_path),
        default_partition="debug",
        max_array_size=4,
    ):
        array = jobfuncs.add.map([(i, 1) for i in range(10)])
        assert len(array.array_ids) == 3 and len(array) == 10
        assert array.get_results(timeout=120) == [i + 1 for i in range(10)]
        everything = jobfuncs.echo(array)  # afterok on all three arrays
        assert everything.get_result(timeout=60) == [i + 1 for i in range(10)]


def test_as_completed_and_wait(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from slurm import as_completed, wait

    # `slow` ends only once as_completed has given `fast`: a sleep would race a busy
    # cluster that starts `fast` late; an as_completed in submission order waits forever.
    gate = tmp_path / "fast-was-given"
    slow = jobfuncs.after_file(str(gate), "slow")
    fast = jobfuncs.sleep_then(0, "fast")
    order = []
    for job in as_completed([slow, fast], timeout=60):
        order.append(job.get_result())
        gate.touch()
    assert order == ["fast", "slow"]
    array = jobfuncs.maybe_fail.map(range(4))
    done, not_done = wait([array], timeout=60, progress="squares")
    assert len(done) == 4 and not not_done
    assert "squares" in capsys.readouterr().err
    assert array.get_results(timeout=5, return_exceptions=True, progress=True)[3] == 30
    done, not_done = wait([jobfuncs.sleep_then(30)], timeout=0.5)
    assert not done and len(not_done) == 1
    not_done[0].cancel()
