"""Dev cluster helpers that need no Slurm: state dir, ssh files, packages, processes, status."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

import pytest

from slurm.devcluster import install
from slurm.devcluster.proc import is_alive, read_pid, spawn_daemon, stop_pid, wait_for
from slurm.devcluster.settings import (
    ENV_NODES,
    ENV_PORT_BASE,
    ENV_STATE_DIR,
    default_state_dir,
    env_nodes,
    env_port_base,
)
from slurm.devcluster.sshsetup import (
    BLOCK_BEGIN,
    BLOCK_END,
    block_markers,
    merge_known_hosts,
    merge_user_config,
)
from slurm.devcluster.status import SshInfo, Status
from slurm.errors import CommandError, DevclusterError


def test_state_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_STATE_DIR, str(tmp_path / "x"))
    monkeypatch.setenv("XDG_STATE_HOME", "/elsewhere")
    assert default_state_dir() == tmp_path / "x"


def test_nodes_and_port_base_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NODES, raising=False)
    monkeypatch.delenv(ENV_PORT_BASE, raising=False)
    assert (env_nodes(), env_port_base()) == (2, 6817)
    monkeypatch.setenv(ENV_NODES, "3")
    monkeypatch.setenv(ENV_PORT_BASE, "6917")
    assert (env_nodes(), env_port_base()) == (3, 6917)


@pytest.mark.parametrize("value", ["0", "9", "two", "1.5"])
def test_bad_node_count_from_env_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_NODES, value)
    with pytest.raises(DevclusterError, match=rf"\${ENV_NODES}=.*from 1 to 8.*unset it"):
        env_nodes()


def test_state_dir_from_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_STATE_DIR, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", "/xdg")
    assert default_state_dir() == Path("/xdg/slurm-sdk/devcluster")


def test_state_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_STATE_DIR, raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / ".local/state/slurm-sdk/devcluster"


def _hashed(name: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_merge_known_hosts_replaces_stale_entries_only() -> None:
    existing = (
        "# comment\n"
        "github.com ssh-ed25519 GH\n"
        "[127.0.0.1]:6822 ssh-ed25519 OLD\n"
        f"{_hashed('slurm-devcluster')} ssh-ed25519 OLDHASHED\n"
        f"{_hashed('other')} ssh-ed25519 KEEP\n"
    )
    entries = "[127.0.0.1]:6822 ssh-ed25519 NEW\nslurm-devcluster ssh-ed25519 NEW\n"
    merged = merge_known_hosts(existing, entries)
    assert merged == (
        f"# comment\ngithub.com ssh-ed25519 GH\n{_hashed('other')} ssh-ed25519 KEEP\n" + entries
    )
    assert merge_known_hosts(merged, entries) == merged
    assert merge_known_hosts("", entries) == entries


def test_merge_user_config_puts_block_on_top_once() -> None:
    existing = "ForwardAgent no\nHost example\n    User bob\n"
    block = "# header\nHost slurm-devcluster\n    Port 6822\n"
    merged = merge_user_config(existing, Path("/state/ssh/config"), block)
    lines = merged.splitlines()
    assert lines[:6] == [
        BLOCK_BEGIN,
        "Include /state/ssh/config",
        "Host slurm-devcluster",
        "    Port 6822",
        "Host *",
        BLOCK_END,
    ]
    assert merged.endswith(existing)
    again = merge_user_config(merged, Path("/state/ssh/config"), block)
    assert again == merged
    changed = merge_user_config(merged, Path("/state/ssh/config"), block.replace("6822", "7000"))
    assert changed.count(BLOCK_BEGIN) == 1
    assert "    Port 7000" in changed.splitlines()
    assert merge_user_config("", Path("/c"), block).endswith(BLOCK_END + "\n")


def test_each_cluster_has_its_own_block_and_alias() -> None:
    other = "# header\nHost slurm-devcluster-7200\n    Port 7205\n"
    both = merge_user_config(
        merge_user_config("", Path("/a/ssh/config"), "Host slurm-devcluster\n    Port 6822\n"),
        Path("/b/ssh/config"),
        other,
        "slurm-devcluster-7200",
    )
    begin, end = block_markers("slurm-devcluster-7200")
    lines = both.splitlines()
    assert lines[0] == begin and "Host slurm-devcluster-7200" in lines[: lines.index(end)]
    assert BLOCK_BEGIN in lines and "Host slurm-devcluster" in lines  # the default one stays
    again = merge_user_config(both, Path("/b/ssh/config"), other, "slurm-devcluster-7200")
    assert again == both


def test_missing_packages_lists_packages_in_install_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"slurmctld", "ssh"}
    monkeypatch.setattr(install, "find_program", lambda name: name if name in present else None)
    programs = {"slurmctld": "slurm-wlm", "ssh": "openssh-client", "sshd": "openssh-server"}
    assert install.missing_packages(programs) == ["openssh-server"]
    programs["munged"] = "munge"
    assert install.missing_packages(programs) == ["munge", "openssh-server"]


def test_not_root_and_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "find_program", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DevclusterError) as info:
        install.ensure_installed()
    message = str(info.value)
    assert "apt-get install -y --no-install-recommends" in message
    for package in install.APT_PACKAGES:
        assert package in message


def test_spawn_daemon_records_pid_and_stop(tmp_path: Path) -> None:
    pid = spawn_daemon(
        [sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"],
        pid_file=tmp_path / "run" / "d.pid",
        log_file=tmp_path / "log" / "d.log",
    )
    assert read_pid(tmp_path / "run" / "d.pid") == pid
    name = Path(os.path.realpath(sys.executable)).name
    assert is_alive(pid, name)
    assert not is_alive(pid, "slurmctld")  # a recycled pid is never someone else's daemon
    wait_for(lambda: "hello" in (tmp_path / "log" / "d.log").read_text(), what="log", timeout=10)
    stop_pid(pid, name, timeout=5)
    assert not is_alive(pid, name)


def test_a_daemon_starts_in_the_root_directory_whatever_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``up`` runs as root: a ``subprocess.py`` planted where it was started never runs,
    and the daemon's working directory is ``/``."""
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "subprocess.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n"
    )
    monkeypatch.chdir(stray)
    monkeypatch.setenv("PYTHONPATH", str(stray))
    pid = spawn_daemon(
        ["sh", "-c", "pwd; exec sleep 60"],
        pid_file=tmp_path / "run" / "d.pid",
        log_file=tmp_path / "log" / "d.log",
    )
    try:
        wait_for(lambda: (tmp_path / "log" / "d.log").read_text() == "/\n", what="pwd", timeout=10)
    finally:
        stop_pid(pid, "sleep", timeout=5)
    assert not (stray / "IMPORTED").exists()


