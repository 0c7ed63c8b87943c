"""Slurm's commands as data: argv builders and output parsers (pure functions).

Nothing here runs a command; a transport runs the argv lists built here and
hands the text back to the parsers. Parsers never raise on odd input except
where documented (:func:`parse_sbatch_output`): an unknown state becomes
:attr:`JobState.UNKNOWN`, an unreadable line is skipped.

Job ids are strings: ``"123"`` for a job, ``"123_4"`` for element 4 of array
job 123.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from enum import StrEnum

from slurm._wire.record import record
from slurm.errors import SubmissionError

__all__ = [
    "ACCOUNTING_FINAL_STATES",
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "TERMINAL_STATES",
    "JobInfo",
    "JobState",
    "chunked",
    "expand_array_ids",
    "parse_exit_code",
    "parse_sacct",
    "parse_sbatch_output",
    "parse_show_config",
    "parse_slurm_conf",
    "parse_squeue",
    "sacct_argv",
    "says_never_requeued",
    "sbatch_argv",
    "sbatch_running",
    "scancel_argv",
    "scontrol_show_config_argv",
    "scontrol_show_job_argv",
    "squeue_argv",
    "squeue_says_invalid_id",
]


class JobState(StrEnum):
    """Every Slurm job state, plus ``UNKNOWN`` for anything unrecognised.

    Use :meth:`parse` on any state text Slurm prints (long names, ``squeue
    %t`` short codes, sacct's ``CANCELLED by 0``, truncated ``OUT_OF_ME+``).

    ``PREEMPTED`` is deliberately neither terminal nor active: with
    ``PreemptMode=REQUEUE`` a preempted job goes back to the queue, so only
    the caller can tell. If ``squeue`` still lists the job, wait; if only
    ``sacct`` knows it and says PREEMPTED, it is over
    (:attr:`is_final_in_accounting`).

    Held states (``REQUEUE_HOLD``, ``SPECIAL_EXIT``, ``RESV_DEL_HOLD``) count
    as pending: the job runs again once someone releases it, so waiting on it
    needs a timeout rather than an error.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    CONFIGURING = "CONFIGURING"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    RESIZING = "RESIZING"
    REVOKED = "REVOKED"
    SIGNALING = "SIGNALING"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    STAGE_OUT = "STAGE_OUT"
    STOPPED = "STOPPED"
    RESV_DEL_HOLD = "RESV_DEL_HOLD"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: str) -> JobState:
        """Map any state text Slurm prints to a state; never raises.

        Example::

            >>> JobState.parse("CANCELLED by 0"), JobState.parse("pd"), JobState.parse("?")
            (<JobState.CANCELLED: 'CANCELLED'>, <JobState.PENDING: 'PENDING'>, \
<JobState.UNKNOWN: 'UNKNOWN'>)
        """
        if not isinstance(text, str):
            return cls.UNKNOWN
        words = text.strip().upper().split()
        if not words:
            return cls.UNKNOWN
        word = words[0]
        truncated = word.endswith("+")
        word = word.rstrip("+")
        if word in cls.__members__:
            return cls[word]
        if word in _SHORT_CODES:
            return _SHORT_CODES[word]
        if truncated and word:
            matches = [s for s in cls if s.value.startswith(word)]
            if len(matches) == 1:
                return matches[0]
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """The job is over and will not run again (PREEMPTED excluded: see the class doc)."""
        return self in TERMINAL_STATES

    @property
    def is_final_in_accounting(self) -> bool:
        """Terminal when reported by sacct for a job squeue no longer lists (adds PREEMPTED)."""
        return self in ACCOUNTING_FINAL_STATES

    @property
    def is_active(self) -> bool:
        """The job is queued, held, running or finishing; it is not over yet."""
        return self in _ACTIVE_STATES


#: States after which a job never runs again.
TERMINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.REVOKED,
    }
)

