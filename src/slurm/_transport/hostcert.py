"""OpenSSH host certificates: read one, and decide whether a known CA vouches for a host.

A site that signs its login nodes' host keys publishes one known_hosts line,
``@cert-authority *.site.org ssh-ed25519 AAAA...``; the server then offers a
certificate (``ssh-ed25519-cert-v01@openssh.com``) instead of a bare key. The
format is OpenSSH's ``PROTOCOL.certkeys``: the certified key, then serial,
type (1 user, 2 host), key id, principals, validity, critical options,
extensions, the CA's public key and its signature over everything before it.

:func:`parse_certificate` reads one (pure; ``ValueError`` on anything
malformed). :func:`check_host_certificate` makes OpenSSH's checks
(``sshkey_cert_check_host``) in this order, each refusal a
:class:`~slurm.errors.HostKeyError` naming the check and what to do:

1. a host certificate, not a user one;
2. signed by a CA key listed with ``@cert-authority`` for this host;
3. that CA key not marked ``@revoked``;
4. a signature algorithm OpenSSH accepts by default (not SHA-1 ``ssh-rsa``),
   and the signature verifies with the CA key;
5. valid now: ``valid_after <= now < valid_before``;
6. the host name connected to (or ``HostKeyAlias``) is one of the principals,
   compared exactly; a certificate without principals is valid for any host, as
   OpenSSH has it (the client passes ``require_principal=0``);
7. no critical options (none is defined for host certificates, so any is unknown).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import paramiko

from slurm.errors import HostKeyError

__all__ = [
    "CERT_SUFFIX",
    "Authority",
    "HostCertificate",
    "check_host_certificate",
    "describe",
    "fingerprint",
    "parse_certificate",
]

#: The suffix of every OpenSSH certificate key type.
CERT_SUFFIX = "-cert-v01@openssh.com"

HOST_CERT = 2
USER_CERT = 1
#: ``valid_before`` of a certificate valid forever (``ssh-keygen -V always:forever``).
FOREVER = 2**64 - 1

# How many length-prefixed fields the certified key has, after the nonce.
_KEY_FIELDS = {
    "ssh-ed25519": 1,  # string pk
    "ecdsa-sha2-nistp256": 2,  # string curve, string Q
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
    "ssh-rsa": 2,  # mpint e, mpint n
}
# OpenSSH's default CASignatureAlgorithms: SHA-1 RSA signatures are not among them.
_CA_SIGNATURES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-256",
        "rsa-sha2-512",
    }
)


class _Reader:
    """SSH wire fields (RFC 4251) from a byte string; ``ValueError`` past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("certificate is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def uint64(self) -> int:
        value: int = struct.unpack(">Q", self.take(8))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("certificate has a field that is not UTF-8") from exc

    def names(self) -> tuple[str, ...]:
        """A packed list of strings (principals), or of name/data pairs (options): the names."""
        inner = _Reader(self.string())
        found = []
        while inner.pos < len(inner.data):
            found.append(inner.text())
        return tuple(found)

    def options(self) -> tuple[str, ...]:
        inner = _Reader(self.string())
        found = []
        while inner.pos < len(inner.data):
            found.append(inner.text())
            inner.string()  # the option's data
        return tuple(found)


@dataclass(frozen=True)
class HostCertificate:
    """One OpenSSH certificate, as read by :func:`parse_certificate`.

    ``signed`` is the part the CA's signature covers (every byte before the
    signature field); ``signature`` the SSH signature blob.
    """

    cert_type: str
    serial: int
    kind: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: tuple[str, ...]
    extensions: tuple[str, ...]
    ca_key: paramiko.PKey
    signature_type: str
    signed: bytes
    signature: bytes

    @property
    def key_type(self) -> str:
        """The certified key's type, e.g. ``ssh-ed25519``."""
        return self.cert_type.removesuffix(CERT_SUFFIX)

    def validity(self) -> str:
        """``from ... to ...`` in UTC, as ``ssh-keygen -L`` would say it."""
        return f"from {_when(self.valid_after)} to {_when(self.valid_before)}"


def _when(stamp: int) -> str:
    if stamp == 0:
        return "always"
    if stamp >= FOREVER:
        return "forever"
    return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_certificate(blob: bytes) -> HostCertificate:
    """Read an OpenSSH certificate from its wire form (the base64 of a ``-cert.pub`` file).

    Raises:
        ValueError: not a certificate of a key type paramiko verifies, truncated,
            or with bytes after the signature.
    """
    reader = _Reader(blob)
    cert_type = reader.text()
    plain = cert_type.removesuffix(CERT_SUFFIX)
    if plain == cert_type or plain not in _KEY_FIELDS:
        raise ValueError(f"not a certificate type this client reads: {cert_type!r}")
    reader.string()  # nonce
    for _ in range(_KEY_FIELDS[plain]):
        reader.string()
    serial = reader.uint64()
    kind = reader.uint32()
    key_id = reader.text()
    principals = reader.names()
    valid_after = reader.uint64()
    valid_before = reader.uint64()
    critical = reader.options()
    extensions = reader.options()
    reader.string()  # reserved
    ca_blob = reader.string()
    signed = blob[: reader.pos]
    signature = reader.string()
    if reader.pos != len(blob):
        raise ValueError("certificate has bytes after its signature")
    ca_type = _Reader(ca_blob).text()
    if ca_type.endswith(CERT_SUFFIX):
        raise ValueError("certificate is signed by another certificate, not a CA key")
    try:
        ca_key = paramiko.PKey.from_type_string(ca_type, ca_blob)
    except Exception as exc:  # paramiko raises several types for an unknown or bad key
        raise ValueError(f"certificate's CA key ({ca_type}) cannot be read: {exc}") from exc
    return HostCertificate(
        cert_type=cert_type,
        serial=serial,
        kind=kind,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical,
        extensions=extensions,
        ca_key=ca_key,
        signature_type=_Reader(signature).text(),
        signed=signed,
        signature=signature,
    )


@dataclass(frozen=True)
class Authority:
    """A CA key trusted for a host: an ``@cert-authority`` line and where it is."""

    key: paramiko.PKey
    where: str


def fingerprint(key: paramiko.PKey) -> str:
    """Return the key's SHA256 fingerprint exactly as OpenSSH prints it.

    Example: ``SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s`` (base64, no padding).
    """
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def describe(authorities: Sequence[Authority]) -> str:
    """The CA keys and their known_hosts lines, for messages."""
    return "; ".join(f"{a.key.get_name()} {fingerprint(a.key)} at {a.where}" for a in authorities)


def check_host_certificate(
    cert: HostCertificate,
    *,
    host: str,
    authorities: Sequence[Authority],
    revoked: Sequence[paramiko.PKey],
    now: float,
    display: str,
) -> Authority:
    """Return the authority that vouches for ``host`` with ``cert``, or refuse.

    Args:
        cert: The server's certificate.
        host: The name the certificate must name (the host name connected to, or
            ``HostKeyAlias``), without a port.
        authorities: The ``@cert-authority`` keys whose host pattern matches.
        revoked: The keys marked ``@revoked`` for the host.
        now: The time to judge validity at (seconds since the epoch).
        display: The host as the user knows it, for messages.

    Raises:
        HostKeyError: One check failed; the message names it and what to do.
    """
    head = (
        f"the SSH host certificate of {display} (key id {cert.key_id!r}, serial "
        f"{cert.serial}, signed by CA {cert.ca_key.get_name()} {fingerprint(cert.ca_key)})"
    )
    ask = "Ask your cluster's admins"
    if cert.kind != HOST_CERT:
        kind = "a user certificate" if cert.kind == USER_CERT else f"of unknown type {cert.kind}"
        raise HostKeyError(
            f"{head} is {kind}, not a host certificate; refusing to connect. A server "
            f"presenting a user's certificate as its host key is misconfigured or an impostor. "
            f"{ask} to sign the host key with ssh-keygen -h."
        )
    authority = next((a for a in authorities if a.key == cert.ca_key), None)
    if authority is None:
        raise HostKeyError(
            f"{head} is not signed by a CA that known_hosts trusts for {host!r} "
            f"(@cert-authority {describe(authorities)}); refusing to connect. Someone could be "
            f"intercepting the connection, or the site changed its CA: {ask} for the "
            "current CA key and put it in known_hosts as an @cert-authority line."
        )
    if any(key == cert.ca_key for key in revoked):
        raise HostKeyError(
            f"{head} is signed by a CA key marked @revoked in known_hosts; refusing to "
            f"connect. {ask} for the current CA key."
        )
    if cert.signature_type not in _CA_SIGNATURES:
        raise HostKeyError(
            f"{head} is signed with {cert.signature_type}, which OpenSSH no longer accepts "
            f"for CAs (SHA-1); refusing to connect. {ask} to re-sign it "
            "(ssh-keygen -s CA -t rsa-sha2-512 ...)."
        )
    if not cert.ca_key.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)):
        raise HostKeyError(
            f"{head} has a signature that does not verify with the CA key at "
            f"{authority.where}: the certificate was forged or altered; refusing to connect. "
            f"Report this to your cluster's admins."
        )
    if now < cert.valid_after:
        raise HostKeyError(
            f"{head} is not valid yet: valid {cert.validity()}; refusing to connect. Check "
            f"this machine's clock; otherwise {ask} to fix the certificate's validity."
        )
    if now >= cert.valid_before:
        raise HostKeyError(
            f"{head} has expired: valid {cert.validity()}; refusing to connect. Check this "
            f"machine's clock; otherwise {ask} to renew the host certificate."
        )
    if cert.principals and host not in cert.principals:
        raise HostKeyError(
            f"{head} is for {', '.join(repr(p) for p in cert.principals)}, not {host!r}; "
            "refusing to connect (a certificate of another host of the site would otherwise "
            "vouch for this one). Connect by one of those names (or set HostKeyAlias in "
            f"~/.ssh/config to one), or {ask} to add {host!r} to the certificate's principals."
        )
    if cert.critical_options:
        raise HostKeyError(
            f"{head} has critical option(s) {', '.join(cert.critical_options)}, which no "
            f"host certificate may have and this client does not know; refusing to connect. "
            f"{ask} to re-sign the host key without them."
        )
    return authority
