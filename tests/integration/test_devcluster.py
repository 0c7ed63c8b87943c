"""The dev cluster itself, for real: its nodes, jobs locally and over SSH, accounting,
preemption and an idempotent ``up``, on the shared dev cluster (nothing here stops a
daemon: ``down``/``up``, a crash, a node failure and the no-accounting mode are in
``test_devcluster_restarts.py``, on a cluster of their own).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import slurm.devcluster as dc
from slurm.devcluster import SshInfo, Status


def sh(*argv: str, timeout: float = 60) -> str:
    """Run a command here, from ``/``: a job it submits starts where its nodes can go (from
    a clone under this machine's /tmp, slurmstepd would say it cannot, in the job's output)."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
    )
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


def accounted_since(job_id: str, since: str) -> list[str]:
    """States of ``job_id``'s records submitted at ``since`` or later. A controller that
    was killed or restarted may give a lost job's id again; sacct -D then lists both."""
    out = sh("sacct", "-n", "-P", "-X", "-D", "-j", job_id, "-o", "Submit,State")
    rows = [line.split("|") for line in out.split()]
    return [state for submit, state in rows if submit >= since]


def now_for_sacct() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))


def test_status_json_shape(devcluster: Status) -> None:
    out = sh(sys.executable, "-m", "slurm.cli", "devcluster", "status", "--json")
    data = json.loads(out)
    assert data["running"] is True
    assert data["accounting"] is True
    assert data["ssh"]["host"] == "127.0.0.1"
    # slurm-devcluster on the default ports, slurm-devcluster-<port base> beside it
    assert data["ssh"]["alias"] == devcluster.ssh.alias
    base = data["ssh"]["port"] - 5
    assert data["ssh"]["alias"] in ("slurm-devcluster", f"slurm-devcluster-{base}")
    assert data["ssh"]["port"] == devcluster.ssh.port
    assert Path(data["ssh"]["key_file"]).is_file()
    assert data["partitions"] == ["debug", "compute", "urgent"]
    assert data["slurm_version"].startswith(f"{devcluster.release}.")  # 22.05 unless asked
    assert data["python_version"].startswith("3.")
    assert data["state_dir"] == devcluster.state_dir
    nodes = data["nodes"]
    assert [node["name"] for node in nodes] == [node.name for node in devcluster.nodes]
    assert all(set(node) >= {"name", "address", "state", "cpus"} for node in nodes)
    # Responding and usable (other tests' jobs may be running or completing there).
    assert all(
        node["state"] and not node["state"].endswith("*") and "down" not in node["state"]
        for node in nodes
    ), nodes


def multi_node(st: Status) -> bool:
    return len(st.nodes) > 1


def _listening() -> dict[int, set[str]]:
    """Local addresses (``ADDR:PORT``) of every listening TCP socket, by port."""
    by_port: dict[int, set[str]] = {}
    for line in sh("ss", "-ltnH").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        by_port.setdefault(int(port), set()).add(address)
    return by_port


def test_daemons_that_can_be_bound_listen_on_loopback_or_the_bridge(devcluster: Status) -> None:
    """sshd and MariaDB answer on loopback only, the registry on the nodes' bridge only.
    (slurmctld and slurmdbd have no bind option: docs/reliability.md, The dev cluster.)"""
    listening = _listening()
    assert listening[devcluster.ssh.port] == {"127.0.0.1"}
    if devcluster.containers is not None:  # a layout with containers
        registry_host, _, registry_port = devcluster.containers["registry"].rpartition(":")
        assert listening[int(registry_port)] == {registry_host}
        assert registry_host.startswith("10.") and registry_host.endswith(".1")
    dbd_conf = Path(devcluster.slurm_conf).with_name("slurmdbd.conf").read_text()
    [mariadb] = [int(line.split("=")[1]) for line in dbd_conf.split() if "StoragePort=" in line]
    assert listening[mariadb] == {"127.0.0.1"}