#: Terminal states as seen by sacct once squeue has forgotten the job.
ACCOUNTING_FINAL_STATES: frozenset[JobState] = TERMINAL_STATES | {JobState.PREEMPTED}

_PENDING_STATES = frozenset(
    {
        JobState.PENDING,
        JobState.REQUEUED,
        JobState.REQUEUE_HOLD,
        JobState.REQUEUE_FED,
        JobState.RESV_DEL_HOLD,
        JobState.SPECIAL_EXIT,
    }
)
_ACTIVE_STATES = _PENDING_STATES | {
    JobState.RUNNING,
    JobState.SUSPENDED,
    JobState.COMPLETING,
    JobState.CONFIGURING,
    JobState.RESIZING,
    JobState.SIGNALING,
    JobState.STAGE_OUT,
    JobState.STOPPED,
}

_SHORT_CODES: dict[str, JobState] = {
    "BF": JobState.BOOT_FAIL,
    "CA": JobState.CANCELLED,
    "CD": JobState.COMPLETED,
    "CF": JobState.CONFIGURING,
    "CG": JobState.COMPLETING,
    "DL": JobState.DEADLINE,
    "F": JobState.FAILED,
    "NF": JobState.NODE_FAIL,
    "OOM": JobState.OUT_OF_MEMORY,
    "PD": JobState.PENDING,
    "PR": JobState.PREEMPTED,
    "R": JobState.RUNNING,
    "RD": JobState.RESV_DEL_HOLD,
    "RF": JobState.REQUEUE_FED,
    "RH": JobState.REQUEUE_HOLD,
    "RQ": JobState.REQUEUED,
    "RS": JobState.RESIZING,
    "RV": JobState.REVOKED,
    "S": JobState.SUSPENDED,
    "SE": JobState.SPECIAL_EXIT,
    "SI": JobState.SIGNALING,
    "SO": JobState.STAGE_OUT,
    "ST": JobState.STOPPED,
    "TO": JobState.TIMEOUT,
}


@record(frozen=True)
class JobInfo:
    """What squeue or sacct said about one job (or one array element)."""

    job_id: str
    state: JobState
    exit_code: int | None
    signal: int | None
    reason: str = ""
    node: str | None = None
    start: str | None = None
    end: str | None = None
    raw_state: str = ""

    def is_final(self, *, queued: bool) -> bool:
        """The job is over and will not run again.

        ``queued``: squeue still lists it. A PREEMPTED job that squeue lists
        may yet be requeued; once only accounting knows it, it is over.
        """
        return self.state.is_terminal or (not queued and self.state.is_final_in_accounting)


# --------------------------------------------------------------------- helpers

_NONE_VALUES = frozenset({"", "N/A", "NONE", "NONE ASSIGNED", "UNKNOWN", "(NULL)"})


def _optional(text: str) -> str | None:
    text = text.strip()
    return None if text.upper() in _NONE_VALUES else text


