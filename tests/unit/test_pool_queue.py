"""A pool's queue on a local directory: entries, claims, leases, expiry, the one commit.

Two :class:`LocalQueue` objects on one directory stand for two workers; the
lease's clock is the claim file's mtime, set here with ``os.utime``. The
worker itself runs in-process over a real payload at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from slurm._api.task import Task
from slurm._client.pool import check_pool
from slurm._job.claims import LocalQueue
from slurm._job.outputs import commit_once, cpu_seconds
from slurm._job.worker import run_worker
from slurm._slurm.retry import read_attempts
from slurm._wire.layout import JobPaths
from slurm._wire.payload import Call, Envelope, Payload, RunPolicy, dumps_payload
from slurm._wire.queue import PoolPaths, QueueEntry, is_pool_call, parse_claim_name
from slurm.errors import ConfigurationError, InvalidOptionError, ResultError


def _square(x: int) -> int:
    print(f"square {x}")
    return x * x


class _Log(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


def _pool(tmp_path: Path) -> tuple[str, str]:
    base = tmp_path / "jobs"
    pool_dir = base / "pool-20261201-000000-abcd"
    for sub in ("queue/pending", "queue/claimed", "workers", "left"):
        (pool_dir / sub).mkdir(parents=True, mode=0o700)
    return str(base), str(pool_dir)


def _call_dir(base: str, name: str, count: int | None = None) -> str:
    """A job directory with real payloads (``count``: an array's elements)."""
    job_dir = Path(base) / name
    job_dir.mkdir(mode=0o700)
    (job_dir / "sys_path.txt").write_text(str(Path(__file__).parent) + "\n")
    for i in range(count or 1):
        paths = JobPaths(str(job_dir), None if count is None else i)
        Path(paths.payload).parent.mkdir(mode=0o700, exist_ok=True)
        Path(paths.stdout).parent.mkdir(mode=0o700, exist_ok=True)
        Path(paths.result).parent.mkdir(mode=0o700, exist_ok=True)
        data, _ = dumps_payload(Payload(Task(_square), Call((i + 2,)), RunPolicy(), None))
        Path(paths.payload).write_bytes(data)
    return str(job_dir)


def _put(pool_dir: str, entry: QueueEntry) -> str:
    path = f"{PoolPaths(pool_dir).pending}/{entry.name()}"
    Path(path).write_text(entry.to_json())
    os.chmod(path, 0o600)
    return path


def _age(path: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- the records -----------------------------------------------------------------------


def test_entry_round_trips_and_names_its_calls() -> None:
    entry = QueueEntry("pool-ab12-3", "/jobs/sq-1", True, 0, 2, (("A", "b"),))
    assert QueueEntry.from_json(entry.to_json()) == entry
    assert entry.name() == "pool-ab12-3-0-2.json"
    assert entry.call_ids() == [(0, "pool-ab12-3_0"), (1, "pool-ab12-3_1"), (2, "pool-ab12-3_2")]
    assert entry.single(1).name() == "pool-ab12-3-1.json"
    single = QueueEntry("pool-ab12-4", "/jobs/sq-2", False)
    assert single.name() == "pool-ab12-4.json" and single.call_ids() == [(None, "pool-ab12-4")]
    assert is_pool_call("pool-ab12-3_1") and not is_pool_call("123_1")
    assert parse_claim_name("pool-ab12-3-1.json@77_2") == ("pool-ab12-3-1.json", "77_2")
    assert parse_claim_name("pool-ab12-3-1.json@../x") is None


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"version": 2, "call_id": "pool-a-1"}),
        json.dumps({"version": 1, "call_id": "../x", "job_dir": "/j", "array": False,
                    "first": 0, "last": 0, "env": {}}),
        json.dumps({"version": 1, "call_id": "pool-a-1", "job_dir": "/j", "array": True,
                    "first": 3, "last": 1, "env": {}}),
    ],
)  # fmt: skip
def test_malformed_entries_are_refused(text: str) -> None:
    with pytest.raises(ResultError):
        QueueEntry.from_json(text)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "workers must be a whole number >= 1"),
        ({"workers": 2.5}, "workers must be a whole number"),
        ({"workers": True}, "workers must be a whole number"),
        ({"workers": 2, "min_workers": 3}, "min_workers cannot be more than workers"),
        ({"workers": 2, "idle_timeout": 0}, "idle_timeout must be a number of seconds"),
        ({"workers": 2, "lease": 1}, "lease must be"),
        ({"workers": 2, "options": {"ntasks": 2}}, "a pool's worker is one process"),
    ],
)
def test_bad_pool_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    workers = kwargs.pop("workers")
    with pytest.raises(ConfigurationError, match=match):
        check_pool(workers, **kwargs)  # type: ignore[arg-type]


def test_an_unknown_worker_option_is_refused() -> None:
    with pytest.raises(InvalidOptionError):
        check_pool(2, options={"partitoin": "debug"})
    spec = check_pool(3, min_workers=1, options={"time": "00:10:00"})
    assert (spec.workers, spec.min_workers, spec.options["time"]) == (3, 1, "00:10:00")


