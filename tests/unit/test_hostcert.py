"""Host certificates made by the real ``ssh-keygen -s CA -h``: reading them, and each check.

Every test signs with a throwaway CA in a tmp directory; the checks are the
ones ``@cert-authority`` known_hosts lines rely on (see ``slurm._transport.hostcert``).
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from slurm._transport.hostcert import (
    Authority,
    HostCertificate,
    check_host_certificate,
    fingerprint,
    parse_certificate,
)
from slurm._transport.hostkeys import HostKeyPolicy, find_authorities, find_known_keys
from slurm._transport.sshauth import AnsweringTransport, ask_on_terminal
from slurm.errors import HostKeyError

HOST = "login1.site.org"


def _keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _public(path: Path) -> paramiko.PKey:
    kind, data = path.with_name(path.name + ".pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def _sign(
    tmp_path: Path,
    ca: Path,
    *options: str,
    principals: str | None = HOST,
    validity: str = "-5m:+1h",
    name: str = "host",
) -> bytes:
    """Sign a fresh host key with ``ca``; return the certificate's wire form."""
    key = tmp_path / name
    if not key.exists():
        _keygen(key)
    argv = ["ssh-keygen", "-q", "-s", str(ca), "-I", f"{name}-id", "-z", "7", "-V", validity]
    if principals is not None:
        argv += ["-n", principals]
    subprocess.run([*argv, *options, f"{key}.pub"], check=True, capture_output=True)
    return base64.b64decode((tmp_path / f"{name}-cert.pub").read_text().split()[1])


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cas")
    return {
        "ca": _keygen(directory / "ca"),
        "other": _keygen(directory / "other_ca"),
        "rsa": _keygen(directory / "rsa_ca", "rsa"),
    }


def _check(cert: HostCertificate, ca: Path, host: str = HOST, **kwargs: object) -> Authority:
    options: dict[str, object] = {
        "host": host,
        "authorities": [Authority(_public(ca), "kh:3")],
        "revoked": [],
        "now": time.time(),
        "display": f"root@{host}",
    }
    options.update(kwargs)
    return check_host_certificate(cert, **options)  # type: ignore[arg-type]


def test_a_certificate_is_read_as_ssh_keygen_wrote_it(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(
        _sign(tmp_path, cas["ca"], "-h", principals=f"{HOST},login", validity="20300101:20300102")
    )
    assert cert.cert_type == "ssh-ed25519-cert-v01@openssh.com"
    assert cert.key_type == "ssh-ed25519"
    assert (cert.kind, cert.key_id, cert.serial) == (2, "host-id", 7)
    assert cert.principals == (HOST, "login")
    assert cert.valid_before - cert.valid_after == 86400
    assert cert.critical_options == ()
    assert cert.ca_key == _public(cas["ca"])
    assert cert.signature_type == "ssh-ed25519"
    assert "from 2030-01-01" in cert.validity()


def test_a_valid_host_certificate_is_accepted(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h"))
    assert _check(cert, cas["ca"]).where == "kh:3"


def test_an_rsa_ca_with_sha2_signatures_is_accepted(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["rsa"], "-h", "-t", "rsa-sha2-512"))
    assert cert.signature_type == "rsa-sha2-512"
    _check(cert, cas["rsa"])


def test_a_sha1_rsa_ca_signature_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["rsa"], "-h", "-t", "ssh-rsa"))
    with pytest.raises(HostKeyError, match="ssh-rsa, which OpenSSH no longer accepts"):
        _check(cert, cas["rsa"])


def test_a_user_certificate_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"]))  # no -h: a user certificate
    with pytest.raises(HostKeyError, match="is a user certificate, not a host certificate"):
        _check(cert, cas["ca"])


def test_another_cas_certificate_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["other"], "-h"))
    with pytest.raises(HostKeyError) as info:
        _check(cert, cas["ca"])
    message = str(info.value)
    assert "is not signed by a CA that known_hosts trusts" in message
    assert fingerprint(_public(cas["other"])) in message  # who signed it
    assert f"{fingerprint(_public(cas['ca']))} at kh:3" in message  # whom we trust


def test_a_revoked_ca_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h"))
    with pytest.raises(HostKeyError, match="CA key marked @revoked"):
        _check(cert, cas["ca"], revoked=[_public(cas["ca"])])


