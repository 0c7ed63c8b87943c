"""Resolve how to reach an SSH host, the way OpenSSH's ``~/.ssh/config`` says.

Pure functions over :class:`paramiko.SSHConfig`: an alias such as ``hpc``
becomes a :class:`HostSettings` with the real host name, port, user, key files,
jump hosts and known_hosts files. Explicit arguments win over the config file,
which wins over OpenSSH's defaults.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shlex
from dataclasses import dataclass

import paramiko

from slurm.errors import ConfigurationError

__all__ = [
    "DEFAULT_GLOBAL_KNOWN_HOSTS",
    "DEFAULT_USER_KNOWN_HOSTS",
    "HostSettings",
    "JumpSpec",
    "load_ssh_config",
    "parse_jump_spec",
    "resolve_host",
    "split_proxy_jump",
]

#: OpenSSH's defaults when ``UserKnownHostsFile`` is not set.
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
#: OpenSSH's defaults when ``GlobalKnownHostsFile`` is not set.
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class JumpSpec:
    """One hop of a ``ProxyJump`` value: ``[user@]host[:port]``."""

    host: str
    username: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HostSettings:
    """Everything needed to open a connection to one host (no secrets).

    Attributes:
        alias: The name the user gave (a ``Host`` alias or a real host name).
        hostname: The name or address to connect to (``HostName``).
        port: TCP port.
        username: Login name.
        identity_files: Private key files to offer, explicit ones first.
        identities_only: ``IdentitiesOnly yes``: offer only ``identity_files``.
        proxy_jump: Jump hosts to go through, first hop first.
        proxy_command: A ``ProxyCommand`` to use as the socket instead.
        user_known_hosts: known_hosts files to read; the first one is where a
            newly accepted key is written.
        global_known_hosts: System known_hosts files (read only).
        host_key_alias: ``HostKeyAlias``: the name to look the host key up under.
        connect_timeout: ``ConnectTimeout`` in seconds, if set in the config.
    """

    alias: str
    hostname: str
    port: int
    username: str
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: tuple[JumpSpec, ...] = ()
    proxy_command: str | None = None
    user_known_hosts: tuple[str, ...] = DEFAULT_USER_KNOWN_HOSTS
    global_known_hosts: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    host_key_alias: str | None = None
    connect_timeout: float | None = None

    @property
    def address(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.username}@{_host_port(self.hostname, self.port)}"


def load_ssh_config(path: str | None) -> paramiko.SSHConfig:
    """Parse the OpenSSH client config at ``path`` (``~`` expanded).

    Returns an empty config when ``path`` is ``None`` or the file does not exist.

    Raises:
        ConfigurationError: The file exists but cannot be read or parsed.
    """
    if path is None:
        return paramiko.SSHConfig()
    expanded = os.path.expanduser(path)
    if not os.path.exists(expanded):
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_text(_expand_includes(expanded, 0))
    except (OSError, ValueError, paramiko.ConfigParseError) as exc:
        raise ConfigurationError(f"cannot read SSH config {expanded}: {exc}") from exc


_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(?P<paths>.+?)\s*$", re.IGNORECASE)
_BLOCK = re.compile(r"^\s*(?:host|match)(?:\s*=\s*|\s+)", re.IGNORECASE)
_MAX_INCLUDE_DEPTH = 16


def _expand_includes(path: str, depth: int) -> str:
    """Return the text of ``path`` with ``Include`` lines replaced by the files they name.

    paramiko does not know ``Include``; HPC users' configs often rely on it.
    As in OpenSSH, relative paths are taken from ``~/.ssh`` and globs are
    expanded in sorted order. After an included file, the including file's
    ``Host``/``Match`` line is repeated before each included file and after
    the last, so every file starts, and the lines that follow continue, in
    the including context (``Host *`` at top level).
    """
    if depth > _MAX_INCLUDE_DEPTH:
        raise ConfigurationError(f"SSH config Include nests deeper than 16 at {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out: list[str] = []
    header = "Host *"
    for line in lines:
        match = _INCLUDE.match(line)
        if match is None:
            if _BLOCK.match(line):
                header = line
            out.append(line)
            continue
        for pattern in shlex.split(match.group("paths")):
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
            for included in sorted(glob.glob(pattern)):
                if os.path.isfile(included):
                    out.append(header)  # each file starts in the including context
                    out.append(_expand_includes(included, depth + 1))
        out.append(header)
    return "\n".join(out) + "\n"


def split_proxy_jump(value: str | None) -> tuple[JumpSpec, ...]:
    """Parse a ``ProxyJump`` value (comma-separated hops; ``none`` means none)."""
    if value is None or not value.strip() or value.strip().lower() == "none":
        return ()
    return tuple(parse_jump_spec(part) for part in value.split(",") if part.strip())


_JUMP = re.compile(
    r"""^(?:ssh://)?
        (?:(?P<user>[^@]+)@)?
        (?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:@\[\]]+))
        (?::(?P<port>\d+))?/?$""",
    re.VERBOSE,
)


def parse_jump_spec(spec: str) -> JumpSpec:
    """Parse one jump hop: ``[user@]host[:port]``, ``ssh://[user@]host[:port]``, ``[v6]:port``.

    Raises:
        ConfigurationError: ``spec`` is not in one of those forms.
    """
    match = _JUMP.match(spec.strip())
    if not match:
        raise ConfigurationError(
            f"cannot parse ProxyJump host {spec!r}: expected [user@]host[:port]"
        )
    port = match.group("port")
    return JumpSpec(
        host=match.group("v6") or match.group("host"),
        username=match.group("user"),
        port=int(port) if port else None,
    )


def resolve_host(
    alias: str,
    config: paramiko.SSHConfig,
    *,
    username: str | None = None,
    port: int | None = None,
    key_filename: str | None = None,
    known_hosts: str | None = None,
) -> HostSettings:
    """Combine explicit arguments, the ssh config entry for ``alias`` and defaults.

    Args:
        alias: What the user gave as host: a ``Host`` alias or a host name.
        config: A parsed ssh config (see :func:`load_ssh_config`).
        username: Explicit login name (wins over ``User``; default: the local user).
        port: Explicit port (wins over ``Port``; default 22).
        key_filename: Explicit key file, offered before any ``IdentityFile``.
        known_hosts: Explicit known_hosts file; replaces the user files
            (``UserKnownHostsFile`` or ``~/.ssh/known_hosts``) like
            ``ssh -o UserKnownHostsFile=...`` does.

    Raises:
        ConfigurationError: A value in the config cannot be used (e.g. a bad port).

    Example:
        >>> cfg = paramiko.SSHConfig.from_text("Host hpc\\n  HostName login.example.org\\n")
        >>> resolve_host("hpc", cfg, username="me").address
        'me@login.example.org:22'
    """
    entry = config.lookup(alias)
    try:
        resolved_port = port if port is not None else int(entry.get("port", 22))
    except ValueError as exc:
        raise ConfigurationError(f"bad Port for host {alias!r} in ssh config: {exc}") from exc
    identity = [os.path.expanduser(p) for p in entry.get("identityfile", [])]
    if key_filename is not None:
        explicit = os.path.expanduser(key_filename)
        identity = [explicit, *(p for p in identity if p != explicit)]
    if known_hosts is not None:
        user_known: tuple[str, ...] = (known_hosts,)
    elif entry.get("userknownhostsfile"):
        user_known = tuple(entry["userknownhostsfile"].split())
    else:
        user_known = DEFAULT_USER_KNOWN_HOSTS
    if entry.get("globalknownhostsfile"):
        global_known = tuple(entry["globalknownhostsfile"].split())
    else:
        global_known = DEFAULT_GLOBAL_KNOWN_HOSTS
    timeout = entry.get("connecttimeout")
    try:
        connect_timeout = float(timeout) if timeout else None
    except ValueError as exc:
        raise ConfigurationError(f"bad ConnectTimeout for host {alias!r}: {exc}") from exc
    proxy_command = entry.get("proxycommand")
    if proxy_command is not None and proxy_command.strip().lower() == "none":
        proxy_command = None
    return HostSettings(
        alias=alias,
        hostname=entry.get("hostname", alias),
        port=resolved_port,
        username=username or entry.get("user") or getpass.getuser(),
        identity_files=tuple(identity),
        identities_only=str(entry.get("identitiesonly", "no")).lower() == "yes",
        proxy_jump=split_proxy_jump(entry.get("proxyjump")),
        proxy_command=proxy_command,
        user_known_hosts=tuple(os.path.expanduser(p) for p in user_known),
        global_known_hosts=tuple(os.path.expanduser(p) for p in global_known),
        host_key_alias=entry.get("hostkeyalias"),
        connect_timeout=connect_timeout,
    )


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
