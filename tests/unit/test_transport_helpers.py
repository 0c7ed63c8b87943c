"""Pure transport helpers: remote command construction, ssh config, host keys."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from slurm._transport.base import (
    CommandResult,
    build_shell_command,
    check_result,
    not_found_error,
    timeout_error,
)
from slurm._transport.hostkeys import (
    HostKeyPolicy,
    find_known_keys,
    fingerprint,
    host_key_name,
)
from slurm._transport.sshconfig import (
    JumpSpec,
    load_ssh_config,
    parse_jump_spec,
    resolve_host,
    split_proxy_jump,
)
from slurm._transport.sshconnect import jump_chain
from slurm.errors import CommandError, ConfigurationError, HostKeyError

HOSTILE = [
    "plain",
    "with space",
    "it's",
    'dq"uote',
    "semi; echo pwned",
    "new\nline",
    "$(touch pwned)",
    "`touch pwned`",
    "$HOME",
    "*",
    "~",
    "-n",
    "",
    "back\\slash",
]

# Keys made with ssh-keygen; fingerprints as `ssh-keygen -l` printed them.
ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIMjMGo8laid13714kV5uCm/6roK4HwhsZj1pWfv4q+bR"
ED25519_FP = "SHA256:g1DT3yor+JNPyQKDxm3MVvIPMgKJAo+SzWS/oUJtv9E"
ECDSA = (
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIwE1BhC3v59rPyyoqZLgAlktpjbdLopO5w"
    "/GeTP/U1LlosU3j4NmjGgyPfscQNwYYpCRwQ7t+tJmzccjOaON5E="
)
ECDSA_FP = "SHA256:1rP9+OgMq7cwFm56vJGmJ9k/H0USdCMeJ4CU/5V8FMs"


def _key(kind: str, data: str) -> paramiko.PKey:
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


ED_KEY = _key("ssh-ed25519", ED25519)
EC_KEY = _key("ecdsa-sha2-nistp256", ECDSA)


# -- build_shell_command ----------------------------------------------------------


def test_build_shell_command_shapes() -> None:
    assert build_shell_command(["squeue", "--me"]) == "squeue --me"
    assert build_shell_command(["echo", "a b"], env={"X": "1; rm"}, cwd="/tmp/d i r") == (
        "cd -- '/tmp/d i r' && env -- 'X=1; rm' echo 'a b'"
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_build_shell_command_round_trips_through_a_real_shell(value: str, tmp_path: Path) -> None:
    directory = tmp_path / (value.replace("/", "_") or "empty")
    directory.mkdir(exist_ok=True)
    script = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['V'], os.getcwd()]))"
    command = build_shell_command(
        [sys.executable, "-c", script, value, "x"], env={"V": value}, cwd=str(directory)
    )
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[value, "x"], value, str(directory)]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("argv", "env", "cwd"),
    [
        ([], None, None),
        ("echo hi", None, None),
        (["a\0b"], None, None),
        (["echo"], {"BAD NAME": "x"}, None),
        (["echo"], {"X": "nul\0"}, None),
        (["echo"], None, ""),
        (["echo"], None, "a\0b"),
    ],
)
def test_build_shell_command_rejects(argv: object, env: object, cwd: object) -> None:
    with pytest.raises(ConfigurationError):
        build_shell_command(argv, env=env, cwd=cwd)  # type: ignore[arg-type]


def test_error_messages() -> None:
    err = not_found_error(["sbatch", "x"], "the cluster (ssh me@h:22)")
    assert err.returncode == 127
    assert "'sbatch' was not found on the cluster" in str(err)
    err = timeout_error(["squeue"], 2.5, "local", "partial", "")
    assert "timed out after 2.5 s" in str(err) and err.stdout == "partial"
    ok = CommandResult(["true"], 0, "", "")
    assert check_result(ok, "local") is ok
    with pytest.raises(CommandError, match="failed on local"):
        check_result(CommandResult(["false"], 1, "", "no"), "local")


# -- ssh config --------------------------------------------------------------------


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(
        """\
Host hpc
    HostName login.example.org
    Port 2222
    User alice
    IdentityFile ~/.ssh/id_hpc
    ProxyJump bob@gateway:2200
    UserKnownHostsFile ~/kh1 /etc/kh2
    IdentitiesOnly yes
    ConnectTimeout 7

Host gateway
    HostName gw.example.org
    ProxyJump outer

Host outer
    HostName outer.example.org

Host loop1
    ProxyJump loop2
Host loop2
    ProxyJump loop1

Host multi
    ProxyJump a.example.org,ssh://carol@[::1]:23

Host aliased
    HostKeyAlias cluster-key
    ProxyCommand ssh -W %h:%p bastion

Host *
    User defaultuser
