"""Every error the SDK raises, in one tree.

::

    SlurmError                      base of everything raised on purpose
    ├── ConfigurationError          bad input, caught before anything is submitted
    │   ├── InvalidOptionError      an sbatch option name or value we cannot use
    │   ├── NotSubmittableError     a task called outside `with cluster:` / a workflow
    │   ├── PackagingError          the task's code could not be prepared (interpreter,
    │   │                           shipped source, image): nothing was submitted
    │   └── SlurmfileError          a Slurmfile cannot be used
    │       ├── SlurmfileNotFoundError            none where it was looked for
    │       ├── SlurmfileInvalidError             unreadable TOML, an unknown key
    │       └── SlurmfileEnvironmentNotFoundError the environment asked for is not in it
    ├── BackendError                where commands run could not do what was asked
    │   ├── CommandError            an external command (sbatch, squeue, ...) failed
    │   │   ├── SubmissionError     sbatch refused or failed to submit a job
    │   │   └── BackendTimeout      a command ran past its timeout
    │   └── TransportError          the local or SSH transport could not do its job
    │       ├── HostKeyError        an SSH host key is unknown or has changed
    │       ├── AuthenticationError the SSH server refused the login (keys, password, code)
    │       └── ConnectionLostError the connection dropped while a command may have run
    ├── JobError                    something about one job (carries ``job_id``)
    │   ├── TaskFailedError         the task raised; its own type could not be rebuilt
    │   ├── JobTerminatedError      the job ended without a result (state, exit code, stderr)
    │   ├── ResultError             the result exists but cannot be read / unpickled
    │   ├── DependencyError         an afterok dependency already failed: the call could never run
    │   └── JobTimeoutError         ``wait(timeout=...)`` ran out (also a ``TimeoutError``)
    ├── WorkflowError               a workflow cannot continue (e.g. its journal diverged)
    └── DevclusterError             the local dev cluster could not be brought up or down

The earlier slurm-sdk's names are here too: ``BackendError``, ``BackendTimeout``,
``PackagingError`` and the ``Slurmfile*`` errors are classes of the tree above;
``BackendCommandError`` is :class:`CommandError` and ``DownloadError`` is
:class:`ResultError` (the same classes under their earlier names).

Errors from backends are mapped to the most specific class here with
``raise ... from`` so the original cause stays attached.
"""

from __future__ import annotations

from collections.abc import Sequence

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AuthenticationError",
    "BackendCommandError",
    "BackendError",
    "BackendTimeout",
    "CommandError",
    "ConfigurationError",
    "ConnectionLostError",
    "DependencyError",
    "DevclusterError",
    "DownloadError",
    "HostKeyError",
    "InvalidOptionError",
    "JobError",
    "JobTerminatedError",
    "JobTimeoutError",
    "NotSubmittableError",
    "PackagingError",
    "ResultError",
    "SlurmError",
    "SlurmfileEnvironmentNotFoundError",
    "SlurmfileError",
    "SlurmfileInvalidError",
    "SlurmfileNotFoundError",
    "SubmissionError",
    "TaskFailedError",
    "TransportError",
    "WorkflowError",
]


class SlurmError(Exception):
    """Base class of every error the SDK raises on purpose."""


class ConfigurationError(SlurmError, ValueError):
    """Bad input: raised before anything is submitted, nothing is lost."""


class InvalidOptionError(ConfigurationError):
    """An sbatch option name (or value) that cannot be used."""


class NotSubmittableError(ConfigurationError):
    """A task was called where no cluster is active."""


class PackagingError(ConfigurationError):
    """The task's code could not be prepared for the cluster (its interpreter, the
    source shipped with it, its container image); nothing was submitted."""


class SlurmfileError(ConfigurationError):
    """A Slurmfile cannot be used."""


class SlurmfileNotFoundError(SlurmfileError):
    """No Slurmfile where it was looked for (the path given, ``$SLURMFILE``, the
    working directory and its parents, the user's own)."""


class SlurmfileInvalidError(SlurmfileError):
    """The Slurmfile is unreadable, not TOML, or has a setting that does not exist."""


class SlurmfileEnvironmentNotFoundError(SlurmfileError):
    """The environment asked for (``env=``, ``$SLURM_ENV``) is not in the Slurmfile."""


class BackendError(SlurmError):
    """Where commands run (this machine or the SSH login node) could not do what was asked."""


class CommandError(BackendError):
    """An external command failed; carries everything needed to see why."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        details = [message]
        if self.argv:
            details.append(f"command: {' '.join(self.argv)}")
        if returncode is not None:
            details.append(f"exit code: {returncode}")
        if stderr.strip():
            details.append(f"stderr: {stderr.strip()[-2000:]}")
        super().__init__("\n".join(details))


class SubmissionError(CommandError):
    """sbatch refused or failed to submit a job.

    ``refused`` is true when sbatch answered with a refusal (the job surely
    does not exist), false when nobody can tell whether it was submitted.
    """

    def __init__(self, message: str, *, refused: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.refused = refused


class BackendTimeout(CommandError):
    """A command ran longer than its timeout and was stopped (``returncode`` is None).

    Unlike the earlier SDK's, not a ``TimeoutError``: that is an ``OSError``, which
    the SDK reads as "a file could not be written or read", and a command that
    may have run (an sbatch past its timeout) must never be taken for that.
    """


#: The earlier slurm-sdk's name of :class:`CommandError`.
BackendCommandError = CommandError


class TransportError(BackendError):
    """The transport (local process or SSH connection) failed."""


class HostKeyError(TransportError):
    """An SSH host key is unknown (and not accepted) or has changed."""


class AuthenticationError(TransportError):
    """The SSH server was reached but refused the login (keys, password or one-time code)."""


class ConnectionLostError(TransportError):
    """The connection dropped after a command was sent: it may or may not have run."""


class JobError(SlurmError):
    """An error about one job."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message)


class TaskFailedError(JobError):
    """The task raised an exception whose own type could not be rebuilt here."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        type_name: str = "",
        remote_message: str = "",
        traceback_text: str = "",
        node: str | None = None,
    ) -> None:
        self.type_name = type_name
        self.remote_message = remote_message
        self.traceback_text = traceback_text
        self.node = node
        super().__init__(message, job_id=job_id)


class JobTerminatedError(JobError):
    """The job ended without writing a result (time limit, cancel, OOM, ...)."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        state: str = "",
        exit_code: str | None = None,
        stderr_tail: str = "",
    ) -> None:
        self.state = state
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        super().__init__(message, job_id=job_id)


class ResultError(JobError):
    """The job's result exists but cannot be read or unpickled."""


#: The earlier slurm-sdk's name of :class:`ResultError`.
DownloadError = ResultError


class DependencyError(JobError):
    """A job this call depends on (afterok) already failed: it could never run."""


class JobTimeoutError(JobError, TimeoutError):
    """A wait with a timeout ran out before the job finished."""


class WorkflowError(SlurmError):
    """A workflow cannot continue."""


class DevclusterError(SlurmError):
    """The dev cluster could not be brought up, checked or taken down."""
