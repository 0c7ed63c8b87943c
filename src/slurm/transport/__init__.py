"""Where commands run: this machine or a login node over SSH.

:class:`Transport` is the boundary; :class:`LocalTransport` and
:class:`SSHTransport` implement it. Everything above (Slurm argv builders and
parsers, the cluster facade) works the same on either.
"""

from slurm.transport.base import CommandResult, Transport
from slurm.transport.local import LocalTransport
from slurm.transport.ssh import SSHTransport

__all__ = ["CommandResult", "LocalTransport", "SSHTransport", "Transport"]
