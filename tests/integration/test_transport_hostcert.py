"""``@cert-authority`` known_hosts lines against real sshd servers with host certificates.

Each server presents a host certificate (``HostCertificate``) made by
``ssh-keygen -s CA -h``; the client's known_hosts holds only the CA's line.
OpenSSH's own ``ssh`` is asked too, with the same known_hosts, so each test
also shows that the SDK decides as OpenSSH does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sshd import Sshd, keygen, sign_host_key, ssh_transport, start_sshd

from slurm.errors import HostKeyError


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("ca") / "host_ca", "site-host-ca")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("other_ca") / "host_ca", "someone-elses-ca")


def _server(
    tmp_path_factory: pytest.TempPathFactory,
    client_key: Path,
    ca: Path,
    *,
    principals: str = "127.0.0.1",
    validity: str = "-5m:+1h",
) -> Iterator[Sshd]:
    def certify(host_key: Path) -> Path:
        return sign_host_key(ca, host_key, principals=principals, validity=validity)

    server = start_sshd(tmp_path_factory.mktemp("sshd"), client_key, certify=certify)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certified(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, ca: Path
) -> Iterator[Sshd]:
    yield from _server(tmp_path_factory, client_key, ca)


@pytest.fixture(scope="module")
def other_host(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, ca: Path
) -> Iterator[Sshd]:
    yield from _server(tmp_path_factory, client_key, ca, principals="login2.site.org")


@pytest.fixture(scope="module")
def expired(tmp_path_factory: pytest.TempPathFactory, client_key: Path, ca: Path) -> Iterator[Sshd]:
    yield from _server(tmp_path_factory, client_key, ca, validity="20200101:20200102")


@pytest.fixture(scope="module")
def other_ca_host(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, other_ca: Path
) -> Iterator[Sshd]:
    yield from _server(tmp_path_factory, client_key, other_ca)


def _ca_known_hosts(tmp_path: Path, ca: Path, pattern: str) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority {pattern} {ca.with_suffix('.pub').read_text()}")
    return known


def _openssh_logs_in(server: Sshd, known: Path) -> bool:
    """Whether OpenSSH's ``ssh`` (no config, no agent, no prompt) runs ``true`` there."""
    result = subprocess.run(
        [
            *("ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"),
            *("-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null"),
            *("-o", "IdentitiesOnly=yes", "-i", str(server.client_key), "-p", str(server.port)),
            *("root@127.0.0.1", "true"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": str(known.parent)},
        check=False,
    )
    return result.returncode == 0


@pytest.mark.parametrize("pattern", ["[127.0.0.1]:{port}", "[127.0.0.1]:*", "*"])
def test_a_host_certificate_signed_by_the_known_ca_logs_in_without_first_use(
    certified: Sshd, ca: Path, tmp_path: Path, pattern: str
) -> None:
    known = _ca_known_hosts(tmp_path, ca, pattern.format(port=certified.port))
    before = known.read_text()
    with ssh_transport(certified, known) as t:  # host_key_policy "reject": no first use
        assert t.run(["echo", "vouched for"]).stdout == "vouched for\n"
        conn = t._conn
        assert conn is not None
        assert conn.transport.host_key_type == "ssh-ed25519-cert-v01@openssh.com"
    assert known.read_text() == before  # nothing saved: the CA line is enough
    assert _openssh_logs_in(certified, known)


def _refused(server: Sshd, known: Path, tmp_path: Path) -> str:
    """Connect with first use allowed; return the refusal. No command, no login."""
    before = known.read_text()
    ran = tmp_path / "ran"
    with (
        pytest.raises(HostKeyError) as info,
        ssh_transport(server, known, accept_new_host_key=True) as t,
    ):
        t.run(["touch", str(ran)])
    assert not ran.exists()
    assert "Accepted publickey" not in server.log.read_text()  # refused before any login
    assert known.read_text() == before  # not saved on first use either
    assert not _openssh_logs_in(server, known)
    return str(info.value)


def test_a_certificate_for_another_principal_is_refused(
    other_host: Sshd, ca: Path, tmp_path: Path
) -> None:
    known = _ca_known_hosts(tmp_path, ca, f"[127.0.0.1]:{other_host.port}")
    message = _refused(other_host, known, tmp_path)
    assert "is for 'login2.site.org', not '127.0.0.1'" in message


def test_an_expired_host_certificate_is_refused(expired: Sshd, ca: Path, tmp_path: Path) -> None:
    known = _ca_known_hosts(tmp_path, ca, "[127.0.0.1]:*")
    message = _refused(expired, known, tmp_path)
    assert "has expired: valid from 2020-01-01" in message


def test_a_host_certificate_from_another_ca_is_refused(
    other_ca_host: Sshd, ca: Path, tmp_path: Path
) -> None:
    known = _ca_known_hosts(tmp_path, ca, "*")
    message = _refused(other_ca_host, known, tmp_path)
    assert "is not signed by a CA that known_hosts trusts for '127.0.0.1'" in message
