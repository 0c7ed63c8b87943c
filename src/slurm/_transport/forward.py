"""A local TCP port forwarded to a port on the cluster (``ssh -L``), for ``slurm jobs debug``.

:class:`PortForward` listens on this machine; each connection it accepts is
joined to a new stream that ``connect`` opens: a socket to the node (the local
backend), or an SSH ``direct-tcpip`` channel of the cluster's one connection
(:meth:`slurm._transport.ssh.SSHTransport.connect_tcp`), so the node's port is
reached from the login host, as ``ssh -L PORT:NODE:PORT LOGIN`` would.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["PortForward"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class PortForward:
    """Listen on ``host:port`` here (``port=0``: any free one, see :attr:`port`) and join
    each connection to ``connect()``; :meth:`close` stops listening.

    Raises:
        OSError: the port cannot be listened on (taken, or not allowed).
    """

    def __init__(self, connect: Callable[[], Any], *, port: int = 0, host: str = "127.0.0.1"):
        self._connect = connect
        self._server = socket.create_server((host, port))
        #: The port listened on here.
        self.port: int = self._server.getsockname()[1]
        self.host = host
        self._thread = threading.Thread(target=self._accept, name="port-forward", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            try:
                remote = self._connect()
            except Exception as exc:  # the far end refused: this connection only
                logger.warning("port forward: cannot reach the far end: %s", exc)
                client.close()
                continue
            for source, target in ((client, remote), (remote, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections (those open end with their streams)."""
        self._server.close()

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(source: Any, target: Any) -> None:
    """Copy ``source`` to ``target`` until either ends; then close both."""
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.close()
