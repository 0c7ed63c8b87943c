"""SSHTransport against real throwaway sshd servers on 127.0.0.1."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sshd import Sshd, keygen, ssh_transport, start_sshd

from slurm._transport import SSHTransport
from slurm.errors import CommandError, ConnectionLostError, HostKeyError, TransportError

HOSTILE_NAMES = [
    "with space",
    "quote'single",
    'quote"double',
    "semi; echo pwned",
    "new\nline",
    "$(touch pwned)",
    "-dash",
    "ünïcödé",
]


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, client_key: Path) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"), client_key)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jump_sshd(tmp_path_factory: pytest.TempPathFactory, client_key: Path) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("jump"), client_key)
    yield server
    server.stop()


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: Sshd) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.host_key_line)
    return path


_transport = ssh_transport


@pytest.fixture
def ssh(sshd: Sshd, known_hosts: Path) -> Iterator[SSHTransport]:
    with _transport(sshd, known_hosts) as transport:
        yield transport


# -- commands -------------------------------------------------------------


def test_run_echo_and_description(ssh: SSHTransport, sshd: Sshd) -> None:
    result = ssh.run(["echo", "hello world"])
    assert result.stdout == "hello world\n"
    assert result.returncode == 0
    assert result.argv == ["echo", "hello world"]
    assert ssh.kind == "ssh"
    assert ssh.description == f"ssh root@127.0.0.1:{sshd.port}"


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_run_passes_hostile_arguments_and_env_literally(ssh: SSHTransport, value: str) -> None:
    script = 'import json, os, sys; print(json.dumps([sys.argv[1:], os.environ["HOSTILE"]]))'
    result = ssh.run(["python3", "-c", script, value, "*"], env={"HOSTILE": value})
    import json

    assert json.loads(result.stdout) == [[value, "*"], value]


def test_run_with_hostile_cwd(ssh: SSHTransport, tmp_path: Path) -> None:
    directory = tmp_path / "dir; echo pwned 'x'\n$(y)"
    directory.mkdir()
    assert ssh.run(["pwd"], cwd=str(directory)).stdout == f"{directory}\n"


def test_run_input_and_stderr(ssh: SSHTransport) -> None:
    data = b"line 1\nline 2\x00\xff"
    assert ssh.run(["cat"], input=data).stdout == data.decode("utf-8", errors="replace")
    result = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_large_input_echoed_back(ssh: SSHTransport) -> None:
    # 5 MB through `cat`: more than both SSH windows, so stdin must be fed
    # while stdout is read or the command deadlocks.
    data = b"0123456789abcdef\n" * 300_000
    assert ssh.run(["cat"], input=data, timeout=60).stdout == data.decode()


def test_run_large_stdout_and_stderr_at_once(ssh: SSHTransport) -> None:
    script = "head -c 3000000 /dev/zero | tr '\\0' o; head -c 3000000 /dev/zero | tr '\\0' e >&2"
    result = ssh.run(["sh", "-c", script])
    assert len(result.stdout) == 3_000_000
    assert len(result.stderr) == 3_000_000


def test_run_failure_raises_command_error(ssh: SSHTransport) -> None:
    with pytest.raises(CommandError) as info:
        ssh.run(["sh", "-c", "echo bad >&2; exit 2"])
    assert info.value.returncode == 2
    assert info.value.stderr == "bad\n"
    assert info.value.argv == ["sh", "-c", "echo bad >&2; exit 2"]


def test_run_missing_program(ssh: SSHTransport) -> None:
    with pytest.raises(CommandError, match="not found on the cluster") as info:
        ssh.run(["no-such-program-xyz", "arg"], check=False)
    assert info.value.returncode == 127


def test_run_timeout(ssh: SSHTransport) -> None:
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s"):
        ssh.run(["sh", "-c", "echo started; sleep 10"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert ssh.run(["true"]).returncode == 0  # the connection is still usable


def test_concurrent_commands_and_files(ssh: SSHTransport, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                assert ssh.run(["echo", f"{i}-{j}"]).stdout == f"{i}-{j}\n"
                path = str(tmp_path / f"f{i}-{j}")
                ssh.write_text(path, f"{i}{j}")
                assert ssh.read_text(path) == f"{i}{j}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- files ----------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_files_with_hostile_names(ssh: SSHTransport, tmp_path: Path, name: str) -> None:
    directory = str(tmp_path / name / "sub")
    ssh.mkdir(directory)
    ssh.mkdir(directory)  # exists: fine
    assert (tmp_path / name / "sub").stat().st_mode & 0o777 == 0o700
    path = f"{directory}/{name}.txt"
    assert not ssh.exists(path)
    ssh.write_text(path, "content\n")
    assert ssh.exists(path)
    assert ssh.read_text(path) == "content\n"
    assert ssh.run(["cat", path]).stdout == "content\n"
    assert ssh.list_dir(directory) == [f"{name}.txt"]


def test_write_is_atomic_with_mode_and_no_temp_left(ssh: SSHTransport, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "result.bin"
    ssh.write_bytes(str(path), b"old")
    ssh.write_bytes(str(path), b"\x00new\xff", mode=0o640)
    assert path.read_bytes() == b"\x00new\xff"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["result.bin"]


def test_read_missing_and_list_missing(ssh: SSHTransport, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ssh.read_bytes(str(tmp_path / "nope"))
    assert ssh.list_dir(str(tmp_path / "nope")) == []
    assert not ssh.exists(str(tmp_path / "nope"))


def test_upload(ssh: SSHTransport, tmp_path: Path) -> None:
    local = tmp_path / "local file"
    local.write_bytes(bytes(range(256)) * 5000)
    remote = tmp_path / "remote dir"
    remote.mkdir()
    ssh.upload(str(local), str(remote / "copy 'x'"), mode=0o700)
    assert (remote / "copy 'x'").read_bytes() == local.read_bytes()
    assert (remote / "copy 'x'").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in remote.iterdir()] == ["copy 'x'"]
    with pytest.raises(FileNotFoundError):
        ssh.upload(str(tmp_path / "missing"), str(remote / "y"))


def test_expand_path_uses_remote_home(ssh: SSHTransport) -> None:
    home = ssh.run(["sh", "-c", 'printf %s "$HOME"']).stdout
    assert ssh.expand_path("~") == home
    assert ssh.expand_path("~/x y") == f"{home}/x y"
    assert ssh.expand_path("rel/dir") == f"{home}/rel/dir"
    assert ssh.expand_path("/abs") == "/abs"


# -- host keys --------------------------------------------------------------


def test_unknown_host_key_is_refused_with_fingerprint(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with pytest.raises(HostKeyError) as info, _transport(sshd, known) as t:
        t.run(["true"])
    message = str(info.value)
    assert sshd.fingerprint in message
    assert "ssh-ed25519" in message
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert "accept_new_host_key=True" in message
    assert "--accept-new-host-key" in message
    assert not known.exists()


def test_accept_new_host_key_saves_it(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "sub" / "known_hosts"
    with _transport(sshd, known, accept_new_host_key=True) as t:
        assert t.run(["echo", "ok"]).stdout == "ok\n"
    assert known.read_text() == sshd.host_key_line
    with _transport(sshd, known) as t:  # known now, without the option
        assert t.run(["echo", "ok"]).stdout == "ok\n"


def test_changed_host_key_is_refused_even_with_accept(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    kind, data = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(
        f"# comment\nexample.org {kind} {data}\n[127.0.0.1]:{sshd.port} {kind} {data}\n"
    )
    with (
        pytest.raises(HostKeyError) as info,
        _transport(sshd, known, accept_new_host_key=True) as t,
    ):
        t.run(["true"])
    message = str(info.value)
    assert "CHANGED" in message
    assert f"{known}:3" in message
    assert sshd.fingerprint in message
    assert "ssh-keygen -R" in message


def test_hashed_known_hosts_entry(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line)
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    with _transport(sshd, known) as t:
        assert t.run(["echo", "ok"]).stdout == "ok\n"


# -- authentication and reachability ------------------------------------------


def test_wrong_key_gives_authentication_error(
    sshd: Sshd, known_hosts: Path, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "stranger")
    with (
        pytest.raises(TransportError, match=r"authentication to root@127\.0\.0\.1") as info,
        _transport(sshd, known_hosts, key_filename=str(stranger)) as t,
    ):
        t.run(["true"])
    assert str(stranger) in str(info.value)
    assert "Tried" in str(info.value)


def test_unreachable_port(tmp_path: Path, client_key: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = SSHTransport(
        "127.0.0.1",
        port=port,
        key_filename=str(client_key),
        ssh_config=None,
        known_hosts=str(tmp_path / "kh"),
        allow_agent=False,
        look_for_keys=False,
    )
    with pytest.raises(TransportError, match=f"cannot reach root@127.0.0.1:{port}"):
        t.run(["true"])
    t.close()


# -- reconnects ---------------------------------------------------------------


def _wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_reconnects_after_server_side_kill(ssh: SSHTransport, sshd: Sshd, tmp_path: Path) -> None:
    assert ssh.run(["echo", "1"]).stdout == "1\n"
    assert sshd.kill_sessions() > 0
    assert ssh.run(["echo", "2"]).stdout == "2\n"
    sshd.kill_sessions()
    ssh.write_text(str(tmp_path / "f"), "x")  # SFTP reconnects too
    assert ssh.read_text(str(tmp_path / "f")) == "x"
    sshd.kill_sessions()  # now with an SFTP session open on the dead connection
    assert ssh.read_text(str(tmp_path / "f")) == "x"
    assert ssh.list_dir(str(tmp_path)) == ["f", "known_hosts"]


def test_reconnects_after_client_transport_closed(ssh: SSHTransport) -> None:
    ssh.connect()
    conn = ssh._conn
    assert conn is not None
    conn.transport.close()
    assert ssh.run(["echo", "again"]).stdout == "again\n"
    assert ssh._conn is not conn


def _kill_when_running(sshd: Sshd, marker: Path) -> threading.Thread:
    def killer() -> None:
        _wait_until(marker.exists)
        sshd.kill_sessions()

    thread = threading.Thread(target=killer)
    thread.start()
    return thread


def test_connection_lost_mid_run_without_retry(
    ssh: SSHTransport, sshd: Sshd, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    killer = _kill_when_running(sshd, marker)
    with pytest.raises(ConnectionLostError, match="may or may not have run"):
        ssh.run(["sh", "-c", f"touch '{marker}'; sleep 20"], retry=False)
    killer.join()
    assert ssh.run(["echo", "fine"]).stdout == "fine\n"


def test_connection_lost_mid_run_is_retried(ssh: SSHTransport, sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    killer = _kill_when_running(sshd, marker)
    script = f"if [ -e '{marker}' ]; then echo second; else touch '{marker}'; sleep 20; fi"
    assert ssh.run(["sh", "-c", script]).stdout == "second\n"
    killer.join()


# -- ssh config: aliases and ProxyJump -----------------------------------------


def test_ssh_config_alias(sshd: Sshd, known_hosts: Path, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"""\
Host mycluster
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {known_hosts}
    IdentitiesOnly yes
