"""Workflows on the real dev cluster, and the tutorial exactly as written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from slurmrecords import wait_for_records
from tutorial import run_tutorial

from slurm import Cluster
from slurm.devcluster import Status

REPO = Path(__file__).resolve().parents[2]


def test_workflow_submits_children_from_the_node_with_their_own_options(
    cluster: Cluster,
) -> None:
    job = jobfuncs.child_facts_workflow()
    out = job.get_result(timeout=120)
    assert out["workflow_job_id"] == job.id
    assert out["facts"]["cpus_per_task"] == "2"  # not the workflow's inherited 1
    assert out["facts"]["partition"] == "compute"
    assert out["child_dir"].startswith(out["workflow_dir"] + "/tasks/")
    assert out["shared_dir"] == out["workflow_dir"] + "/shared"
    records = wait_for_records(job.id, out["child_id"])
    assert records[out["child_id"]]["NCPUS"] == "2"
    assert records[job.id]["JobName"] == "child_facts_workflow"


def test_workflow_context_by_parameter_name_and_map_inside(cluster: Cluster) -> None:
    out = jobfuncs.ctx_named_workflow(4).get_result(timeout=120)
    assert out["sum"] == 0 + 2 + 4
    assert Path(out["shared"], "note.txt").read_text() == "x=4"


def _run_tutorial(tmp_path: Path, *extra: str) -> tuple[str, Path]:
    jobs = str(tmp_path / "jobs")
    return run_tutorial(
        tmp_path, "--backend", "local", "--job-base-dir", jobs, "--partition", "debug", *extra
    )


def _check_artifacts(state_path: Path, epochs: int = 3, epoch_steps: int = 10) -> dict[str, Any]:
    assert state_path.is_file()
    shared = state_path.parent
    state: dict[str, Any] = json.loads(state_path.read_text())
    assert state["epochs"] == epochs
    for epoch in range(epochs):
        checkpoint = json.loads((shared / "checkpoints" / f"epoch_{epoch:03d}.json").read_text())
        assert checkpoint["steps_completed"] == epoch_steps
        assert checkpoint["job_index"] == math.ceil(epoch_steps / 4)
        metrics = json.loads((shared / "metrics" / f"epoch_{epoch:03d}.json").read_text())
        assert metrics["epoch"] == epoch and metrics["steps_completed"] == epoch_steps
    return state


def _jobs_under(workflow_dir: Path) -> dict[str, list[str]]:
    """Job ids of the workflow's children, by task name, from our own index."""
    by_name: dict[str, list[str]] = {}
    index = workflow_dir.parent / ".index"
    for entry in index.iterdir():
        job_dir = Path(entry.read_text().strip())
        if job_dir.parent == workflow_dir / "tasks":
            by_name.setdefault(job_dir.name.rsplit("-", 3)[0], []).append(entry.name)
    return by_name


def test_tutorial_section_5_plain_form(devcluster: object, tmp_path: Path) -> None:
    stdout, state_path = _run_tutorial(tmp_path)
    assert "Submitted workflow job" in stdout
    state = _check_artifacts(state_path)
    workflow_dir = state_path.parent.parent
    children = _jobs_under(workflow_dir)
    assert len(children["train_epoch_segment"]) == 3 * math.ceil(10 / 4)
    assert len(children["evaluate_epoch"]) == 3
    records = wait_for_records(state["workflow_job_id"], *children["train_epoch_segment"])
    assert all(r["State"] == "COMPLETED" for r in records.values())
    assert records[state["workflow_job_id"]]["JobName"] == "parallel_train_eval_workflow"
    # configure_logging() in the task: readable lines carrying the job id, in the job's stderr.
    logs = "".join(
        p.read_text() for p in (workflow_dir / "tasks").glob("train_epoch_segment-*/stderr")
    )
    assert "Epoch 0 job 1 -> steps 4" in logs and "[job " in logs