def test_an_altered_certificate_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    blob = _sign(tmp_path, cas["ca"], "-h", principals="login1.site.org")
    forged = blob.replace(b"login1.site.org", b"login2.site.org")
    cert = parse_certificate(forged)
    assert cert.principals == ("login2.site.org",)
    with pytest.raises(HostKeyError, match="signature that does not verify"):
        _check(cert, cas["ca"], host="login2.site.org")


def test_an_expired_certificate_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h", validity="20200101:20200102"))
    with pytest.raises(HostKeyError, match="has expired: valid from 2020-01-01"):
        _check(cert, cas["ca"])
    # valid_before is the first second it is no longer valid, as in OpenSSH
    with pytest.raises(HostKeyError, match="expired"):
        _check(cert, cas["ca"], now=cert.valid_before)
    _check(cert, cas["ca"], now=cert.valid_before - 1)


def test_a_certificate_not_valid_yet_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h", validity="+1d:+2d"))
    with pytest.raises(HostKeyError, match="not valid yet"):
        _check(cert, cas["ca"])
    _check(cert, cas["ca"], now=cert.valid_after)


def test_a_certificate_for_another_host_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h", principals="login2.site.org"))
    with pytest.raises(HostKeyError) as info:
        _check(cert, cas["ca"])
    assert "is for 'login2.site.org', not 'login1.site.org'" in str(info.value)
    assert "HostKeyAlias" in str(info.value)
    # principals are names, compared exactly: no pattern, no suffix
    wild = parse_certificate(_sign(tmp_path, cas["ca"], "-h", principals="*.site.org"))
    with pytest.raises(HostKeyError, match=r"not 'login1\.site\.org'"):
        _check(wild, cas["ca"])


def test_a_certificate_without_principals_is_valid_for_any_host(
    tmp_path: Path, cas: dict[str, Path]
) -> None:
    # OpenSSH's client checks host certificates with require_principal=0.
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h", principals=None))
    assert cert.principals == ()
    _check(cert, cas["ca"], host="anything.example.org")


def test_a_certificate_with_a_critical_option_is_refused(
    tmp_path: Path, cas: dict[str, Path]
) -> None:
    cert = parse_certificate(_sign(tmp_path, cas["ca"], "-h", "-O", "force-command=/bin/true"))
    assert cert.critical_options == ("force-command",)
    with pytest.raises(HostKeyError, match="critical option\\(s\\) force-command"):
        _check(cert, cas["ca"])


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"k" * 32,  # a plain key
        b"\x00\x00\x00\x20ssh-ed25519-cert-v01@openssh.com\x00\x00\x00\x05nonce",  # truncated
    ],
)
def test_malformed_certificates_are_value_errors(blob: bytes) -> None:
    with pytest.raises(ValueError):
        parse_certificate(blob)


def test_bytes_after_the_signature_are_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="after its signature"):
        parse_certificate(_sign(tmp_path, cas["ca"], "-h") + b"\x00")


# -- the known_hosts side ---------------------------------------------------------------


def _line(marker: str, pattern: str, key: Path) -> str:
    return f"{marker} {pattern} {key.with_name(key.name + '.pub').read_text().strip()}\n"


def _server_key(blob: bytes) -> paramiko.PKey:
    """The key paramiko makes of a server's certificate during the key exchange."""
    return paramiko.Ed25519Key(msg=paramiko.Message(blob))


def _policy(kh: Path, accept: bool = False) -> HostKeyPolicy:
    return HostKeyPolicy(f"root@{HOST}", (str(kh),), str(kh), accept_new=accept)


def test_cert_authority_lines_match_host_patterns(tmp_path: Path, cas: dict[str, Path]) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "# site CA\n"
        + _line("@cert-authority", "*.site.org,!bad.site.org", cas["ca"])
        + _line("@cert-authority", "[127.0.0.1]:*", cas["other"])
    )
    assert [a.where for a in find_authorities(HOST, [str(kh)])] == [f"{kh}:2"]
    assert find_authorities("bad.site.org", [str(kh)]) == []
    assert [a.key for a in find_authorities("[127.0.0.1]:2222", [str(kh)])] == [
        _public(cas["other"])
    ]
    assert find_authorities("127.0.0.1", [str(kh)]) == []  # the port is part of the name
    assert find_known_keys(HOST, [str(kh)]) == []
    assert _policy(kh).wants_certificate(HOST)
    assert not _policy(kh).wants_certificate("elsewhere.org")


