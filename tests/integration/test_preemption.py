"""Preemption, requeue and time limits on the real dev cluster.

`urgent` is a higher priority tier whose jobs preempt `debug` and `compute`
jobs with REQUEUE; `urgent` itself is never preempted.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import jobfuncs
import pytest

from slurm import Cluster, Job, JobState
from slurm.errors import JobTerminatedError
from slurm.examples.parallel_train_eval.workflow import parallel_train_eval_workflow


def _squeue(*args: str) -> str:
    return subprocess.run(
        ["squeue", "-h", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _preempt(*victims: str) -> list[str]:
    """On each node a victim runs on, submit an urgent job that needs every CPU not held
    by another urgent job there, so Slurm pushes the lower-tier jobs off that node."""
    nodes = sorted({_squeue("-j", victim, "-o", "%N") for victim in victims})
    preemptors = []
    for node in nodes:
        total = int(
            subprocess.run(
                ["sinfo", "-h", "-N", "-n", node, "-o", "%c"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
        )
        urgent = _squeue("-p", "urgent", "-t", "RUNNING", "-w", node, "-o", "%C")
        free = total - sum(int(cpus) for cpus in urgent.split())
        argv = ["sbatch", "--parsable", "-p", "urgent", "-w", node, f"-c{free}", "--mem=512M"]
        out = subprocess.run(
            [*argv, "-J", "preemptor", "--wrap", "sleep 2"],
            capture_output=True,
            text=True,
            check=True,
        )
        preemptors.append(out.stdout.strip().split(";")[0])
    return preemptors


def _wait_running(job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        if out == "RUNNING":
            return
        time.sleep(0.2)
    pytest.fail(f"job {job_id} never ran")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def _runs_of(*job_ids: str) -> dict[str, list[str]]:
    """Every row sacct has for these jobs, requeued runs included (--duplicates)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--duplicates", "-j", ",".join(job_ids), "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runs: dict[str, list[str]] = {}
    for line in out.splitlines():
        job_id, _, state = line.partition("|")
        runs.setdefault(job_id, []).append(state)
    return runs


def _ended_runs_of(job_id: str, timeout: float = 60) -> list[str]:
    """sacct's rows of a job whose result is already written: its last run may still show
    RUNNING (the runner wrote the result, Slurm has not closed the step), so wait until
    accounting has the end too."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs_of(job_id).get(job_id, [])
        unfinished = not runs or runs[-1] in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED")
        if not unfinished or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def test_preempted_task_is_requeued_and_returns(cluster: Cluster) -> None:
    job = jobfuncs.report_restarts(6)
    _wait_running(job.id)
    _preempt(job.id)
    assert job.get_result(timeout=180) >= 1  # the same call ran again, same job id
    assert job.requeue_count >= 1
    assert job.state is JobState.COMPLETED
    runs = _runs_of(job.id)[job.id]
    assert "PREEMPTED" in runs or "REQUEUED" in runs, runs


def test_time_limit_checkpoints_requeues_and_resumes(cluster: Cluster, tmp_path: Path) -> None:
    job = jobfuncs.resume_after_time_limit(str(tmp_path))
    result = job.get_result(timeout=240)
    assert result["restart"] >= 1
    assert result["resumed_from"]["steps"] > 0  # the callback saved real progress
    assert job.requeue_count >= 1
    assert "requeued-time-limit" in Path(job.runs_path).read_text()


def test_a_warning_that_came_while_the_script_started_is_not_lost(cluster: Cluster) -> None:
    """Slurm sends its time-limit warning once; one that came before Python took USR1
    over is lost. The runner keeps the time itself: the job is requeued, not timed out."""
    job = jobfuncs.warned_while_the_script_starts()
    assert job.get_result(timeout=200) == 1
    assert job.requeue_count == 1
    assert "requeued-time-limit" in Path(job.runs_path).read_text()


def _run_log(job: Job[Any]) -> list[str]:
    return [line.split()[1] for line in Path(job.runs_path).read_text().splitlines()]


@pytest.mark.timeout(300)
def test_a_ten_second_task_without_a_checkpoint_ends_in_timeout_at_once(
    cluster: Cluster,
) -> None:
    """Issue 25: `time="00:00:10"` around two minutes of sleep, no checkpoint, no
    requeue option: the first time limit ends it, it is never requeued to start over."""
    job = jobfuncs.outlast_ten_seconds()
    started = time.monotonic()
    with pytest.raises(JobTerminatedError, match="TIMEOUT"):
        job.get_result(timeout=280)
    print(f"TIMEOUT {time.monotonic() - started:.0f} s after submission")  # bench, not asserted
    assert _runs_of(job.id)[job.id] == ["TIMEOUT"]  # one run in Slurm's records
    assert job.requeue_count == 0 and _run_log(job) == ["start"]


@pytest.mark.timeout(400)
def test_a_requeued_call_that_made_no_progress_is_not_requeued_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every run checkpoints the same state (it never gets past step 0): the first run is
    requeued (nothing to compare with yet), the second wrote nothing new, so it runs on
    into TIMEOUT instead of starting a third time (max_requeues=5 would allow it)."""
    job = jobfuncs.stuck_before_its_first_step(str(tmp_path))
    with pytest.raises(JobTerminatedError, match="made no progress") as info:
        job.get_result(timeout=380)
    assert info.value.state == "TIMEOUT"
    assert _run_log(job) == ["start", "requeued-time-limit", "start", "no-progress"]
    requeued, stopped = (
        line.split("progress=")[1]
        for line in Path(job.runs_path).read_text().splitlines()
        if "progress=" in line
    )
    assert requeued == stopped  # the same fingerprint: the same checkpoint again
    assert "wrote nothing new since the previous run" in job.get_stderr()
    assert "its previous run made no progress" in job.why().answer
    assert _runs_of(job.id)[job.id] == ["REQUEUED", "TIMEOUT"]  # Slurm's records: two runs