"""
    )
    with SSHTransport("mycluster", ssh_config=str(config), look_for_keys=False) as t:
        assert t.description == f"ssh root@127.0.0.1:{sshd.port}"
        assert t.run(["echo", "via alias"]).stdout == "via alias\n"


def test_proxy_jump(sshd: Sshd, jump_sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line + jump_sshd.host_key_line)
    config = tmp_path / "config"
    config.write_text(
        f"""\
Host target
    HostName 127.0.0.1
    Port {sshd.port}
    ProxyJump gateway

Host gateway
    HostName 127.0.0.1
    Port {jump_sshd.port}

Host *
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {known}
"""
    )
    _wait_until(lambda: jump_sshd.session_pids() == [])  # the readiness probe has gone
    with SSHTransport("target", ssh_config=str(config), allow_agent=False) as t:
        assert t.description == (
            f"ssh root@127.0.0.1:{sshd.port} via root@127.0.0.1:{jump_sshd.port}"
        )
        assert t.run(["echo", "through"]).stdout == "through\n"
        assert jump_sshd.session_pids() != []  # the connection goes through the jump host
        t.write_text(str(tmp_path / "f"), "jumped")
        assert t.read_text(str(tmp_path / "f")) == "jumped"
        jump_sshd.kill_sessions()  # dropping the jump host drops the tunnel
        assert t.run(["echo", "again"]).stdout == "again\n"
    _wait_until(lambda: jump_sshd.session_pids() == [])


def test_proxy_jump_unknown_jump_host_key(sshd: Sshd, jump_sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line)  # the target only
    config = tmp_path / "config"
    config.write_text(
        f"""\