def test_a_host_the_ca_vouches_for_is_accepted_and_nothing_saved(
    tmp_path: Path, cas: dict[str, Path]
) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("@cert-authority", "*.site.org", cas["ca"]))
    before = kh.read_text()
    key = _server_key(_sign(tmp_path, cas["ca"], "-h"))
    client = paramiko.SSHClient()
    _policy(kh).prime(client, HOST)
    _policy(kh, accept=True).missing_host_key(client, HOST, key)
    assert kh.read_text() == before
    # a port is not part of the principal: [host]:2222 is checked against "host"
    kh.write_text(_line("@cert-authority", "*", cas["ca"]))
    _policy(kh).missing_host_key(client, f"[{HOST}]:2222", key)


def test_a_ca_host_never_falls_back_to_first_use(tmp_path: Path, cas: dict[str, Path]) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(_line("@cert-authority", "*.site.org", cas["ca"]))
    plain = _public(_keygen(tmp_path / "plain_host"))
    with pytest.raises(HostKeyError) as info:
        _policy(kh, accept=True).missing_host_key(paramiko.SSHClient(), HOST, plain)
    assert "no certificate, but known_hosts trusts a CA" in str(info.value)
    assert kh.read_text().count("\n") == 1  # nothing saved
    other = _server_key(_sign(tmp_path, cas["other"], "-h"))
    with pytest.raises(HostKeyError, match="not signed by a CA that known_hosts trusts"):
        _policy(kh, accept=True).missing_host_key(paramiko.SSHClient(), HOST, other)


def test_a_plain_key_listed_beside_a_ca_keeps_working(tmp_path: Path, cas: dict[str, Path]) -> None:
    kh = tmp_path / "known_hosts"
    blob = _sign(tmp_path, cas["other"], "-h")
    key = _server_key(blob)
    plain = (tmp_path / "host.pub").read_text().split()[:2]
    kh.write_text(_line("@cert-authority", "*.site.org", cas["ca"]) + f"{HOST} {' '.join(plain)}\n")
    client = paramiko.SSHClient()
    _policy(kh).prime(client, HOST)
    assert client.get_host_keys().lookup(HOST) is None  # the policy decides, not paramiko
    # another CA's certificate of the listed key, or the bare key: accepted as the key
    _policy(kh).missing_host_key(client, HOST, key)
    _policy(kh).missing_host_key(client, HOST, _public(tmp_path / "host"))
    changed = _public(_keygen(tmp_path / "changed"))
    with pytest.raises(HostKeyError, match="CHANGED"):
        _policy(kh).missing_host_key(client, HOST, changed)
    # a certificate of our CA is judged by it, even for a listed key
    expired = _server_key(_sign(tmp_path, cas["ca"], "-h", validity="20200101:20200102"))
    with pytest.raises(HostKeyError, match="expired"):
        _policy(kh).missing_host_key(client, HOST, expired)


def test_certificate_host_key_types_are_asked_first_only_for_a_ca_host() -> None:
    def offered(prefer: bool) -> tuple[str, ...]:
        a, b = socket.socketpair()
        with a, b:
            transport = AnsweringTransport(
                a, host="h", answer=ask_on_terminal, password=None, prefer_certificates=prefer
            )
            return transport.preferred_keys

    plain, certs = offered(False), offered(True)
    assert sorted(plain) == sorted(certs)
    assert not plain[0].endswith("-cert-v01@openssh.com")
    assert certs[0] == "ssh-ed25519-cert-v01@openssh.com"
    first_plain = next(i for i, k in enumerate(certs) if not k.endswith("-cert-v01@openssh.com"))
    assert all(k.endswith("-cert-v01@openssh.com") for k in certs[:first_plain])


def test_a_ca_marked_revoked_in_known_hosts_is_refused(
    tmp_path: Path, cas: dict[str, Path]
) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(
        _line("@cert-authority", "*.site.org", cas["ca"]) + _line("@revoked", "*", cas["ca"])
    )
    key = _server_key(_sign(tmp_path, cas["ca"], "-h"))
    with pytest.raises(HostKeyError, match="CA key marked @revoked"):
        _policy(kh, accept=True).missing_host_key(paramiko.SSHClient(), HOST, key)
