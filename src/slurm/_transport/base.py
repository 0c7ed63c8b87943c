"""The transport boundary: *where* a command runs, never *what* it is.

A :class:`Transport` runs an argv list (without a shell) and reads and writes
files on the machine that has the Slurm client: this machine
(:class:`~slurm._transport.local.LocalTransport`) or a login node over SSH
(:class:`~slurm._transport.ssh.SSHTransport`). Slurm argv builders and output
parsers live above this layer and work unchanged on either backend.

The module also holds the pure helpers both backends share: building the
remote command line for an argv with ``env``/``cwd`` safely, and the wording of
the errors for a failed, timed-out or missing command.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from slurm.errors import BackendTimeout, CommandError, ConfigurationError

__all__ = [
    "NOT_FOUND_EXIT_CODE",
    "CommandResult",
    "Transport",
    "build_shell_command",
    "check_result",
    "not_found_error",
    "timeout_error",
    "validate_argv",
    "validate_env",
]

#: Exit code a POSIX shell (and ``env``) gives when the program does not exist.
NOT_FOUND_EXIT_CODE = 127

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind.

    Attributes:
        argv: The command as given to :meth:`Transport.run`.
        returncode: Its exit code.
        stdout: Its standard output, decoded as UTF-8 (undecodable bytes replaced).
        stderr: Its standard error, decoded the same way.
    """

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def validate_argv(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` as a list after checking it can be run at all.

    Raises:
        ConfigurationError: ``argv`` is empty, is a bare string, or holds a
            value that is not a ``str`` or contains a NUL byte (no OS can pass
            one in an argument).
    """
    if isinstance(argv, str):
        raise ConfigurationError(
            f"argv must be a list of arguments, not the string {argv!r}; "
            "split it (e.g. with shlex.split) so no shell is needed"
        )
    args = list(argv)
    if not args:
        raise ConfigurationError("argv is empty: there is no command to run")
    for arg in args:
        if not isinstance(arg, str):
            raise ConfigurationError(f"every argument must be a str, got {arg!r} in {args!r}")
        if "\0" in arg:
            raise ConfigurationError(
                f"argument {arg!r} contains a NUL byte, which cannot be passed"
            )
    return args


def validate_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return ``env`` as a dict after checking names and values.

    Raises:
        ConfigurationError: A name is not a valid environment variable name
            (letters, digits, ``_``, not starting with a digit) or a value is
            not a ``str`` or contains a NUL byte.
    """
    checked: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ConfigurationError(
                f"invalid environment variable name {name!r}: use letters, digits and "
                "underscores, not starting with a digit"
            )
        if not isinstance(value, str) or "\0" in value:
            raise ConfigurationError(
                f"environment variable {name} must be a str without NUL bytes, got {value!r}"
            )
        checked[name] = value
    return checked


def build_shell_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """Render ``argv`` as one command line for a remote POSIX shell.

    Every piece is quoted with :func:`shlex.quote`, so spaces, quotes, ``;``,
    ``$`` and newlines in any value stay literal. ``env`` becomes
    ``env -- K=V ... argv`` (added to the remote environment); ``cwd`` becomes
    ``cd -- DIR && ...``. ``cwd`` is used as given: ``~`` is not expanded
    (use :meth:`Transport.expand_path` first).

    Example:
        >>> build_shell_command(["echo", "a b"], env={"X": "1; rm"}, cwd="/tmp/d i r")
        "cd -- '/tmp/d i r' && env -- 'X=1; rm' echo 'a b'"

    Raises:
        ConfigurationError: See :func:`validate_argv` and :func:`validate_env`.
    """
    args = validate_argv(argv)
    command = shlex.join(args)
    if env:
        assignments = [f"{k}={v}" for k, v in validate_env(env).items()]
        command = shlex.join(["env", "--", *assignments]) + " " + command
    if cwd is not None:
        if not cwd or "\0" in cwd:
            raise ConfigurationError(f"invalid working directory {cwd!r}")
        command = f"cd -- {shlex.quote(cwd)} && {command}"
    return command


def not_found_error(
    argv: Sequence[str], where: str, stdout: str = "", stderr: str = ""
) -> CommandError:
    """The error for a program that does not exist on the target machine."""
    program = argv[0] if argv else "?"
    return CommandError(
        f"command {program!r} was not found on {where}. Check that it is installed there "
        "and on the PATH of a non-interactive shell (e.g. load its module in ~/.bashrc, "
        "or pass the full path to the program)",
        argv=argv,
        returncode=NOT_FOUND_EXIT_CODE,
        stdout=stdout,
        stderr=stderr,
    )


def timeout_error(
    argv: Sequence[str], timeout: float, where: str, stdout: str = "", stderr: str = ""
) -> BackendTimeout:
    """The error for a command that ran longer than its ``timeout``."""
    return BackendTimeout(
        f"command timed out after {timeout:g} s on {where} and was stopped; "
        "raise the timeout if it is expected to be slow, or check whether the cluster "
        "is overloaded",
        argv=argv,
        returncode=None,
        stdout=stdout,
        stderr=stderr,
    )


def check_result(result: CommandResult, where: str) -> CommandResult:
    """Return ``result`` if it succeeded, else raise :class:`CommandError`."""
    if result.returncode != 0:
        raise CommandError(
            f"command failed on {where}",
            argv=result.argv,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
        )
    return result


class Transport(ABC):
    """Runs commands and moves files on the machine that has the Slurm client.

    Implementations: :class:`~slurm._transport.local.LocalTransport` and
    :class:`~slurm._transport.ssh.SSHTransport`. A transport is a context
    manager; leaving the ``with`` block calls :meth:`close`. Every method is
    safe to call from several threads at once.

    Paths are used as given (no ``~`` expansion; relative paths resolve against
    the process's working directory locally and the home directory over SSH):
    pass absolute paths, obtained once with :meth:`expand_path`.

    Example:
        >>> with LocalTransport() as t:  # doctest: +SKIP
        ...     t.run(["squeue", "--me"]).stdout
    """

    #: ``"local"`` or ``"ssh"``.
    kind: str
    #: Human-readable name of the target, e.g. ``"local"`` or ``"ssh root@host:22"``.
    description: str

    @abstractmethod
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
        """Run ``argv`` without a shell and wait for it.

        Args:
            argv: The program and its arguments; never interpreted by a shell.
            input: Bytes for the command's standard input (it gets EOF
                immediately when ``None``).
            timeout: Seconds before the command is stopped; ``None`` waits forever.
            env: Variables added to (or replacing in) the target's environment.
            cwd: Directory to run in (must exist; ``~`` is not expanded).
            check: Raise :class:`CommandError` on a non-zero exit code.
            retry: Over SSH, when the connection dies after the command was
                sent, reconnect and run it again (right for idempotent commands
                such as ``squeue``). With ``False``, raise
                :class:`ConnectionLostError` and let the caller decide (e.g.
                ``sbatch``). A connection found dead *before* sending is always
                re-established transparently.

        Returns:
            The :class:`CommandResult`.

        Raises:
            CommandError: Non-zero exit with ``check=True``; a timeout (the
                message says it timed out; ``returncode`` is ``None``); the
                program does not exist (exit 127 over SSH; raised even with
                ``check=False``, ``returncode`` 127); locally, ``cwd`` does
                not exist.
            ConnectionLostError: See ``retry``.
            TransportError: The target cannot be reached.
            ConfigurationError: Bad ``argv`` or ``env`` (e.g. NUL bytes).
        """

    def ownership_report(self, paths: Sequence[str], *, files: str = "") -> str:
        """Who owns ``paths``, their parents and their ``files`` (a glob): the output of
        :func:`slurm._transport.trust.build_script` (``create=False``), for its parsers.

        One command on the target; this machine's transport answers without one.
        """
        from slurm._transport import trust

        script = trust.build_script(paths, create=False, files=files)
        return self.run(["sh", "-c", script], check=False).stdout

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """Return the content of the file at ``path``.

        Raises:
            FileNotFoundError: The file does not exist.
        """

    def read_range(self, path: str, offset: int, limit: int) -> tuple[bytes, int]:
        """At most ``limit`` bytes of ``path`` from ``offset``, and the file's size now.

        A negative ``offset`` counts from the end (``-65536``: the last 64 KiB).
        Only what is asked for is read (an error tail, a followed log), not the
        whole file; this default reads it all and slices, the transports do not.

        Raises:
            FileNotFoundError: The file does not exist.
        """
        data = self.read_bytes(path)
        start = max(0, len(data) + offset) if offset < 0 else offset
        return data[start : start + limit], len(data)

    def read_text(self, path: str) -> str:
        """Return the UTF-8 content of the file at ``path``.

        Raises:
            FileNotFoundError: The file does not exist.
            UnicodeDecodeError: The content is not UTF-8.
        """
        return self.read_bytes(path).decode("utf-8")

    @abstractmethod
    def write_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` atomically with permissions ``mode``.

        The data goes to a temporary name in the same directory, gets its
        mode, then is renamed over ``path``: a reader sees the old file or the
        whole new one, never a half-written one. The directory must exist.
        """

    def write_text(self, path: str, text: str, *, mode: int = 0o600) -> None:
        """Write ``text`` as UTF-8 to ``path`` atomically (see :meth:`write_bytes`)."""
        self.write_bytes(path, text.encode("utf-8"), mode=mode)

    @abstractmethod
    def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        """Create directory ``path`` and missing parents with ``mode``; fine if it exists.

        ``mode`` applies to each directory created here (minus the umask);
        existing directories are left alone.
        """

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists (file or directory)."""

    @abstractmethod
    def list_dir(self, path: str) -> list[str]:
        """Return the sorted entry names in directory ``path``; ``[]`` if it is missing."""

    def remove_files(self, paths: Sequence[str]) -> bool:
        """Remove these files where that is cheap; return whether it was done.

        Here it is not done: over SSH a round trip a file (or a command) costs more
        than listing the names again saves. The local transport removes them.
        """
        del paths
        return False

    @abstractmethod
    def expand_path(self, path: str) -> str:
        """Return ``path`` made absolute on the target.

        ``~`` and ``~/x`` expand to the target user's home (the remote home
        over SSH); a relative path is taken relative to that home; an absolute
        path is returned unchanged.
        """

    @abstractmethod
    def upload(self, local_path: str, remote_path: str, *, mode: int = 0o600) -> None:
        """Copy the local file ``local_path`` to ``remote_path`` atomically with ``mode``.

        Raises:
            FileNotFoundError: ``local_path`` does not exist.
        """

    def connect_tcp(self, host: str, port: int, *, timeout: float = 15.0) -> Any:
        """A stream to ``host:port`` as seen from the cluster's side (a compute node's
        port, for a debugger): here a socket; over SSH a channel of the connection.

        Raises:
            OSError: nothing listens there, or the host cannot be reached.
        """
        import socket

        return socket.create_connection((host, port), timeout=timeout)

    @abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice; an SSH transport reconnects if used again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