Host target
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    ProxyJump root@127.0.0.1:{jump_sshd.port}
"""
    )
    t = SSHTransport("target", ssh_config=str(config), known_hosts=str(known), allow_agent=False)
    with pytest.raises(HostKeyError, match="jump host") as info:
        t.connect()
    assert jump_sshd.fingerprint in str(info.value)
    t.close()


def test_proxy_command(sshd: Sshd, jump_sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.host_key_line + jump_sshd.host_key_line)
    proxy = (
        f"ssh -q -o BatchMode=yes -o UserKnownHostsFile={known} -i {sshd.client_key} "
        f"-p {jump_sshd.port} -W %h:%p root@127.0.0.1"
    )
    config = tmp_path / "config"
    config.write_text(
        f"""\
Host target
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {known}
    ProxyCommand {proxy}
"""
    )
    with SSHTransport("target", ssh_config=str(config), allow_agent=False) as t:
        assert t.run(["echo", "proxied"]).stdout == "proxied\n"
        assert jump_sshd.session_pids() != []
    _wait_until(lambda: jump_sshd.session_pids() == [])


def test_revoked_host_key_is_refused_before_any_credential(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key both listed and @revoked: the login never starts (no key, no password sent)."""
    import paramiko

    sent: list[str] = []
    for method in ("auth_publickey", "auth_password", "auth_interactive", "auth_none"):

        def record(self: object, *args: object, _name: str = method, **kwargs: object) -> None:
            sent.append(_name)
            raise paramiko.AuthenticationException("the test refuses every login")

        monkeypatch.setattr(paramiko.Transport, method, record)
    known = tmp_path / "known_hosts"
    kind_and_key = sshd.host_key_line.split(" ", 1)[1]
    known.write_text(sshd.host_key_line + f"@revoked * {kind_and_key}")
    with (
        pytest.raises(HostKeyError, match="revoked"),
        _transport(sshd, known, password="not-to-be-sent") as t,
    ):
        t.run(["true"])
    assert sent == []


