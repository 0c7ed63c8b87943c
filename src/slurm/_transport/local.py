"""Run commands and handle files on this machine (when already on the cluster)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

from slurm._transport import trust
from slurm._transport.base import (
    CommandResult,
    Transport,
    check_result,
    not_found_error,
    timeout_error,
    validate_argv,
    validate_env,
)
from slurm.errors import CommandError

__all__ = ["LocalTransport"]

_WHERE = "this machine"


class LocalTransport(Transport):
    """A :class:`~slurm._transport.base.Transport` on this machine: subprocesses, no shell.

    Use it on a login node (or with the local dev cluster), where ``sbatch``
    and friends are on the ``PATH``.

    Example:
        >>> with LocalTransport() as t:
        ...     t.run(["echo", "hi"]).stdout
        'hi\\n'
    """

    kind = "local"
    description = "local"

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = True,
        retry: bool = True,
    ) -> CommandResult:
        """Run ``argv`` as a subprocess; see :meth:`Transport.run`.

        ``retry`` has no effect locally. On timeout the command's whole process
        group is killed.
        """
        args = validate_argv(argv)
        full_env = None
        if env:
            full_env = {**os.environ, **validate_env(env)}
        if cwd is not None and not os.path.isdir(cwd):
            raise CommandError(
                f"working directory {cwd!r} does not exist on {_WHERE}; create it first",
                argv=args,
            )
        try:
            proc = subprocess.Popen(  # noqa: S603 (argv checked by validate_argv, never a shell)
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                # Own process group, so a timeout can stop grandchildren that
                # still hold our pipes open.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise not_found_error(args, _WHERE, stderr=str(exc)) from exc
        except PermissionError as exc:
            raise CommandError(
                f"command {args[0]!r} cannot be executed on {_WHERE}: {exc}; "
                "check that it is an executable program",
                argv=args,
            ) from exc
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            out, err = proc.communicate()
            raise timeout_error(args, timeout or 0.0, _WHERE, _decode(out), _decode(err)) from exc
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        result = CommandResult(args, proc.returncode, _decode(out), _decode(err))
        return check_result(result, _WHERE) if check else result

    def read_bytes(self, path: str) -> bytes:
        """Return the content of the file at ``path`` (``FileNotFoundError`` if missing)."""
        with open(path, "rb") as f:
            return f.read()

    def read_range(self, path: str, offset: int, limit: int) -> tuple[bytes, int]:
        """At most ``limit`` bytes from ``offset`` (negative: from the end), and the size."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size + offset) if offset < 0 else offset)
            return f.read(limit), size

    def ownership_report(self, paths: Sequence[str], *, files: str = "") -> str:
        """:meth:`Transport.ownership_report`, from ``os`` calls: no shell, no ``stat`` runs."""
        return trust.local_report(paths, files=files)

    def write_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Write ``data`` atomically (temp file in the same dir, chmod, rename).

        Atomic, not synced to disk, as over SSH: readers (the job, on any node) see
        the old file or the whole new one; only a crash of the machine could lose it,
        and a job's files are written again when it is resubmitted. An fsync per file
        cost a submission more than its ``sbatch`` on a busy disk.
        """

        def fill(f: BinaryIO) -> None:
            f.write(data)

        _atomic_write(path, mode, fill)

    def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        """Create ``path`` and its missing parents, each with ``mode``; fine if it exists."""
        missing: list[str] = []
        current = os.path.abspath(path)
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists."""
        return os.path.exists(path)

    def list_dir(self, path: str) -> list[str]:
        """Return the sorted names in ``path``; ``[]`` if it does not exist."""
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    def remove_files(self, paths: Sequence[str]) -> bool:
        """Remove these files (one missing already is fine)."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return True

    def expand_path(self, path: str) -> str:
        """Expand ``~`` and make ``path`` absolute against the home directory."""
        expanded = os.path.expanduser(path)
        if not os.path.isabs(expanded):
            expanded = os.path.join(os.path.expanduser("~"), expanded)
        return expanded

    def upload(self, local_path: str, remote_path: str, *, mode: int = 0o600) -> None:
        """Copy ``local_path`` to ``remote_path`` atomically with ``mode``."""
        with open(local_path, "rb") as src:

            def fill(f: BinaryIO) -> None:
                shutil.copyfileobj(src, f)

            _atomic_write(remote_path, mode, fill)

    def close(self) -> None:
        """Nothing to release locally."""


#: Names for temporary files, unique in this process; with the process id and a token
#: drawn once, across processes too (no random name drawn a write, as mkstemp does).
_TMP_TOKEN = os.urandom(4).hex()
_tmp_numbers = itertools.count()


def _atomic_write(path: str, mode: int, fill: Callable[[BinaryIO], None]) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = f"{directory}/.{name}.{os.getpid()}-{_TMP_TOKEN}-{next(_tmp_numbers)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # left by a process of the same id and token: the next
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
