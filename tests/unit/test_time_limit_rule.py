"""At Slurm's time-limit warning the runner requeues a call only when that can help."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slurm._job.context import requeue_callbacks, requeue_event
from slurm._job.progress import fingerprint, outcome_text, start_watching, stop_watching
from slurm._job.signals import Guard, Interrupted
from slurm._wire.payload import RunPolicy


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    requeue_event.clear()
    requeue_callbacks.clear()
    yield
    requeue_event.clear()
    requeue_callbacks.clear()


def _guard(at_time_limit: bool | None) -> Guard:
    guard = Guard()
    guard.configure(
        can_requeue=at_time_limit is not False,
        needs_checkpoint=at_time_limit is None,
        grace=None,
        job_id="7",
    )
    guard.in_task = True
    return guard


def test_without_a_checkpoint_the_call_runs_on_into_its_timeout() -> None:
    guard = _guard(None)
    guard._handle(signal.SIGUSR1, None)
    assert guard.signum is None and requeue_event.is_set()


def test_a_registered_checkpoint_is_saved_and_the_call_requeued() -> None:
    saved: list[str] = []
    requeue_callbacks.append(lambda: saved.append("checkpoint"))
    guard = _guard(None)
    with pytest.raises(Interrupted):
        guard._handle(signal.SIGUSR1, None)
    assert saved == ["checkpoint"]


def test_requeue_on_time_limit_true_requeues_without_a_checkpoint() -> None:
    with pytest.raises(Interrupted):
        _guard(True)._handle(signal.SIGUSR1, None)


def test_a_retry_on_timeout_never_requeues_with_the_same_limit() -> None:
    requeue_callbacks.append(lambda: None)
    guard = _guard(False)
    guard._handle(signal.SIGUSR1, None)
    assert guard.signum is None


def test_the_default_policy_is_only_with_a_checkpoint() -> None:
    assert RunPolicy().requeue_on_time_limit is None


@pytest.fixture
def usr1_seen() -> Iterator[list[int]]:
    """USR1 sent to this process lands in the list instead of a guard."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGUSR1, previous)


