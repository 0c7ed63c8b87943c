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

from slurm.devcluster.releases import HOST_RELEASE, Release, get_release
from slurm.errors import DevclusterError

__all__ = [
    "ACCOUNT",
    "DEFAULT_CPUS",
    "DEFAULT_NODES",
    "DEFAULT_PORT_BASE",
    "ENV_NODES",
    "ENV_PORT_BASE",
    "ENV_RELEASE",
    "ENV_STATE_DIR",
    "MAX_NODES",
    "PARTITIONS",
    "SSH_ALIAS",
    "NodeSpec",
    "Settings",
    "default_state_dir",
    "detect_settings",
    "env_nodes",
    "env_port_base",
]

ENV_STATE_DIR = "SLURM_SDK_DEVCLUSTER_DIR"
ENV_NODES = "SLURM_SDK_DEVCLUSTER_NODES"
ENV_PORT_BASE = "SLURM_SDK_DEVCLUSTER_PORT_BASE"
ENV_RELEASE = "SLURM_SDK_DEVCLUSTER_RELEASE"
SSH_ALIAS = "slurm-devcluster"
DEFAULT_CPUS = 8  # in all, divided between the compute nodes
DEFAULT_NODES = 2
MAX_NODES = 8
DEFAULT_PORT_BASE = 6817
# The account `up --enforce-associations` creates and gives the user who runs `up`.
ACCOUNT = "sdk"
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
class NodeSpec:
    """One compute node: its name, its network namespace and its address on the bridge."""

    name: str
    netns: str  # "" in the one-node layout: the node is the login host itself
    veth: str  # the root namespace's end of its veth pair
    address: str


