"""Running commands and managing the daemons' processes through pid files.

Every external command is an argv list run without a shell. A daemon is started
in the foreground of a detached session (so it is reparented to init and never
becomes our zombie), its pid recorded in a pid file of the state directory, its
stdout/stderr appended to its log file. Only processes found through our own pid
files are ever signalled.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from slurm.devcluster.safefiles import write_file
from slurm.errors import CommandError, DevclusterError

__all__ = [
    "DevclusterError",
    "find_program",
    "is_alive",
    "port_open",
    "read_pid",
    "run",
    "spawn_daemon",
    "stop_pid",
    "tail",
    "wait_for",
]


_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_program(name: str) -> str | None:
    """Absolute path of ``name`` on PATH or in the sbin directories (absent from a user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@functools.cache
def _program_names(name: str) -> frozenset[str]:
    """``name`` and the name of the file it resolves to (Debian: slurmd -> slurmd-wlm)."""
    path = find_program(name)
    return frozenset({name, os.path.basename(os.path.realpath(path))} if path else {name})


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) and return it; raise :class:`CommandError` if it fails."""
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(  # noqa: S603 (argv list, never a shell)
            list(argv),
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]} not found", argv=argv) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{argv[0]} timed out after {timeout:g} s", argv=argv) from exc
    if check and proc.returncode != 0:
        raise CommandError(
            f"{argv[0]} failed",
            argv=argv,
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
        )
    return proc


# Runs in a short-lived child: start the daemon in its own session, print its pid,
# exit at once without waiting, so the daemon is adopted by init. The daemon runs
# in "/": a daemon left in a directory that is later deleted (a test's tmp dir, a
# clone) hands that dead cwd to every job step, which then complains in each job's stderr.
_LAUNCHER = """
import os, subprocess, sys
log, user, *argv = sys.argv[1:]
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
kw = {"user": user, "group": user, "extra_groups": []} if user else {}
p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                     start_new_session=True, close_fds=True, cwd="/", **kw)
print(p.pid, flush=True)
os._exit(0)
"""


def spawn_daemon(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` (which must stay in the foreground) detached; record and return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    # -I and "/": as root, `python -c` would import a planted subprocess.py from the
    # directory `up` was run in (-I also ignores PYTHONPATH and the user's site).
    proc = run(
        [sys.executable, "-I", "-c", _LAUNCHER, str(log_file), user or "", *argv],
        env=env,
        timeout=30,
        cwd="/",
    )
    pid = int(proc.stdout.strip())
    write_file(pid_file, f"{pid}\n")
    return pid


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_alive(pid: int | None, name: str | None) -> bool:
    """True when ``pid`` runs, is not a zombie, and its program is called ``name``
    (any program when ``name`` is None)."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2 :].split()[0]
    if state in ("Z", "X"):
        return False
    return name is None or os.path.basename(exe).split(" ")[0] in _program_names(name)


def stop_pid(pid: int, name: str, *, timeout: float = 15) -> None:
    """SIGTERM ``pid`` if it is still ``name``; SIGKILL it after ``timeout`` seconds."""
    if not is_alive(pid, name):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, name):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while is_alive(pid, name) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    pid: int | None = None,
    logs: Sequence[Path] = (),
) -> None:
    """Poll ``ready`` until true; fail early if the daemon ``pid`` died. Errors show the logs.

    Any program at ``pid`` counts as alive: a daemon started through ``nsenter`` or
    ``ip netns exec`` becomes itself only once those have exec'ed it.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if ready():
            return
        died = pid is not None and not is_alive(pid, None)
        if died or time.monotonic() > deadline:
            why = "exited" if died else f"not ready after {timeout:g} s"
            details = "".join(f"\n--- {log} (last lines) ---\n{tail(log)}" for log in logs)
            raise DevclusterError(f"{what}: {why}.{details}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
