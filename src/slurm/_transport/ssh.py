"""Run commands and handle files on a login node over one persistent SSH connection."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import select
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import paramiko

from slurm._transport import sftpfiles
from slurm._transport.base import (
    NOT_FOUND_EXIT_CODE,
    CommandResult,
    Transport,
    build_shell_command,
    check_result,
    not_found_error,
    timeout_error,
    validate_argv,
)
from slurm._transport.keypolicy import resolve_policy
from slurm._transport.progress import Progress, terminal_progress
from slurm._transport.sshauth import InteractiveAuth
from slurm._transport.sshconfig import HostSettings, load_ssh_config, resolve_host
from slurm._transport.sshconnect import Credentials, SSHConnection, jump_chain, open_connection
from slurm.errors import ConnectionLostError, TransportError

__all__ = ["SSHTransport"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 65536
#: The most a command may print on stdout (or on stderr) before it is stopped.
OUTPUT_CAP = 64 * 1024 * 1024
# How long to wait for paramiko to notice that a connection died after a channel
# closed without an exit status (its transport thread closes channels first).
_DEATH_GRACE = 1.0


class _Lost(Exception):
    """The connection died while a command was running."""


class _Timeout(Exception):
    """The command ran out of time; args are the (stdout, stderr) seen so far."""


class SSHTransport(Transport):
    """A :class:`~slurm._transport.base.Transport` to a login node over SSH (paramiko).

    One persistent connection per transport, opened on first use; commands run
    on channels over it (several threads may run commands at once), files go
    over SFTP. When the connection drops, the next operation reconnects (and
    logs a warning saying so: with a second factor, that login asks again).

    Logins with a second factor (``AuthenticationMethods
    publickey,keyboard-interactive``, e.g. a one-time code after the key) are
    answered once per connection: by ``interactive_auth`` when given, else on
    the terminal. The connection is then kept and reused for every command and
    file operation, so the code is asked again only after a reconnect.

    Settings come from ``~/.ssh/config`` like OpenSSH's (``Host`` aliases,
    ``HostName``, ``Port``, ``User``, ``IdentityFile``, ``IdentitiesOnly``,
    ``ProxyJump``, ``ProxyCommand``, ``UserKnownHostsFile``, ``HostKeyAlias``,
    ``ConnectTimeout``); explicit arguments win. Authentication tries the key
    files, the SSH agent, the default keys in ``~/.ssh`` and the password, in
    paramiko's order. Secrets stay in memory only.

    Host keys are checked against known_hosts before any credential is sent:
    an unknown host is refused with :class:`~slurm.errors.HostKeyError`
    (showing the SHA256 fingerprint) unless ``accept_new_host_key=True``, which
    appends the key to the user known_hosts file; a changed key is always
    refused.

    Args:
        hostname: Host name, address or ``Host`` alias from the ssh config.
        username: Login name (default: ``User`` from the config, else the local user).
        port: Port (default: ``Port`` from the config, else 22).
        password: Password for the target (also unlocks encrypted keys); never
            sent to jump hosts.
        key_filename: Private key file, offered first (also to jump hosts).
        ssh_config: OpenSSH client config file; ``None`` to ignore any.
        known_hosts: known_hosts file to read and to save accepted keys to,
            replacing the user files (``~/.ssh/known_hosts`` or
            ``UserKnownHostsFile``); ``/etc/ssh/ssh_known_hosts`` is still read.
        accept_new_host_key: Accept and save the key of a host never seen before.
        host_key_policy: The earlier SDK's spelling: ``"reject"`` (the default),
            ``"warn"`` (accept an unknown host's key for this connection only, with
            a warning) or ``"auto"`` (``accept_new_host_key=True``).
        connect_timeout: Seconds for TCP connect, SSH handshake and opening a channel.
        keepalive: Seconds between keepalive packets (0 disables them).
        passphrase: Passphrase for encrypted key files.
        allow_agent: Use the SSH agent (``SSH_AUTH_SOCK``).
        look_for_keys: Try ``~/.ssh/id_*`` keys.
        max_sessions: Channels open at once on the connection (sshd's
            ``MaxSessions`` defaults to 10); further commands wait for a slot.
        interactive_auth: Answers keyboard-interactive prompts: a callable
            taking a :class:`~slurm._transport.sshauth.AuthPrompt` and returning
            the answer (e.g. a one-time code). ``None`` asks on the terminal
            when the server wants a second factor after the key; with a
            callable, servers taking keyboard-interactive alone work too (a
            prompt mentioning "password" gets ``password`` when given).

    Raises:
        ConfigurationError: The ssh config cannot be read or has bad values.

    Example:
        >>> with SSHTransport("hpc") as t:  # doctest: +SKIP
        ...     print(t.run(["squeue", "--me"]).stdout)
    """

    kind = "ssh"
    #: Bytes a command may print on stdout or stderr (see OUTPUT_CAP); tests lower it.
    output_cap = OUTPUT_CAP

    def __init__(
        self,
        hostname: str,
        *,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_config: str | None = "~/.ssh/config",
        known_hosts: str | None = None,
        accept_new_host_key: bool = False,
        host_key_policy: str | None = None,
        connect_timeout: float = 15.0,
        keepalive: float = 30.0,
        passphrase: str | None = None,
        allow_agent: bool = True,
        look_for_keys: bool = True,
        max_sessions: int = 8,
        interactive_auth: InteractiveAuth | None = None,
        progress: Progress | None = None,
    ) -> None:
        #: Told how long transfers advance (what, bytes done, bytes in all): a bar on a
        #: terminal by default (:func:`slurm._transport.progress.terminal_progress`).
        self.progress: Progress | None = progress if progress is not None else terminal_progress()
        config = load_ssh_config(ssh_config)
        if known_hosts is not None:
            known_hosts = os.path.abspath(os.path.expanduser(known_hosts))
        self.settings: HostSettings = resolve_host(
            hostname,
            config,
            username=username,
            port=port,
            key_filename=key_filename,
            known_hosts=known_hosts,
        )
        self.hops: list[HostSettings] = jump_chain(
            self.settings, config, key_filename=key_filename, known_hosts=known_hosts
        )
        self._key_filename = os.path.expanduser(key_filename) if key_filename else None
        policy = resolve_policy(host_key_policy, accept_new_host_key)
        self._creds = Credentials(
            password=password,
            passphrase=passphrase,
            allow_agent=allow_agent,
            look_for_keys=look_for_keys,
            accept_new_host_key=policy != "reject",
            save_new_host_key=policy == "auto",
            connect_timeout=connect_timeout,
            keepalive=keepalive,
            interactive_auth=interactive_auth,
        )
        self.description = f"ssh {self.settings.address}" + "".join(
            f" via {hop.address}" for hop in reversed(self.hops)
        )
        self._lock = threading.Lock()  # guards _conn and connecting
        self._sftp_lock = threading.Lock()  # one SFTP request sequence at a time
        self._conn: SSHConnection | None = None
        self._logins = 0
        self._lost = False  # the last connection died (rather than being closed)
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_conn: SSHConnection | None = None
        self._home: str | None = None
        # One slot is kept for the SFTP channel.
        self._slots = threading.BoundedSemaphore(max(1, max_sessions - 1))

    # -- connection -------------------------------------------------------

    def connect(self) -> None:
        """Connect now instead of on first use (to surface host-key or login errors early).

        Raises:
            HostKeyError: A host key is unknown (and not accepted) or has changed.
            TransportError: The host cannot be reached or authentication failed.
        """
        self._connection()

    def _connection(self) -> SSHConnection:
        with self._lock:
            conn = self._conn
            if conn is not None and conn.alive():
                return conn
            if conn is not None:
                conn.close()
                self._conn = None
                self._lost = True
            if self._lost:
                logger.warning(
                    "%s: the SSH connection was lost; logging in again (a second factor, "
                    "if the server asks for one, is asked again)",
                    self.description,
                )
            if self._key_filename and not os.path.isfile(self._key_filename):
                raise TransportError(
                    f"key file {self._key_filename} does not exist; fix key_filename "
                    "or leave it out to use the SSH agent and ~/.ssh keys"
                )
            self._conn = open_connection(self.settings, self.hops, self._creds)
            self._logins += 1
            self._lost = False
            return self._conn

    @property
    def logins(self) -> int:
        """How many times this transport has logged in (1 + reconnects, so far)."""
        return self._logins

    def _discard(self, conn: SSHConnection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
                self._lost = True
        conn.close()

    def _is_dead(self, conn: SSHConnection) -> bool:
        """Whether ``conn`` is dead, giving paramiko a moment to notice."""
        deadline = time.monotonic() + _DEATH_GRACE
        while conn.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def connect_tcp(self, host: str, port: int, *, timeout: float = 15.0) -> Any:
        """A ``direct-tcpip`` channel to ``host:port`` from the login host (``ssh -L``).

        Raises:
            OSError: the server refused it (nothing listens there, or forwarding is off).
        """
        conn = self._connection()
        try:
            channel = conn.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, OSError) as exc:
            raise OSError(f"the SSH server could not connect to {host}:{port}: {exc}") from exc
        channel.settimeout(None)
        return channel

    def close(self) -> None:
        """Close the connection (and jump connections). The transport reconnects if used again."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._lost = False
        with self._sftp_lock:
            sftp, self._sftp, self._sftp_conn = self._sftp, None, None
            if sftp is not None:
                with contextlib.suppress(Exception):
                    sftp.close()
        if conn is not None:
            conn.close()

    # -- commands ---------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = True,
        retry: bool = True,
    ) -> CommandResult:
        """Run ``argv`` on the remote host; see :meth:`Transport.run`.

        The command line is ``shlex.join(argv)`` (with ``env -- K=V`` and
        ``cd -- DIR &&`` when given), run by the remote user's login shell,
        which must be POSIX-like (bash, zsh, sh). On timeout the channel is
        closed; the remote process may keep running until it next writes.
        """
        args = validate_argv(argv)
        command = build_shell_command(args, env=env, cwd=cwd)
        where = self.description
        before_failures = 0
        after_failures = 0
        while True:
            conn = self._connection()
            with self._slots:
                try:
                    chan = conn.transport.open_session(timeout=self._creds.connect_timeout)
                except paramiko.ChannelException as exc:
                    raise TransportError(
                        f"{where} refused to open a channel ({exc}); the server may limit "
                        "sessions per connection (MaxSessions): lower max_sessions"
                    ) from exc
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    # Nothing was sent: reconnect and send it.
                    self._discard(conn)
                    before_failures += 1
                    if before_failures >= 3:
                        raise TransportError(
                            f"cannot open a channel on {where}: {exc or type(exc).__name__}"
                        ) from exc
                    continue
                try:
                    returncode, out, err = self._exec(chan, conn, command, input, timeout)
                except _Lost as exc:
                    self._discard(conn)
                    after_failures += 1
                    if retry and after_failures < 2:
                        logger.warning(
                            "SSH connection to %s dropped while running %s; running it again",
                            where,
                            shlex.join(args),
                        )
                        continue
                    raise ConnectionLostError(
                        f"the SSH connection to {where} dropped while running "
                        f"{shlex.join(args)!r}: the command may or may not have run. "
                        + (
                            "It was retried once and the connection dropped again; check the "
                            "network."
                            if retry
                            else "It was not retried because it may not be safe to run twice; "
                            "check its effect on the cluster before running it again."
                        )
                    ) from exc
                except _Timeout as exc:
                    raise timeout_error(args, timeout or 0.0, where, *exc.args) from None
                finally:
                    chan.close()
            break
        if returncode == NOT_FOUND_EXIT_CODE:
            raise not_found_error(args, f"the cluster ({where})", out, err)
        result = CommandResult(args, returncode, out, err)
        return check_result(result, where) if check else result

    def _exec(
        self,
        chan: paramiko.Channel,
        conn: SSHConnection,
        command: str,
        input: bytes | None,
        timeout: float | None,
    ) -> tuple[int, str, str]:
        """Run ``command`` on ``chan``; return (exit code, stdout, stderr).

        Raises ``_Lost`` if the connection dies, ``_Timeout(stdout, stderr)``
        on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        out = bytearray()
        err = bytearray()
        try:
            chan.exec_command(command)
            if not input:
                chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if self._is_dead(conn):
                raise _Lost(str(exc)) from exc
            raise TransportError(
                f"{self.description} did not accept the command: {exc or type(exc).__name__}"
            ) from exc
        if input:
            # Feed stdin from a thread: a command that writes while it reads
            # (e.g. `cat`) would otherwise fill both windows and deadlock.
            threading.Thread(
                target=_feed, args=(chan, input), name="ssh-stdin", daemon=True
            ).start()
        fd = chan.fileno()
        while True:
            while chan.recv_ready():
                out += chan.recv(_CHUNK)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(_CHUNK)
            if max(len(out), len(err)) > self.output_cap:
                # Closing the channel (in run) stops the command; nothing more is held.
                raise TransportError(
                    f"{command[:200]!r} on {self.description} printed more than "
                    f"{self.output_cap} bytes, the most the SDK reads from a command; it "
                    "was stopped. Write large output to a file and read that instead."
                )
            if chan.closed or (chan.eof_received and chan.status_event.is_set()):
                break
            wait = 1.0
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise _Timeout(_decode(out), _decode(err))
            if chan.eof_received:
                chan.status_event.wait(wait)
            else:
                select.select([fd], [], [], wait)
            if not conn.alive():
                break
        while chan.recv_ready():
            out += chan.recv(_CHUNK)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(_CHUNK)
        if chan.status_event.is_set() and chan.exit_status != -1:
            return chan.exit_status, _decode(out), _decode(err)
        if not chan.eof_received or self._is_dead(conn):
            raise _Lost("channel closed without an exit status")
        # Closed normally without exit-status: the process was killed by a signal.
        return -1, _decode(out), _decode(err)

    # -- files --------------------------------------------------------------

    def _sftp_call(self, op: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``op`` with the SFTP client, reconnecting once if the connection died.

        File operations are safe to repeat (writes go through a fresh temporary
        name each time), so a dead connection is retried once.
        """
        for attempt in range(2):
            conn = self._connection()
            with self._sftp_lock:
                try:
                    sftp = self._sftp_for(conn)
                except _Lost as exc:
                    lost: BaseException = exc
                else:
                    try:
                        return op(sftp)
                    except (paramiko.SSHException, EOFError, OSError) as exc:
                        if sftpfiles.is_file_error(exc):
                            raise  # reported by the server (ENOENT, EACCES, ...)
                        channel = sftp.get_channel()
                        # An EOF can arrive before paramiko marks the connection dead:
                        # give it a moment, as for commands, before calling this an
                        # SFTP failure rather than a cut (which is retried).
                        open_channel = channel is not None and not channel.closed
                        if open_channel and not self._is_dead(conn):
                            if isinstance(exc, OSError):
                                raise  # an SFTP failure status without errno
                            raise TransportError(
                                f"SFTP on {self.description} failed: {exc}"
                            ) from exc
                        lost = exc
            self._discard(conn)
            if attempt:
                raise ConnectionLostError(
                    f"the SSH connection to {self.description} dropped twice during a "
                    f"file operation ({lost or type(lost).__name__}); check the network"
                ) from lost
        raise AssertionError("unreachable")  # pragma: no cover

    def _sftp_for(self, conn: SSHConnection) -> paramiko.SFTPClient:
        """The SFTP client on ``conn`` (opened on first use); hold ``_sftp_lock``."""
        if self._sftp is not None and self._sftp_conn is conn:
            return self._sftp
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
        self._sftp = self._sftp_conn = None
        try:
            sftp = conn.client.open_sftp()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if self._is_dead(conn):
                raise _Lost(str(exc)) from exc  # nothing was sent: reconnect
            raise TransportError(
                f"cannot open an SFTP session on {self.description}: {exc}; "
                "the server must allow SFTP (Subsystem sftp in its sshd_config)"
            ) from exc
        self._sftp, self._sftp_conn = sftp, conn
        return sftp

    def read_bytes(self, path: str) -> bytes:
        """Return the content of the remote file ``path`` (``FileNotFoundError`` if missing)."""
        return self._sftp_call(lambda sftp: sftpfiles.read_bytes(sftp, path))

    def read_range(self, path: str, offset: int, limit: int) -> tuple[bytes, int]:
        """At most ``limit`` bytes from ``offset`` (negative: from the end), and the size."""
        return self._sftp_call(lambda sftp: sftpfiles.read_range(sftp, path, offset, limit))

    def write_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Write ``data`` to the remote ``path`` atomically (temp name, chmod, rename)."""
        self._sftp_call(lambda sftp: sftpfiles.write_bytes(sftp, path, data, mode, self.progress))

    def upload(self, local_path: str, remote_path: str, *, mode: int = 0o600) -> None:
        """Copy the local file to the remote path atomically with ``mode``."""
        if not os.path.isfile(local_path):
            raise FileNotFoundError(errno.ENOENT, "No such file to upload", local_path)
        self._sftp_call(
            lambda sftp: sftpfiles.upload(sftp, local_path, remote_path, mode, self.progress)
        )

    def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        """Create the remote directory ``path`` and missing parents with ``mode``."""
        self._sftp_call(lambda sftp: sftpfiles.makedirs(sftp, path, mode))

    def exists(self, path: str) -> bool:
        """Return whether the remote ``path`` exists."""
        return self._sftp_call(lambda sftp: sftpfiles.exists(sftp, path))

    def list_dir(self, path: str) -> list[str]:
        """Return the sorted names in the remote directory; ``[]`` if it is missing."""
        return self._sftp_call(lambda sftp: sftpfiles.list_dir(sftp, path))

    def home(self) -> str:
        """Return the remote user's home directory (asked once, then cached)."""
        if self._home is None:
            self._home = self._sftp_call(lambda sftp: sftp.normalize("."))
        return self._home

    def expand_path(self, path: str) -> str:
        """Expand ``~`` to the remote home and make ``path`` absolute against it."""
        if path == "~":
            return self.home()
        if path.startswith("~/"):
            return posixpath.join(self.home(), path[2:])
        if posixpath.isabs(path):
            return path
        return posixpath.join(self.home(), path)


def _feed(chan: paramiko.Channel, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except (paramiko.SSHException, EOFError, OSError):
        pass  # the channel closed: the reader sees why (exit, timeout or lost connection)


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