@dataclass(frozen=True)
class Settings:
    """What the dev cluster looks like; every config file is rendered from this.

    ``nodes == 1`` is the one-node layout: slurmd runs on this machine next to
    slurmctld under its host name. ``nodes > 1`` gives each compute node
    (``node1`` ... ``nodeN``) its own network, UTS and mount namespace, joined to
    the login host (this machine) by a bridge on a private subnet.
    """

    state_dir: Path
    node_name: str  # this machine's short host name: the login host
    user: str
    real_memory_mb: int
    db_password: str = field(default="", repr=False)
    accounting: bool = True
    containers: bool = False  # pyxis + enroot, a registry, a base image
    apptainer: bool = False  # Debian's apptainer in the release's root
    # AccountingStorageEnforce=associations,qos: only users with an association may
    # submit, unknown accounts and QOS are refused (needs accounting).
    enforce_associations: bool = False
    nodes: int = DEFAULT_NODES
    port_base: int = DEFAULT_PORT_BASE
    total_cpus: int = DEFAULT_CPUS
    munge_socket: Path = Path("/run/munge/munge.socket.2")
    home: Path = field(default_factory=Path.home)
    # The Slurm release (releases.RELEASES) and, for one this machine's packages do not
    # provide, the root file system its daemons run from (None: this machine's own).
    release: str = HOST_RELEASE
    root: Path | None = None

    @property
    def slurm_release(self) -> Release:
        return get_release(self.release)

    def require_root(self) -> Path:
        """The release's root; only called where the cluster runs from one."""
        if self.root is None:
            raise DevclusterError(f"Slurm {self.release} runs from this machine's packages")
        return self.root

    # Ports: slurmctld, slurmd, slurmdbd, MariaDB, the registry, sshd from port_base up.
    @property
    def slurmctld_port(self) -> int:
        return self.port_base

    @property
    def slurmd_port(self) -> int:
        return self.port_base + 1

    @property
    def slurmdbd_port(self) -> int:
        return self.port_base + 2

    @property
    def mysql_port(self) -> int:
        return self.port_base + 3

    @property
    def registry_port(self) -> int:
        return self.port_base + 4

    @property
    def ssh_port(self) -> int:
        return self.port_base + 5

    @property
    def is_default_instance(self) -> bool:
        """The cluster on the default ports owns the machine-wide pointers to it
        (``/etc/slurm/slurm.conf``, the ``slurm-devcluster`` SSH alias); another one
        runs beside it and its clients set ``SLURM_CONF``."""
        return self.port_base == DEFAULT_PORT_BASE

    @property
    def ssh_alias(self) -> str:
        """The ``~/.ssh/config`` alias of the login host: ``slurm-devcluster`` for the
        cluster on the default ports, ``slurm-devcluster-<port base>`` for another one."""
        return SSH_ALIAS if self.is_default_instance else f"{SSH_ALIAS}-{self.port_base}"

    @property
    def cluster_name(self) -> str:
        return "devcluster" if self.is_default_instance else f"devcluster{self.port_base}"

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    @property
    def cpus(self) -> int:
        """CPUs of each compute node."""
        return max(1, self.total_cpus // self.nodes)

    @property
    def node_memory_mb(self) -> int:
        return max(512, self.real_memory_mb // self.nodes)

    @property
    def def_mem_per_cpu_mb(self) -> int:
        """Memory a job gets per CPU unless it asks: small enough that every CPU can be used."""
        return max(100, self.node_memory_mb // self.cpus)

    # The private network of the multi-node layout (names fit Linux's 15-character limit).
    @property
    def net_prefix(self) -> str:
        return f"sdk{self.port_base}"

    @property
    def bridge(self) -> str:
        return f"{self.net_prefix}br"

    @property
    def subnet_prefix(self) -> str:
        """The first three octets of the node subnet, a /24 only these namespaces use."""
        return f"10.217.{self.port_base % 256}"

    @property
    def login_address(self) -> str:
        """Where slurmctld and slurmdbd are reached: the bridge, or loopback with one node."""
        return f"{self.subnet_prefix}.1" if self.multi_node else "127.0.0.1"

    @property
    def compute_nodes(self) -> tuple[NodeSpec, ...]:
        if not self.multi_node:
            return (NodeSpec(self.node_name, "", "", "127.0.0.1"),)
        return tuple(
            NodeSpec(
                f"node{k}",
                f"{self.net_prefix}-node{k}",
                f"{self.net_prefix}n{k}",
                f"{self.subnet_prefix}.{10 + k}",
            )
            for k in range(1, self.nodes + 1)
        )

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
    def cgroup_conf(self) -> Path:
        # Slurm reads cgroup.conf next to slurm.conf.
        return self.state_dir / "cgroup.conf"

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
    def spool_slurmd_pattern(self) -> str:
        """Each slurmd's spool directory, ``%n`` standing for its node's name."""
        return str(self.state_dir / "spool" / "slurmd-%n")

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
    def apptainer_conf(self) -> Path:
        """The dev cluster's ``apptainer.conf``, bound over the root's (``up --apptainer``)."""
        return self.state_dir / "apptainer" / "apptainer.conf"

    @property
    def containers_dir(self) -> Path:
        return self.state_dir / "containers"

    @property
    def enroot_bin(self) -> Path:
        return self.containers_dir / "enroot" / "bin"

    @property
    def plugstack_conf(self) -> Path:
        return self.containers_dir / "plugstack.conf"

    @property
    def hosts_file(self) -> Path:
        """``/etc/hosts`` as the compute nodes see it (bound over theirs)."""
        return self.state_dir / "hosts"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "devcluster.json"

    @property
    def bin_dir(self) -> Path:
        """The release's Slurm client commands (scripts that run them from the root)."""
        return self.state_dir / "bin"

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


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise DevclusterError(
            f"${name}={raw!r} is not a whole number from {low} to {high}: "
            f"set it to one, or unset it for the default {default}."
        )
    return value


def env_nodes() -> int:
    """``$SLURM_SDK_DEVCLUSTER_NODES``, else :data:`DEFAULT_NODES`."""
    return _env_int(ENV_NODES, DEFAULT_NODES, 1, MAX_NODES)


def env_port_base() -> int:
    """``$SLURM_SDK_DEVCLUSTER_PORT_BASE``, else 6817 (the cluster uses 6 ports from there)."""
    return _env_int(ENV_PORT_BASE, DEFAULT_PORT_BASE, 1024, 65000)


def detect_settings(
    state_dir: Path | str | None = None,
    *,
    accounting: bool = True,
    nodes: int = DEFAULT_NODES,
    port_base: int = DEFAULT_PORT_BASE,
) -> Settings:
    """Settings for this machine: login host ``hostname -s``, the current user, its memory."""
    return Settings(
        state_dir=Path(state_dir).expanduser().absolute() if state_dir else default_state_dir(),
        node_name=socket.gethostname().split(".")[0],
        user=pwd.getpwuid(os.getuid()).pw_name,
        real_memory_mb=sensible_real_memory_mb(_total_memory_mb()),
        accounting=accounting,
        nodes=nodes,
        port_base=port_base,
    )