# --- claims and leases ------------------------------------------------------------------


def test_two_workers_never_hold_the_same_call(tmp_path: Path) -> None:
    base, pool_dir = _pool(tmp_path)
    job_dir = _call_dir(base, "sq-1")
    _put(pool_dir, QueueEntry("pool-ab-1", job_dir, False))
    one, two = (LocalQueue(pool_dir, w, lease=30, log=_Log()) for w in ("11_0", "11_1"))
    first = one.claim()
    assert first is not None and first.entry.call_ids() == [(None, "pool-ab-1")]
    assert two.claim() is None
    assert os.listdir(PoolPaths(pool_dir).claimed) == ["pool-ab-1.json@11_0"]
    one.done(first)
    assert os.listdir(PoolPaths(pool_dir).claimed) == []


def test_a_range_is_split_into_one_entry_per_call(tmp_path: Path) -> None:
    base, pool_dir = _pool(tmp_path)
    job_dir = _call_dir(base, "sq-2", count=4)
    Path(JobPaths(job_dir, 2).result).write_bytes(b"done")  # finished before: not again
    _put(pool_dir, QueueEntry("pool-ab-2", job_dir, True, 0, 3))
    one = LocalQueue(pool_dir, "12_0", lease=30, log=_Log())
    two = LocalQueue(pool_dir, "12_1", lease=30, log=_Log())
    taken = [one.claim(), two.claim(), one.claim()]
    assert sorted(c.entry.call_ids()[0][1] for c in taken if c) == [
        "pool-ab-2_0",
        "pool-ab-2_1",
        "pool-ab-2_3",
    ]
    assert one.claim() is None and two.claim() is None


def test_an_expired_claim_goes_back_with_an_attempt_recorded(tmp_path: Path) -> None:
    base, pool_dir = _pool(tmp_path)
    job_dir = _call_dir(base, "sq-3")
    _put(pool_dir, QueueEntry("pool-ab-3", job_dir, False))
    lost = LocalQueue(pool_dir, "13_0", lease=10, log=_Log())
    claim = lost.claim()
    assert claim is not None
    log = _Log()
    other = LocalQueue(pool_dir, "13_1", lease=10, log=log)
    assert other.reclaim_expired() == 0  # its heartbeat is fresh
    assert lost.heartbeat()
    _age(claim.path, 11)
    assert other.reclaim_expired() == 1
    assert not lost.heartbeat()  # the lease was lost: the worker is told
    again = other.claim()
    assert again is not None and again.entry.call_id == "pool-ab-3"
    earlier, current, _ = read_attempts(Path(JobPaths(job_dir).attempts).read_text())
    assert [(a.job_id, a.state) for a in earlier] == [("13_0", "LEASE_EXPIRED")]
    assert current == "pool-ab-3"
    assert any("13_0 LEASE_EXPIRED" in line for line in log)


def test_a_stopped_worker_gives_its_call_back(tmp_path: Path) -> None:
    base, pool_dir = _pool(tmp_path)
    job_dir = _call_dir(base, "sq-4")
    _put(pool_dir, QueueEntry("pool-ab-4", job_dir, False))
    queue = LocalQueue(pool_dir, "14_0", lease=30, log=_Log())
    claim = queue.claim()
    assert claim is not None
    queue.release(claim, "INTERRUPTED")
    assert os.listdir(PoolPaths(pool_dir).pending) == ["pool-ab-4.json"]
    earlier, _, _ = read_attempts(Path(JobPaths(job_dir).attempts).read_text())
    assert [(a.job_id, a.state) for a in earlier] == [("14_0", "INTERRUPTED")]


def test_live_workers_are_those_within_the_lease(tmp_path: Path) -> None:
    _, pool_dir = _pool(tmp_path)
    one = LocalQueue(pool_dir, "15_0", lease=10, log=_Log())
    two = LocalQueue(pool_dir, "15_1", lease=10, log=_Log())
    one.touch_worker()
    two.touch_worker()
    assert one.live_workers() == 2
    _age(f"{PoolPaths(pool_dir).workers}/15_1", 11)
    assert one.live_workers() == 1
    one.leave()
    assert one.live_workers() == 0
    # The client counts who left (no squeue needed to see a worker go).
    assert os.listdir(PoolPaths(pool_dir).left) == ["15_0"]


# --- entries a worker must not trust -------------------------------------------------


def _skipped(pool_dir: str) -> list[str]:
    skipped = Path(pool_dir, "queue", "skipped")
    return sorted(os.listdir(skipped)) if skipped.exists() else []


