"""Open one authenticated SSH connection, through jump hosts if configured.

:func:`open_connection` turns :class:`~slurm._transport.sshconfig.HostSettings`
into a live :class:`paramiko.SSHClient`: it resolves the ``ProxyJump`` chain
(each hop with its own ssh config entry), opens a ``direct-tcpip`` channel
through each hop to the next, verifies every host key
(:mod:`slurm._transport.hostkeys`) before sending any credential, and maps
paramiko's and the socket layer's errors to :class:`~slurm.errors.TransportError`
with a message that says what was tried and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
from dataclasses import dataclass, field, replace

import paramiko

from slurm._transport.hostkeys import HostKeyPolicy, host_key_name
from slurm._transport.sshauth import (
    AnsweringTransport,
    InteractiveAuth,
    ask_on_terminal,
    transport_factory,
)
from slurm._transport.sshconfig import HostSettings, resolve_host
from slurm.errors import AuthenticationError, ConfigurationError, HostKeyError, TransportError

__all__ = ["Credentials", "SSHConnection", "jump_chain", "open_connection"]

logger = logging.getLogger(__name__)

_MAX_JUMPS = 8
_ANSWER_TIMEOUT = 300.0
_DEFAULT_KEYS = ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_dsa")


@dataclass(frozen=True, repr=False)
class Credentials:
    """How to authenticate; secrets stay in memory only and never appear in ``repr``.

    ``password`` is used for the target host only, never sent to jump hosts;
    ``passphrase`` unlocks encrypted key files (``password`` does when it is unset).
    ``interactive_auth`` answers keyboard-interactive prompts (a one-time code
    after the key); ``None`` asks on the terminal.
    """

    password: str | None = None
    passphrase: str | None = None
    allow_agent: bool = True
    look_for_keys: bool = True
    accept_new_host_key: bool = False
    save_new_host_key: bool = True
    connect_timeout: float = 15.0
    keepalive: float = 30.0
    interactive_auth: InteractiveAuth | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(password={'***' if self.password else None}, "
            f"allow_agent={self.allow_agent}, look_for_keys={self.look_for_keys})"
        )


@dataclass
class SSHConnection:
    """A live connection: the target client plus the jump-host clients under it."""

    client: paramiko.SSHClient
    transport: paramiko.Transport
    jumps: list[paramiko.SSHClient] = field(default_factory=list)

    def alive(self) -> bool:
        """Whether the SSH transport to the target is still up."""
        return self.transport.is_active()

    def close(self) -> None:
        """Close the target connection, then each jump connection (innermost first)."""
        for client in [self.client, *reversed(self.jumps)]:
            with contextlib.suppress(Exception):
                client.close()


def jump_chain(
    settings: HostSettings,
    config: paramiko.SSHConfig,
    *,
    key_filename: str | None = None,
    known_hosts: str | None = None,
    _depth: int = 0,
) -> list[HostSettings]:
    """Return the hosts to go through before ``settings``, outermost first.

    As in OpenSSH, the first hop is resolved with its own ssh config entry
    (including its own ``ProxyJump``); later hops of a comma-separated list are
    reached through the previous hop.

    Raises:
        ConfigurationError: The chain loops or is longer than 8 hops.
    """
    if not settings.proxy_jump:
        return []
    if _depth >= _MAX_JUMPS:
        raise ConfigurationError(
            f"ProxyJump for {settings.alias!r} nests more than {_MAX_JUMPS} hops; "
            "is there a loop in ~/.ssh/config (e.g. 'Host *' with ProxyJump that "
            "also matches the jump host)?"
        )
    chain: list[HostSettings] = []
    for i, spec in enumerate(settings.proxy_jump):
        hop = resolve_host(
            spec.host,
            config,
            username=spec.username,
            port=spec.port,
            key_filename=key_filename,
            known_hosts=known_hosts,
        )
        if i == 0:
            chain.extend(
                jump_chain(
                    hop,
                    config,
                    key_filename=key_filename,
                    known_hosts=known_hosts,
                    _depth=_depth + 1,
                )
            )
        chain.append(replace(hop, proxy_jump=()))
    return chain


def open_connection(
    target: HostSettings,
    hops: list[HostSettings],
    creds: Credentials,
) -> SSHConnection:
    """Connect to ``target`` through ``hops`` (see :func:`jump_chain`) and authenticate.

    Raises:
        HostKeyError: A host key is unknown (and not accepted) or has changed.
        TransportError: A host cannot be reached or authentication failed.
    """
    jumps: list[paramiko.SSHClient] = []
    try:
        sock: paramiko.Channel | None = None
        previous: HostSettings | None = None
        for hop in [*hops, target]:
            if previous is not None:
                sock = _tunnel(jumps[-1], previous, hop, creds.connect_timeout)
            is_target = hop is target
            client = _connect_one(hop, sock, creds, is_target=is_target, via=previous)
            if is_target:
                transport = client.get_transport()
                assert transport is not None  # noqa: S101 (a connected client has one; for mypy) (connected just above; for mypy)
                if creds.keepalive > 0:
                    transport.set_keepalive(max(1, int(creds.keepalive)))
                return SSHConnection(client, transport, jumps)
            jumps.append(client)
            previous = hop
    except BaseException:
        for client in reversed(jumps):
            with contextlib.suppress(Exception):
                client.close()
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _tunnel(
    jump: paramiko.SSHClient, via: HostSettings, hop: HostSettings, timeout: float
) -> paramiko.Channel:
    transport = jump.get_transport()
    assert transport is not None  # noqa: S101 (a connected client has one; for mypy)
    try:
        return transport.open_channel(
            "direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=timeout
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(
            f"jump host {via.address} could not open a connection to "
            f"{hop.hostname}:{hop.port} (for {hop.alias!r}): {exc or type(exc).__name__}. "
            "Check the HostName/Port of the target as seen from the jump host, and that "
            "the jump host allows TCP forwarding (AllowTcpForwarding)."
        ) from exc


def _connect_one(
    settings: HostSettings,
    sock: paramiko.Channel | None,
    creds: Credentials,
    *,
    is_target: bool,
    via: HostSettings | None,
) -> paramiko.SSHClient:
    """One SSH login (the target, or a jump host on the way), every failure a clear error."""
    where = settings.address + (f" (through jump host {via.address})" if via else "")
    role = "" if is_target else "jump host "
    timeout = settings.connect_timeout or creds.connect_timeout
    if settings.host_key_alias:
        key_host, key_port = settings.host_key_alias, 22
    else:
        key_host, key_port = settings.hostname, settings.port
    name = host_key_name(key_host, key_port)
    policy = HostKeyPolicy(
        display=f"{role}{settings.address}",
        read_files=settings.user_known_hosts + settings.global_known_hosts,
        write_file=settings.user_known_hosts[0],
        accept_new=creds.accept_new_host_key,
        save=creds.save_new_host_key,
    )
    keys = _key_files(settings, where)
    allow_agent = creds.allow_agent and not (settings.identities_only and keys)
    look_for_keys = creds.look_for_keys and not settings.identities_only
    password = creds.password if is_target else None
    factory = transport_factory(
        f"{role}{settings.address}",
        creds.interactive_auth or ask_on_terminal,
        password,
        check_key=lambda key: policy.check_revoked(name, key),  # before any credential
        prefer_certificates=policy.wants_certificate(name),
    )
    client = paramiko.SSHClient()
    try:
        policy.prime(client, name)
        client.set_missing_host_key_policy(policy)
        the_sock = _socket_for(settings, sock, timeout, where)
        try:
            client.connect(
                key_host,
                port=key_port,
                username=settings.username,
                password=password,
                passphrase=creds.passphrase,
                # paramiko accepts a list of key files; its stubs say str only.
                key_filename=keys or None,  # type: ignore[arg-type]
                allow_agent=allow_agent,
                look_for_keys=look_for_keys,
                timeout=timeout,
                banner_timeout=timeout,
                # A person may be typing a one-time code.
                auth_timeout=max(timeout, _ANSWER_TIMEOUT),
                sock=the_sock,
                transport_factory=factory,
            )
        except paramiko.AuthenticationException:
            if creds.interactive_auth is None or not _interactive_alone(client, settings.username):
                with contextlib.suppress(Exception):
                    the_sock.close()
                raise
        except BaseException:
            with contextlib.suppress(Exception):
                the_sock.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            policy.check_revoked(name, transport.get_remote_server_key())
        return client
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise policy.changed_error(name, exc.key) from exc
    except paramiko.AuthenticationException as exc:
        # A missing passphrase is an AuthenticationException too (a subclass).
        asked = _prompts_answered(client)
        client.close()
        tried = _tried(settings, keys, creds, allow_agent, look_for_keys, is_target)
        raise _login_refused(exc, settings, f"{role}{where}", asked, tried) from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        client.close()
        raise TransportError(
            f"SSH connection to {role}{where} failed: {exc or type(exc).__name__}. "
            "Check that an SSH server listens there and that the network allows it."
        ) from exc
    except BaseException:
        client.close()
        raise


def _socket_for(
    settings: HostSettings, sock: paramiko.Channel | None, timeout: float, where: str
) -> paramiko.Channel | paramiko.ProxyCommand | socket.socket:
    """What the login runs over: a jump host's channel, a ProxyCommand, or a TCP socket."""
    if sock is not None:
        return sock
    if settings.proxy_command:
        return _ProxyCommand(settings.proxy_command)
    return _open_socket(settings, timeout, where)


