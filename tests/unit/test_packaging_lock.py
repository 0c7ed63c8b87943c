"""Packaging: the mkdir lock that lets exactly one client create an environment."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from slurm._client.packaging.lock import DirLock, LockPolicy
from slurm._transport import LocalTransport
from slurm.errors import ConfigurationError

FAST = LockPolicy(timeout=10, stale_after=30, poll=0.05, heartbeat=0.1)


@pytest.fixture
def local() -> LocalTransport:
    return LocalTransport()


def test_acquire_records_the_owner_and_release_removes_the_lock(
    local: LocalTransport, tmp_path: Path
) -> None:
    path = tmp_path / ".lock"
    lock = DirLock(local, str(path), FAST)
    assert lock.acquire() is True
    owner = json.loads((path / "owner").read_text())
    assert owner["pid"] == os.getpid() and owner["id"] == lock.id
    assert {"host", "time"} <= set(owner)
    lock.release()
    assert not path.exists()


def test_a_ready_marker_means_no_lock_is_needed(local: LocalTransport, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text("{}")
    lock = DirLock(local, str(tmp_path / ".lock"), FAST)
    assert lock.acquire(ready_path=str(ready)) is False
    assert not (tmp_path / ".lock").exists()


def test_waiter_returns_when_the_holder_marks_ready(local: LocalTransport, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    holder = DirLock(local, str(tmp_path / ".lock"), FAST)
    assert holder.acquire(ready_path=str(ready))

    def finish() -> None:
        time.sleep(0.3)
        ready.write_text("{}")
        holder.release()

    thread = threading.Thread(target=finish)
    thread.start()
    started = time.monotonic()
    assert DirLock(local, str(tmp_path / ".lock"), FAST).acquire(ready_path=str(ready)) is False
    assert time.monotonic() - started >= 0.25
    thread.join()


def test_waiter_takes_the_lock_when_the_holder_gives_up(
    local: LocalTransport, tmp_path: Path
) -> None:
    holder = DirLock(local, str(tmp_path / ".lock"), FAST)
    assert holder.acquire()
    threading.Timer(0.2, holder.release).start()
    waiter = DirLock(local, str(tmp_path / ".lock"), FAST)
    assert waiter.acquire(ready_path=str(tmp_path / "ready.json")) is True
    assert json.loads((tmp_path / ".lock" / "owner").read_text())["id"] == waiter.id
    waiter.release()


def test_only_one_of_many_racers_gets_the_lock(local: LocalTransport, tmp_path: Path) -> None:
    path = str(tmp_path / ".lock")
    ready = tmp_path / "ready.json"
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def race() -> None:
        lock = DirLock(local, path, FAST)
        barrier.wait()
        if lock.acquire(ready_path=str(ready)):
            winners.append(lock.id)
            time.sleep(0.2)
            ready.write_text("{}")
            lock.release()

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_a_holder_that_finishes_between_a_look_and_a_mkdir_is_not_followed_by_another(
    tmp_path: Path,
) -> None:
    """The race that made two creators: a waiter looks for the ready marker (not there),
    the holder writes it and releases, the waiter's mkdir succeeds. The waiter must see
    the marker then and give the lock back. (The interleaving is forced: the marker is
    written just before the waiter's mkdir runs.)"""
    ready = tmp_path / "ready.json"

    class FinishesFirst(LocalTransport):
        def run(self, argv: Any, **kwargs: Any) -> Any:
            if list(argv)[:1] == ["mkdir"]:
                ready.write_text("{}")  # the holder, done and gone, just now
            return super().run(argv, **kwargs)

    lock = DirLock(FinishesFirst(), str(tmp_path / ".lock"), FAST)
    assert lock.acquire(ready_path=str(ready)) is False
    assert not (tmp_path / ".lock").exists()


def test_a_stale_lock_is_broken(local: LocalTransport, tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    path.mkdir()
    (path / "owner").write_text(json.dumps({"host": "gone", "pid": 1, "time": 0, "id": "x"}))
    old = time.time() - 3600
    os.utime(path, (old, old))
    lock = DirLock(local, str(path), FAST)
    assert lock.acquire() is True
    assert json.loads((path / "owner").read_text())["id"] == lock.id
    lock.release()
    assert not any(p.name.startswith(".lock") for p in tmp_path.iterdir())


def test_a_fresh_lock_is_waited_for_until_the_timeout(
    local: LocalTransport, tmp_path: Path
) -> None:
    holder = DirLock(local, str(tmp_path / ".lock"), FAST)
    assert holder.acquire()
    waiter = DirLock(local, str(tmp_path / ".lock"), LockPolicy(timeout=0.3, poll=0.05))
    with pytest.raises(ConfigurationError) as info:
        waiter.acquire()
    message = str(info.value)
    assert "Gave up after 0.3 s" in message
    assert str(os.getpid()) in message  # who holds it
    assert "rm -r" in message  # what to do
    holder.release()


def test_the_heartbeat_keeps_a_long_holder_fresh(local: LocalTransport, tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    holder = DirLock(local, str(path), FAST)
    assert holder.acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))
    time.sleep(0.5)  # several heartbeats
    age = holder.age()
    assert age is not None and age < 5
    holder.release()


def test_release_leaves_a_lock_taken_over_by_someone_else(
    local: LocalTransport, tmp_path: Path
) -> None:
    path = tmp_path / ".lock"
    first = DirLock(local, str(path), FAST)
    assert first.acquire()
    (path / "owner").write_text(json.dumps({"id": "someone-else"}))
    first.release()
    assert path.exists()


def test_a_lock_in_a_missing_directory_is_an_error(local: LocalTransport, tmp_path: Path) -> None:
    lock = DirLock(local, str(tmp_path / "missing" / ".lock"), FAST)
    with pytest.raises(ConfigurationError, match="Cannot create the lock"):
        lock.acquire()
