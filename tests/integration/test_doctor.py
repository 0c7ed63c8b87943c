"""`slurm doctor` and `cluster.diagnose()` against the real dev cluster, locally and over SSH.

Healthy runs must say "ready" and exit 0; each broken setting (a partition
that does not exist, an interpreter that is not there, a job directory owned
by someone else, a port nobody listens on, a key the server refuses) must fail
its own check, name the fix, skip what it cannot check, and exit 1.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
from pathlib import Path

from _sshd import keygen, ssh_transport, start_sshd
from click.testing import CliRunner, Result
from nodepython import node_python

from slurm import Cluster
from slurm._client.doctor import CHECK_NAMES
from slurm.cli import main
from slurm.devcluster import SshInfo, Status

_NAMES = list(CHECK_NAMES)


def _doctor(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)


def _line(output: str, name: str) -> str:
    found = [line for line in output.splitlines() if line[5:].startswith(name + " ")]
    assert len(found) == 1, output
    return found[0]


def test_local_healthy(devcluster: Status, tmp_path: Path) -> None:
    del devcluster
    result = _doctor("--partition", "debug", "--job-base-dir", str(tmp_path / "jobs"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "slurm doctor: local (local)"
    assert [line[5:].split()[0] for line in lines[1:-1]] == _NAMES
    assert all(line.startswith("ok   ") for line in lines[1:-1]), result.output
    assert "debug*" in _line(result.output, "partitions")
    assert "Slurmctld(primary)" in _line(result.output, "controller")
    assert lines[-1].startswith("ready to submit")


def test_over_ssh_json(devcluster_ssh: SshInfo, tmp_path: Path) -> None:
    result = _doctor(
        "--hostname",
        devcluster_ssh.alias,
        "--username",
        devcluster_ssh.username,
        "--python",
        node_python(),
        "--job-base-dir",
        str(tmp_path / "jobs"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["backend"] == "ssh"
    assert [c["name"] for c in report["checks"]] == _NAMES
    assert {c["status"] for c in report["checks"]} == {"ok"}, report["checks"]
    assert {p["name"] for p in report["partitions"]} >= {"debug", "compute", "urgent"}
    assert report["python"]["modules"]["slurm.runner"] == "ok"
    assert abs(report["clock_skew_seconds"]) < 5


def test_blocking_problems_fail_with_their_fix(devcluster: Status, tmp_path: Path) -> None:
    del devcluster
    theirs = tmp_path / "someone-elses"
    theirs.mkdir(mode=0o777)
    theirs.chmod(0o777)
    nobody = pwd.getpwnam("nobody")
    os.chown(theirs, nobody.pw_uid, nobody.pw_gid)
    result = _doctor(
        "--partition",
        "no-such-partition",
        "--python",
        str(tmp_path / "no-python"),
        "--job-base-dir",
        str(theirs),
    )
    assert result.exit_code == 1, result.output
    assert _line(result.output, "partitions").startswith("FAIL")
    assert "-> fix: set default_partition (--partition) to one of" in result.output
    assert _line(result.output, "python").startswith("FAIL")
    assert f"owned by uid {nobody.pw_uid}, not by you" in _line(result.output, "base_dir")
    assert _line(result.output, "controller").startswith("ok")
    assert result.output.splitlines()[-1] == "NOT ready: 3 problem(s) block submission"


def test_nobody_listening_skips_the_rest(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _doctor("--hostname", "127.0.0.1", "--port", str(port), "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["connectivity"]["status"] == "fail"
    assert f"cannot reach root@127.0.0.1:{port}" in checks["connectivity"]["detail"]
    assert {checks[n]["status"] for n in _NAMES[1:]} == {"skip"}


def test_refused_login_is_an_authentication_failure(tmp_path: Path) -> None:
    server = start_sshd(tmp_path / "sshd", keygen(tmp_path / "allowed"))
    try:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.host_key_line)
        stranger = keygen(tmp_path / "stranger")
        transport = ssh_transport(server, known_hosts, key_filename=str(stranger))
        cluster = Cluster("ssh", transport=transport, hostname="127.0.0.1")
        report = cluster.diagnose()
        cluster.close()
    finally:
        server.stop()
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert checks["connectivity"]["status"] == "ok"
    assert checks["authentication"]["status"] == "fail"
    assert "Tried" in checks["authentication"]["detail"]
    assert report["problems"][0].startswith("authentication: ")