def _login_refused(
    exc: paramiko.AuthenticationException,
    settings: HostSettings,
    where: str,
    asked: int,
    tried: str,
) -> AuthenticationError:
    """The error for a refused login: what was tried and what to check."""
    if isinstance(exc, paramiko.PasswordRequiredException):
        return AuthenticationError(
            f"cannot log in to {where}: a private key is encrypted and no passphrase "
            "was given. Load it into your SSH agent (ssh-add KEYFILE) or pass passphrase=."
        )
    if asked:
        return AuthenticationError(
            f"authentication to {where} failed ({exc}) after answering "
            f"{asked} keyboard-interactive prompt(s): the one-time code (or other "
            "answer) was refused. Codes are valid once and for a short time: check the "
            "clock of this machine and try again with a fresh code."
        )
    return AuthenticationError(
        f"authentication to {where} failed ({exc}). Tried: {tried}. "
        f"Check the user name ({settings.username!r}); make sure your public key is in "
        "~/.ssh/authorized_keys on that host, your key is loaded (ssh-add) or given "
        "(key_filename= / IdentityFile in ~/.ssh/config). Test with: "
        f"ssh -p {settings.port} {settings.username}@{settings.hostname}"
    )


def _interactive_alone(client: paramiko.SSHClient, username: str) -> bool:
    """After keys and password failed: log in by keyboard-interactive alone, if offered.

    Only with an ``interactive_auth`` callback (never a surprise question on the
    terminal), and not again when the server already asked (a refused code).
    """
    transport = client.get_transport()
    if not isinstance(transport, AnsweringTransport) or transport.answers.asked:
        return False
    return transport.login(username)


