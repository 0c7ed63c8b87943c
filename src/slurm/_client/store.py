"""``JobStore``: where a cluster's jobs live: job directories, their names, the index.

Under the job base directory (default ``~/.slurm-sdk/jobs``)::

    BASE/NAME-YYYYmmdd-HHMMSS-XXXXXX/   one directory per submission (see slurm._wire.layout)
    BASE/.index/JOB_ID                  the job's directory, one line
    BASE/.done/SESSION/JOB_ID           dropped by the runner when the job ends

The index lets ``Cluster.get_job`` and ``slurm jobs`` find any job submitted
through the SDK, also after Slurm forgot it. Each ``Cluster`` object has its
own done-marker directory (``SESSION``), so one listing finds the markers of
exactly the jobs it watches.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import posixpath
import re
import secrets
import socket

from slurm._transport import trust
from slurm._transport.base import Transport
from slurm.errors import ConfigurationError, ResultError, SlurmError

__all__ = ["DEFAULT_JOB_BASE_DIR", "JobStore", "is_job_id", "parse_job_dir"]

DEFAULT_JOB_BASE_DIR = "~/.slurm-sdk/jobs"
_ID_RE = re.compile(r"^[0-9]+(?:_[0-9]+)?$")  # ASCII only: "٣" matches \d too
# NAME-YYYYmmdd-HHMMSS-HEX, as new_job_dir makes them.
_DIR_RE = re.compile(r"^(?P<name>.*)-(?P<stamp>\d{8}-\d{6})-[0-9a-f]+$")


def is_job_id(text: str) -> bool:
    """``123`` or ``123_4`` (an array element)."""
    return bool(_ID_RE.match(text))


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` is a plain absolute path strictly below ``root`` (no ``..``)."""
    return (
        path.startswith(root + "/")
        and posixpath.normpath(path) == path
        and not any(c in path for c in "\n\r\x00")
    )


def _id_order(job_id: str) -> tuple[int, int]:
    base, _, index = job_id.partition("_")
    return int(base), int(index) if index else -1


