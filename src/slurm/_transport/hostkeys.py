"""Verify SSH host keys against known_hosts files, as OpenSSH does.

An unknown host is refused unless the caller accepts new keys (the earlier
SDK's ``host_key_policy``: ``"reject"``, the default; ``"warn"``, accepted for
this connection with a warning naming the fingerprint, not saved; ``"auto"``,
accepted and saved, as ``accept_new_host_key=True``); a changed key is
always refused and the message names the known_hosts line that disagrees.
Hashed entries (``|1|salt|hash``), host patterns (``*``, ``?``, ``!neg``) and
``[host]:port`` names for non-22 ports work as in OpenSSH.

A host matched by an ``@cert-authority`` line is asked for a certificate host
key (:meth:`HostKeyPolicy.wants_certificate`; the transport puts the certificate types
first) and accepted when that CA vouches for it
(:func:`slurm._transport.hostcert.check_host_certificate`), or when the
certified key is listed as a plain key (OpenSSH falls back to it when the CA
is another). Unlike OpenSSH, such a host is never accepted on first use: the
site publishes a CA for it, so a server offering a bare key or another CA's
certificate is refused whatever ``host_key_policy`` says (accepting it would let
whoever answers instead of the host be trusted from then on).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shlex
import threading
import time
from dataclasses import dataclass

import paramiko

from slurm._transport.hostcert import (
    CERT_SUFFIX,
    Authority,
    check_host_certificate,
    describe,
    fingerprint,
    parse_certificate,
)
from slurm._transport.keypolicy import HOST_KEY_POLICIES, resolve_policy
from slurm.errors import HostKeyError

__all__ = [
    "ACCEPT_OPTION",
    "HOST_KEY_POLICIES",
    "HostKeyPolicy",
    "KnownHostEntry",
    "find_authorities",
    "find_known_keys",
    "fingerprint",
    "host_key_name",
    "resolve_policy",
]

logger = logging.getLogger(__name__)

#: How a user accepts an unknown host key, named in every refusal.
ACCEPT_OPTION = "accept_new_host_key=True (CLI: --accept-new-host-key)"

_append_lock = threading.Lock()


def host_key_name(host: str, port: int) -> str:
    """The name a host's key is stored under: ``host``, or ``[host]:port`` if not port 22."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class KnownHostEntry:
    """One known_hosts line that applies to a host."""

    path: str
    lineno: int
    key: paramiko.PKey

    @property
    def key_type(self) -> str:
        """The key's type, e.g. ``ssh-ed25519``."""
        return self.key.get_name()

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.path}:{self.lineno}"


def _pattern_matches(name: str, pattern: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            return paramiko.HostKeys.hash_host(name, pattern) == pattern
        except (ValueError, IndexError):
            return False
    # OpenSSH patterns know only '*' and '?'; '[' in "[host]:port" is literal.
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, name.lower()) is not None


def _names_match(name: str, field: str) -> bool:
    matched = False
    for pattern in field.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(name, pattern[1:]):
                return False
        elif _pattern_matches(name, pattern):
            matched = True
    return matched


def find_known_keys(name: str, paths: list[str] | tuple[str, ...]) -> list[KnownHostEntry]:
    """Return every known_hosts entry for ``name`` (e.g. ``[host]:2222``) in ``paths``.

    Missing files are skipped; lines that cannot be parsed are ignored.
    ``@cert-authority`` and ``@revoked`` lines are not returned (see
    :func:`find_authorities` and :class:`HostKeyPolicy`).
    """
    return _scan(name, paths, marker=None)


def find_authorities(name: str, paths: list[str] | tuple[str, ...]) -> list[Authority]:
    """The CA keys of the ``@cert-authority`` lines whose host pattern matches ``name``."""
    return [Authority(e.key, e.where) for e in _scan(name, paths, marker="@cert-authority")]


def _principal(name: str) -> str:
    """The host name a certificate must list: ``name`` without ``[...]:port``."""
    if name.startswith("[") and "]:" in name:
        return name[1 : name.rindex("]:")]
    return name


