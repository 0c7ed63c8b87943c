"""Where commands run: this machine or a login node over SSH.

:class:`Transport` is the boundary; :class:`LocalTransport` and
:class:`SSHTransport` implement it. Everything above (Slurm argv builders and
parsers, the cluster facade) works the same on either.

``SSHTransport`` (paramiko and its dependencies) is imported on first use, so
that a client on the cluster itself, and every job, does without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slurm._transport.base import CommandResult, Transport
from slurm._transport.local import LocalTransport

if TYPE_CHECKING:
    from slurm._transport.ssh import SSHTransport

__all__ = ["CommandResult", "LocalTransport", "SSHTransport", "Transport"]


def __getattr__(name: str) -> Any:
    if name == "SSHTransport":
        from slurm._transport.ssh import SSHTransport

        return SSHTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
