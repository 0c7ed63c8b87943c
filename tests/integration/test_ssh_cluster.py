"""The SDK over SSH against the dev cluster: results, reconnects, no double submission.

Every ``Cluster`` here talks to the dev cluster's sshd through its
``slurm-devcluster`` alias and runs jobs with this interpreter
(``python=node_python()``: this virtualenv, which the nodes run as it is, or
one the SDK built from it when they cannot: see ``nodepython``). The tasks
below travel by value, since this test module is not importable on the cluster.
Slurm's own records (``squeue --states=all`` and ``sacct``, read locally) are
the judge of how many jobs a call submitted.
"""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from nodepython import node_python

from slurm import Cluster, task
from slurm._api.task import Task
from slurm._transport.base import CommandResult, Transport
from slurm._transport.ssh import SSHTransport
from slurm.devcluster import SshInfo, Status
from slurm.devcluster import status as devcluster_status
from slurm.errors import ConnectionLostError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

_TIMEOUT = 240.0  # generous: other sessions may be running jobs on the shared node


class Boom(Exception):
    """Raised on the cluster; must come home as this very type."""


def _define_tasks() -> tuple[Task[..., int], Task[..., None], Task[..., Any]]:
    # Defined in a function so they travel by value (this module is not importable
    # on the cluster); ``Boom`` does too, being registered with cloudpickle above.
    @task(time="00:02:00", mem="64M")
    def add(a: int, b: int) -> int:
        return a + b

    @task(time="00:02:00", mem="64M")
    def explode(message: str) -> None:
        raise Boom(message)

    @task(time="00:02:00", mem="64M")
    def sleep_then(seconds: float, value: Any = None) -> Any:
        time.sleep(seconds)
        return value

    return add, explode, sleep_then


add, explode, sleep_then = _define_tasks()


# --- Slurm's records ---------------------------------------------------------------


def _slurm(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def _ids_named(name: str, since: float) -> set[str]:
    """Ids of every job called ``name`` since ``since``: in squeue (any state) or sacct."""
    queued = _slurm(["squeue", "--noheader", "--states=all", "--name", name, "--format=%i"])
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 5))
    accounted = _slurm(
        ["sacct", "-X", "-n", "-P", "--name", name, "-S", start, "-E", "now", "-o", "JobID"]
    )
    return {line.strip() for line in (queued + accounted).splitlines() if line.strip()}


def _jobs_for_call(name: str, since: float, expected: str) -> set[str]:
    """The jobs named ``name``, once Slurm's records show the ``expected`` one (dbd lags)."""
    deadline = time.monotonic() + 30
    while True:
        ids = _ids_named(name, since)
        if expected in ids or time.monotonic() > deadline:
            # One more look, so a late duplicate has a chance to show up too.
            time.sleep(1.0)
            return _ids_named(name, since)
        time.sleep(0.5)


def _unique(prefix: str) -> str:
    return f"sdk-{prefix}-{secrets.token_hex(3)}"


# --- fixtures and transport wrappers --------------------------------------------------


def _ssh_cluster(ssh: SshInfo, base: Path, **kwargs: Any) -> Cluster:
    return Cluster(
        backend_type="ssh",
        hostname=ssh.alias,
        username=ssh.username,
        python=node_python(),
        job_base_dir=str(base),
        default_partition="debug",
        **kwargs,
    )


@pytest.fixture()
def ssh_cluster(devcluster_ssh: SshInfo, tmp_path: Path) -> Iterator[Cluster]:
    cluster = _ssh_cluster(devcluster_ssh, tmp_path / "jobs")
    with cluster:
        yield cluster


class Wrapped(Transport):
    """Delegates to an SSHTransport; subclasses inject faults or count calls."""

    kind = "ssh"

    def __init__(self, inner: SSHTransport) -> None:
        self.inner = inner
        self.description = inner.description

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
        return self.inner.run(
            argv, input=input, timeout=timeout, env=env, cwd=cwd, check=check, retry=retry
        )

    def read_bytes(self, path: str) -> bytes:
        return self.inner.read_bytes(path)

    def write_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        self.inner.write_bytes(path, data, mode=mode)

    def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        self.inner.mkdir(path, mode=mode)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def list_dir(self, path: str) -> list[str]:
        return self.inner.list_dir(path)

    def expand_path(self, path: str) -> str:
        return self.inner.expand_path(path)

    def upload(self, local_path: str, remote_path: str, *, mode: int = 0o600) -> None:
        self.inner.upload(local_path, remote_path, mode=mode)

    def close(self) -> None:
        self.inner.close()


class LoseSbatchReply(Wrapped):
    """The first sbatch really runs, then the connection "drops" before its answer.

    Before raising, it waits for the job to finish, as a slow detection of a
    dead connection would let a short job do: the job is then gone from
    squeue's default listing.
    """

    def __init__(self, inner: SSHTransport) -> None:
        super().__init__(inner)
        self.sbatch_results: list[CommandResult] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = super().run(argv, **kwargs)
        if argv[0] == "sbatch":
            self.sbatch_results.append(result)
            if len(self.sbatch_results) == 1:
                job_id = result.stdout.split()[-1].split(";")[0]
                _wait_until_finished(job_id)
                raise ConnectionLostError(
                    "test: the SSH connection dropped while running sbatch (after sending it)"
                )
        return result