def _scan(
    name: str, paths: list[str] | tuple[str, ...], *, marker: str | None
) -> list[KnownHostEntry]:
    found: list[KnownHostEntry] = []
    for path in paths:
        try:
            with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            found_marker = None
            if line.startswith("@"):
                found_marker, _, line = line.partition(" ")
                line = line.strip()
            if found_marker != marker:
                continue
            fields = line.split()
            if len(fields) < 3 or not _names_match(name, fields[0]):
                continue
            try:
                key = paramiko.PKey.from_type_string(fields[1], base64.b64decode(fields[2]))
            except Exception:  # unknown key type or bad base64: OpenSSH skips these too
                logger.debug("skipping unparsable known_hosts line %s:%d", path, lineno)
                continue
            found.append(KnownHostEntry(os.path.expanduser(path), lineno, key))
    return found


def _append(path: str, name: str, key: paramiko.PKey) -> None:
    path = os.path.expanduser(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _append_lock:
        needs_newline = False
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(("\n" if needs_newline else "") + line)


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Host-key checking for one host, plugged into :class:`paramiko.SSHClient`.

    Call :meth:`prime` before ``connect()``: it loads the known keys for the
    host into the client, so paramiko prefers a known key type and raises
    ``BadHostKeyException`` on a mismatch (turn that into a
    :class:`HostKeyError` with :meth:`changed_error`). paramiko calls
    :meth:`missing_host_key` for an unknown host: it raises
    :class:`HostKeyError` or, with ``accept_new``, saves the key.

    Args:
        display: The host as the user knows it, for messages (``user@host:port``).
        read_files: known_hosts files to consult (user files first).
        write_file: Where an accepted key is appended.
        accept_new: Accept (and save) a key for a host not known at all.
        save: With ``accept_new``, save it to ``write_file`` (``False``: accept it for
            this connection only, with a warning: ``host_key_policy="warn"``).
    """

    def __init__(
        self,
        display: str,
        read_files: tuple[str, ...],
        write_file: str,
        *,
        accept_new: bool,
        save: bool = True,
    ) -> None:
        self.display = display
        self.save = save
        self.read_files = read_files
        self.write_file = os.path.expanduser(write_file)
        self.accept_new = accept_new

    def wants_certificate(self, name: str) -> bool:
        """Whether an ``@cert-authority`` line matches ``name``: ask for a certificate."""
        return bool(find_authorities(name, self.read_files))

    def prime(self, client: paramiko.SSHClient, name: str) -> list[KnownHostEntry]:
        """Load the known keys for ``name`` into ``client``; return them.

        For a host a CA vouches for, nothing is loaded: paramiko would compare a
        certificate's key with the plain keys and refuse a valid certificate, so
        :meth:`missing_host_key` decides with the CA and the plain keys both.
        """
        entries = find_known_keys(name, self.read_files)
        if self.wants_certificate(name):
            return entries
        host_keys = client.get_host_keys()
        for entry in entries:
            # Keep the first entry per key type, as paramiko's HostKeys would.
            existing = host_keys.lookup(name)
            if existing is None or entry.key_type not in existing:
                host_keys.add(name, entry.key_type, entry.key)
        return entries

    def check_revoked(self, name: str, key: paramiko.PKey) -> None:
        """Raise :class:`HostKeyError` if ``key`` is marked ``@revoked`` for ``name``."""
        for entry in _scan(name, self.read_files, marker="@revoked"):
            if entry.key == key:
                raise HostKeyError(
                    f"the SSH host key of {self.display} ({key.get_name()} {fingerprint(key)}) "
                    f"is marked @revoked at {entry.where}; refusing to connect. "
                    "Ask your cluster's admins for the current host key."
                )

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        """Refuse (``HostKeyError``) or, with ``accept_new``, save a key for an unknown host.

        paramiko calls this for every host a CA is listed for (:meth:`prime` loads
        nothing for them): its certificate is checked here, never accepted on first use.
        """
        self.check_revoked(hostname, key)
        others = find_known_keys(hostname, self.read_files)
        authorities = find_authorities(hostname, self.read_files)
        if authorities:
            self._check_vouched(hostname, key, authorities, others)
            return
        if others:  # paramiko found none (race with another writer): treat as changed
            raise self.changed_error(hostname, key, others)
        if not self.accept_new:
            files = ", ".join(self.read_files) or "(none)"
            raise HostKeyError(
                f"the SSH host key of {self.display} is not known: the server "
                f"{hostname!r} offers a {key.get_name()} key with fingerprint "
                f"{fingerprint(key)} (not found in {files}). "
                "Check that fingerprint with your cluster's documentation or admins, then "
                f"accept it once with {ACCEPT_OPTION}; it will be saved to {self.write_file}."
            )
        if not self.save:
            logger.warning(
                "accepting the unknown SSH host key of %s (%s %s) for this connection only "
                "(host_key_policy='warn'); check that fingerprint, then save it with "
                "host_key_policy='auto' or --accept-new-host-key",
                hostname,
                key.get_name(),
                fingerprint(key),
            )
            return
        _append(self.write_file, hostname, key)
        logger.warning(
            "added SSH host key for %s (%s %s) to %s",
            hostname,
            key.get_name(),
            fingerprint(key),
            self.write_file,
        )

    def _check_vouched(
        self,
        name: str,
        key: paramiko.PKey,
        authorities: list[Authority],
        others: list[KnownHostEntry],
    ) -> None:
        """Accept a host a CA is listed for: its certificate, or a plain key listed for it."""
        listed = any(entry.key == key for entry in others)
        blob = key.public_blob
        if blob is not None and blob.key_type.endswith(CERT_SUFFIX):
            try:
                cert = parse_certificate(blob.key_blob)
            except ValueError as exc:
                raise HostKeyError(
                    f"the SSH host certificate of {self.display} cannot be read ({exc}); "
                    "refusing to connect. Ask your cluster's admins to check the server's "
                    "HostCertificate."
                ) from exc
            if listed and not any(a.key == cert.ca_key for a in authorities):
                return  # another CA's certificate of a key listed plainly: as OpenSSH
            check_host_certificate(
                cert,
                host=_principal(name),
                authorities=authorities,
                revoked=[e.key for e in _scan(name, self.read_files, marker="@revoked")],
                now=time.time(),
                display=self.display,
            )
            logger.debug("host certificate of %s (key id %r) accepted", name, cert.key_id)
            return
        if listed:
            return
        if others:
            raise self.changed_error(name, key, others)
        raise HostKeyError(
            f"the SSH server {self.display} offers a plain {key.get_name()} host key "
            f"({fingerprint(key)}), no certificate, but known_hosts trusts a CA for {name!r} "
            f"(@cert-authority {describe(authorities)}); refusing to connect, whatever "
            "host_key_policy says (a server of the site would present a certificate; "
            "someone could be intercepting the connection). Ask your cluster's admins "
            "whether this host has a host certificate; if they confirm that fingerprint, "
            "add the key to known_hosts."
        )

    def changed_error(
        self, name: str, key: paramiko.PKey, entries: list[KnownHostEntry] | None = None
    ) -> HostKeyError:
        """The refusal for a server whose key differs from the known one(s) for ``name``."""
        if entries is None:
            entries = find_known_keys(name, self.read_files)
        same_type = [e for e in entries if e.key_type == key.get_name()]
        shown = same_type or entries
        known = "; ".join(f"{e.key_type} {fingerprint(e.key)} at {e.where}" for e in shown)
        if same_type:
            what = "has CHANGED"
        else:
            what = "does not match: the server offers a key type not in known_hosts for it"
        return HostKeyError(
            f"the SSH host key of {self.display} {what}. The server {name!r} offers "
            f"{key.get_name()} {fingerprint(key)}, but known_hosts has {known or 'other keys'}. "
            "Someone could be intercepting the connection, or the server was reinstalled; "
            "refusing to connect (accept_new_host_key does not override this). If your admins "
            f"confirm the new key, remove the old one with: ssh-keygen -R {shlex.quote(name)}"
            + (f" -f {shlex.quote(shown[0].path)}" if shown else "")
        )