def _prompts_answered(client: paramiko.SSHClient) -> int:
    transport = client.get_transport()
    return transport.answers.asked if isinstance(transport, AnsweringTransport) else 0


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, but closing also reaps the process and its pipes."""

    def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                super().close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _open_socket(settings: HostSettings, timeout: float, where: str) -> socket.socket:
    try:
        return socket.create_connection((settings.hostname, settings.port), timeout=timeout)
    except socket.gaierror as exc:
        raise TransportError(
            f"cannot resolve host name {settings.hostname!r} for {where}: {exc.strerror}. "
            "Check the spelling, the HostName in ~/.ssh/config, and your network or VPN."
        ) from exc
    except (TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TransportError(
            f"cannot reach {where}: {reason}. Check the host and port, that you are on "
            "the right network or VPN, or set ProxyJump in ~/.ssh/config if the login node "
            "is only reachable through a gateway."
        ) from exc


def _key_files(settings: HostSettings, where: str) -> list[str]:
    """Identity files that exist; an explicit (first) one must exist."""
    keys = [p for p in settings.identity_files if os.path.isfile(p)]
    missing = [p for p in settings.identity_files if not os.path.isfile(p)]
    if missing:
        logger.debug("identity files not found for %s: %s", where, missing)
    return keys


def _tried(
    settings: HostSettings,
    keys: list[str],
    creds: Credentials,
    allow_agent: bool,
    look_for_keys: bool,
    is_target: bool,
) -> str:
    parts = []
    missing = [p for p in settings.identity_files if p not in keys]
    parts.append(f"key files {keys}" if keys else "no key file given")
    if missing:
        parts.append(f"(not found: {missing})")
    if allow_agent:
        sock = os.environ.get("SSH_AUTH_SOCK")
        parts.append("ssh-agent" if sock else "ssh-agent (none running: SSH_AUTH_SOCK unset)")
    if look_for_keys:
        found = [
            p
            for p in (os.path.expanduser(f"~/.ssh/{n}") for n in _DEFAULT_KEYS)
            if os.path.isfile(p)
        ]
        parts.append(f"default keys {found}" if found else "default keys (none in ~/.ssh)")
    if is_target and creds.password is not None:
        parts.append("password")
    return ", ".join(parts)
