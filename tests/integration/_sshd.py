"""A throwaway OpenSSH server on 127.0.0.1 for transport tests.

Each :class:`Sshd` gets its own directory, free port, ed25519 host key and
``AuthorizedKeysFile``; it runs ``/usr/sbin/sshd -D -e -f CONFIG`` in the
foreground and is stopped by its pid. Never skips: when ``sshd`` is missing the
test fails with what to install.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slurm._transport import SSHTransport

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"


def keygen(path: Path, comment: str = "slurm-sdk-test") -> Path:
    """Create an unencrypted ed25519 key pair at ``path`` (+ ``.pub``); return ``path``."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def sign_host_key(ca: Path, host_key: Path, *, principals: str, validity: str = "-5m:+1h") -> Path:
    """Sign ``host_key`` (its ``.pub``) with the CA key ``ca`` as a host certificate, as
    ``ssh-keygen -s CA -h -n PRINCIPALS -V VALIDITY`` does; return the ``-cert.pub`` path."""
    subprocess.run(
        [
            *(SSH_KEYGEN, "-q", "-s", str(ca), "-h", "-I", f"{host_key.name}-test"),
            *("-n", principals, "-V", validity, f"{host_key}.pub"),
        ],
        check=True,
        capture_output=True,
    )
    return host_key.with_name(host_key.name + "-cert.pub")


def openssh_fingerprint(pub_path: Path) -> str:
    """The SHA256 fingerprint of a public key as ``ssh-keygen -l`` prints it."""
    out = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(pub_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        for kid in _children(todo.pop()):
            found.append(kid)
            todo.append(kid)
    return found


@dataclass
class Sshd:
    """A running throwaway sshd; ``stop()`` it (the fixture does)."""

    directory: Path
    port: int
    host_key: Path
    client_key: Path
    proc: subprocess.Popen[bytes]
    log: Path
    extra: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The listening sshd's pid."""
        return self.proc.pid

    @property
    def host_key_line(self) -> str:
        """A known_hosts line for this server, as OpenSSH writes it."""
        kind, data = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {data}\n"

    @property
    def fingerprint(self) -> str:
        """The host key's fingerprint per ``ssh-keygen -l``."""
        return openssh_fingerprint(self.host_key.with_suffix(".pub"))

    def session_pids(self) -> list[int]:
        """Pids of the processes serving current connections (and their commands)."""
        return _descendants(self.pid)

    def kill_sessions(self) -> int:
        """SIGKILL every process serving a connection; return how many were killed."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        """Stop the sessions and the server (by pid)."""
        self.kill_sessions()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(
    directory: Path,
    client_key: Path,
    *,
    extra_config: str = "",
    program_name: str = "sshd",
    certify: Callable[[Path], Path] | None = None,
) -> Sshd:
    """Start an sshd in ``directory`` that lets ``client_key`` log in as root.

    ``extra_config`` comes first in the config, so its settings win (sshd keeps
    the first value of a keyword). ``program_name`` other than ``sshd`` runs the
    server through a symlink of that name: sshd names its PAM service after the
    program, so the server reads ``/etc/pam.d/<program_name>``, not the system's.

    ``certify``, given the host key's path, returns a host certificate for it
    (:func:`sign_host_key`): the server presents it (``HostCertificate``).

    Fails the test (never skips) when ``/usr/sbin/sshd`` is missing or the server
    does not come up within 10 s, showing its log.
    """
    if not os.path.exists(SSHD):
        pytest.fail(
            f"{SSHD} not found: the SSH transport tests need OpenSSH's server. Install it "
            "(apt-get install openssh-server, or the project's dev-cluster installer).",
            pytrace=False,
        )
    directory.mkdir(parents=True, exist_ok=True)
    host_key = keygen(directory / "host_ed25519", "test-host")
    if certify is not None:
        extra_config += f"\nHostCertificate {certify(host_key)}\n"
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    # sshd refuses to start without its privilege-separation directory.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"""\
{extra_config}
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
MaxSessions 10
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
    )
    program = SSHD
    if program_name != "sshd":
        program = str(directory / program_name)
        os.symlink(SSHD, program)
    log = directory / "sshd.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [program, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Sshd(directory, port, host_key, client_key, proc, log)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"sshd did not answer on port {port}:\n{log.read_text()}", pytrace=False)
        time.sleep(0.05)


def ssh_transport(sshd: Sshd, known_hosts: Path, **kwargs: object) -> SSHTransport:
    """An SSHTransport to ``sshd`` as root with its client key only (no agent, no config)."""
    options: dict[str, object] = {
        "port": sshd.port,
        "username": "root",
        "key_filename": str(sshd.client_key),
        "ssh_config": None,
        "known_hosts": str(known_hosts),
        "allow_agent": False,
        "look_for_keys": False,
        "connect_timeout": 10.0,
    }
    options.update(kwargs)
    return SSHTransport("127.0.0.1", **options)  # type: ignore[arg-type]
