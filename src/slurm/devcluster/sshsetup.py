"""SSH access to the dev cluster: keys, known_hosts, and the user's ``~/.ssh/config``.

The sshd's host key and a client key live in the state directory. The user's
``~/.ssh/config`` gets a managed block (an ``Include`` of our config for OpenSSH,
plus the ``Host`` block itself because paramiko's SSHConfig ignores ``Include``)
and ``~/.ssh/known_hosts`` gets the host key, so ``ssh slurm-devcluster`` and an
SDK reading ``~/.ssh/config`` both connect with strict host key checking.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import pwd
from collections.abc import Sequence
from pathlib import Path

from slurm.devcluster.proc import DevclusterError, run
from slurm.devcluster.render import render_known_hosts, render_ssh_client_config
from slurm.devcluster.safefiles import open_lock, write_file
from slurm.devcluster.settings import ENV_STATE_DIR, SSH_ALIAS, Settings

__all__ = [
    "BLOCK_BEGIN",
    "BLOCK_END",
    "block_markers",
    "ensure_keys",
    "install_user_ssh_config",
    "merge_known_hosts",
    "merge_user_config",
    "strict_modes_problem",
    "write_ssh_files",
]


def block_markers(alias: str) -> tuple[str, str]:
    """The lines around the managed block of ``alias`` in ``~/.ssh/config``."""
    return f"# >>> {alias} (managed by `slurm devcluster up`) >>>", f"# <<< {alias} <<<"


BLOCK_BEGIN, BLOCK_END = block_markers(SSH_ALIAS)


def _keygen(path: Path, comment: str) -> None:
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return
    path.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)


def ensure_keys(s: Settings) -> None:
    """Create the host key and the client key once; authorize the client key."""
    s.ssh_dir.mkdir(parents=True, exist_ok=True)
    s.ssh_dir.chmod(0o700)
    _keygen(s.ssh_host_key, f"{SSH_ALIAS}-host")
    _keygen(s.ssh_client_key, f"{s.user}@{SSH_ALIAS}")
    public = s.ssh_client_key.with_name(s.ssh_client_key.name + ".pub").read_text()
    _write_if_changed(s.ssh_authorized_keys, public, 0o600)
    _check_strict_modes(s)


def strict_modes_problem(chain: Sequence[tuple[str, int, int]], uid: int, home: str) -> str | None:
    """What sshd's ``StrictModes yes`` refuses about an authorized keys file, or None.

    ``chain`` is (path, owner uid, mode) of the file (its real path), then of each
    directory above it. sshd accepts each only if root or the user owns it and
    neither group nor others may write it (the sticky bit does not help), and
    stops after the user's home directory (else at ``/``).
    """
    for index, (path, owner, mode) in enumerate(chain):
        if owner not in (0, uid) or mode & 0o022:
            what = "file" if index == 0 else "directory"
            return f"the {what} {path} (owner uid {owner}, mode {mode & 0o7777:04o})"
        if index and path == home:
            break
    return None


def _check_strict_modes(s: Settings) -> None:
    """Refuse, before sshd does at every login, key files sshd's StrictModes rejects."""
    real = s.ssh_authorized_keys.resolve()
    chain = []
    for path in (real, *real.parents):
        info = path.stat()
        chain.append((str(path), info.st_uid, info.st_mode))
    user = pwd.getpwnam(s.user)
    problem = strict_modes_problem(chain, user.pw_uid, os.path.realpath(user.pw_dir))
    if problem is not None:
        raise DevclusterError(
            f"The dev cluster's sshd runs with StrictModes yes and would refuse every login: "
            f"{problem} must be owned by {s.user} or root and not writable by group or others "
            f"(the sticky bit of /tmp or /var/tmp is not enough). Choose a state directory "
            f"(--state-dir or ${ENV_STATE_DIR}) whose parents up to your home only you or root "
            f"can write, such as the default ~/.local/state/slurm-sdk/devcluster."
        )


def host_public_key(s: Settings) -> str:
    return s.ssh_host_key.with_name(s.ssh_host_key.name + ".pub").read_text().strip()


def _write_if_changed(path: Path, text: str, mode: int) -> bool:
    try:
        if not path.is_symlink() and path.read_text() == text:
            return False
    except OSError:
        pass
    write_file(path, text, mode)
    return True


def _host_matches(field: str, names: set[str]) -> bool:
    if field.startswith("|1|"):  # hashed entry: |1|salt|HMAC-SHA1(salt, name)
        try:
            _, _, salt_b64, digest_b64 = field.split("|")
            salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        except ValueError:
            return False
        return any(
            hmac.compare_digest(hmac.new(salt, n.encode(), hashlib.sha1).digest(), digest)
            for n in names
        )
    return any(part in names for part in field.split(","))


def merge_known_hosts(existing: str, entries: str) -> str:
    """``existing`` without any line for the hosts of ``entries``, then ``entries``."""
    names = {line.split()[0] for line in entries.splitlines() if line.strip()}
    kept = [
        line
        for line in existing.splitlines()
        if not (line.strip() and not line.startswith("#") and _host_matches(line.split()[0], names))
    ]
    body = "\n".join(kept)
    return (body + "\n" if body else "") + entries


def merge_user_config(
    existing: str, include_path: Path, host_block: str, alias: str = SSH_ALIAS
) -> str:
    """``existing`` with the managed block of ``alias`` (replaced if present) at the very
    top; the blocks of other aliases (other dev clusters) stay."""
    begin, end_marker = block_markers(alias)
    lines = existing.splitlines()
    if begin in lines and end_marker in lines[lines.index(begin) :]:
        start = lines.index(begin)
        end = lines.index(end_marker, start)
        lines = lines[:start] + lines[end + 1 :]
    host_lines = [line for line in host_block.splitlines() if not line.startswith("#")]
    block = [begin, f"Include {include_path}", *host_lines, "Host *", end_marker]
    rest = "\n".join(lines).strip("\n")
    return "\n".join(block) + "\n" + (("\n" + rest + "\n") if rest else "")


def write_ssh_files(s: Settings) -> bool:
    """Client config and known_hosts in the state directory; True if anything changed."""
    changed = _write_if_changed(s.ssh_client_config, render_ssh_client_config(s), 0o600)
    known = render_known_hosts(s, host_public_key(s))
    return _write_if_changed(s.ssh_known_hosts, known, 0o600) or changed


def install_user_ssh_config(s: Settings) -> bool:
    """Idempotently add this cluster's block (its alias) to ``~/.ssh/config`` and its host
    key to ``known_hosts``; one ``up`` at a time edits them (clusters side by side)."""
    ssh_home = s.home / ".ssh"
    if not ssh_home.is_dir():
        ssh_home.mkdir(mode=0o700, parents=True)
    user_config = ssh_home / "config"
    user_known = ssh_home / "known_hosts"
    with open_lock(ssh_home / ".slurm-devcluster.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old_config = user_config.read_text() if user_config.exists() else ""
        old_known = user_known.read_text() if user_known.exists() else ""
        new_config = merge_user_config(
            old_config, s.ssh_client_config, render_ssh_client_config(s), s.ssh_alias
        )
        new_known = merge_known_hosts(old_known, render_known_hosts(s, host_public_key(s)))
        changed = _write_if_changed(user_config, new_config, 0o600)
        return _write_if_changed(user_known, new_known, 0o644) or changed