@pytest.mark.timeout(400)
def test_a_checkpointing_task_resumes_across_several_time_limits(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Each run gets further (its checkpoint differs from the run before), so the
    no-progress stop never applies: requeued at two time limits, done in the third run."""
    job = jobfuncs.resume_twice(str(tmp_path))
    assert job.get_result(timeout=380) == {"segments": 2, "restart": 2}
    assert _run_log(job) == ["start", "requeued-time-limit"] * 2 + ["start", "finished"]
    assert _ended_runs_of(job.id) == ["REQUEUED", "REQUEUED", "COMPLETED"]


def _journal(workflow_dir: Path) -> list[dict[str, object]]:
    path = workflow_dir / "journal.jsonl"
    if not path.exists():
        return []
    latest: dict[int, dict[str, object]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        latest[int(record["seq"])] = record
    return [latest[k] for k in sorted(latest)]


def _segment_ids(workflow_dir: Path) -> list[str]:
    """The segments sbatch has answered for (a journal entry is written before sbatch runs,
    without a job id, and again with it once sbatch answered)."""
    return [
        str(e["job_id"])
        for e in _journal(workflow_dir)
        if e["task"] == "train_epoch_segment" and e["job_id"]
    ]


def _every_recorded_id(workflow_dir: Path) -> dict[str, list[str]]:
    """Every job id the journal ever recorded, by task, across every run of the workflow:
    a restarted run that submitted a call again (instead of reattaching) adds an id."""
    ids: dict[str, list[str]] = {}
    for line in (workflow_dir / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        recorded = ids.setdefault(str(record["task"]), [])
        if record["job_id"] and record["job_id"] not in recorded:
            recorded.append(str(record["job_id"]))
    return ids


def _check_tutorial_outcome(job_dir: Path, epochs: int, steps: int, cap: int) -> None:
    shared = job_dir / "shared"
    for epoch in range(epochs):
        checkpoint = json.loads((shared / "checkpoints" / f"epoch_{epoch:03d}.json").read_text())
        assert checkpoint["steps_completed"] == steps
        metrics = json.loads((shared / "metrics" / f"epoch_{epoch:03d}.json").read_text())
        assert metrics["steps_completed"] == steps
    # Each call was submitted once, whatever restarts the workflow had: by the journal's
    # every record, and by the job store's index (one entry per id sbatch gave; the
    # workflow's own job and its children, nothing else shares this base directory).
    recorded = _every_recorded_id(job_dir)
    segments = recorded["train_epoch_segment"]
    assert len(segments) == epochs * math.ceil(steps / cap), recorded
    assert len(recorded["evaluate_epoch"]) == epochs, recorded
    children = {job_id for ids in recorded.values() for job_id in ids}
    index = {p.name for p in (job_dir.parent / ".index").iterdir()}
    assert children < index and len(index) == len(children) + 1, (index, recorded)
    # Slurm's own records: one job per segment, each completed (some after a requeue).
    names = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(segments), "-o", "JobID,JobName,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(names) == len(segments), names
    assert all(line.endswith("|train_epoch_segment|COMPLETED") for line in names), names


@pytest.fixture()
def slow_cluster(devcluster: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Every job first sleeps 3 s, so that there is a running segment to preempt."""
    with Cluster(
        backend_type="local",
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
        default_options={"setup": "sleep 3"},
    ) as c:
        yield c


def test_tutorial_survives_preemption_of_a_training_segment(slow_cluster: Cluster) -> None:
    # The orchestrator sits in `urgent` (never preempted); segments in `debug`.
    flow = parallel_train_eval_workflow.with_options(partition="urgent")
    job = flow(
        epochs=2, epoch_steps=4, steps_per_job_cap=2, partition_train=None, partition_eval=None
    )
    workflow_dir = Path(job.job_dir)
    deadline = time.monotonic() + 60
    while len(_segment_ids(workflow_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = _segment_ids(workflow_dir)[-1]
    _wait_running(victim)
    _preempt(victim)
    assert job.get_result(timeout=300).endswith("state.json")
    _check_tutorial_outcome(workflow_dir, 2, 4, 2)
    assert "PREEMPTED" in _runs_of(victim)[victim] or "REQUEUED" in _runs_of(victim)[victim]


def test_tutorial_survives_preemption_of_the_orchestrator(slow_cluster: Cluster) -> None:
    # Everything in `debug`: urgent jobs push the orchestrator and its running segment
    # off their nodes; both come back and the workflow reattaches from its journal.
    job = parallel_train_eval_workflow(
        epochs=2, epoch_steps=4, steps_per_job_cap=2, partition_train=None, partition_eval=None
    )
    workflow_dir = Path(job.job_dir)
    deadline = time.monotonic() + 90
    while len(_segment_ids(workflow_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    segment = _segment_ids(workflow_dir)[-1]
    _wait_running(segment)
    _preempt(job.id, segment)
    assert job.get_result(timeout=300).endswith("state.json")
    assert job.requeue_count >= 1
    _check_tutorial_outcome(workflow_dir, 2, 4, 2)


def test_scontrol_requeue_of_the_orchestrator_reattaches(slow_cluster: Cluster) -> None:
    job = parallel_train_eval_workflow(
        epochs=2, epoch_steps=4, steps_per_job_cap=2, partition_train=None, partition_eval=None
    )
    workflow_dir = Path(job.job_dir)
    deadline = time.monotonic() + 90
    while len(_segment_ids(workflow_dir)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job.id], check=True)
    assert job.get_result(timeout=300).endswith("state.json")
    assert job.requeue_count >= 1
    _check_tutorial_outcome(workflow_dir, 2, 4, 2)


def test_job_the_cluster_cannot_requeue_is_resubmitted_by_the_client(cluster: Cluster) -> None:
    job = jobfuncs.report_restarts(6)
    first_id = job.id
    _wait_running(first_id)
    # The runner has started the call (a run Slurm ends before that is not a start the
    # resubmission could count).
    deadline = time.monotonic() + 30
    while " start " not in _read(job.runs_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    # As on a cluster with JobRequeue=0 or PreemptMode=CANCEL: Slurm ends it PREEMPTED.
    subprocess.run(["scontrol", "update", f"jobid={first_id}", "requeue=0"], check=True)
    _preempt(first_id)
    assert job.get_result(timeout=180) >= 1  # ran again, knowing it is a second attempt
    assert job.previous_ids == [first_id] and job.id != first_id
    assert _runs_of(first_id)[first_id][-1] == "PREEMPTED"
    assert job.requeue_count >= 1
