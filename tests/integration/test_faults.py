"""Faults of Slurm's daemons and of the SSH connection, on a dev cluster of this module's own.

A test must not restart the shared dev cluster's daemons (other test sessions use it),
so this module brings up its own (``faults``, see ``owncluster.py``: a second session
that wants it waits its turn): one node (slurmd on this machine, no
namespaces, so a filesystem mounted now is seen by its jobs), accounting on,
associations and QOS enforced, on the session's port base + 40 with its state under
``~/.local/state/slurm-sdk/faults-<base>`` (kept between sessions, so ``up`` is quick),
and takes it down at the end. For the module's duration ``$SLURM_CONF`` and the
``$SLURM_SDK_DEVCLUSTER_*`` variables name that cluster, so every client and every
``slurm.devcluster`` call here reaches it and nothing else.

Each fault: the right result or a clear error, no job submitted twice (Slurm's own
records count them), the other jobs unaffected; where the SDK's own retry is what
carries a job through, the test waits for its log record before the fault ends.
The job tracking tests that restart the controller or switch accounting off are here
too (they were in ``test_tracking.py``, on the shared cluster).
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jobfuncs import add, after_file, kill_self, sleep_forever, sleep_then
from nodepython import node_python
from owncluster import own_cluster

import slurm.devcluster as dc
from slurm import Cluster, JobState
from slurm._slurm.probe import JOB_NAME as PROBE_JOB
from slurm._transport import SSHTransport
from slurm.cli import main
from slurm.devcluster import Status
from slurm.devcluster.settings import ACCOUNT
from slurm.errors import ConfigurationError, JobTerminatedError, SubmissionError
from slurm.examples.parallel_train_eval.workflow import parallel_train_eval_workflow

FAULTS_PORT_OFFSET = 40


def _up(state_dir: str | Path) -> Status:
    return dc.up(state_dir, nodes=1, accounting=True, containers=False, enforce_associations=True)


@pytest.fixture(scope="module")
def faults() -> Iterator[Status]:
    """The module's own dev cluster, up for the module and down after it."""
    with own_cluster("faults", FAULTS_PORT_OFFSET, 1, lambda: _up(dc.default_state_dir())) as st:
        yield st


# --- helpers -------------------------------------------------------------------------


def _cluster(base: Path, **kwargs: Any) -> Cluster:
    return Cluster(
        backend_type="local", job_base_dir=str(base), default_partition="debug", **kwargs
    )


