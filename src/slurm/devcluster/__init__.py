"""A real Slurm cluster on this machine, for tests, demos and benchmarks.

``up()`` installs what is missing (as root on Debian/Ubuntu), writes every config
into one state directory and starts munged, MariaDB + slurmdbd (accounting),
slurmctld and an sshd on 127.0.0.1: the login host. Compute nodes ``node1`` ...
``nodeN`` (default 2) each get their own network, UTS and mount namespace and their
own slurmd; with ``nodes=1`` slurmd runs on this machine itself. ``status()``
reports, ``down()`` stops only what ``up()`` started and removes the namespaces.
The ``slurm devcluster`` command wraps these.
"""

from __future__ import annotations

from slurm.devcluster.cluster import down, status, up
from slurm.devcluster.proc import DevclusterError
from slurm.devcluster.releases import HOST_RELEASE, RELEASES, Release
from slurm.devcluster.settings import (
    ENV_NODES,
    ENV_PORT_BASE,
    ENV_RELEASE,
    ENV_STATE_DIR,
    MAX_NODES,
    SSH_ALIAS,
    Settings,
    default_state_dir,
)
from slurm.devcluster.status import NodeStatus, SshInfo, Status

__all__ = [
    "ENV_NODES",
    "ENV_PORT_BASE",
    "ENV_RELEASE",
    "ENV_STATE_DIR",
    "HOST_RELEASE",
    "MAX_NODES",
    "RELEASES",
    "SSH_ALIAS",
    "DevclusterError",
    "NodeStatus",
    "Release",
    "Settings",
    "SshInfo",
    "Status",
    "default_state_dir",
    "down",
    "status",
    "up",
]