"""
    )
    return path


def test_resolve_alias(ssh_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    s = resolve_host("hpc", load_ssh_config(str(ssh_config)))
    assert (s.alias, s.hostname, s.port, s.username) == ("hpc", "login.example.org", 2222, "alice")
    assert s.identity_files == ("/home/me/.ssh/id_hpc",)
    assert s.identities_only
    assert s.proxy_jump == (JumpSpec("gateway", "bob", 2200),)
    assert s.user_known_hosts == ("/home/me/kh1", "/etc/kh2")
    assert s.connect_timeout == 7.0
    assert s.address == "alice@login.example.org:2222"


def test_explicit_arguments_win(ssh_config: Path, tmp_path: Path) -> None:
    s = resolve_host(
        "hpc",
        load_ssh_config(str(ssh_config)),
        username="root",
        port=22,
        key_filename=str(tmp_path / "k"),
        known_hosts=str(tmp_path / "kh"),
    )
    assert (s.username, s.port) == ("root", 22)
    assert s.identity_files[0] == str(tmp_path / "k")
    assert s.user_known_hosts == (str(tmp_path / "kh"),)


def test_unknown_host_and_no_config_use_defaults(ssh_config: Path) -> None:
    s = resolve_host("other.example.org", load_ssh_config(str(ssh_config)))
    assert (s.hostname, s.port, s.username) == ("other.example.org", 22, "defaultuser")
    assert s.user_known_hosts[0].endswith("/.ssh/known_hosts")
    assert s.proxy_jump == ()
    none = resolve_host("h", load_ssh_config(None))
    assert none.port == 22 and none.username  # the local user
    missing = resolve_host("h", load_ssh_config("/nonexistent/config"))
    assert missing.hostname == "h"


def test_include_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh" / "conf.d").mkdir(parents=True)
    (tmp_path / ".ssh" / "conf.d" / "a.conf").write_text("Host inc-a\n    HostName a.example.org\n")
    (tmp_path / ".ssh" / "conf.d" / "b.conf").write_text("Port 2201\n")
    nested = tmp_path / "nested config"
    nested.write_text("Host inc-n\n    User nested\n")
    config = tmp_path / "config"
    config.write_text(
        f"""\