def chunked(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """Yield successive lists of at most ``size`` items (to bound argv length).

    Raises:
        ValueError: ``size`` is smaller than 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


_ARRAY_RE = re.compile(r"^(?P<base>\d+)_\[(?P<spec>[^\]]*)\]$")


def expand_array_ids(job_id_text: str) -> list[str]:
    """Expand squeue/sacct's compressed array notation into element ids.

    ``"123_[1,3,5-6%2]"`` gives ``["123_1", "123_3", "123_5", "123_6"]``
    (the ``%`` throttle is dropped, ``a-b:step`` is honoured); any other
    text is returned as a one-item list.

    Example::

        >>> expand_array_ids("7_[0-2%1]")
        ['7_0', '7_1', '7_2']
    """
    text = job_id_text.strip()
    match = _ARRAY_RE.match(text)
    if not match:
        return [text] if text else []
    base, spec = match.group("base"), match.group("spec").split("%", 1)[0]
    ids: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        range_match = re.match(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", part)
        if not range_match:
            return [text]
        first = int(range_match.group(1))
        last = int(range_match.group(2) or first)
        step = max(int(range_match.group(3) or 1), 1)
        ids.extend(f"{base}_{i}" for i in range(first, last + 1, step))
    return ids


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """Parse Slurm's ``EXIT:SIGNAL`` text (``"0:15"`` gives ``(0, 15)``); junk gives Nones."""
    match = re.match(r"^\s*(\d+)(?::(\d+))?\s*$", text or "")
    if not match:
        return None, None
    signal = match.group(2)
    return int(match.group(1)), int(signal) if signal is not None else None


# ----------------------------------------------------------------------- sbatch


def sbatch_argv(script_path: str, *, flags: Sequence[str] = ()) -> list[str]:
    """``sbatch --parsable [flags] SCRIPT``: the job id is the last stdout line."""
    return ["sbatch", "--parsable", *flags, script_path]


def sbatch_running(ps_output: str, script_path: str) -> bool:
    """Whether ``ps wwx -o args=`` output shows an ``sbatch`` of ``script_path`` still running
    (one whose SSH connection dropped: it may yet submit the job)."""
    for line in ps_output.splitlines():
        words = line.split()
        if words and words[0].rsplit("/", 1)[-1] == "sbatch" and line.endswith(" " + script_path):
            return True
    return False


_SBATCH_ID_RE = re.compile(r"^(\d+)(?:;\S*)?$")


def parse_sbatch_output(stdout: str) -> str:
    """Return the job id from ``sbatch --parsable`` output (``"12345"`` or ``"12345;cluster"``).

    Lines that are not an id (warnings printed to stdout) are ignored; the
    last id line wins.

    Raises:
        SubmissionError: no job id in the output.
    """
    for line in reversed(stdout.splitlines()):
        match = _SBATCH_ID_RE.match(line.strip())
        if match:
            return match.group(1)
    raise SubmissionError("sbatch did not print a job id; see its output for why.", stdout=stdout)


# ----------------------------------------------------------------------- squeue

#: squeue ``--format``: id (with array index), long state, nodes, start, end, reason.
#: The reason is last so a ``|`` inside it cannot shift the other fields.
SQUEUE_FORMAT = "%i|%T|%N|%S|%e|%r"


def squeue_argv(job_ids: Sequence[str]) -> list[str]:
    """One squeue call for many jobs, one line per array element, finished ones included."""
    return [
        "squeue",
        "--noheader",
        "--array",
        "--states=all",
        f"--jobs={','.join(job_ids)}",
        f"--format={SQUEUE_FORMAT}",
    ]


def parse_squeue(stdout: str) -> dict[str, JobInfo]:
    """Parse output of :func:`squeue_argv` into ``{job id: JobInfo}``.

    Array elements are keyed ``"123_4"``; compressed pending ranges such as
    ``"123_[5-7%2]"`` are expanded into one entry per element. squeue has no
    exit code, so ``exit_code`` and ``signal`` are None.
    """
    result: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|", 5)
        if len(fields) != 6 or not fields[0]:
            continue
        id_text, state_text, nodes, start, end, reason = fields
        state = JobState.parse(state_text)
        for job_id in expand_array_ids(id_text):
            result[job_id] = JobInfo(
                job_id=job_id,
                state=state,
                exit_code=None,
                signal=None,
                reason="" if reason.strip() == "None" else reason.strip(),
                node=_optional(nodes),
                start=_optional(start),
                end=_optional(end),
                raw_state=state_text.strip(),
            )
    return result


def squeue_says_invalid_id(stderr: str) -> bool:
    """True if squeue failed only because none of the ids is known (any more)."""
    return "invalid job id specified" in stderr.lower()


# ------------------------------------------------------------------------ sacct

#: sacct fields; ``Reason`` is last so a ``|`` inside it cannot shift the others.
SACCT_FIELDS = ("JobID", "State", "ExitCode", "NodeList", "Start", "End", "Reason")


def sacct_argv(job_ids: Sequence[str], *, since: str | None = None) -> list[str]:
    """sacct for many jobs: allocation rows only (``-X``), ``|``-separated, no header.

    With ``--jobs`` and no ``since`` sacct searches from the epoch, so old jobs
    are found. ``since`` (any time sacct's ``--starttime`` accepts, e.g.
    ``2024-05-01T10:00:00``) narrows the search to jobs eligible after it, so
    a job id reused by a reset controller cannot match an older record.
    """
    argv = [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        f"--jobs={','.join(job_ids)}",
        f"--format={','.join(SACCT_FIELDS)}",
    ]
    if since is not None:
        argv.append(f"--starttime={since}")
    return argv


_STEP_RE = re.compile(r"\.[^.]+$")


def parse_sacct(stdout: str) -> dict[str, JobInfo]:
    """Parse output of :func:`sacct_argv` into ``{job id: JobInfo}``.

    Step rows (``123.batch``, ``123.0``) are skipped; several rows for one id
    (a requeued job listed with ``--duplicates``) keep the last; compressed
    array ranges are expanded.
    """
    result: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|", len(SACCT_FIELDS) - 1)
        if len(fields) != len(SACCT_FIELDS) or not fields[0]:
            continue
        id_text, state_text, exit_text, nodes, start, end, reason = fields
        if "." in id_text and _STEP_RE.search(id_text):
            continue
        exit_code, signal = parse_exit_code(exit_text)
        state = JobState.parse(state_text)
        for job_id in expand_array_ids(id_text):
            result.pop(job_id, None)
            result[job_id] = JobInfo(
                job_id=job_id,
                state=state,
                exit_code=exit_code,
                signal=signal,
                reason="" if reason.strip() == "None" else reason.strip(),
                node=_optional(nodes),
                start=_optional(start),
                end=_optional(end),
                raw_state=state_text.strip(),
            )
    return result


# ---------------------------------------------------------------------- scancel


def scancel_argv(
    job_ids: Sequence[str], *, signal: str | None = None, batch: bool = False
) -> list[str]:
    """``scancel [--signal=SIG] [--batch] IDS``; ``batch`` signals only the batch shell."""
    argv = ["scancel"]
    if signal is not None:
        argv.append(f"--signal={signal}")
    if batch:
        argv.append("--batch")
    return [*argv, *job_ids]


# --------------------------------------------------------------------- scontrol


def scontrol_show_job_argv(job_id: str) -> list[str]:
    """``scontrol -o show job ID``: the job on one line of ``Key=Value`` fields."""
    return ["scontrol", "-o", "show", "job", job_id]


def says_never_requeued(stdout: str) -> bool:
    """``scontrol -o show job`` output of a job Slurm will not requeue (``Requeue=0``)."""
    return "Requeue=0" in stdout.split()


def scontrol_show_config_argv() -> list[str]:
    """``scontrol show config``."""
    return ["scontrol", "show", "config"]


def parse_slurm_conf(text: str) -> dict[str, str] | None:
    """``slurm.conf``'s settings as ``{key (lower case): value}``; ``None`` when the file
    includes others (``Include``), so that what it says alone may not be the whole story.

    Keys are case-insensitive in ``slurm.conf``; ``#`` starts a comment; one line may hold
    several ``Key=Value`` pairs (node and partition lines are read as their first pair).
    """
    config: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        first = line.split(None, 1)[0]
        if first.lower() == "include":
            return None
        key, sep, value = first.partition("=")
        if sep and key:
            config.setdefault(key.lower(), value)
    return config


def parse_show_config(stdout: str) -> dict[str, str]:
    """Parse ``scontrol show config`` into ``{Key: value}`` (``MaxArraySize``, ``MinJobAge``...)."""
    config: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            continue
        config.setdefault(key, value.strip())
    return config