class TransientSbatchError(Wrapped):
    """The first sbatch answers "Socket timed out"; ``really_ran`` says if it got through."""

    def __init__(self, inner: SSHTransport, *, really_ran: bool) -> None:
        super().__init__(inner)
        self.really_ran = really_ran
        self.sbatch_calls = 0
        self.real_ids: list[str] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if argv[0] != "sbatch":
            return super().run(argv, **kwargs)
        self.sbatch_calls += 1
        if self.sbatch_calls == 1 and not self.really_ran:
            return self._timed_out(argv)
        result = super().run(argv, **kwargs)
        if result.returncode == 0:
            self.real_ids.append(result.stdout.split()[-1].split(";")[0])
        return self._timed_out(argv) if self.sbatch_calls == 1 else result

    @staticmethod
    def _timed_out(argv: Sequence[str]) -> CommandResult:
        return CommandResult(
            list(argv),
            1,
            "",
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
        )


class Counting(Wrapped):
    """Counts every transport call by kind (``run:<program>``, ``list_dir:<dir>``, ...)."""

    def __init__(self, inner: SSHTransport) -> None:
        super().__init__(inner)
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self.lock:
            self.calls[kind] += 1

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self._count(f"run:{argv[0]}")
        return super().run(argv, **kwargs)

    def read_bytes(self, path: str) -> bytes:
        self._count("read_bytes")
        return super().read_bytes(path)

    def write_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        self._count("write_bytes")
        super().write_bytes(path, data, mode=mode)

    def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        self._count("mkdir")
        super().mkdir(path, mode=mode)

    def exists(self, path: str) -> bool:
        self._count("exists")
        return super().exists(path)

    def list_dir(self, path: str) -> list[str]:
        self._count(f"list_dir:{path.rsplit('/', 1)[-1]}")
        return super().list_dir(path)


