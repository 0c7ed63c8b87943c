"""Logins with a second factor: a key, then a TOTP code, against a real sshd + PAM.

A throwaway sshd on 127.0.0.1 requires ``AuthenticationMethods
publickey,keyboard-interactive``; its keyboard-interactive step is PAM with
Debian's ``pam_oath`` (installed by the project's installer when missing) and
a secret made for this test. The test answers with codes it computes itself
(RFC 6238), and the sshd's own log is the judge of how many logins happened.

The sshd runs through a symlink named after a PAM service of its own
(``/etc/pam.d/<name>``, written here and removed afterwards), so the system's
``/etc/pam.d/sshd`` is never touched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pty
import secrets
import select
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sshd import Sshd, keygen, ssh_transport, start_sshd
from nodepython import node_python

from slurm import AuthPrompt, Cluster, task
from slurm._transport import SSHTransport
from slurm.devcluster import Status
from slurm.devcluster.install import ensure_pam_oath
from slurm.errors import SlurmError, TransportError

_STEP = 30


def totp(secret: bytes, step: int, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1) for time step ``step`` (= unix time // 30)."""
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def test_totp_matches_rfc6238_vectors() -> None:
    secret = b"12345678901234567890"
    for unix_time, expected in [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ]:
        assert totp(secret, unix_time // _STEP, digits=8) == expected


class Authenticator:
    """The user's ``interactive_auth``: answers each prompt with a fresh TOTP code.

    pam_oath refuses a code whose time step was already used (by any login of
    this module's user), so each answer uses the next unused step; the server
    accepts a window around now.
    """

    _last_step = 0
    _lock = threading.Lock()

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.prompts: list[AuthPrompt] = []

    def __call__(self, prompt: AuthPrompt) -> str:
        self.prompts.append(prompt)
        return self.code()

    def code(self) -> str:
        """A code for the next time step no login has used yet."""
        with Authenticator._lock:
            step = max(int(time.time()) // _STEP, Authenticator._last_step + 1)
            Authenticator._last_step = step
            return totp(self.secret, step)


@pytest.fixture(scope="module")
def secret() -> bytes:
    return secrets.token_bytes(20)


@pytest.fixture(scope="module")
def otp_sshd(tmp_path_factory: pytest.TempPathFactory, secret: bytes) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.fail(
            "the one-time-code login tests run an sshd with its own PAM service "
            "(/etc/pam.d/<name>): run them as root, as the dev cluster's tests are.",
            pytrace=False,
        )
    try:
        module = ensure_pam_oath()
    except SlurmError as exc:
        pytest.fail(str(exc), pytrace=False)
    directory = tmp_path_factory.mktemp("otp-sshd")
    users = directory / "users.oath"
    users.write_text(f"HOTP/T30/6\troot\t-\t{secret.hex()}\n")
    users.chmod(0o600)
    service = f"sshd-slurmsdk-otp-{secrets.token_hex(4)}"
    pam_file = Path("/etc/pam.d") / service
    pam_file.write_text(
        f"auth required {module} usersfile={users} window=20 digits=6\n"
        "account required pam_permit.so\n"
        "session required pam_permit.so\n"
        "password required pam_deny.so\n"
    )
    client_key = keygen(directory / "id_ed25519")
    try:
        server = start_sshd(
            directory / "server",
            client_key,
            program_name=service,
            extra_config=textwrap.dedent(
                """\
                UsePAM yes
                KbdInteractiveAuthentication yes
                AuthenticationMethods publickey,keyboard-interactive
                PermitRootLogin yes
                """
            ),
        )
        yield server
        server.stop()
    finally:
        pam_file.unlink()


def _transport(sshd: Sshd, tmp_path: Path, **kwargs: object) -> SSHTransport:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.host_key_line)
    return ssh_transport(sshd, known_hosts, **kwargs)


def _accepted_logins(sshd: Sshd) -> int:
    return sshd.log.read_text().count("Accepted keyboard-interactive/pam")


def test_code_is_asked_once_and_the_connection_serves_everything(
    otp_sshd: Sshd, secret: bytes, tmp_path: Path
) -> None:
    answer = Authenticator(secret)
    before = _accepted_logins(otp_sshd)
    with _transport(otp_sshd, tmp_path, interactive_auth=answer) as ssh:
        results: list[str] = []

        def work(i: int) -> None:
            ssh.write_text(str(tmp_path / f"f{i}"), str(i))
            results.append(ssh.run(["cat", str(tmp_path / f"f{i}")]).stdout)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == sorted(str(i) for i in range(12))
        assert ssh.run(["echo", "still", "here"]).stdout == "still here\n"
        assert ssh.logins == 1
    assert len(answer.prompts) == 1
    prompt = answer.prompts[0]
    assert prompt.host == f"root@127.0.0.1:{otp_sshd.port}"
    assert "one-time password" in prompt.prompt.lower()
    assert prompt.echo is False
    assert _accepted_logins(otp_sshd) - before == 1


def test_the_account_password_is_never_sent_to_a_one_time_password_prompt(
    otp_sshd: Sshd, secret: bytes, tmp_path: Path
) -> None:
    """PAM asks "One-time password (OATH) for `root':": a question with "password" in it,
    but not for the password. It goes to the callback; the password is not sent."""
    answer = Authenticator(secret)
    with _transport(
        otp_sshd, tmp_path, interactive_auth=answer, password="the-account-password"
    ) as ssh:
        assert ssh.run(["echo", "in"]).stdout == "in\n"
    assert [p.prompt.lower().startswith("one-time password") for p in answer.prompts] == [True]


def test_reconnects_only_when_the_connection_is_lost_and_says_so(
    otp_sshd: Sshd, secret: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answer = Authenticator(secret)
    caplog.set_level(logging.WARNING, logger="slurm._transport.ssh")
    with _transport(otp_sshd, tmp_path, interactive_auth=answer) as ssh:
        assert ssh.run(["echo", "1"]).stdout == "1\n"
        assert ssh.run(["echo", "2"]).stdout == "2\n"
        assert (ssh.logins, len(answer.prompts)) == (1, 1)
        assert not [r for r in caplog.records if r.name == "slurm._transport.ssh"]
        assert otp_sshd.kill_sessions() > 0
        assert ssh.run(["echo", "3"]).stdout == "3\n"
        assert (ssh.logins, len(answer.prompts)) == (2, 2)
        messages = [r.getMessage() for r in caplog.records if r.name == "slurm._transport.ssh"]
        assert len(messages) == 1, messages
        assert "the SSH connection was lost; logging in again" in messages[0]
        assert "second factor" in messages[0]


def test_a_refused_code_says_what_happened(otp_sshd: Sshd, secret: bytes, tmp_path: Path) -> None:
    right = totp(secret, int(time.time()) // _STEP)
    wrong = "000000" if right != "000000" else "111111"
    asked: list[AuthPrompt] = []

    def answer(prompt: AuthPrompt) -> str:
        asked.append(prompt)
        return wrong

    with (
        pytest.raises(TransportError, match="one-time code") as info,
        _transport(otp_sshd, tmp_path, interactive_auth=answer) as ssh,
    ):
        ssh.run(["true"])
    assert "after answering 1 keyboard-interactive prompt" in str(info.value)
    assert len(asked) == 1  # never asked twice for one login


def _client_script(sshd: Sshd, tmp_path: Path, *, take_terminal: bool) -> str:
    """A Python program that logs in without interactive_auth and runs ``echo``."""
    return textwrap.dedent(
        f"""\
        import fcntl, sys, termios
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from _sshd import Sshd
        from test_transport_otp import _transport
        from slurm.errors import TransportError
        if {take_terminal!r}:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # stdin's pty becomes our terminal
        sshd = Sshd(Path("."), {sshd.port}, Path({str(sshd.host_key)!r}),
                    Path({str(sshd.client_key)!r}), None, Path("."))
        try:
            print("RESULT", _transport(sshd, Path({str(tmp_path)!r})).run(["echo", "in"]).stdout)
        except TransportError as exc:
            print(exc)
        """
    )


def test_no_terminal_and_no_callback_says_what_to_do(otp_sshd: Sshd, tmp_path: Path) -> None:
    # A new session has no controlling terminal: like a batch job or CI.
    out = subprocess.run(
        [sys.executable, "-c", _client_script(otp_sshd, tmp_path, take_terminal=False)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=60,
        check=True,
    )
    assert "there is no terminal to ask on" in out.stdout, out.stdout + out.stderr
    assert "interactive_auth=" in out.stdout


def test_without_a_callback_the_code_is_asked_on_the_terminal(
    otp_sshd: Sshd, secret: bytes, tmp_path: Path
) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", _client_script(otp_sshd, tmp_path, take_terminal=True)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        seen = _read_until(master, b"One-time password", seen)
        assert f"[root@127.0.0.1:{otp_sshd.port}]".encode() in seen
        os.write(master, Authenticator(secret).code().encode() + b"\n")
        seen = _read_until(master, b"RESULT in", seen)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert seen.count(b"One-time password") == 1


def _read_until(fd: int, wanted: bytes, seen: bytes, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never appeared on the terminal; saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                assert wanted in seen, seen
    return seen


def test_cluster_runs_a_job_over_a_second_factor_login(
    devcluster: Status, otp_sshd: Sshd, secret: bytes, tmp_path: Path
) -> None:
    del devcluster
    answer = Authenticator(secret)

    @task(time="00:02:00", mem="64M")
    def square(x: int) -> int:
        return x * x

    transport = _transport(otp_sshd, tmp_path, interactive_auth=answer)
    with Cluster(
        "ssh",
        transport=transport,
        python=node_python(),
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
    ) as cluster:
        jobs = [square(i) for i in range(3)]
        assert [job.get_result(timeout=240) for job in jobs] == [0, 1, 4]
        cluster.close()
    assert transport.logins == 1
    assert len(answer.prompts) == 1


def test_cluster_hands_interactive_auth_to_its_ssh_transport() -> None:
    answer = Authenticator(b"x" * 20)
    cluster = Cluster("ssh", hostname="127.0.0.1", interactive_auth=answer)
    transport = cluster.transport
    assert isinstance(transport, SSHTransport)
    assert transport._creds.interactive_auth is answer
    cluster.close()
