"""A real single-node Slurm cluster on localhost, for tests, demos and benchmarks.

``up()`` installs what is missing (as root on Debian/Ubuntu), writes every config
into one state directory and starts munged, MariaDB + slurmdbd (accounting),
slurmctld, slurmd and an sshd on 127.0.0.1. ``status()`` reports, ``down()`` stops
only what ``up()`` started. The ``slurm devcluster`` command wraps these.
"""

from __future__ import annotations

from slurm.devcluster.cluster import down, status, up
from slurm.devcluster.proc import DevclusterError
from slurm.devcluster.settings import ENV_STATE_DIR, SSH_ALIAS, Settings, default_state_dir
from slurm.devcluster.status import SshInfo, Status

__all__ = [
    "ENV_STATE_DIR",
    "SSH_ALIAS",
    "DevclusterError",
    "Settings",
    "SshInfo",
    "Status",
    "default_state_dir",
    "down",
    "status",
    "up",
]