def _wait_until_finished(job_id: str, timeout: float = _TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while _slurm(["squeue", "--noheader", "--jobs", job_id, "--format=%i"]).strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not finish within {timeout} s")
        time.sleep(0.2)


def _wrapped_cluster(ssh: SshInfo, base: Path, wrapper: type[Wrapped], **kwargs: Any) -> Any:
    inner = SSHTransport(ssh.alias, username=ssh.username)
    transport = wrapper(inner, **kwargs)
    return transport, _ssh_cluster(ssh, base, transport=transport)


# --- sshd sessions -----------------------------------------------------------------


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descendants(pid: int) -> list[int]:
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    parents = {p: _ppid(p) for p in pids}
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        todo.extend(kids)
    return found


def _server_socket_inode(server_port: int, client_port: int) -> str:
    """The inode of sshd's end of the TCP connection from ``client_port``."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote):
            return fields[9]
    raise AssertionError(f"no TCP connection from port {client_port} to {server_port}")


def _holds_socket(pid: int, inode: str) -> bool:
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return True
    return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _kill_our_session(devcluster: Status, cluster: Cluster) -> list[int]:
    """SIGKILL the sshd processes serving ``cluster``'s connection, and only those.

    The session is the dev cluster sshd's child whose process tree holds the
    server end of our TCP connection (other sessions may be other users').
    """
    transport = cluster.transport
    inner = transport.inner if isinstance(transport, Wrapped) else transport
    assert isinstance(inner, SSHTransport)
    conn = inner._conn
    assert conn is not None and conn.alive(), "the cluster has no live connection to cut"
    client_port = conn.transport.sock.getsockname()[1]  # type: ignore[union-attr]
    inode = _server_socket_inode(devcluster.ssh.port, client_port)
    # Ask afresh: other tests restart the dev cluster's daemons (new pids).
    listener = devcluster_status(devcluster.state_dir).daemons["sshd"]
    assert listener is not None
    for session in [p for p in _descendants(listener) if _ppid(p) == listener]:
        tree = [session, *_descendants(session)]
        if any(_holds_socket(p, inode) for p in tree):
            # Kill the session's sshd processes only: the shells below them then end
            # on SIGHUP and run their exit traps (a SIGKILLed login shell can leave
            # locks behind, e.g. pyenv's rehash lock, that stall every later login).
            # OpenSSH 9.8 and later (the roots of Slurm 24.11 and 26.05) serve a session
            # from sshd-session, and 10.x authenticates in sshd-auth.
            sshd = [pid for pid in tree if _comm(pid) in ("sshd", "sshd-session", "sshd-auth")]
            for pid in sshd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return sshd
    raise AssertionError(f"no sshd session holds socket {inode} (client port {client_port})")


# --- tests -----------------------------------------------------------------------


def test_result_and_exception_come_home_over_ssh(ssh_cluster: Cluster) -> None:
    job = add(2, 3)
    assert job.get_result(timeout=_TIMEOUT) == 5
    failing = explode("it broke on the cluster")
    with pytest.raises(Boom, match="it broke on the cluster") as info:
        failing.get_result(timeout=_TIMEOUT)
    assert any("Traceback" in note for note in getattr(info.value, "__notes__", []))
    assert ssh_cluster.transport.kind == "ssh"


def test_reconnects_when_the_session_is_killed_mid_wait(
    ssh_cluster: Cluster, devcluster: Status
) -> None:
    name = _unique("reconnect")
    since = time.time()
    job = sleep_then.with_options(job_name=name)(6.0, "survived")
    first_connection = ssh_cluster.transport._conn  # type: ignore[attr-defined]
    killed: list[int] = []
    errors: list[BaseException] = []

    def killer() -> None:
        try:
            deadline = time.monotonic() + _TIMEOUT
            while _slurm(["squeue", "-h", "-j", job.id, "-o", "%T"]).strip() != "RUNNING":
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.2)
            time.sleep(1.0)  # get_result() is waiting; the job sleeps a few more seconds
            killed.extend(_kill_our_session(devcluster, ssh_cluster))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        assert job.get_result(timeout=_TIMEOUT) == "survived"
    finally:
        thread.join()
    assert not errors, errors
    assert killed, "no sshd process was killed"
    assert ssh_cluster.transport._conn is not first_connection  # type: ignore[attr-defined]
    assert _jobs_for_call(name, since, job.id) == {job.id}


def test_submission_cut_off_after_sbatch_is_not_submitted_twice(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    transport, cluster = _wrapped_cluster(devcluster_ssh, tmp_path / "jobs", LoseSbatchReply)
    name = _unique("cutoff")
    since = time.time()
    with cluster:
        job = add.with_options(job_name=name)(20, 22)
        real_id = transport.sbatch_results[0].stdout.split()[-1].split(";")[0]
        assert job.id == real_id
        assert len(transport.sbatch_results) == 1, "sbatch ran again"
        assert job.get_result(timeout=_TIMEOUT) == 42
    assert _jobs_for_call(name, since, job.id) == {job.id}


@pytest.mark.parametrize("really_ran", [True, False], ids=["accepted", "lost"])
def test_transient_sbatch_error_is_retried_without_duplicate(
    devcluster_ssh: SshInfo, tmp_path: Path, really_ran: bool
) -> None:
    transport, cluster = _wrapped_cluster(
        devcluster_ssh, tmp_path / "jobs", TransientSbatchError, really_ran=really_ran
    )
    name = _unique("transient")
    since = time.time()
    with cluster:
        job = add.with_options(job_name=name)(1, 2)
        assert transport.real_ids == [job.id]
        assert transport.sbatch_calls == (1 if really_ran else 2)
        assert job.get_result(timeout=_TIMEOUT) == 3
    assert _jobs_for_call(name, since, job.id) == {job.id}


def test_tracker_lists_one_directory_per_tick_whatever_the_number_of_jobs(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    transport, cluster = _wrapped_cluster(devcluster_ssh, tmp_path / "jobs", Counting)
    count = 20
    with cluster:
        add(0, 0).get_result(timeout=_TIMEOUT)  # preflight and layout out of the way
        transport.reset()
        jobs = [add(i, i) for i in range(count)]  # the tracker starts with the first one
        submitted = dict(transport.calls)
        assert [job.get_result(timeout=_TIMEOUT) for job in jobs] == [2 * i for i in range(count)]
        calls = dict(transport.calls)
        done_key = "list_dir:" + cluster.done_dir.rsplit("/", 1)[-1]  # this cluster's own
    ticks = calls.get(done_key, 0)
    report = f"{count} jobs; after submitting: {submitted}; after collecting: {calls}"
    print(report)
    assert calls.get("run:sbatch") == count, report
    assert ticks >= 1, report
    # One listing per tick, of the marker directory only; no listing of job directories.
    assert all(k == done_key for k in calls if k.startswith("list_dir")), report
    # A result file is checked once per job, when its marker appears; not once per tick.
    assert calls.get("exists", 0) <= count, report
    assert calls.get("read_bytes", 0) == count, report
    # The controller is asked in batches, far fewer times than once per job per tick.
    controller = calls.get("run:squeue", 0) + calls.get("run:sacct", 0)
    assert controller <= ticks, report


def test_get_job_reattaches_from_a_second_ssh_cluster(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    base = tmp_path / "jobs"
    with _ssh_cluster(devcluster_ssh, base):
        running = sleep_then(3.0, "from afar")
        done = add(5, 6)
        assert done.get_result(timeout=_TIMEOUT) == 11
    second = _ssh_cluster(devcluster_ssh, base)
    try:
        again = second.get_job(running.id)
        assert again.job_dir == running.job_dir
        assert again.get_result(timeout=_TIMEOUT) == "from afar"
        assert second.get_job(done.id).get_result(timeout=_TIMEOUT) == 11
    finally:
        second.close()
