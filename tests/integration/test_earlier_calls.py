"""The earlier SDK's calls against the dev cluster (issue 23): get_queue, get_jobs,
get_cluster_info, get_status's dict, host_key_policy on a real sshd."""

from __future__ import annotations

import getpass
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jobfuncs
import pytest
from _sshd import Sshd, keygen, ssh_transport, start_sshd

from slurm import Cluster, JobState, JobStatus
from slurm.errors import HostKeyError

_TIMEOUT = 120.0


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {_TIMEOUT} s", pytrace=False)
        time.sleep(0.2)


def _squeue_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--format=%i"], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.fixture()
def plain_job() -> Iterator[str]:
    """A job of this user that the SDK did not submit (cancelled afterwards)."""
    out = subprocess.run(
        ["sbatch", "--parsable", "-p", "debug", "-t", "2", "--mem=16M", "-o", "/dev/null",
         "--wrap", "sleep 120"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = out.stdout.strip().split(";")[0]
    yield job_id
    subprocess.run(["scancel", job_id], check=False)


def test_queue_jobs_and_cluster_info_with_the_earlier_keys(
    cluster: Cluster, plain_job: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    job = jobfuncs.after_file(str(flag), "done")
    _eventually(lambda: job.get_status() == JobState.RUNNING, "the SDK job to run")

    before = _squeue_ids()
    queue = cluster.get_queue()
    mine = before | _squeue_ids()  # a job of the user's that ended meanwhile is in `before`
    by_id = {row["JOBID"]: row for row in queue}
    assert {job.id, plain_job} <= set(by_id)
    assert set(by_id) <= mine  # only this user's jobs (squeue --me, asked before and after)
    row = by_id[job.id]
    assert (row["STATE"], row["USER"], row["PARTITION"]) == ("RUNNING", getpass.getuser(), "debug")
    assert row["NAME"] == "after_file" and row["NODELIST"] in ("node1", "node2")
    assert {"TIME", "TIME_LIMIT", "START_TIME", "ACCOUNT", "NODES", "REASON"} <= set(row)

    # get_jobs: Jobs for the SDK's queued jobs under this job base directory only.
    jobs = cluster.get_jobs()
    assert [j.id for j in jobs] == [job.id]
    assert jobs[0].is_running() and jobs[0].name == "after_file"

    info = cluster.get_cluster_info()
    names = {p["PARTITION"] for p in info["partitions"]}
    assert {"debug", "compute", "urgent"} <= names
    assert {p["PARTITION"] for p in info["partitions"] if p["DEFAULT"] == "yes"} == {"debug"}
    debug = [p for p in info["partitions"] if p["PARTITION"] == "debug"]
    assert sum(int(p["NODES"]) for p in debug) == 2 and all(p["AVAIL"] == "up" for p in debug)

    status = job.get_status()
    assert isinstance(status, JobStatus) and status == JobState.RUNNING
    assert status["JobState"] == "RUNNING" and status["ExitCode"] == "0:0"
    assert status["NodeList"] == row["NODELIST"] and status["WorkDir"] == job.job_dir
    assert status["JobId"] == job.id and status["StdErr"] == job.stderr_path

    flag.write_text("")
    assert job.get_result(timeout=_TIMEOUT) == "done"
    final = job.get_status()
    assert final == JobState.COMPLETED and final["ExitCode"] == "0:0"
    # Gone from get_jobs() once Slurm has let it go (it may still be COMPLETING a moment).
    _eventually(lambda: job.id not in {j.id for j in cluster.get_jobs()}, "the job to leave")


def test_a_script_written_for_the_earlier_sdk_runs_unchanged(cluster: Cluster) -> None:
    """tests/integration/earlier/reference_style.py, run as its user would run it."""
    import json
    import sys

    script = Path(__file__).parent / "earlier" / "reference_style.py"
    argv = [sys.executable, str(script), "--backend", "local", "--partition", "debug",
            "--job-base-dir", cluster.base_dir]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == {"JobState": "COMPLETED", "ExitCode": "0:0"}
    assert out["square"] == 49 and out["completed"] is True
    assert out["where"]["host"] in ("node1", "node2") and out["where"]["world"] == 1
    assert out["map"] == [1, 4, 9, 16] and out["results_dir_exists"]
    assert out["workflow"]["sum"] == 0 + 1 + 4 + 9 and out["workflow"]["workflow_job_id"]
    assert {"JOBID", "NAME", "STATE", "USER", "PARTITION", "REASON"} <= set(out["queue_keys"])
    assert out["flow"] in out["queued"] and out["flow"] in out["jobs"]
    assert {"debug", "compute", "urgent"} <= set(out["partitions"])
    assert out["again"] == "COMPLETED"
    assert f"submitted total as job {out['flow']}" in done.stderr  # the LoggerCallback


def test_modules_are_loaded_after_setup_before_python(cluster: Cluster) -> None:
    """The earlier SDK's modules=: `module load NAME` lines; the dev cluster has no
    environment modules, so setup= defines `module` as a site's profile would."""
    define = 'module() { echo "module $*" >&2; export LOADED="${LOADED:-}$2,"; }'
    job = jobfuncs.echo.with_options(setup=[define], modules=["gcc/12", "cuda/12.2"])
    done = job("x")
    assert done.get_result(timeout=_TIMEOUT) == "x"
    assert "module load gcc/12\nmodule load cuda/12.2" in done.get_stderr()
    script = done.get_script()
    assert script.index(define) < script.index("module load gcc/12")


def test_the_status_of_a_failed_job_as_the_earlier_sdk_read_it(cluster: Cluster) -> None:
    job = jobfuncs.fail_with("no", 7)
    with pytest.raises(jobfuncs.CustomError):
        job.get_result(timeout=_TIMEOUT)
    status = job.get_status()
    assert status == JobState.FAILED and status["JobState"] == "FAILED"
    assert not status.get("ExitCode", "").startswith("0:0")
    assert not job.is_successful() and job.is_completed() and not job.is_running()


# --- host_key_policy on a real sshd ----------------------------------------------------


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    client_key = keygen(tmp_path_factory.mktemp("client") / "id_ed25519")
    server = start_sshd(tmp_path_factory.mktemp("sshd"), client_key)
    yield server
    server.stop()


def test_host_key_policy_warn_accepts_once_auto_saves_reject_refuses(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known = tmp_path / "known_hosts"
    caplog.set_level(logging.WARNING, logger="slurm._transport.hostkeys")
    with ssh_transport(sshd, known, host_key_policy="warn") as t:
        assert t.run(["echo", "ok"]).stdout == "ok\n"
    warned = [
        r.getMessage() for r in caplog.records if "for this connection only" in r.getMessage()
    ]
    assert len(warned) == 1 and sshd.fingerprint in warned[0]
    assert not known.exists()  # warn never saves
    with (
        pytest.raises(HostKeyError, match="not known"),
        ssh_transport(sshd, known, host_key_policy="reject") as t,
    ):
        t.run(["true"])
    with ssh_transport(sshd, known, host_key_policy="auto") as t:
        assert t.run(["echo", "ok"]).stdout == "ok\n"
    assert known.read_text() == sshd.host_key_line
    with ssh_transport(sshd, known, host_key_policy="reject") as t:  # known now
        assert t.run(["echo", "ok"]).stdout == "ok\n"


def test_host_key_policy_warn_still_refuses_a_changed_key(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    kind, data = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {data}\n")
    for policy in ("warn", "auto"):
        with pytest.raises(HostKeyError), ssh_transport(sshd, known, host_key_policy=policy) as t:
            t.run(["true"])


def test_a_cluster_passes_host_key_policy_to_its_connection(sshd: Sshd) -> None:
    """Through Cluster(...) and the user's own known_hosts, which must not change."""
    user_known = Path.home() / ".ssh" / "known_hosts"
    before = user_known.read_bytes() if user_known.exists() else None
    settings = {
        "hostname": "127.0.0.1",
        "port": sshd.port,
        "username": "root",
        "key_filename": str(sshd.client_key),
    }
    with Cluster(**settings, host_key_policy="warn") as cluster:  # type: ignore[arg-type]
        assert cluster.transport.run(["echo", "ok"]).stdout == "ok\n"
    with pytest.raises(HostKeyError, match="not known"), Cluster(**settings) as refused:  # type: ignore[arg-type]
        refused.transport.run(["true"])
    assert (user_known.read_bytes() if user_known.exists() else None) == before
