"""The earlier SDK's commands, pure parts: the partitions view of `slurm cluster watch`,
the ssh line of `slurm cluster connect`, -e/-f on the commands (issue 23)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slurm.cli import main
from slurm.cli.clusterview import partition_rows, partitions_table, ssh_argv
from slurm.cli.jobs import cluster_from_options
from slurm.cli.jobview import plain_text
from slurm.errors import SlurmfileEnvironmentNotFoundError

PARTITIONS = [  # get_cluster_info()["partitions"] as the dev cluster answered
    {"PARTITION": "debug", "AVAIL": "up", "NODES": "1", "STATE": "mixed", "CPUS": "3/1/0/4",
     "DEFAULT": "yes"},
    {"PARTITION": "debug", "AVAIL": "up", "NODES": "1", "STATE": "idle", "CPUS": "0/4/0/4",
     "DEFAULT": "yes"},
    {"PARTITION": "gpu", "AVAIL": "down", "NODES": "2", "STATE": "drained", "CPUS": "?",
     "DEFAULT": "no"},
]  # fmt: skip
QUEUE = [
    {"JOBID": "1", "STATE": "RUNNING", "PARTITION": "debug"},
    {"JOBID": "2", "STATE": "PENDING", "PARTITION": "debug"},
    {"JOBID": "3", "STATE": "PENDING", "PARTITION": "debug"},
    {"JOBID": "4", "STATE": "COMPLETED", "PARTITION": "gpu"},
]


def test_partitions_are_summed_over_their_node_states() -> None:
    assert partition_rows(PARTITIONS, QUEUE) == [
        ("debug*", "up", "1 mixed, 1 idle", 3, 8, 1, 2),
        ("gpu", "down", "2 drained", 0, 0, 0, 0),
    ]
    text = plain_text(partitions_table(PARTITIONS, QUEUE, title="partitions on login"))
    assert "partitions on login" in text
    assert "████░░░░░░ 3/8" in text and "1 running, 2 pending" in text
    assert "░░░░░░░░░░ 0/0" in text


@pytest.mark.parametrize(
    ("settings", "command", "argv"),
    [
        ({"hostname": "login"}, (), ["ssh", "-t", "--", "login"]),
        (
            {"hostname": "login", "port": 2222, "username": "ann", "key_filename": "~/k"},
            ("ls", "a b"),
            ["ssh", "-p", "2222", "-l", "ann", "-i", "~/k", "--", "login", "ls 'a b'"],
        ),
        (
            {"hostname": "-oProxyCommand=x", "host_key_policy": "auto"},
            ("true",),
            ["ssh", "-o", "StrictHostKeyChecking=accept-new", "--", "-oProxyCommand=x", "true"],
        ),
        (
            {"hostname": "h", "accept_new_host_key": True},
            (),
            ["ssh", "-o", "StrictHostKeyChecking=accept-new", "-t", "--", "h"],
        ),
    ],
)
def test_the_ssh_line_of_cluster_connect(
    settings: dict[str, object], command: tuple[str, ...], argv: list[str]
) -> None:
    assert ssh_argv(settings, command) == argv


@pytest.fixture()
def slurmfile(tmp_path: Path) -> Path:
    path = tmp_path / "Slurmfile"
    path.write_text(
        '[default]\nbackend = "local"\njob_base_dir = "/tmp/d"\n'
        '[prod]\nhostname = "prod.example.org"\nusername = "ann"\n'
    )
    path.chmod(0o600)
    return path


def test_env_and_slurmfile_options_make_the_cluster_from_the_slurmfile(slurmfile: Path) -> None:
    prod = cluster_from_options({"env": "prod", "slurmfile": str(slurmfile), "username": "bob"})
    assert (prod.hostname, prod.username) == ("prod.example.org", "bob")  # the option wins
    default = cluster_from_options({"env": None, "slurmfile": str(slurmfile)})
    assert default.backend_type == "local" and default.settings.job_base_dir == "/tmp/d"
    flags = cluster_from_options({"env": None, "slurmfile": None, "hostname": "h"})
    assert flags.hostname == "h"
    with pytest.raises(SlurmfileEnvironmentNotFoundError, match=r"\[dev\]"):
        cluster_from_options({"env": "dev", "slurmfile": str(slurmfile)})


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"], ["jobs", "show", "1"], ["jobs", "cancel", "1"], ["jobs", "watch"],
        ["jobs", "connect", "1"], ["jobs", "prune", "--older-than", "1"],
        ["jobs", "why", "1"], ["jobs", "report", "1"], ["doctor"], ["dash"],
        ["cluster", "watch"], ["cluster", "connect"], ["mcp", "run"], ["mcp", "status"],
    ],
)  # fmt: skip
def test_every_command_that_reaches_a_cluster_takes_e_and_f(
    command: list[str], slurmfile: Path
) -> None:
    result = CliRunner().invoke(main, [*command, "-f", str(slurmfile), "-e", "nope"])
    assert result.exit_code != 0
    assert "no environment [nope]" in " ".join(result.output.split()), result.output


def test_jobs_logs_keeps_f_for_follow(slurmfile: Path) -> None:
    result = CliRunner().invoke(main, ["jobs", "logs", "1", "--slurmfile", str(slurmfile), "-e",
                                       "nope", "-f"])  # fmt: skip
    assert result.exit_code != 0 and "no environment [nope]" in result.output


def test_jobs_debug_pure_parts_and_a_port_forward_to_a_local_echo() -> None:
    import socket
    import threading

    from slurm.cli.debug import attach_config, node_address
    from slurm.inspect import PortForward

    out = "NodeName=node1 Arch=x86_64 NodeAddr=10.217.161.11 NodeHostName=node1 State=MIXED"
    assert node_address(out, "node1") == "10.217.161.11"
    assert node_address("", "gpu7") == "gpu7"
    config = attach_config("12", 6000, "/home/ann/proj")
    assert config["connect"] == {"host": "127.0.0.1", "port": 6000}
    assert config["pathMappings"] == [
        {"localRoot": "${workspaceFolder}", "remoteRoot": "/home/ann/proj"}
    ]

    echo = socket.create_server(("127.0.0.1", 0))
    far = echo.getsockname()[1]

    def serve() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    with PortForward(lambda: socket.create_connection(("127.0.0.1", far))) as forward:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as s:
            s.sendall(b"through")
            got = b""
            while len(got) < 7:
                got += s.recv(1024)
        assert got == b"THROUGH"
    echo.close()
    with socket.create_server(("127.0.0.1", 0)) as busy, pytest.raises(OSError):
        PortForward(lambda: None, port=busy.getsockname()[1])  # taken


def test_jobs_connect_takes_the_earlier_node_and_no_container_options() -> None:
    """`slurm jobs connect JOB_ID [--node/-n NODE] [--no-container]` as the earlier SDK's
    reference shows it (the container part runs on the dev cluster: test_containers.py)."""
    shown = CliRunner().invoke(main, ["jobs", "connect", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "-n, --node NODE" in shown.output and "--no-container" in shown.output
