"""The dev cluster's config files, rendered by pure functions from Settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from slurm.devcluster.render import (
    HEADER,
    render_hosts,
    render_known_hosts,
    render_my_cnf,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_ssh_client_config,
    render_sshd_config,
)
from slurm.devcluster.settings import Settings, sensible_real_memory_mb
from slurm.devcluster.sshsetup import strict_modes_problem

STATE = Path("/state")


@pytest.fixture
def settings() -> Settings:
    return Settings(
        state_dir=STATE,
        node_name="login",
        user="alice",
        real_memory_mb=8000,
        db_password="s3cret",
        home=Path("/home/alice"),
    )


def _conf(text: str) -> dict[str, str]:
    """key=value lines of a Slurm-style config (first word of each line)."""
    pairs = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_slurm_conf_core_settings(settings: Settings) -> None:
    text = render_slurm_conf(settings)
    assert text.startswith(HEADER)
    conf = _conf(text)
    expected = {
        "ClusterName": "devcluster",
        "SlurmctldHost": "login(10.217.161.1)",
        "SlurmUser": "alice",
        "SlurmctldPort": "6817",
        "SlurmdPort": "6818",
        "AuthType": "auth/munge",
        "AuthInfo": "socket=/run/munge/munge.socket.2,cred_expire=10",
        "StateSaveLocation": "/state/spool/slurmctld",
        "SlurmdSpoolDir": "/state/spool/slurmd-%n",
        "SlurmdPidFile": "/state/run/slurmd-%n.pid",
        "SlurmctldLogFile": "/state/log/slurmctld.log",
        "SlurmdLogFile": "/state/log/slurmd-%n.log",
        "SlurmdTimeout": "10",
        "ReturnToService": "2",
        "SlurmctldPidFile": "/state/run/slurmctld.pid",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SlurmdParameters": "config_overrides",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory,CR_LLN",
        "DefMemPerCPU": "1000",  # 4000 MB and 4 CPUs per node
        "PreemptType": "preempt/partition_prio",
        "PreemptMode": "REQUEUE",
        "JobRequeue": "1",
        "KillWait": "5",
        "MinJobAge": "30",
        "AccountingStorageType": "accounting_storage/slurmdbd",
        "AccountingStorageHost": "10.217.161.1",  # reached from the nodes too
        "AccountingStoragePort": "6819",
    }
    assert {key: conf.get(key) for key in expected} == expected
    params = conf["SchedulerParameters"].split(",")
    assert "batch_sched_delay=0" in params
    assert "sched_min_interval=0" in params


def test_slurm_conf_nodes_and_partitions(settings: Settings) -> None:
    lines = render_slurm_conf(settings).splitlines()
    node = [line for line in lines if line.startswith("NodeName=")]
    assert node == [
        f"NodeName=node{k} NodeAddr=10.217.161.1{k} CPUs=4 Boards=1 SocketsPerBoard=1 "
        "CoresPerSocket=4 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN"
        for k in (1, 2)
    ]
    partitions = [line for line in lines if line.startswith("PartitionName=")]
    assert partitions == [
        "PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP "
        "PriorityTier=1",
        "PartitionName=compute Nodes=node1,node2 Default=NO MaxTime=INFINITE State=UP "
        "PriorityTier=1",
        "PartitionName=urgent Nodes=node1,node2 Default=NO MaxTime=INFINITE State=UP "
        "PriorityTier=10 PreemptMode=OFF",
    ]


def test_one_node_layout_is_the_login_host_on_loopback(settings: Settings) -> None:
    one = replace(settings, nodes=1)
    conf = _conf(render_slurm_conf(one))
    assert conf["SlurmctldHost"] == "login(127.0.0.1)"
    assert conf["AccountingStorageHost"] == "127.0.0.1"
    lines = render_slurm_conf(one).splitlines()
    assert [line for line in lines if line.startswith("NodeName=")] == [
        "NodeName=login NodeAddr=127.0.0.1 CPUs=8 Boards=1 SocketsPerBoard=1 "
        "CoresPerSocket=8 ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN"
    ]
    assert "PartitionName=debug Nodes=login Default=YES" in render_slurm_conf(one)


def test_four_nodes_share_the_cpus(settings: Settings) -> None:
    four = replace(settings, nodes=4)
    assert [n.name for n in four.compute_nodes] == ["node1", "node2", "node3", "node4"]
    assert four.cpus == 2 and four.node_memory_mb == 2000
    assert [n.address for n in four.compute_nodes][-1] == "10.217.161.14"


def test_another_port_base_renames_everything_it_shares_the_machine_with(
    settings: Settings,
) -> None:
    default = settings
    other = replace(settings, port_base=6917)
    assert default.is_default_instance and not other.is_default_instance
    assert (default.cluster_name, other.cluster_name) == ("devcluster", "devcluster6917")
    ports = (other.slurmctld_port, other.slurmd_port, other.slurmdbd_port, other.mysql_port)
    assert ports == (6917, 6918, 6919, 6920) and other.ssh_port == 6922
    assert (other.bridge, other.compute_nodes[0].netns, other.compute_nodes[0].veth) == (
        "sdk6917br",
        "sdk6917-node1",
        "sdk6917n1",
    )
    assert other.login_address == "10.217.5.1" != default.login_address
    assert (default.ssh_alias, other.ssh_alias) == ("slurm-devcluster", "slurm-devcluster-6917")
    assert "Host slurm-devcluster-6917\n" in render_ssh_client_config(other)
    assert all(len(name) <= 15 for name in (other.bridge, other.compute_nodes[-1].veth))


def test_hosts_file_names_every_node_and_the_login_host(settings: Settings) -> None:
    assert render_hosts(settings) == HEADER + (
        "127.0.0.1 localhost\n10.217.161.1 login\n10.217.161.11 node1\n10.217.161.12 node2\n"
    )


def test_slurm_conf_without_accounting(settings: Settings) -> None:
    conf = _conf(render_slurm_conf(settings.with_accounting(False)))
    assert conf["AccountingStorageType"] == "accounting_storage/none"
    # Memory limits are enforced either way (the gatherer kills a step past --mem).
    assert conf["JobAcctGatherType"] == "jobacct_gather/linux"
    assert conf["JobAcctGatherParams"] == "OverMemoryKill"
    assert "AccountingStorageHost" not in conf


def test_associations_are_enforced_only_when_asked(settings: Settings) -> None:
    assert "AccountingStorageEnforce" not in _conf(render_slurm_conf(settings))
    enforcing = _conf(render_slurm_conf(replace(settings, enforce_associations=True)))
    assert enforcing["AccountingStorageEnforce"] == "associations,qos"


def test_slurm_conf_is_deterministic(settings: Settings) -> None:
    assert render_slurm_conf(settings) == render_slurm_conf(settings)


def test_slurmdbd_conf(settings: Settings) -> None:
    conf = _conf(render_slurmdbd_conf(settings))
    assert conf == {
        "AuthType": "auth/munge",
        "AuthInfo": "socket=/run/munge/munge.socket.2",
        "DbdAddr": "127.0.0.1",
        "DbdHost": "login",
        "DbdPort": "6819",
        "SlurmUser": "alice",
        "DebugLevel": "info",
        "LogFile": "/state/log/slurmdbd.log",
        "PidFile": "/state/run/slurmdbd.pid",
        "StorageType": "accounting_storage/mysql",
        "StorageHost": "127.0.0.1",
        "StoragePort": "6820",
        "StorageUser": "slurm",
        "StoragePass": "s3cret",
        "StorageLoc": "slurm_acct_db",
    }


def test_my_cnf_keeps_mariadb_inside_the_state_dir(settings: Settings) -> None:
    lines = render_my_cnf(settings).splitlines()
    for expected in (
        "[mysqld]",
        "datadir=/state/mysql/data",
        "socket=/state/mysql/mysqld.sock",
        "port=6820",
        "bind-address=127.0.0.1",
        "log-error=/state/log/mariadb.log",
        "pid-file=/state/run/mariadb.pid",
        "[client]",
    ):
        assert expected in lines


def test_sshd_config(settings: Settings) -> None:
    lines = render_sshd_config(settings).splitlines()
    for expected in (
        "Port 6822",
        "ListenAddress 127.0.0.1",
        "HostKey /state/ssh/ssh_host_ed25519_key",
        "AuthorizedKeysFile /state/ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "SetEnv SLURM_CONF=/state/slurm.conf",
        "Subsystem sftp internal-sftp",
        "StrictModes yes",
    ):
        assert expected in lines
    assert "StrictModes no" not in lines


HOME = "/home/alice"


@pytest.mark.parametrize(
    ("chain", "problem"),
    [
        # The default state dir under the home: the walk stops at the home directory.
        (
            [(f"{HOME}/.local/state/dc/ssh/authorized_keys", 1000, 0o100600),
             (f"{HOME}/.local/state/dc/ssh", 1000, 0o40700),
             (f"{HOME}/.local/state/dc", 1000, 0o40755),
             (HOME, 1000, 0o40750),
             ("/home", 0, 0o40777)],  # above the home: not looked at
            None,
        ),
        # Outside the home every directory up to / counts; root's are fine.
        ([("/srv/dc/ssh/authorized_keys", 1000, 0o100600), ("/srv/dc/ssh", 1000, 0o40700),
          ("/srv/dc", 0, 0o40755), ("/srv", 0, 0o40755), ("/", 0, 0o40755)], None),
        # /var/tmp: the sticky bit does not help.
        ([("/var/tmp/dc/ssh/authorized_keys", 1000, 0o100600), ("/var/tmp/dc/ssh", 1000, 0o40700),
          ("/var/tmp/dc", 1000, 0o40700), ("/var/tmp", 0, 0o41777), ("/var", 0, 0o40755)],
         "the directory /var/tmp (owner uid 0, mode 1777)"),
        ([(f"{HOME}/dc/ssh/authorized_keys", 1000, 0o100620), (f"{HOME}/dc/ssh", 1000, 0o40700)],
         f"the file {HOME}/dc/ssh/authorized_keys (owner uid 1000, mode 0620)"),
        ([(f"{HOME}/dc/ssh/authorized_keys", 1000, 0o100600), (f"{HOME}/dc/ssh", 1001, 0o40700)],
         f"the directory {HOME}/dc/ssh (owner uid 1001, mode 0700)"),
        ([(f"{HOME}/dc/ssh/authorized_keys", 1000, 0o100600), (f"{HOME}/dc/ssh", 1000, 0o40700),
          (f"{HOME}/dc", 1000, 0o40775)],
         f"the directory {HOME}/dc (owner uid 1000, mode 0775)"),
    ],
)  # fmt: skip
def test_strict_modes_problem_follows_sshd(
    chain: list[tuple[str, int, int]], problem: str | None
) -> None:
    assert strict_modes_problem(chain, 1000, HOME) == problem


def test_ssh_client_config(settings: Settings) -> None:
    assert render_ssh_client_config(settings) == HEADER + (
        "Host slurm-devcluster\n"
        "    HostName 127.0.0.1\n"
        "    Port 6822\n"
        "    User alice\n"
        "    IdentityFile /state/ssh/id_ed25519\n"
        "    IdentitiesOnly yes\n"
        "    UserKnownHostsFile /state/ssh/known_hosts\n"
        "    StrictHostKeyChecking yes\n"
    )


def test_known_hosts(settings: Settings) -> None:
    assert render_known_hosts(settings, "ssh-ed25519 AAAAkey host-comment\n") == (
        "[127.0.0.1]:6822 ssh-ed25519 AAAAkey\nslurm-devcluster ssh-ed25519 AAAAkey\n"
    )


def test_paths_derive_from_state_dir(settings: Settings) -> None:
    assert settings.slurm_conf == STATE / "slurm.conf"
    assert settings.slurmdbd_conf == STATE / "slurmdbd.conf"  # next to slurm.conf
    assert settings.pid_file("sshd") == STATE / "run" / "sshd.pid"


@pytest.mark.parametrize(
    ("total", "expected"),
    [(512, 1024), (4096, 3072), (24152, 16384), (100_000, 16384)],
)
def test_sensible_real_memory(total: int, expected: int) -> None:
    assert sensible_real_memory_mb(total) == expected


def test_def_mem_per_cpu_lets_every_cpu_be_used(settings: Settings) -> None:
    assert settings.def_mem_per_cpu_mb * settings.cpus <= settings.node_memory_mb
