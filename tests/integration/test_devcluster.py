"""The dev cluster itself, for real: jobs locally and over SSH, accounting, preemption,
idempotent ``up``, ``down``/``up`` and the no-accounting mode.

The tests that take daemons down run last and always restore the accounting
cluster, since other test sessions use it at the same time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import slurm.devcluster as dc
from slurm.devcluster import SshInfo, Status


def sh(*argv: str, timeout: float = 60) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout.strip()


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ssh_argv(ssh: SshInfo, *command: str) -> list[str]:
    return [
        "ssh",
        "-p",
        str(ssh.port),
        "-i",
        ssh.key_file,
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={ssh.known_hosts_file}",
        f"{ssh.username}@{ssh.host}",
        *command,
    ]


def sacct_states(job_id: str) -> list[str]:
    out = sh("sacct", "-n", "-P", "-X", "-D", "-j", job_id, "-o", "State")
    return out.split()


def test_status_json_shape(devcluster: Status) -> None:
    out = sh(sys.executable, "-m", "slurm.cli", "devcluster", "status", "--json")
    data = json.loads(out)
    assert data["running"] is True
    assert data["accounting"] is True
    assert data["ssh"]["host"] == "127.0.0.1"
    assert data["ssh"]["alias"] == "slurm-devcluster"
    assert data["ssh"]["port"] == devcluster.ssh.port
    assert Path(data["ssh"]["key_file"]).is_file()
    assert data["partitions"] == ["debug", "compute", "urgent"]
    assert data["slurm_version"].startswith("22.")
    assert data["state_dir"] == devcluster.state_dir


def test_node_has_eight_cpus(devcluster: Status) -> None:
    out = sh("scontrol", "show", "node", devcluster.node_name)
    assert "CPUTot=8" in out


def test_sbatch_locally_and_sacct(devcluster: Status, tmp_path: Path) -> None:
    out = tmp_path / "job.out"
    job_id = sh(
        "sbatch",
        "--parsable",
        "--wait",
        "-o",
        str(out),
        "--wrap",
        "echo hello from $SLURM_JOB_ID; sbatch --version",
    )
    text = out.read_text()
    assert f"hello from {job_id}" in text
    assert "slurm" in text  # client commands work inside a job without SLURM_CONF set by us
    eventually(lambda: sacct_states(job_id) == ["COMPLETED"], f"sacct record of {job_id}")


def test_sbatch_over_ssh(devcluster_ssh: SshInfo, tmp_path: Path) -> None:
    out = tmp_path / "ssh.out"
    job_id = sh(
        *ssh_argv(devcluster_ssh, "sbatch", "--parsable", "--wait", "-o", str(out), "--wrap", "id")
    )
    assert job_id.isdigit()
    assert "uid=" in out.read_text()
    assert sh(*ssh_argv(devcluster_ssh, "sacct", "-n", "-X", "-j", job_id, "-o", "JobID")) != ""


def test_ssh_alias_and_user_known_hosts(devcluster: Status, tmp_path: Path) -> None:
    out = tmp_path / "alias.out"
    cmd = ["sbatch", "--parsable", "--wait", "-o", str(out), "--wrap", "hostname"]
    job_id = sh("ssh", "-o", "BatchMode=yes", "slurm-devcluster", *cmd)
    assert job_id.isdigit()
    assert out.read_text().strip()
    # ~/.ssh/known_hosts knows the host key: strict checking passes without our file.
    user_known = Path.home() / ".ssh" / "known_hosts"
    sh(
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(devcluster.ssh.port),
        "-i",
        devcluster.ssh.key_file,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={user_known}",
        f"{devcluster.ssh.username}@127.0.0.1",
        "squeue",
    )


def test_up_again_is_fast_and_changes_nothing(devcluster: Status) -> None:
    before = dc.status()
    conf = Path(devcluster.slurm_conf).stat().st_mtime_ns
    started = time.monotonic()
    again = dc.up()
    elapsed = time.monotonic() - started
    assert elapsed < 2, f"second up took {elapsed:.2f} s"
    assert again.running
    assert again.daemons == before.daemons
    assert Path(devcluster.slurm_conf).stat().st_mtime_ns == conf


def test_urgent_job_preempts_and_requeues_debug_job(devcluster: Status) -> None:
    # The victim holds the whole node, so the urgent job preempts it and nothing else:
    # other test sessions may share this cluster, their jobs only wait meanwhile. Its
    # raised priority (negative nice, allowed to root) puts it first in line for the node.
    whole_node = ["-c", str(devcluster.cpus), "--nice=-10000"]
    victim = sh(
        "sbatch", "--parsable", "-p", "debug", *whole_node, "-o", "/dev/null", "--wrap", "sleep 300"
    )
    # Waits below are long only when other sessions' jobs hold the node; alone it takes ~15 s.
    try:

        def state(job: str) -> str:
            return sh("squeue", "-h", "-j", job, "-o", "%T")

        eventually(lambda: state(victim) == "RUNNING", "the debug job to run", 120)
        urgent = sh("sbatch", "--parsable", "-p", "urgent", "-o", "/dev/null", "--wrap", "sleep 1")

        def restarts() -> int:
            out = sh("scontrol", "show", "job", victim)
            return int(out.split("Restarts=")[1].split()[0])

        eventually(lambda: restarts() >= 1, "the debug job to be requeued")
        eventually(lambda: sacct_states(urgent) == ["COMPLETED"], "the urgent job to finish")
        eventually(lambda: "PREEMPTED" in sacct_states(victim), "sacct to show PREEMPTED")
        # cred_expire=10 holds a requeued job back ~10 s before it may run again.
        eventually(lambda: state(victim) == "RUNNING", "the requeued job to run again", 120)
    finally:
        subprocess.run(["scancel", victim], check=False)


# ---- disruptive tests: last, and they restore the accounting cluster ------------------


@pytest.fixture
def restore_cluster(devcluster: Status) -> Iterator[None]:
    yield
    st = dc.up(accounting=True)
    assert st.running and st.accounting


def test_down_then_up_brings_the_same_cluster_back(
    devcluster: Status, restore_cluster: None
) -> None:
    del restore_cluster
    stopped = dc.down()
    assert not stopped.running
    assert all(stopped.daemons[name] is None for name in ("slurmctld", "slurmd", "sshd"))
    result = subprocess.run(
        [sys.executable, "-m", "slurm.cli", "devcluster", "status"],
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0
    started = time.monotonic()
    st = dc.up()
    assert st.running
    assert time.monotonic() - started < 30
    assert st.ssh == devcluster.ssh
    job_id = sh("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true")
    eventually(lambda: sacct_states(job_id) == ["COMPLETED"], "sacct after down/up")


def test_no_accounting_mode_and_back(devcluster: Status, restore_cluster: None) -> None:
    del restore_cluster
    st = dc.up(accounting=False)
    assert st.running and not st.accounting
    assert st.daemons["slurmdbd"] is None and st.daemons["mariadb"] is None
    assert "AccountingStorageType=accounting_storage/none" in Path(st.slurm_conf).read_text()
    job_id = sh("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true")
    assert job_id.isdigit()
    back = dc.up(accounting=True)
    assert back.running and back.accounting
    eventually(lambda: sh("sacct", "-n", "-X", "-o", "JobID") != "", "sacct after switching back")