def _slurm(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _pid(name: str) -> int:
    """The pid of one of the faults cluster's daemons (``slurmctld``, ``sshd``, ...), from
    its pid file: ``dc.status()`` would ask a paused controller and wait."""
    pid = int((Path(dc.default_state_dir()) / "run" / f"{name}.sdk.pid").read_text())
    assert Path(f"/proc/{pid}").exists(), f"{name} is not running"
    return pid


def _stop(name: str) -> None:
    """Stop one of the faults cluster's daemons (``slurmctld``, ``slurmdbd``, ...)."""
    pid = _pid(name)
    os.kill(pid, signal.SIGTERM)
    _eventually(lambda: not Path(f"/proc/{pid}").exists(), f"{name} to stop", 30)


def _next_second() -> float:
    """Wait for the next whole second and return it: sacct's Submit has one-second steps,
    so a job an earlier test submitted in the same second would count as this test's."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)
    return float(math.ceil(now))


def _sacct_names(since: float) -> list[str]:
    """Names of every job submitted since ``since`` (by sacct), requeued runs included."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since))
    out = _slurm("sacct", "-X", "-n", "-P", "--duplicates", "-S", start, "-E", "now", "-o",
                 "Submit,JobName")  # fmt: skip
    rows = [line.split("|", 1) for line in out.splitlines() if "|" in line]
    # The preflight's probe of what the nodes see (one srun, nothing of the user's) is
    # not a job the tests submitted.
    return sorted(name for submitted, name in rows if submitted >= start and name != PROBE_JOB)


def _accounted(since: float, expected: list[str]) -> list[str]:
    """The jobs submitted since ``since``, once ``expected`` are all accounted (dbd lags)."""

    def caught_up() -> bool:
        return not collections.Counter(expected) - collections.Counter(_sacct_names(since))

    _eventually(caught_up, f"sacct to show {expected}", 60)
    time.sleep(1.0)  # a late duplicate would show up now
    return _sacct_names(since)


def _job_dirs(base: Path) -> list[str]:
    return [p.name for p in base.iterdir() if not p.name.startswith(".")] if base.exists() else []


# --- slurmctld restarted -------------------------------------------------------------


def test_slurmctld_restarted_while_a_workflow_runs(
    faults: Status, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="slurm._slurm.client")
    since = _next_second()
    with _cluster(home_tmp / "jobs") as cluster:
        bystander = sleep_then.with_options(job_name="bystander")(8, "unaffected")
        flow = parallel_train_eval_workflow(
            epochs=2, epoch_steps=2, steps_per_job_cap=1, partition_train=None,
            partition_eval=None,
        )  # fmt: skip

        def training() -> bool:
            names = _slurm("squeue", "-h", "-o", "%j").split()
            return "train_epoch_segment" in names

        _eventually(training, "the workflow to submit its first training job", 120)
        _stop("slurmctld")
        # Submitted while there is no controller: sbatch and the SDK retry; one job.
        submitted: list[Any] = []

        def submit() -> None:
            try:
                submitted.append(cluster.submit(add)(20, 22))
            except Exception as exc:
                submitted.append(exc)

        thread = threading.Thread(target=submit)
        thread.start()
        # The controller stays away until sbatch has failed and the SDK retries it (its
        # own retry, not sbatch's), however long sbatch takes to give up on a busy machine.
        _eventually(lambda: "sbatch: transient error" in caplog.text, "the SDK's retry", 90)
        assert _up(faults.state_dir).running  # slurmctld again, from its saved state
        thread.join(timeout=120)
        state = json.loads(Path(flow.get_result(timeout=300)).read_text())
        assert len(state["checkpoints"]) == 2 and len(state["metrics"]) == 2, state
        assert state["eval_succeeded"] == {"0": True, "1": True}
        assert bystander.get_result(timeout=120) == "unaffected"
        [late] = submitted
        assert not isinstance(late, Exception), repr(late)
        assert late.get_result(timeout=120) == 42
        assert cluster.get_job(flow.id).get_status().value == "COMPLETED"
    expected = sorted(
        ["parallel_train_eval_workflow", "bystander", "add"]
        + ["train_epoch_segment"] * 4
        + ["evaluate_epoch"] * 2
    )
    assert _accounted(since, expected) == expected  # nothing submitted twice


# --- tracking when Slurm is less than healthy (moved from test_tracking.py) ------------


def _squeue_state(job_id: str) -> str:
    """The job's state in squeue; "" once it is forgotten (or the controller is away)."""
    argv = ["squeue", "-h", "-j", job_id, "-o", "%T"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()


def test_controller_restart_during_a_wait(
    faults: Status, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="slurm._client.tracker")
    gate = home_tmp / "controller-is-back"
    with _cluster(home_tmp / "jobs"):
        job = after_file(str(gate), "survived")  # runs until the controller is back
        doomed = sleep_forever()  # ends without a result: only the controller can tell
        _eventually(lambda: _squeue_state(job.id) == "RUNNING", "the job to run")
        _eventually(lambda: _squeue_state(doomed.id) == "RUNNING", "the other job to run")
        _stop("slurmctld")
        # The tracker meets a controller that does not answer and retries (its own retry,
        # logged); after the outage it must still be asking, or `doomed` is never seen end.
        _eventually(lambda: "job tracking failed" in caplog.text, "the tracker's retry", 90)
        assert _up(faults.state_dir).running
        gate.touch()
        assert job.get_result(timeout=120) == "survived"
        assert job.state is JobState.COMPLETED
        _slurm("scancel", doomed.id)
        with pytest.raises(JobTerminatedError, match="CANCELLED"):
            doomed.get_result(timeout=60)
        after = add(1, 2)  # and submission works again
        assert after.get_result(timeout=60) == 3


@pytest.fixture()
def without_accounting(faults: Status) -> Iterator[Status]:
    """The faults cluster without slurmdbd and accounting, put back afterwards."""
    status = dc.up(faults.state_dir, nodes=1, accounting=False, containers=False,
                   enforce_associations=False)  # fmt: skip
    assert not status.accounting
    try:
        yield status
    finally:
        assert _up(faults.state_dir).accounting


def test_tracking_without_accounting(without_accounting: Status, home_tmp: Path) -> None:
    del without_accounting
    base = home_tmp / "jobs"
    with _cluster(base) as cluster:
        done = add(2, 2)
        cancelled = sleep_forever()
        assert done.get_result(timeout=60) == 4
        _eventually(lambda: _squeue_state(cancelled.id) == "RUNNING", "the job to run")
        cancelled.cancel()
        with pytest.raises(JobTerminatedError, match="CANCELLED"):
            cancelled.get_result(timeout=60)
        assert cluster.tracker.accounting is False  # it asked sacct, and learnt
    # Once Slurm has forgotten both (MinJobAge), only our own files can tell.
    _eventually(lambda: not _squeue_state(done.id) and not _squeue_state(cancelled.id),
                "purge", 90)  # fmt: skip
    with _cluster(base) as later:
        assert later.get_job(done.id).get_result(timeout=30) == 4
        with pytest.raises(JobTerminatedError, match="ended"):
            later.get_job(cancelled.id).get_result(timeout=60)
        assert later.tracker.accounting is False


# --- slurmdbd stopped ----------------------------------------------------------------


def test_slurmdbd_stopped_waits_and_states_still_answer(faults: Status, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    since = _next_second()
    with _cluster(base) as cluster:  # lives through slurmdbd's absence
        with pytest.raises(JobTerminatedError, match=r"Exit code"):
            kill_self().get_result(timeout=120)  # its exit code from sacct
        assert cluster.tracker.accounting is True
        _stop("slurmdbd")
        try:
            died = kill_self()  # ends without a result
            ok = add(1, 2)
            assert ok.get_result(timeout=120) == 3
            with pytest.raises(JobTerminatedError, match=r"ended in state FAILED"):
                died.get_result(timeout=120)
            assert cluster.get_job(ok.id).get_status().value == "COMPLETED"
            # squeue forgets an ended job MinJobAge (30 s) to a minute later (slurmctld
            # purges once a minute); then nothing can tell how it ended. An id the
            # controller never gave out stands for such a job, rather than waiting.
            forgotten = "67043000"
            (base / ".index" / forgotten).write_text((base / ".index" / died.id).read_text())
            with _cluster(base) as fresh:
                with pytest.raises(JobTerminatedError, match=r"accounting .*did not answer"):
                    fresh.get_job(forgotten).get_result(timeout=60)
                assert fresh.get_job(ok.id).get_result(timeout=10) == 3
            listing = CliRunner(env={"COLUMNS": "250"}).invoke(
                main, ["jobs", "list", "--backend", "local", "--job-base-dir", str(base)]
            )
            assert listing.exit_code == 0, listing.output
            assert ok.id in listing.output and died.id in listing.output
        finally:
            assert _up(faults.state_dir).running  # slurmdbd again
        # sacct is asked again once it answers: the exit code the error lacked comes back.
        _eventually(
            lambda: "Exit code" in str(cluster.get_job(died.id).exception(timeout=30)),
            "the exit code from sacct",
        )
        assert cluster.tracker.accounting is True
    assert _accounted(since, ["add", "kill_self", "kill_self"]) == ["add", "kill_self", "kill_self"]


# --- associations enforced -----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("account", "no-such-account", "Invalid account"), ("qos", "no-such-qos", "Invalid qos")],
)
def test_unknown_account_or_qos_leaves_nothing_behind(
    faults: Status, home_tmp: Path, option: str, value: str, message: str
) -> None:
    base = home_tmp / "jobs"
    with (
        _cluster(base),
        pytest.raises(SubmissionError, match=rf"(?s)refused the job \(.*{message}") as info,
    ):
        add.with_options(**{option: value})(1, 2)
    assert info.value.refused
    assert _job_dirs(base) == []
    assert list((base / ".index").iterdir()) == []
    with _cluster(base):  # the account and QOS that exist are taken
        assert add.with_options(account=ACCOUNT, qos="normal")(1, 2).get_result(120) == 3


# --- the SSH connection cut ----------------------------------------------------------


def _ssh_cluster(st: Status, base: Path, **kwargs: Any) -> Cluster:
    transport = SSHTransport(
        st.ssh.host,
        port=st.ssh.port,
        username=st.ssh.username,
        key_filename=st.ssh.key_file,
        known_hosts=st.ssh.known_hosts_file,
        ssh_config=None,
        allow_agent=False,
        look_for_keys=False,
    )
    return Cluster(
        backend_type="ssh",
        hostname=st.ssh.host,
        port=st.ssh.port,
        username=st.ssh.username,
        python=node_python(),
        job_base_dir=str(base),
        default_partition="debug",
        transport=transport,
        **kwargs,
    )


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _cut_every_session() -> int:
    """SIGKILL the sshd processes serving the faults cluster's connections (only this
    module's clients use its sshd); their shells then end on SIGHUP. How many."""
    killed, todo = 0, _children(_pid("sshd"))
    while todo:
        pid = todo.pop()
        todo.extend(_children(pid))
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def test_connection_cut_during_submission_submits_once(
    faults: Status,
    home_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cut comes while sbatch waits for a paused controller, which stays paused a
    while longer: the cut-off sbatch still runs and may yet submit the job. The SDK
    waits for it to end, then looks for the job by its comment: found, not sbatch again."""
    from slurm._transport.ssh import SSHTransport as Real

    real_run = Real.run
    cuts: list[int] = []

    def run(self: Real, argv: Any, **kwargs: Any) -> Any:
        if argv[0] != "sbatch" or cuts:
            return real_run(self, argv, **kwargs)
        controller = _pid("slurmctld")
        os.kill(controller, signal.SIGSTOP)

        def cut() -> None:
            try:
                time.sleep(1.5)  # sbatch has sent its request (or is connecting)
                cuts.append(_cut_every_session())
                time.sleep(3)  # the client is back and finds the cut-off sbatch running
            finally:
                os.kill(controller, signal.SIGCONT)

        threading.Thread(target=cut).start()
        return real_run(self, argv, **kwargs)

    monkeypatch.setattr(Real, "run", run)
    caplog.set_level("INFO", logger="slurm._slurm.client")
    since = _next_second()
    with _ssh_cluster(faults, home_tmp / "jobs") as cluster:
        job = add.with_options(job_name="cut-sbatch")(20, 22)
        assert cuts and cuts[0] >= 1, "no session was cut"
        assert job.get_result(timeout=120) == 42
        assert cluster.transport.logins >= 2  # type: ignore[attr-defined]
    assert "cut off from us, to end" in caplog.text
    assert _accounted(since, ["cut-sbatch"]) == ["cut-sbatch"]


def test_connection_cut_during_a_wheel_upload(
    faults: Status, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's wheel goes to the store over SFTP; the connection dies after its
    first 16 KiB. The upload starts again on a new connection; the job runs from it."""
    import hashlib

    from slurm._transport import sftpfiles

    real = sftpfiles.atomic_write
    cuts: list[int] = []

    def atomic_write(sftp: Any, path: str, mode: int, fill: Callable[[Any], None]) -> None:
        if cuts or not path.endswith(".whl"):
            return real(sftp, path, mode, fill)

        class CutAfterFirstWrite:
            def __init__(self, f: Any) -> None:
                self.f = f

            def write(self, data: bytes) -> None:
                self.f.write(data)
                if not cuts:
                    cuts.append(_cut_every_session())

        return real(sftp, path, mode, lambda f: fill(CutAfterFirstWrite(f)))

    monkeypatch.setattr(sftpfiles, "atomic_write", atomic_write)
    monkeypatch.setattr(sftpfiles, "_UPLOAD_CHUNK", 16 * 1024)
    envs = home_tmp / "envs"
    packaging = {"type": "wheel", "env_dir": str(envs), "project": None}
    since = _next_second()
    with _ssh_cluster(faults, home_tmp / "jobs", packaging=packaging):
        assert add.with_options(job_name="after-cut-upload")(2, 3).get_result(timeout=300) == 5
    assert cuts and cuts[0] >= 1, "no upload was cut"
    stored = list((envs / ".store").glob("*/*.whl"))
    assert stored
    for wheel in stored:  # complete: each hashes to its directory's name
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == wheel.parent.name
    assert _accounted(since, ["after-cut-upload"]) == ["after-cut-upload"]


# --- the base directory full ---------------------------------------------------------


@pytest.fixture()
def small_disk(faults: Status, home_tmp: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs under $HOME; the faults cluster's one node is this machine, so
    its jobs see it."""
    mount = home_tmp / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_base_dir_is_a_clear_error_and_nothing_is_left(small_disk: Path) -> None:
    base = small_disk / "jobs"
    filler = small_disk / "filler"
    with _cluster(base) as cluster:
        assert add(1, 1).get_result(timeout=120) == 2  # the preflight made the layout
        before = _job_dirs(base)
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            f.write(b"x" * 1024 * 1024)  # fill it up
        with pytest.raises(ConfigurationError, match=r"No space left on device.*Nothing was"):
            add(2, 2)
        assert _job_dirs(base) == before
        filler.unlink()
        assert add(3, 3).get_result(timeout=120) == 6  # space again: it works again
        assert cluster.get_job(cluster.store.job_ids()[-1]).get_result(timeout=10) == 2
