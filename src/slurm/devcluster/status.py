"""What ``slurm devcluster status`` reports, as a dataclass that renders to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SshInfo", "Status"]


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
class Status:
    """The dev cluster as it is now."""

    running: bool
    state_dir: str
    accounting: bool
    slurm_version: str
    cluster_name: str
    node_name: str
    cpus: int
    real_memory_mb: int
    partitions: list[str]
    default_partition: str
    slurm_conf: str
    log_dir: str
    ssh: SshInfo
    daemons: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
