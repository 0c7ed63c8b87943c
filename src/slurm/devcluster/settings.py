"""Settings of the dev cluster: one small dataclass, resolved once, in one place.

Everything else (config rendering, daemon management) takes a :class:`Settings`
and derives every path from ``state_dir``: the cluster owns that one directory.
"""

from __future__ import annotations

import os
import pwd
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "DEFAULT_CPUS",
    "ENV_STATE_DIR",
    "PARTITIONS",
    "SSH_ALIAS",
    "Settings",
    "default_state_dir",
    "detect_settings",
]

ENV_STATE_DIR = "SLURM_SDK_DEVCLUSTER_DIR"
SSH_ALIAS = "slurm-devcluster"
DEFAULT_CPUS = 8
# (name, PriorityTier): a job in a higher tier preempts (requeues) lower-tier jobs.
PARTITIONS: tuple[tuple[str, int], ...] = (("debug", 1), ("compute", 1), ("urgent", 10))


def default_state_dir() -> Path:
    """``$SLURM_SDK_DEVCLUSTER_DIR``, else ``$XDG_STATE_HOME/slurm-sdk/devcluster``,
    else ``~/.local/state/slurm-sdk/devcluster``."""
    explicit = os.environ.get(ENV_STATE_DIR)
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return (base / "slurm-sdk" / "devcluster").absolute()


@dataclass(frozen=True)
class Settings:
    """What the dev cluster looks like; every config file is rendered from this."""

    state_dir: Path
    node_name: str
    user: str
    real_memory_mb: int
    db_password: str = field(default="", repr=False)
    accounting: bool = True
    cluster_name: str = "devcluster"
    cpus: int = DEFAULT_CPUS
    slurmctld_port: int = 6817
    slurmd_port: int = 6818
    slurmdbd_port: int = 6819
    mysql_port: int = 6820
    ssh_port: int = 6822
    munge_socket: Path = Path("/run/munge/munge.socket.2")
    home: Path = field(default_factory=Path.home)

    @property
    def def_mem_per_cpu_mb(self) -> int:
        """Memory a job gets per CPU unless it asks: small enough that every CPU can be used."""
        return max(100, self.real_memory_mb // self.cpus)

    def with_accounting(self, accounting: bool) -> Settings:
        return replace(self, accounting=accounting)

    # Paths, all inside the state directory.
    @property
    def slurm_conf(self) -> Path:
        return self.state_dir / "slurm.conf"

    @property
    def slurmdbd_conf(self) -> Path:
        # slurmdbd looks for slurmdbd.conf next to $SLURM_CONF.
        return self.state_dir / "slurmdbd.conf"

    @property
    def my_cnf(self) -> Path:
        return self.state_dir / "mysql" / "my.cnf"

    @property
    def mysql_datadir(self) -> Path:
        return self.state_dir / "mysql" / "data"

    @property
    def mysql_socket(self) -> Path:
        return self.state_dir / "mysql" / "mysqld.sock"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def spool_ctld(self) -> Path:
        return self.state_dir / "spool" / "slurmctld"

    @property
    def spool_slurmd(self) -> Path:
        return self.state_dir / "spool" / "slurmd"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def ssh_host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def ssh_client_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def ssh_authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def ssh_known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_client_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "devcluster.json"

    def log_file(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"

    def pid_file(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"


def _total_memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4096


def sensible_real_memory_mb(total_mb: int) -> int:
    """Three quarters of the machine, between 1 GiB and 16 GiB."""
    return max(1024, min(16384, total_mb * 3 // 4))


def detect_settings(state_dir: Path | str | None = None, *, accounting: bool = True) -> Settings:
    """Settings for this machine: node name ``hostname -s``, the current user, its memory."""
    return Settings(
        state_dir=Path(state_dir).expanduser().absolute() if state_dir else default_state_dir(),
        node_name=socket.gethostname().split(".")[0],
        user=pwd.getpwuid(os.getuid()).pw_name,
        real_memory_mb=sensible_real_memory_mb(_total_memory_mb()),
        accounting=accounting,
    )