def test_read_range_reads_only_the_slice(ssh: SSHTransport, tmp_path: Path) -> None:
    """`slurm jobs logs --follow` and error tails ask for a slice, not the whole file."""
    path = tmp_path / "log"
    data = bytes(range(256)) * 4096  # 1 MiB
    path.write_bytes(data)
    assert ssh.read_range(str(path), 10, 5) == (data[10:15], len(data))
    assert ssh.read_range(str(path), -100, 100) == (data[-100:], len(data))
    assert ssh.read_range(str(path), -(len(data) + 5), 3) == (data[:3], len(data))
    assert ssh.read_range(str(path), len(data), 10) == (b"", len(data))
    with pytest.raises(FileNotFoundError):
        ssh.read_range(str(tmp_path / "missing"), 0, 1)


def test_command_output_has_a_cap(ssh: SSHTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "output_cap", 1_000_000)
    assert len(ssh.run(["head", "-c", "999999", "/dev/zero"]).stdout) == 999_999
    with pytest.raises(TransportError, match="printed more than 1000000 bytes"):
        ssh.run(["head", "-c", "50000000", "/dev/zero"])
    with pytest.raises(TransportError, match="printed more than 1000000 bytes"):
        ssh.run(["sh", "-c", "head -c 5000000 /dev/zero >&2"])
    assert ssh.run(["echo", "still usable"]).stdout == "still usable\n"
