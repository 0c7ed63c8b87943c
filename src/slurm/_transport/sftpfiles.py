"""File operations over one SFTP session, with the semantics of :class:`Transport`.

Plain functions taking a :class:`paramiko.SFTPClient`; the SSH transport runs
them under its lock and reconnects when the connection dies. Writes are atomic
(temporary name in the same directory, chmod before any data, POSIX rename).
"""

from __future__ import annotations

import contextlib
import posixpath
import stat
import uuid
from collections.abc import Callable
from typing import BinaryIO

import paramiko

__all__ = [
    "atomic_write",
    "exists",
    "is_file_error",
    "list_dir",
    "makedirs",
    "read_bytes",
    "upload",
    "write_bytes",
]

_UPLOAD_CHUNK = 1 << 20


def is_file_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an SFTP status about a file (ENOENT, EACCES, ...)."""
    return (
        isinstance(exc, OSError)
        and exc.errno is not None
        and not isinstance(exc, ConnectionError | TimeoutError)
    )


def read_bytes(sftp: paramiko.SFTPClient, path: str) -> bytes:
    """Return the content of ``path`` (``FileNotFoundError`` if missing)."""
    with sftp.open(path, "rb") as f:
        f.prefetch()
        return f.read()


def read_range(sftp: paramiko.SFTPClient, path: str, offset: int, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of ``path`` from ``offset`` (negative: from the end), and
    its size; only those bytes cross the connection."""
    with sftp.open(path, "rb") as f:
        size = f.stat().st_size or 0
        f.seek(max(0, size + offset) if offset < 0 else offset)
        return f.read(limit), size


def atomic_write(
    sftp: paramiko.SFTPClient, path: str, mode: int, fill: Callable[[BinaryIO], None]
) -> None:
    """Create ``path`` with ``mode`` from what ``fill`` writes, atomically.

    The data goes to ``.NAME.RANDOM.tmp`` in the same directory (created
    exclusively, chmod-ed before any byte is written), which is then renamed
    over ``path`` with ``posix-rename@openssh.com``. On any error the
    temporary file is removed (if the connection still allows it).
    """
    directory, name = posixpath.split(path)
    tmp = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with sftp.open(tmp, "wbx") as f:
            sftp.chmod(tmp, mode)
            f.set_pipelined(True)
            fill(f)  # type: ignore[arg-type]  # SFTPFile is file-like, not a BinaryIO
        sftp.posix_rename(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            sftp.remove(tmp)
        raise


def write_bytes(sftp: paramiko.SFTPClient, path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``."""

    def fill(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(sftp, path, mode, fill)


def upload(sftp: paramiko.SFTPClient, local_path: str, remote_path: str, mode: int) -> None:
    """Copy the local file ``local_path`` to ``remote_path`` atomically with ``mode``."""
    with open(local_path, "rb") as src:

        def fill(f: BinaryIO) -> None:
            while chunk := src.read(_UPLOAD_CHUNK):
                f.write(chunk)

        atomic_write(sftp, remote_path, mode, fill)


def _is_dir(st: paramiko.SFTPAttributes) -> bool:
    return st.st_mode is not None and stat.S_ISDIR(st.st_mode)


def makedirs(sftp: paramiko.SFTPClient, path: str, mode: int) -> None:
    """Create ``path`` and each missing parent with ``mode``; fine if it exists."""
    missing: list[str] = []
    current = path.rstrip("/") or "/"
    while current:
        try:
            st = sftp.stat(current)
        except FileNotFoundError:
            missing.append(current)
            parent = posixpath.dirname(current)
            if parent == current:
                break
            current = parent
            continue
        if not _is_dir(st):
            raise FileExistsError(17, "exists and is not a directory", current)
        break
    for directory in reversed(missing):
        try:
            sftp.mkdir(directory, mode)
        except OSError:
            if not _is_dir(sftp.stat(directory)):  # lost a race with another creator?
                raise


def exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    """Whether ``path`` exists."""
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def list_dir(sftp: paramiko.SFTPClient, path: str) -> list[str]:
    """Sorted names in directory ``path``; ``[]`` if it is missing."""
    try:
        return sorted(sftp.listdir(path))
    except FileNotFoundError:
        return []
