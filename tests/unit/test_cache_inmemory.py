"""cache=True against the in-memory Slurm (fakeslurm): hits, misses, partial maps, and
entries that must not be trusted. The same paths run on the dev cluster in
tests/integration/test_cache.py."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeslurm import FakeSlurm

from slurm import Cluster, task
from slurm._wire.journal import Journal
from slurm.errors import ConfigurationError


@task(time="00:01:00", cache=True)
def square(x: int) -> int:
    return x * x


@task(time="00:01:00", cache=True)
def fails(x: int) -> int:
    raise ValueError(f"no {x}")


@task(time="00:01:00")
def total(values: list[int]) -> int:
    return sum(values)


@task(time="00:01:00")
def plus_one(x: int) -> int:
    return x + 1


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    return FakeSlurm()


@pytest.fixture()
def cluster(fake: FakeSlurm, tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "jobs"), python="python3") as c:
        yield c


def _entries(cluster: Cluster) -> list[Path]:
    return sorted(Path(cluster.cache.directory).glob("*.json"))


def test_a_second_call_is_answered_from_the_cache_without_a_job(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    first = square(4)
    fake.run_all()
    assert first.get_result(timeout=10) == 16 and first.cached is None
    again = square(4)
    assert fake.calls("sbatch") == 1  # the second call submitted nothing
    assert again.done() and again.get_result(timeout=0) == 16
    assert again.cached is not None
    assert (again.cached.job_id, again.cached.job_dir) == (first.id, first.job_dir)
    assert again.id == first.id and "(cached)" in repr(again)
    (listed,) = cluster.cache.list()
    assert listed.hit and listed.entry.task == "square"
    assert cluster.cache.show(listed.entry.key[:8]).entry == again.cached


def test_a_run_that_failed_or_has_not_finished_is_no_hit(cluster: Cluster, fake: FakeSlurm) -> None:
    pending = square(5)
    assert square(5).id != pending.id  # no result yet: submitted again
    bad = fails(1)
    fake.run_all()
    assert isinstance(bad.exception(timeout=10), ValueError)
    assert fails(1).id != bad.id
    assert fake.calls("sbatch") == 4
    # One entry per key: the newer call's replaced the older's.
    assert sorted(c.state for c in cluster.cache.list()) == ["done", "no result"]
    fake.run_all()
    assert sorted(c.state for c in cluster.cache.list()) == ["done", "failed"]


def test_a_map_over_partly_cached_items_submits_an_array_of_the_others(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    warm = square.map(range(6))
    fake.run_all()
    assert warm.get_results(timeout=10) == [x * x for x in range(6)]
    before = fake.calls("sbatch")
    mixed = square.map(range(10))
    assert fake.calls("sbatch") == before + 1
    (array_id,) = mixed.array_ids
    assert sorted(k for k in fake.jobs if k.startswith(array_id + "_")) == [
        f"{array_id}_{i}" for i in range(4)
    ]
    assert mixed.cached == list(range(6))
    fake.run_all()
    assert mixed.get_results(timeout=10) == [x * x for x in range(10)]
    # The mixed map as an argument: each element names its own result, in item order.
    summed = total(mixed)
    fake.run_all()
    assert summed.get_result(timeout=10) == sum(x * x for x in range(10))
    everything = square.map(range(10))
    assert everything.array_ids == [] and fake.calls("sbatch") == before + 2
    assert everything.get_results(timeout=0) == [x * x for x in range(10)]


def test_a_job_argument_answered_from_the_cache_needs_no_afterok(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    square(3)
    fake.run_all()
    cached = square(3)
    assert cached.cached is not None
    child = plus_one(cached)
    assert fake.jobs[child.id].dependency == ""  # nothing to wait for
    fake.run_all()
    assert child.get_result(timeout=10) == 10


def test_an_argument_that_cannot_be_hashed_stops_before_anything_is_written(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    with pytest.raises(ConfigurationError, match=r"argument 'x' .*cache_key="):
        square(threading.Lock())
    assert fake.calls("sbatch") == 0
    assert not Path(cluster.base_dir).exists() or not any(
        p for p in Path(cluster.base_dir).iterdir() if not p.name.startswith(".")
    )


@pytest.mark.parametrize("damage", ["corrupt", "version", "sdk", "mode", "other-key", "outside"])
def test_an_entry_that_cannot_be_trusted_is_a_miss_with_a_warning(
    cluster: Cluster, fake: FakeSlurm, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    square(6)
    fake.run_all()
    (path,) = _entries(cluster)
    record = json.loads(path.read_text())
    if damage == "corrupt":
        path.write_text(path.read_text()[:40])
    elif damage == "mode":
        os.chmod(path, 0o666)  # noqa: S103 (a file others may write: refused)
    else:
        changes: dict[str, dict[str, Any]] = {
            "version": {"version": 99},
            "sdk": {"sdk_version": "0.0.1"},
            "other-key": {"key": "0" * 64},
            "outside": {"job_dir": "/etc"},
        }
        change = changes[damage]
        path.write_text(json.dumps({**record, **change}))
    with caplog.at_level(logging.WARNING, logger="slurm.cache"):
        again = square(6)
    assert again.cached is None and fake.calls("sbatch") == 2
    assert "is not used (a miss)" in caplog.text
    expected = {
        "corrupt": "cannot be read",
        "version": "version 99",
        "sdk": "slurm-sdk 0.0.1",
        "mode": "Refusing to use the cache entry",
        "other-key": "another key",
        "outside": "outside",
    }[damage]
    assert expected in caplog.text


def test_a_result_file_that_fails_the_trust_check_is_a_miss(
    cluster: Cluster, fake: FakeSlurm, caplog: pytest.LogCaptureFixture
) -> None:
    first = square(7)
    fake.run_all()
    first.get_result(timeout=10)
    os.chmod(first.result_path, 0o666)  # noqa: S103 (refused)
    # A new run of the program (this session remembers the file as it was).
    rerun = Cluster(transport=fake, job_base_dir=cluster.base_dir, python="python3")
    with rerun, caplog.at_level(logging.WARNING, logger="slurm.cache"):
        assert rerun.submit(square)(7).cached is None
    assert "Refusing to unpickle" in caplog.text


def test_clear_forgets_entries(cluster: Cluster, fake: FakeSlurm) -> None:
    square(1)
    square(2)
    fake.run_all()
    assert len(cluster.cache.list()) == 2
    assert cluster.cache.clear(older_than_days=1) == []  # both written just now
    (one,) = cluster.cache.clear(keys=[cluster.cache.list()[0].entry.key[:10]], dry_run=True)
    assert len(cluster.cache.list()) == 2
    assert [c.entry.key for c in cluster.cache.clear(keys=[one.entry.key])] == [one.entry.key]
    assert len(cluster.cache.clear()) == 1 and cluster.cache.list() == []
    with pytest.raises(ConfigurationError, match="no entry"):
        cluster.cache.show("abc")


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "still-running"])
def test_a_restarted_workflow_replays_cached_calls_in_their_journal_positions(
    fake: FakeSlurm, tmp_path: Path, finished: bool
) -> None:
    """The first run's cached call is a hit (or, unfinished, reattached) on the restart, and
    the plain call after it still finds its own journal position."""
    journal_path = tmp_path / "journal.jsonl"
    base = str(tmp_path / "j")
    with Cluster(transport=fake, job_base_dir=base, python="python3") as first:
        first.session.journal = Journal(journal_path)
        cached, plain, mapped = square(2), plus_one(2), square.map([2, 3])
        if finished:
            fake.run_all()
    assert fake.calls("sbatch") == 3
    with Cluster(transport=fake, job_base_dir=base, python="python3") as again:
        again.session.journal = Journal(journal_path)
        replayed = square(2)
        assert (replayed.cached is not None) is finished and replayed.id == cached.id
        assert plus_one(2).id == plain.id  # the journal's position after it: reattached
        rerun_map = square.map([2, 3])
        assert [job.id for job in rerun_map] == [job.id for job in mapped]
        assert fake.calls("sbatch") == 3  # nothing submitted again
        fake.run_all()
        assert replayed.get_result(timeout=10) == 4 and rerun_map.get_results(timeout=10) == [4, 9]


def test_prune_keeps_the_top_directory_of_every_cached_result(
    cluster: Cluster, fake: FakeSlurm
) -> None:
    square(8)
    fake.run_all()
    (cached,) = cluster.cache.list()
    base = cluster.base_dir
    # A workflow's child: its entry points below the workflow's own directory.
    child_dir = f"{base}/flow-20261201-101500-abcdef/tasks/square-20261201-101501-123456"
    Path(child_dir).mkdir(parents=True, mode=0o700)
    Path(child_dir, "result.json").write_text(Path(cached.entry.paths.outcome).read_text())
    Path(child_dir, "result.pkl").write_bytes(Path(cached.entry.paths.result).read_bytes())
    entry = dataclasses.replace(cached.entry, key="c" * 64, job_dir=child_dir)
    cluster.cache.record(entry)
    failed = dataclasses.replace(cached.entry, key="d" * 64, job_dir=f"{base}/gone-dir")
    cluster.cache.record(failed)  # no result there: nothing to keep
    assert cluster.cache.kept_dirs() == sorted(
        [cached.entry.job_dir, f"{base}/flow-20261201-101500-abcdef"]
    )
