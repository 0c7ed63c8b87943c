"""What ``slurm devcluster status`` reports, as a dataclass that renders to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["NodeStatus", "SshInfo", "Status"]


@dataclass(frozen=True)
class SshInfo:
    """How to reach the dev cluster over SSH (what an SSH ``Cluster`` needs)."""

    host: str
    port: int
    username: str
    key_file: str
    alias: str
    config_file: str
    known_hosts_file: str


@dataclass(frozen=True)
class NodeStatus:
    """One compute node: its name (also its host name), address, Slurm state, CPUs."""

    name: str
    address: str
    state: str  # as sinfo prints it: idle, mixed, allocated, down*, ... ("" if unknown)
    cpus: int
    netns: str  # its network namespace ("" in the one-node layout)


@dataclass(frozen=True)
class Status:
    """The dev cluster as it is now."""

    running: bool
    state_dir: str
    accounting: bool
    slurm_version: str
    cluster_name: str
    node_name: str  # the login host (this machine)
    cpus: int  # per compute node
    real_memory_mb: int  # per compute node
    partitions: list[str]
    default_partition: str
    slurm_conf: str
    log_dir: str
    ssh: SshInfo
    daemons: dict[str, int | None] = field(default_factory=dict)
    nodes: list[NodeStatus] = field(default_factory=list)
    # {"registry": "127.0.0.1:PORT", "base_image": PATH} with --containers, else None
    containers: dict[str, str] | None = None
    # AccountingStorageEnforce=associations,qos (`up --enforce-associations`)
    enforce_associations: bool = False
    # The Slurm release asked for (`up --slurm`, "22.05" when this machine's packages)
    release: str = ""
    # The version of python3 as the cluster's jobs find it ("3.13.5"; "" if unknown)
    python_version: str = ""
    # For a release run from its root: the directory of its client commands (put it
    # first on PATH to submit here with that release's sbatch); "" otherwise
    slurm_bin: str = ""
    # `up --apptainer`: the version of apptainer in the release's root ("1.4.5"); ""
    # when the cluster has none
    apptainer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