def _wait_for(seen: list[int], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_early_warning_is_held_until_the_grace_asked_for(usr1_seen: list[int]) -> None:
    """Slurm sends USR1 up to a minute early: with 45 s asked and 57.5 s left the guard
    waits the 12.5 s, then delivers it again, and only that one checkpoints."""
    saved: list[str] = []
    requeue_callbacks.append(lambda: saved.append("checkpoint"))
    guard = Guard()
    guard.configure(can_requeue=True, needs_checkpoint=True, grace=45, job_id="7")
    asked: list[str] = []

    def time_left(job_id: str) -> float:
        asked.append(job_id)
        return 57.5

    guard.time_left = time_left
    slept: list[float] = []
    guard.sleep = slept.append
    guard.in_task = True
    guard._handle(signal.SIGUSR1, None)  # early: held, nothing saved yet
    assert saved == [] and not requeue_event.is_set()
    _wait_for(usr1_seen)
    assert usr1_seen == [signal.SIGUSR1] and asked == ["7"]
    assert slept == [12.5]
    with pytest.raises(Interrupted):
        guard._handle(signal.SIGUSR1, None)  # the one the guard delivered
    assert saved == ["checkpoint"]


def test_a_warning_before_the_policy_is_read_waits_for_it(usr1_seen: list[int]) -> None:
    """A USR1 that comes while the runner still loads the call is not lost: once the
    policy is known (and a checkpoint registered) it is delivered again."""
    guard = Guard()
    guard.time_left = lambda job_id: None  # squeue cannot tell: deliver at once
    guard.sleep = lambda seconds: pytest.fail("nothing to wait for")
    guard._handle(signal.SIGUSR1, None)
    assert guard.signum is None and not usr1_seen
    requeue_callbacks.append(lambda: None)
    guard.configure(can_requeue=True, needs_checkpoint=True, grace=45, job_id="7")
    _wait_for(usr1_seen)
    assert usr1_seen == [signal.SIGUSR1]
    guard._handle(signal.SIGUSR1, None)  # not in the task yet: noted for the runner
    assert guard.signum == signal.SIGUSR1


def test_a_task_with_its_own_signal_is_warned_at_once() -> None:
    requeue_callbacks.append(lambda: None)
    guard = _guard(None)  # grace None: the task's own --signal, never held
    with pytest.raises(Interrupted):
        guard._handle(signal.SIGUSR1, None)


def test_the_policy_carries_the_grace_of_the_signal_it_asked_for() -> None:
    from slurm._client.submission import requeue_policy

    flags, policy = requeue_policy({}, {"requeue_grace": 45})
    assert flags["signal"] == "B:USR1@45" and policy.requeue_grace == 45
    _, own = requeue_policy({"signal": "USR2@30"}, {"requeue_grace": 45})
    assert own.requeue_grace is None


# --- the no-progress stop ----------------------------------------------------------------


def _saver(path: Path, state: dict[str, int]) -> Callable[[], None]:
    """A checkpoint the usual way: a temporary file, renamed over the checkpoint."""

    def save() -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{state['step']}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    return save


def _warned(previous: str | None, recorded: list[tuple[str, str | None]]) -> Guard:
    guard = Guard()
    guard.record = lambda event, progress: recorded.append((event, progress))
    guard.configure(
        can_requeue=True, needs_checkpoint=True, grace=None, job_id="7", previous_progress=previous
    )
    guard.in_task = True
    return guard


def test_a_run_whose_checkpoint_wrote_nothing_new_is_not_requeued_again(tmp_path: Path) -> None:
    state = {"step": 3}
    requeue_callbacks.append(_saver(tmp_path / "ckpt.json", state))
    recorded: list[tuple[str, str | None]] = []
    first = _warned(None, recorded)
    with pytest.raises(Interrupted):  # the first run: requeued, its progress noted
        first._handle(signal.SIGUSR1, None)
    assert first.progress is not None and recorded == []

    requeue_event.clear()  # the next run got no further: the same checkpoint again
    again = _warned(first.progress, recorded)
    again._handle(signal.SIGUSR1, None)
    assert again.stalled and again.signum is None  # runs on into its TIMEOUT
    assert recorded == [("no-progress", first.progress)]

    requeue_event.clear()  # a run that got further is requeued
    state["step"] = 4
    further = _warned(first.progress, recorded)
    with pytest.raises(Interrupted):
        further._handle(signal.SIGUSR1, None)
    assert further.progress != first.progress and not further.stalled


def test_a_failing_checkpoint_is_no_progress_and_a_preemption_notes_its_own(
    tmp_path: Path,
) -> None:
    def broken() -> None:
        raise OSError("disk full")

    requeue_callbacks.append(broken)
    recorded: list[tuple[str, str | None]] = []
    preempted = _warned(None, recorded)
    preempted._handle(signal.SIGTERM, None)  # preemption: noted for the next run's comparison
    assert recorded == [("checkpointed", preempted.progress)]
    requeue_event.clear()
    again = _warned(preempted.progress, recorded)
    again._handle(signal.SIGUSR1, None)
    assert again.stalled and recorded[-1] == ("no-progress", preempted.progress)


def test_the_fingerprint_is_the_content_written_not_the_names_of_temporaries(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "ckpt.json"

    def written(text: str, temp: str) -> list[str]:
        start_watching()
        try:
            (tmp_path / temp).write_text(text)
            os.replace(tmp_path / temp, checkpoint)
            with open(tmp_path / "log.txt", "a") as log:  # appended: counts too
                log.write("")
        finally:
            seen = stop_watching()
        return seen

    one = written("step 1", "a.tmp")
    assert str(checkpoint) in one and str(tmp_path / "log.txt") in one
    same = fingerprint(["returned None"], one)
    assert fingerprint(["returned None"], written("step 1", "b.tmp")) == same
    assert fingerprint(["returned None"], written("step 2", "c.tmp")) != same
    assert fingerprint(["returned 5"], written("step 1", "d.tmp")) != same
    # Past the hash budget a file counts by size and mtime: a rewrite is progress.
    big = fingerprint([], written("step 1", "e.tmp"), budget=0)
    os.utime(checkpoint, ns=(1, 1))
    assert fingerprint([], [str(checkpoint)], budget=0) != big
    # Reading is not writing, and bytecode Python caches is not the task's.
    start_watching()
    checkpoint.read_text()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"")
    assert stop_watching() == []
    assert outcome_text(raised=OSError("x")) == "raised builtins.OSError"


# --- the runner's own clock --------------------------------------------------------------


def _keeping_time(warn_at: float, left: float | None) -> tuple[Guard, list[float]]:
    guard = Guard()
    guard._owner = os.getpid()  # as install() does, leaving USR1 to the test's handler
    guard.time_left = lambda job_id: left
    slept: list[float] = []
    guard.sleep = slept.append
    guard.clock = lambda: 1000.0
    guard.configure(can_requeue=True, needs_checkpoint=False, grace=45, job_id="7", warn_at=warn_at)
    return guard, slept


def test_a_warning_slurm_never_delivered_is_given_by_the_runner_at_its_time(
    usr1_seen: list[int], capfd: pytest.CaptureFixture[str]
) -> None:
    """Due at 1015 and it is 1000: the clock waits 15 s, squeue says 45 s are left, and
    the runner warns itself (Slurm's one USR1 came while the script ignored it)."""
    _, slept = _keeping_time(1015.0, 45.0)
    _wait_for(usr1_seen)
    assert usr1_seen == [signal.SIGUSR1] and slept == [15.0]
    assert "did not reach the job" in capfd.readouterr().err


def test_when_squeue_cannot_tell_the_scripts_time_decides(usr1_seen: list[int]) -> None:
    """A warning held while squeue cannot answer waits for the time the script gave,
    not a moment less (delivered at once, it would come before the checkpoint)."""
    guard = Guard()
    guard.time_left = lambda job_id: None
    slept: list[float] = []
    guard.sleep = slept.append
    guard.clock = lambda: 1000.0
    guard._handle(signal.SIGUSR1, None)  # early, before the policy
    guard.configure(can_requeue=True, needs_checkpoint=True, grace=45, job_id="7", warn_at=1012)
    _wait_for(usr1_seen)
    assert usr1_seen == [signal.SIGUSR1] and slept == [12.0]


def test_the_clock_stays_quiet_once_slurm_warned(usr1_seen: list[int]) -> None:
    guard = Guard()
    guard._owner = os.getpid()
    gate: list[float] = []
    guard.sleep = gate.append
    guard.clock = lambda: 1000.0
    guard.time_left = lambda job_id: 45.0
    guard._due = True  # Slurm's warning came and was delivered
    guard.configure(can_requeue=True, needs_checkpoint=False, grace=45, job_id="7", warn_at=990)
    time.sleep(0.2)
    assert usr1_seen == []


def test_no_clock_without_a_requeue_to_make_or_in_a_forked_call(usr1_seen: list[int]) -> None:
    """A call that cannot be requeued, and a guard whose handlers belong to another
    process (a packed call forked from its element), keep no time."""
    never = Guard()
    never._owner = os.getpid()
    never.configure(can_requeue=False, needs_checkpoint=False, grace=45, job_id="7", warn_at=990)
    forked = Guard()
    forked._owner = os.getpid() + 1
    forked.configure(can_requeue=True, needs_checkpoint=False, grace=45, job_id="7", warn_at=990)
    time.sleep(0.2)
    assert usr1_seen == [] and not never._keeping_time and not forked._keeping_time


def test_no_warning_is_asked_for_a_limit_no_longer_than_its_grace() -> None:
    """time=1 with the default grace of 60 s: the warning would come as the job starts
    (and kill the batch shell before its first line); no checkpoint could help."""
    from slurm._client.submission import requeue_policy, warning_flags

    flags, policy = requeue_policy({}, {})
    assert warning_flags(flags, {"time": "00:01:00"}, policy) == {"requeue": True}
    assert warning_flags(flags, {"time": 2}, policy)["signal"] == "B:USR1@60"
    assert warning_flags(flags, {}, policy)["signal"] == "B:USR1@60"  # the partition's limit


def test_the_script_says_when_the_warning_is_due() -> None:
    from slurm._client.submission import _warning_due, requeue_policy

    _, policy = requeue_policy({}, {"requeue_grace": 45})
    (line,) = _warning_due({"time": "00:01:00"}, policy)
    assert line == "export SLURM_SDK_WARN_AT=$(( ${EPOCHSECONDS:-$(date +%s)} + 15 ))"
    assert _warning_due({}, policy) == [] and _warning_due({"time": "00:00:30"}, policy) == []
    out = subprocess.run(["bash", "-c", f"{line}; echo $SLURM_SDK_WARN_AT"], capture_output=True)
    assert abs(int(out.stdout) - (time.time() + 15)) < 5