def test_tutorial_section_5_with_partition_overrides(devcluster: object, tmp_path: Path) -> None:
    _, state_path = _run_tutorial(
        tmp_path,
        "--partition-workflow",
        "debug",
        "--partition-train",
        "compute",
        "--partition-eval",
        "compute",
    )
    state = _check_artifacts(state_path)
    children = _jobs_under(state_path.parent.parent)
    ids = children["train_epoch_segment"] + children["evaluate_epoch"]
    records = wait_for_records(state["workflow_job_id"], *ids)
    assert records[state["workflow_job_id"]]["Partition"] == "debug"
    assert {records[i]["Partition"] for i in ids} == {"compute"}


def _ran(cluster: Cluster, job_id: str) -> tuple[float, float]:
    """When a job's runner started and finished the call (its run log, milliseconds)."""
    from slurm.inspect import parse_run_log

    events = parse_run_log(Path(cluster.get_job(job_id, track=False).runs_path).read_text())
    start = next(e.time for e in events if e.event == "start")
    end = next(e.time for e in reversed(events) if e.event in ("finished", "failed"))
    return start, end


def test_evaluation_does_not_block_training(cluster: Cluster, devcluster: Status) -> None:
    out = jobfuncs.train_with_slow_eval(epochs=2, epoch_steps=6, cap=2, eval_delay=8.0).get_result(
        timeout=240
    )
    train, evals = out["train"], out["eval"]
    records = wait_for_records(*train[0], *train[1], *evals)
    for epoch, eval_id in enumerate(evals):
        last_train = records[train[epoch][-1]]
        assert records[eval_id]["Start"] >= last_train["End"], (epoch, records)
    eval0 = records[evals[0]]
    # Whole seconds (sacct) cannot tell a training segment of a few milliseconds in the
    # first second of eval 0 from one before it: the runner's log has milliseconds.
    span = {job_id: _ran(cluster, job_id) for job_id in [evals[0], *train[1]]}
    begin, end = span[evals[0]]
    overlapping = [t for t in train[1] if span[t][0] < end and span[t][1] > begin]
    assert overlapping, f"no epoch-1 training ran while eval 0 ran: {span} {records}"
    if len(devcluster.nodes) > 1:  # and the work spread over the nodes meanwhile
        elsewhere = [t for t in overlapping if records[t]["NodeList"] != eval0["NodeList"]]
        assert elsewhere, f"training ran only on eval 0's node while it ran: {records}"


def _run_example(module: str, base: Path, *args: str, timeout: float = 180) -> str:
    """``python -m slurm.examples.MODULE`` on the dev cluster (local backend); its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", f"slurm.examples.{module}", "--backend", "local",
         "--job-base-dir", str(base), "--partition", "debug", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_parallel_patterns_example(devcluster: object, tmp_path: Path) -> None:
    """The earlier SDK's parallelization-patterns topic, as our example runs it."""
    lines = _run_example("parallel_patterns", tmp_path).splitlines()
    assert "fan-out, fan-in: sum of the loaded shards = 780" in lines  # 0..39
    assert "pipeline: sum after cleaning = 507" in lines  # without the multiples of 3
    [sweep] = [line for line in lines if line.startswith("sweep: best rate = 0.1 ")]
    assert sorted(eval(sweep.split("order ")[1].rstrip(")"))) == [0.01, 0.03, 0.1, 0.3]  # noqa: S307
    assert "packed: 20 squares in 4 jobs, sum = 2470" in lines


@pytest.mark.parametrize("example", ["hello_world", "map_reduce"])
def test_examples_run(devcluster: object, tmp_path: Path, example: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            f"slurm.examples.{example}",
            "--backend",
            "local",
            "--job-base-dir",
            str(tmp_path),
            "--partition",
            "debug",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert out.returncode == 0, out.stderr
    expected = "Hello, world" if example == "hello_world" else "= 285"
    assert expected in out.stdout