def test_corrupt_and_foreign_entries_are_skipped_with_a_log_line(tmp_path: Path) -> None:
    _, pool_dir = _pool(tmp_path)
    pending = PoolPaths(pool_dir).pending
    Path(pending, "pool-ab-5.json").write_text("{not json")
    Path(pending, "notes.txt").write_text("hello")
    outside = tmp_path / "elsewhere" / "sq-6"
    outside.mkdir(parents=True)
    _put(pool_dir, QueueEntry("pool-ab-6", str(outside), False))
    Path(pending, ".pool-ab-7.json.tmp").write_text("")  # being written: left alone
    log = _Log()
    queue = LocalQueue(pool_dir, "16_0", lease=30, log=log)
    assert queue.claim() is None
    assert _skipped(pool_dir) == ["notes.txt", "pool-ab-5.json", "pool-ab-6.json"]
    assert os.listdir(pending) == [".pool-ab-7.json.tmp"]
    assert len(log) == 3 and all(line.startswith("skipped the queue entry") for line in log)
    assert any("not a job directory of" in line for line in log)


def test_an_entry_or_payload_others_could_write_is_never_unpickled(tmp_path: Path) -> None:
    base, pool_dir = _pool(tmp_path)
    job_dir = _call_dir(base, "sq-8")
    payload = Path(JobPaths(job_dir).payload)
    payload.write_bytes(b"\x80\x04 would be unpickled")
    payload.chmod(0o666)
    _put(pool_dir, QueueEntry("pool-ab-8", job_dir, False))
    shared = _put(pool_dir, QueueEntry("pool-ab-9", _call_dir(base, "sq-9"), False))
    os.chmod(shared, 0o622)  # noqa: S103 (the point: others may write it)
    log = _Log()
    assert LocalQueue(pool_dir, "17_0", lease=30, log=log).claim() is None
    assert _skipped(pool_dir) == ["pool-ab-8.json", "pool-ab-9.json"]
    assert sum("others may have changed it" in line for line in log) == 2
    assert not Path(JobPaths(job_dir).result).exists()


# --- one completion ------------------------------------------------------------------------


def test_a_call_taken_twice_completes_once(tmp_path: Path) -> None:
    outcome, result = tmp_path / "r.json", tmp_path / "r.pkl"
    assert commit_once(outcome, b'{"first": 1}', result, b"first")
    assert not commit_once(outcome, b'{"second": 1}', result, b"second")
    assert (outcome.read_bytes(), result.read_bytes()) == (b'{"first": 1}', b"first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.pkl"]


def test_a_worker_runs_the_queue_and_leaves_when_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, pool_dir = _pool(tmp_path)
    settings = {"lease": 30, "heartbeat": 5, "idle_timeout": 60, "min_workers": 0}
    Path(PoolPaths(pool_dir).settings).write_text(json.dumps(settings))
    many = _call_dir(base, "sq-10", count=3)
    one = _call_dir(base, "sq-11")
    _put(pool_dir, QueueEntry("pool-ab-10", many, True, 0, 2))
    _put(pool_dir, QueueEntry("pool-ab-11", one, False))
    Path(PoolPaths(pool_dir).closing).write_text("")  # drains the queue, then exits
    done_dir = tmp_path / "done"
    done_dir.mkdir()
    env = {"SLURM_SDK_DONE_DIR": str(done_dir), "PATH": os.environ["PATH"]}
    began, cpu_began = time.time(), cpu_seconds()
    with capsys.disabled():  # the worker sends fd 1 and 2 to each call's files
        assert run_worker(pool_dir, env) == 0
    # Each call's figures are its own, not the worker process's so far.
    usage = json.loads(Path(JobPaths(many, 1).usage).read_text())
    assert usage["started"] >= began
    assert 0 <= usage["cpu_s"] <= cpu_seconds() - cpu_began
    for index in range(3):
        envelope = Envelope.from_bytes(Path(JobPaths(many, index).result).read_bytes())
        assert envelope.ok and envelope.job_id == f"pool-ab-10_{index}"
        assert Path(JobPaths(many, index).stdout).read_text() == f"square {index + 2}\n"
    assert Envelope.from_bytes(Path(JobPaths(one).result).read_bytes()).ok
    assert sorted(os.listdir(done_dir)) == [
        "pool-ab-10_0",
        "pool-ab-10_1",
        "pool-ab-10_2",
        "pool-ab-11",
    ]
    assert os.listdir(PoolPaths(pool_dir).claimed) == []
    assert os.listdir(PoolPaths(pool_dir).workers) == []


def test_a_call_cancelled_before_a_worker_took_it_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, pool_dir = _pool(tmp_path)
    settings = {"lease": 30, "heartbeat": 5, "idle_timeout": 60, "min_workers": 0}
    Path(PoolPaths(pool_dir).settings).write_text(json.dumps(settings))
    job_dir = _call_dir(base, "sq-12")
    _put(pool_dir, QueueEntry("pool-ab-12", job_dir, False))
    Path(JobPaths(job_dir).cancel).write_text("")  # what Job.cancel() writes
    Path(PoolPaths(pool_dir).closing).write_text("")
    with capsys.disabled():
        assert run_worker(pool_dir, {"PATH": os.environ["PATH"]}) == 0
    envelope = Envelope.from_bytes(Path(JobPaths(job_dir).result).read_bytes())
    assert not envelope.ok and envelope.type_name == "slurm.errors.JobTerminatedError"
    assert "cancelled" in envelope.message
    assert not Path(JobPaths(job_dir).stdout).exists()  # it never ran
