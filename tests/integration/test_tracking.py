"""Job tracking when Slurm is less than healthy: no accounting, a controller restart.

These tests change the shared dev cluster and put it back as they found it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jobfuncs
import pytest

import slurm.devcluster as dc
from slurm import Cluster, JobState, JobTerminatedError


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _in_squeue(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def _state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture()
def without_accounting(devcluster: dc.Status) -> Iterator[dc.Status]:
    status = dc.up(devcluster.state_dir, accounting=False)
    assert not status.accounting
    try:
        yield status
    finally:
        dc.up(devcluster.state_dir, accounting=True)


def test_tracking_without_accounting(without_accounting: dc.Status, tmp_path: Path) -> None:
    base = str(tmp_path / "jobs")
    with Cluster(backend_type="local", job_base_dir=base, default_partition="debug") as cluster:
        done = jobfuncs.add(2, 2)
        cancelled = jobfuncs.sleep_forever()
        assert done.get_result(timeout=60) == 4
        _wait_for(lambda: _state(cancelled.id) == "RUNNING", 60, "the job to run")
        cancelled.cancel()
        with pytest.raises(JobTerminatedError, match="CANCELLED"):
            cancelled.get_result(timeout=60)
        assert cluster.tracker.accounting in (None, False)
    # Once Slurm has forgotten both (MinJobAge), only our own files can tell.
    _wait_for(lambda: not _in_squeue(done.id) and not _in_squeue(cancelled.id), 90, "purge")
    later = Cluster(backend_type="local", job_base_dir=base)
    assert later.get_job(done.id).get_result(timeout=30) == 4
    with pytest.raises(JobTerminatedError, match="ended"):
        later.get_job(cancelled.id).get_result(timeout=60)
    assert later.tracker.accounting is False
    later.close()


def test_controller_restart_during_a_wait(devcluster: dc.Status, tmp_path: Path) -> None:
    with Cluster(
        backend_type="local", job_base_dir=str(tmp_path / "jobs"), default_partition="debug"
    ):
        job = jobfuncs.sleep_then(8, "survived")
        _wait_for(lambda: _state(job.id) == "RUNNING", 60, "the job to run")
        controller = dc.status(devcluster.state_dir).daemons["slurmctld"]
        assert controller is not None
        os.kill(controller, signal.SIGTERM)  # a daemon the dev cluster (this project) started
        _wait_for(lambda: not Path(f"/proc/{controller}").exists(), 30, "slurmctld to stop")
        time.sleep(3)  # the tracker meets a controller that does not answer
        dc.up(devcluster.state_dir)
        assert job.get_result(timeout=120) == "survived"
        assert job.state is JobState.COMPLETED
        after = jobfuncs.add(1, 2)  # and submission works again
        assert after.get_result(timeout=60) == 3