def test_wait_for_reports_logs(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("line 1\nfatal: broken\n")
    with pytest.raises(Exception, match="fatal: broken") as info:
        wait_for(lambda: False, what="x did not start", timeout=0.1, logs=[log])
    assert str(log) in str(info.value)


def test_run_raises_command_error() -> None:
    from slurm.devcluster.proc import run

    with pytest.raises(CommandError) as info:
        run([sys.executable, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    assert info.value.returncode == 3
    assert info.value.stderr == "bad"


def test_status_to_json() -> None:
    st = Status(
        running=True,
        state_dir="/s",
        accounting=True,
        slurm_version="22.05.8",
        cluster_name="devcluster",
        node_name="n",
        cpus=8,
        real_memory_mb=8000,
        partitions=["debug", "compute", "urgent"],
        default_partition="debug",
        slurm_conf="/s/slurm.conf",
        log_dir="/s/log",
        ssh=SshInfo("127.0.0.1", 6822, "root", "/s/ssh/id", "slurm-devcluster", "/c", "/k"),
    )
    data = json.loads(st.to_json())
    assert data["ssh"] == {
        "host": "127.0.0.1",
        "port": 6822,
        "username": "root",
        "key_file": "/s/ssh/id",
        "alias": "slurm-devcluster",
        "config_file": "/c",
        "known_hosts_file": "/k",
    }
    assert {"partitions", "accounting", "slurm_version", "state_dir", "running"} <= set(data)


def test_system_slurm_conf_link(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from slurm.devcluster import cluster
    from slurm.devcluster.settings import detect_settings

    link = tmp_path / "etc" / "slurm.conf"
    monkeypatch.setattr(cluster, "SYSTEM_SLURM_CONF", link)
    s = detect_settings(tmp_path / "state")
    cluster._link_system_conf(s)
    assert link.is_symlink() and Path(os.readlink(link)) == s.slurm_conf
    cluster._link_system_conf(s)  # idempotent
    other = detect_settings(tmp_path / "other")
    cluster._link_system_conf(other)  # a link (ours, elsewhere) is re-pointed
    assert Path(os.readlink(link)) == other.slurm_conf


def test_system_slurm_conf_regular_file_is_never_clobbered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from slurm.devcluster import cluster
    from slurm.devcluster.settings import detect_settings

    link = tmp_path / "slurm.conf"
    link.write_text("ClusterName=production\n")
    monkeypatch.setattr(cluster, "SYSTEM_SLURM_CONF", link)
    with pytest.raises(DevclusterError, match="not a link"):
        cluster._link_system_conf(detect_settings(tmp_path / "state"))
    assert link.read_text() == "ClusterName=production\n"


def test_cli_help_lists_commands() -> None:
    from click.testing import CliRunner

    from slurm.cli import main

    result = CliRunner().invoke(main, ["devcluster", "--help"])
    assert result.exit_code == 0
    for command in ("up", "status", "down"):
        assert command in result.output
    up_help = CliRunner().invoke(main, ["devcluster", "up", "--help"]).output
    assert "--no-accounting" in up_help and "--state-dir" in up_help