def _safe_name(name: str) -> str:
    """A task's name as job directories start with it."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "job"


def parse_job_dir(job_dir: str) -> tuple[str, _dt.datetime | None]:
    """The task name and submission time encoded in a job directory's name.

    Example::

        >>> parse_job_dir("/home/u/jobs/add-20240501-101500-a1b2c3")
        ('add', datetime.datetime(2024, 5, 1, 10, 15))
    """
    base = job_dir.rstrip("/").rsplit("/", 1)[-1]
    match = _DIR_RE.match(base)
    if not match:
        return base, None
    try:
        stamp = _dt.datetime.strptime(match.group("stamp"), "%Y%m%d-%H%M%S")
    except ValueError:
        stamp = None
    return match.group("name"), stamp


class JobStore:
    """Job directories and the index of one job base directory, over a transport.

    Args:
        transport: where the directories are.
        job_base_dir: the base directory (``~`` is the cluster user's home).
        index_dir: a different index (a workflow's children are recorded in
            the index of the cluster that submitted the workflow).
    """

    def __init__(
        self, transport: Transport, job_base_dir: str, *, index_dir: str | None = None
    ) -> None:
        self.transport = transport
        self._job_base_dir = job_base_dir
        self._base_dir: str | None = None
        self._index_dir = index_dir
        self._session = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._layout_ready = False
        # directory -> its *.pkl files (uid, mode), once the directory was found private
        self._private: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}

    @property
    def base_dir(self) -> str:
        """The job base directory, absolute (asked of the cluster once)."""
        if self._base_dir is None:
            self._base_dir = self.transport.expand_path(self._job_base_dir).rstrip("/")
        return self._base_dir

    @property
    def index_dir(self) -> str:
        if self._index_dir is None:
            self._index_dir = f"{self.base_dir}/.index"
        return self._index_dir

    @property
    def done_dir(self) -> str:
        """Where the runners of this store's jobs drop a marker when they end."""
        return f"{self.index_dir.rsplit('/', 1)[0]}/.done/{self._session}"

    def trusted_dirs(self) -> dict[str, str]:
        """The directories whose content jobs load: they must be the user's own.

        The preflight creates them 0700 and refuses them if someone else owns or
        may write them (see :mod:`slurm._transport.trust`).
        """
        return {"job_base_dir": self.base_dir, "index": self.index_dir}

    @property
    def root(self) -> str:
        """The top job base directory: this one, or the one a workflow's children share
        with the cluster that submitted the workflow (where the index is)."""
        return self.index_dir.rsplit("/", 1)[0]

    def owns(self, path: str) -> bool:
        """Whether ``path`` is a plain path strictly below :attr:`root` (no ``..``)."""
        return _inside(path, self.root)

    def check_private(
        self, path: str, *, job_id: str | None = None, verb: str = "unpickle"
    ) -> None:
        """Refuse to unpickle ``path`` unless it is the user's own file in a directory only
        the user (and root) can write, under parents nobody else can swap.

        One command per directory (its files of the same suffix, ``*.pkl``, are
        listed with it), then remembered: the results of an array cost one look,
        not one per element. ``verb`` names what is refused in the error.

        Raises:
            ResultError: someone else owns or may write the file or its directory.
            FileNotFoundError: there is no such file.
        """
        directory, _, name = path.rpartition("/")
        pattern = "*." + name.rsplit(".", 1)[-1] if "." in name else "*"
        memo = directory if pattern == "*.pkl" else f"{directory}\0{pattern}"
        known = self._private.get(memo)
        if known is None or name not in known[1]:
            out = self.transport.ownership_report([directory], files=pattern)
            problems = trust.parse_output(out, [directory])
            uid = trust.parse_uid(out)
            if problems or uid is None:
                detail = problems[0].detail if problems else "the check did not run"
                fix = problems[0].fix if problems else "try again"
                raise ResultError(f"Refusing to {verb} {path}: {detail}. {fix}.", job_id=job_id)
            known = self._private[memo] = (uid, trust.parse_files(out).get(0, {}))
        uid, files = known
        if name not in files:
            raise FileNotFoundError(path)
        problem = trust.file_problem(path, *files[name], uid)
        if problem is not None:
            raise ResultError(
                f"Refusing to {verb} {path}: {problem.detail}. {problem.fix}.", job_id=job_id
            )

    def ensure_layout(self) -> None:
        """The index and done-marker directories, created once (before the first sbatch)."""
        if not self._layout_ready:
            self.transport.mkdir(self.index_dir, mode=0o700)
            self.transport.mkdir(self.done_dir, mode=0o700)
            self._layout_ready = True

    def close(self) -> None:
        """Remove the done-marker directory; a later submission creates it again."""
        if self._layout_ready:
            self._layout_ready = False
            with contextlib.suppress(SlurmError):
                self.transport.run(["rm", "-rf", "--", self.done_dir], check=False)

    def new_job_dir(self, name: str) -> str:
        """Create (0700) and return a fresh directory for a submission of ``name``."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = f"{self.base_dir}/{_safe_name(name)}-{stamp}-{secrets.token_hex(3)}"
        self.transport.mkdir(path, mode=0o700)
        return path

    def latest_job_dirs(self, name: str, count: int) -> list[str]:
        """The ``count`` newest job directories of submissions of ``name``, newest first
        (one listing of the base directory; none when it cannot be listed)."""
        prefix = f"{_safe_name(name)}-"
        try:
            names = self.transport.list_dir(self.base_dir)
        except OSError:
            return []
        # NAME-YYYYmmdd-HHMMSS-hex: the stamp sorts them (another task's NAME-x is not one).
        mine = sorted(n for n in names if n.startswith(prefix) and n[len(prefix) :][:1].isdigit())
        return [f"{self.base_dir}/{n}" for n in reversed(mine[-count:])]

    def remove_job_dir(self, job_dir: str) -> None:
        """Remove a job directory that never reached Slurm (only one under the base dir)."""
        if _inside(job_dir, self.base_dir):
            self.transport.run(["rm", "-rf", "--", job_dir], check=False)

    def record(self, job_id: str, job_dir: str) -> None:
        """Remember that ``job_id`` (an array's id for its elements) lives in ``job_dir``."""
        self.ensure_layout()
        self.transport.write_text(f"{self.index_dir}/{job_id}", job_dir + "\n")

    def job_dir_of(self, job_id: str) -> str:
        """The directory of ``job_id`` (or of its array), from the index.

        Raises:
            ConfigurationError: ``job_id`` is not a job id, or the job was not
                submitted through the SDK with this job base directory.
        """
        if not is_job_id(job_id):
            raise ConfigurationError(
                f"{job_id!r} is not a Slurm job id (digits, or digits_digits for an array element)."
            )
        record = f"{self.index_dir}/{job_id.split('_')[0]}"
        try:
            job_dir = self.transport.read_text(record).strip()
        except FileNotFoundError:
            raise ConfigurationError(
                f"Job {job_id} is not one of the SDK's jobs under {self.base_dir} (no record in "
                f"{self.index_dir}). Pass the job base directory (job_base_dir=, "
                "--job-base-dir) and host it was submitted with; `slurm jobs list` shows the "
                "jobs there."
            ) from None
        root = self.root
        if not _inside(job_dir, root):
            raise ConfigurationError(
                f"The index entry {record} points at {job_dir!r}, outside {root}: refused (the "
                "SDK only reads job directories it made under its own base directory). Remove "
                "that file; if you did not write it, someone else can write your index."
            )
        return job_dir

    def job_ids(self) -> list[str]:
        """Every job recorded in the index, newest first."""
        names = self.transport.list_dir(self.index_dir)
        return sorted((n for n in names if is_job_id(n)), key=_id_order, reverse=True)
