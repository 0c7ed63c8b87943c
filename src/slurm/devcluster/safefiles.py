"""Files of the dev cluster written without following anyone's symlinks.

The dev cluster runs as root (or the user) and writes configs, keys, pid files
and a lock into its state directory. A symlink planted there must not turn one
of those writes into a write elsewhere, so:

- :func:`write_file` writes a fresh temporary file (``mkstemp``: ``O_CREAT |
  O_EXCL``, which never follows a symlink), sets its mode and owner on the open
  descriptor, and renames it over the target (a rename replaces a symlink, it
  does not follow it);
- :func:`open_lock` opens the lock file with ``O_NOFOLLOW``;
- :func:`check_state_dir` refuses a state directory that another user owns or
  may write, or that sits under a parent others can write without the sticky
  bit (the rules of :mod:`slurm._transport.trust`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import tempfile
from pathlib import Path
from typing import IO

from slurm._transport.trust import judge
from slurm.errors import DevclusterError

__all__ = ["check_state_dir", "open_lock", "write_file"]


def write_file(path: Path, text: str, mode: int = 0o644, owner: str | None = None) -> None:
    """Replace ``path`` atomically with ``text`` (mode ``mode``, owned by ``owner``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.fchown(fd, entry.pw_uid, entry.pw_gid)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_lock(path: Path) -> IO[str]:
    """The lock file at ``path``, opened without following a symlink.

    Raises:
        DevclusterError: ``path`` is a symlink.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DevclusterError(
            f"Cannot open the dev cluster's lock {path} ({exc}); if it is a symlink, someone "
            "else may have planted it: remove it and run the command again."
        ) from exc
    return os.fdopen(fd, "w")


def check_state_dir(path: Path) -> None:
    """Refuse a state directory someone else could change (it holds keys and configs).

    Raises:
        DevclusterError: the directory or a parent fails the rules of :mod:`slurm._transport.trust`.
    """
    real = path.resolve()
    chain = []
    for directory in (real, *real.parents):
        info = directory.stat()
        chain.append((info.st_uid, info.st_mode & 0o7777, str(directory)))
    problem = judge(str(path), str(real), chain, os.getuid())
    if problem is not None:
        raise DevclusterError(
            f"Refusing the dev cluster's state directory: {problem.detail}. Fix: {problem.fix}."
        )
