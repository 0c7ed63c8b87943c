"""What the runner leaves in the job directory: files written atomically, the run log,
its own usage figures, the done marker the client's tracker lists."""

from __future__ import annotations

import os
import time

from slurm._types import TYPE_CHECKING
from slurm._wire import jsontext
from slurm._wire.layout import JobPaths
from slurm._wire.runlog import event_line, last_progress, parse_run_log, starts_since_retry

if TYPE_CHECKING:  # paths are str or Path; a job works with str (pathlib costs its start)
    import signal as _signal
    from pathlib import Path
else:
    import _signal  # signal.py is this and enum, for the signals' names

__all__ = [
    "atomic_write",
    "commit_once",
    "cpu_seconds",
    "drop_marker",
    "log_run",
    "measure",
    "previous_progress",
    "previous_starts",
]


def _temporary(path: str) -> str:
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}.{os.getpid()}.tmp")


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary name and rename it: a reader never sees half a file."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = _temporary(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def commit_once(
    outcome_path: str | Path, outcome: bytes, result_path: str | Path, result: bytes
) -> bool:
    """Write the outcome and the result unless another run of the call wrote its outcome
    first (a pooled call taken by two workers); False then, and nothing is written.

    The outcome is linked into place (``link`` fails if the name exists: one run wins);
    TERM is held meanwhile, so that a stopped worker does not leave an outcome
    without its result.
    """
    held = _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGTERM})
    try:
        tmp = _temporary(os.fspath(outcome_path))
        atomic_write(tmp, outcome)
        try:
            os.link(tmp, outcome_path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        atomic_write(result_path, result)
        return True
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, held)


def _process_began() -> float | None:
    """When this process began (the batch script's, which execs the runner), to ~10 ms.

    It is the start of the job's batch step, which sacct gives only to the second;
    ``slurm jobs report`` draws the run from it.
    """
    try:
        with open("/proc/self/stat", "rb") as handle:  # bytes: no codec to import for it
            ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def log_run(path: str | Path, event: str, restart: int, *, progress: str | None = None) -> None:
    """Append ``event`` to the run log (see :mod:`slurm._wire.runlog`)."""
    began = _process_began() if event == "start" else None
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(event_line(event, restart, began=began, progress=progress))


def _read_log(runs_path: str | Path) -> str:
    try:
        with open(runs_path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def previous_starts(runs_path: str | Path) -> int:
    """Starts of this attempt so far (a retry by the client begins a new count)."""
    return starts_since_retry(parse_run_log(_read_log(runs_path)))


def previous_progress(runs_path: str | Path) -> str | None:
    """What the checkpoint callbacks of this attempt's last warned run wrote (a fingerprint)."""
    return last_progress(parse_run_log(_read_log(runs_path)))


def _submitted_at(paths: JobPaths) -> float | None:
    """When this attempt was submitted: the client's last retry record, else the script's mtime."""
    try:
        with open(paths.attempts, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        return float(jsontext.loads(lines[-1])["next_submitted"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass
    try:
        return os.stat(paths.script).st_mtime
    except OSError:
        return None


def cpu_seconds() -> float:
    """CPU time of this process and its children so far."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(
    paths: JobPaths, env: dict[str, str], started: float, cpu_before: float | None = None
) -> bytes:
    """The runner's own usage figures, for clusters without accounting (JSON).

    ``cpu_before``: a call a pool's worker ran (one of many in its process): its CPU
    time is what the process used since, its start its own (not the worker job's).
    """
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_time = "" if cpu_before is not None else env.get("SLURM_JOB_START_TIME", "")
    cpus = env.get("SLURM_CPUS_ON_NODE") or env.get("SLURM_CPUS_PER_TASK")
    mem_mb = env.get("SLURM_MEM_PER_NODE")
    if not mem_mb and env.get("SLURM_MEM_PER_CPU") and cpus and cpus.isdigit():
        mem_mb = str(int(env["SLURM_MEM_PER_CPU"]) * int(cpus))
    gpus = env.get("SLURM_GPUS_ON_NODE")
    record = {
        "submitted": _submitted_at(paths),
        "started": float(start_time) if start_time.isdigit() else started,
        "ended": time.time(),
        "cpu_s": cpu_seconds() - (cpu_before or 0.0),
        # Linux reports kilobytes; the largest process, this one or a child.
        "max_rss_bytes": max(own.ru_maxrss, children.ru_maxrss) * 1024,
        "cpus": int(cpus) if cpus and cpus.isdigit() else None,
        "mem_mb": int(mem_mb) if mem_mb and mem_mb.isdigit() else None,
        "gpus": int(gpus) if gpus and gpus.isdigit() else None,
        "node": os.uname().nodename,
    }
    return jsontext.dumps(record, sort_keys=True).encode()


def drop_marker(done_dir: str | None, job_id: str | None) -> None:
    """Tell the client's tracker, with one file in a shared directory, that we are done."""
    if not done_dir or not job_id:
        return
    # On failure the tracker still finds the result file itself, only later.
    marker = os.path.join(done_dir, job_id)
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o666))
        os.utime(marker)
    except OSError:
        pass