def test_nodes_have_their_own_names_and_addresses(devcluster: Status) -> None:
    names = [node.name for node in devcluster.nodes]
    addresses = [node.address for node in devcluster.nodes]
    assert len(set(names)) == len(names) and len(set(addresses)) == len(addresses)
    if multi_node(devcluster):
        assert names == [f"node{k}" for k in range(1, len(names) + 1)]
        assert all(a.startswith("10.217.") and not a.endswith(".1") for a in addresses)
        assert devcluster.node_name not in names  # the login host is no compute node
        netns = sh("ip", "netns", "list")
        assert all(node.netns in netns for node in devcluster.nodes)
    for node in devcluster.nodes:
        out = sh("scontrol", "show", "node", node.name)
        assert f"NodeAddr={node.address} " in out


def test_nodes_share_eight_cpus(devcluster: Status) -> None:
    total = 0
    for node in devcluster.nodes:
        out = sh("scontrol", "show", "node", node.name)
        total += int(out.split("CPUTot=")[1].split()[0])
        assert f"CPUTot={devcluster.cpus} " in out
    assert total == 8


def test_jobs_run_on_the_compute_nodes_under_their_host_names(
    devcluster: Status, tmp_path: Path
) -> None:
    count = len(devcluster.nodes)
    out = tmp_path / "hosts.out"
    sh("sbatch", "--wait", f"-N{count}", "-o", str(out), "--wrap", "srun hostname")
    hosts = sorted(out.read_text().split())
    assert hosts == sorted(node.name for node in devcluster.nodes)
    if multi_node(devcluster):
        assert socket.gethostname() not in hosts


def test_each_node_has_its_own_tmp(devcluster: Status, tmp_path: Path) -> None:
    if not multi_node(devcluster):
        pytest.skip("the one-node layout shares /tmp with the login host")
    first, second = (node.name for node in devcluster.nodes[:2])
    marker = f"/tmp/sdk-private-{secrets.token_hex(4)}"
    out = tmp_path / "tmp.out"

    def on(node: str, command: str) -> str:
        sh("sbatch", "--wait", "-w", node, "-o", str(out), "--wrap", command)
        return out.read_text().strip()

    assert on(first, f"touch {marker} && ls {marker}") == marker
    assert not Path(marker).exists()  # not on the login host
    assert on(second, f"ls {marker} 2>/dev/null || echo absent") == "absent"
    assert on(first, f"ls {marker} && rm {marker}") == marker  # kept on its node


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
    # slurm-devcluster on the default ports, slurm-devcluster-<port base> beside it.
    out = tmp_path / "alias.out"
    cmd = ["sbatch", "--parsable", "--wait", "-o", str(out), "--wrap", "hostname"]
    job_id = sh("ssh", "-o", "BatchMode=yes", devcluster.ssh.alias, *cmd)
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
    print(f"second up: {time.monotonic() - started:.2f} s")  # speed is for `make bench`
    assert again.running
    assert again.daemons == before.daemons  # not one daemon started again
    assert Path(devcluster.slurm_conf).stat().st_mtime_ns == conf


def test_urgent_job_preempts_and_requeues_debug_job(devcluster: Status) -> None:
    # The victim holds the whole node, so the urgent job preempts it and nothing else:
    # other test sessions may share this cluster, their jobs only wait meanwhile. Its
    # raised priority (negative nice, allowed to root) puts it first in line for the node.
    whole_node = ["-c", str(devcluster.cpus), "--nice=-10000"]
    victim = sh(
        "sbatch", "--parsable", "-p", "debug", *whole_node, "-o", "/dev/null", "--wrap", "sleep 300"
    )
    node: list[str] = []  # the victim's; the urgent job must land there to preempt it
    # Waits below are long only when other sessions' jobs hold the node; alone it takes ~15 s.
    try:

        def state(job: str) -> str:
            return sh("squeue", "-h", "-j", job, "-o", "%T")

        eventually(lambda: state(victim) == "RUNNING", "the debug job to run", 120)
        node.append(sh("squeue", "-h", "-j", victim, "-o", "%N"))
        urgent = sh(
            "sbatch",
            "--parsable",
            "-p",
            "urgent",
            "-w",
            node[0],
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        )

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