Include conf.d/*.conf
Host hpc
    Include "{nested}"
    User alice
Host *
    Port 2222
"""
    )
    parsed = load_ssh_config(str(config))
    a = resolve_host("inc-a", parsed)
    assert (a.hostname, a.port) == ("a.example.org", 2201)
    assert resolve_host("inc-n", parsed).username == "nested"
    hpc = resolve_host("hpc", parsed)  # lines after the Include keep their Host context
    assert (hpc.username, hpc.port) == ("alice", 2201)
    assert resolve_host("other", parsed, username="x").port == 2201


def test_host_key_alias_and_proxy_command(ssh_config: Path) -> None:
    s = resolve_host("aliased", load_ssh_config(str(ssh_config)))
    assert s.host_key_alias == "cluster-key"
    assert s.proxy_command == "ssh -W aliased:22 bastion"


def test_jump_chain_resolves_each_hop_with_its_own_config(ssh_config: Path) -> None:
    config = load_ssh_config(str(ssh_config))
    chain = jump_chain(resolve_host("hpc", config), config)
    assert [(h.hostname, h.port, h.username) for h in chain] == [
        ("outer.example.org", 22, "defaultuser"),
        ("gw.example.org", 2200, "bob"),
    ]
    multi = jump_chain(resolve_host("multi", config), config)
    assert [(h.hostname, h.port, h.username) for h in multi] == [
        ("a.example.org", 22, "defaultuser"),
        ("::1", 23, "carol"),
    ]


def test_jump_chain_loop_is_refused(ssh_config: Path) -> None:
    config = load_ssh_config(str(ssh_config))
    with pytest.raises(ConfigurationError, match="loop"):
        jump_chain(resolve_host("loop1", config), config)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("host", JumpSpec("host")),
        ("u@host", JumpSpec("host", "u")),
        ("u@host:2022", JumpSpec("host", "u", 2022)),
        ("ssh://u@host:2022", JumpSpec("host", "u", 2022)),
        ("[fe80::1]:2022", JumpSpec("fe80::1", None, 2022)),
    ],
)
def test_parse_jump_spec(spec: str, expected: JumpSpec) -> None:
    assert parse_jump_spec(spec) == expected


def test_parse_jump_spec_errors_and_none() -> None:
    with pytest.raises(ConfigurationError):
        parse_jump_spec("u@host:port")
    assert split_proxy_jump("none") == ()
    assert split_proxy_jump(None) == ()


def test_bad_port_in_config(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host bad\n  Port twenty\n")
    with pytest.raises(ConfigurationError, match="Port"):
        resolve_host("bad", load_ssh_config(str(path)))


# -- host keys --------------------------------------------------------------------


def test_fingerprint_matches_openssh() -> None:
    assert fingerprint(ED_KEY) == ED25519_FP
    assert fingerprint(EC_KEY) == ECDSA_FP


def test_host_key_name() -> None:
    assert host_key_name("login.example.org", 22) == "login.example.org"
    assert host_key_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_find_known_keys(tmp_path: Path) -> None:
    hashed = paramiko.HostKeys.hash_host("[hashed.example.org]:2222")
    path = tmp_path / "known_hosts"
    path.write_text(
        f"""\
# comment

garbage line
other.example.org ssh-ed25519 {ED25519}
[127.0.0.1]:2222 ssh-ed25519 {ED25519}
127.0.0.1 ecdsa-sha2-nistp256 {ECDSA}
{hashed} ssh-ed25519 {ED25519}
*.wild.org,!bad.wild.org ssh-ed25519 {ED25519}
@cert-authority *.example.org ssh-ed25519 {ED25519}
@revoked revoked.example.org ssh-ed25519 {ED25519}
unknown.example.org ssh-unknown-type AAAA
"""
    )
    files = (str(path), str(tmp_path / "missing"))
    found = find_known_keys("[127.0.0.1]:2222", files)
    assert [(e.lineno, e.key_type) for e in found] == [(5, "ssh-ed25519")]
    assert found[0].where == f"{path}:5"
    assert [e.lineno for e in find_known_keys("127.0.0.1", files)] == [6]
    assert [e.lineno for e in find_known_keys("[hashed.example.org]:2222", files)] == [7]
    assert [e.lineno for e in find_known_keys("a.wild.org", files)] == [8]
    assert find_known_keys("bad.wild.org", files) == []
    assert find_known_keys("x.example.org", files) == []  # cert-authority ignored
    assert find_known_keys("revoked.example.org", files) == []
    assert find_known_keys("unknown.example.org", files) == []


def _policy(tmp_path: Path, accept: bool) -> HostKeyPolicy:
    kh = str(tmp_path / "dir" / "known_hosts")
    return HostKeyPolicy("root@127.0.0.1:2222", (kh,), kh, accept_new=accept)


def test_unknown_host_is_refused_with_fingerprint(tmp_path: Path) -> None:
    policy = _policy(tmp_path, accept=False)
    with pytest.raises(HostKeyError) as info:
        policy.missing_host_key(paramiko.SSHClient(), "[127.0.0.1]:2222", ED_KEY)
    message = str(info.value)
    for part in ["root@127.0.0.1:2222", "ssh-ed25519", ED25519_FP, "accept_new_host_key=True"]:
        assert part in message
    assert "--accept-new-host-key" in message
    assert not (tmp_path / "dir").exists()


def test_accepted_key_is_appended_and_then_known(tmp_path: Path) -> None:
    policy = _policy(tmp_path, accept=True)
    kh = tmp_path / "dir" / "known_hosts"
    kh.parent.mkdir()
    kh.write_text("other ssh-ed25519 " + ED25519)  # no trailing newline
    policy.missing_host_key(paramiko.SSHClient(), "[127.0.0.1]:2222", ED_KEY)
    assert kh.read_text().splitlines() == [
        f"other ssh-ed25519 {ED25519}",
        f"[127.0.0.1]:2222 ssh-ed25519 {ED25519}",
    ]
    client = paramiko.SSHClient()
    assert len(policy.prime(client, "[127.0.0.1]:2222")) == 1
    assert client.get_host_keys().check("[127.0.0.1]:2222", ED_KEY)


def test_new_known_hosts_file_is_private(tmp_path: Path) -> None:
    _policy(tmp_path, accept=True).missing_host_key(paramiko.SSHClient(), "h", ED_KEY)
    kh = tmp_path / "dir" / "known_hosts"
    assert kh.stat().st_mode & 0o777 == 0o600
    assert kh.parent.stat().st_mode & 0o777 == 0o700


def test_changed_key_names_the_line(tmp_path: Path) -> None:
    policy = _policy(tmp_path, accept=True)
    kh = tmp_path / "dir" / "known_hosts"
    kh.parent.mkdir()
    kh.write_text(f"# x\n[127.0.0.1]:2222 ssh-ed25519 {ED25519}\n")
    other = paramiko.ECDSAKey.generate()
    err = policy.changed_error("[127.0.0.1]:2222", other)
    assert "known_hosts has ssh-ed25519" in str(err)
    same_type = paramiko.PKey.from_type_string(
        "ssh-ed25519", base64.b64decode(ED25519.replace("AIMj", "AIMk"))
    )
    err = policy.changed_error("[127.0.0.1]:2222", same_type)
    message = str(err)
    assert "CHANGED" in message
    assert f"{kh}:2" in message
    assert ED25519_FP in message
    assert "ssh-keygen -R '[127.0.0.1]:2222'" in message
    # missing_host_key never accepts a host that has other keys, even with accept_new
    with pytest.raises(HostKeyError, match="offers"):
        policy.missing_host_key(paramiko.SSHClient(), "[127.0.0.1]:2222", other)


def test_revoked_key_is_refused(tmp_path: Path) -> None:
    policy = _policy(tmp_path, accept=True)
    kh = tmp_path / "dir" / "known_hosts"
    kh.parent.mkdir()
    kh.write_text(f"@revoked * ssh-ed25519 {ED25519}\n")
    with pytest.raises(HostKeyError, match="revoked"):
        policy.missing_host_key(paramiko.SSHClient(), "[127.0.0.1]:2222", ED_KEY)
