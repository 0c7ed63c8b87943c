"""Callbacks on the real dev cluster: node-side hooks run on the node, and the
workflow-graph example draws its graph from the client's events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from slurm import Cluster, task, workflow
from slurm.callbacks import (
    BaseCallback,
    RunBeginContext,
    RunEndContext,
    WorkflowTaskSubmitContext,
)

REPO = Path(__file__).resolve().parents[2]


class NodeDiary(BaseCallback):
    """Writes what its node-side hooks heard, one JSON line each, into a shared file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def _write(self, **fields: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            # Slurm's own word on where this runs: the job's id and its node.
            where = {
                "env_job": os.environ.get("SLURM_JOB_ID"),
                "node": os.environ.get("SLURMD_NODENAME"),
            }
            out.write(json.dumps({**fields, **where}) + "\n")

    def on_begin_run_job_ctx(self, ctx: RunBeginContext) -> None:
        rank = ctx.job_context.rank if ctx.job_context else None
        self._write(hook="begin", job_id=ctx.job_id, function=ctx.function, rank=rank)

    def on_end_run_job_ctx(self, ctx: RunEndContext) -> None:
        self._write(hook="end", job_id=ctx.job_id, status=ctx.status)

    def on_workflow_begin_ctx(self, ctx: Any) -> None:
        self._write(hook="workflow-begin", job_id=ctx.workflow_job_id)

    def on_workflow_end_ctx(self, ctx: Any) -> None:
        self._write(hook="workflow-end", job_id=ctx.workflow_job_id, result=ctx.result)

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        # On the workflow's node as it submits (live), and on the client from its journal.
        self._write(hook="task-submitted", job_id=ctx.parent_workflow_id, child=ctx.child_job_id)


@task(time="00:01:00", mem="128M")
def double(x: int) -> int:
    return 2 * x


@workflow(time="00:03:00", mem="256M")
def doubled_twice(x: int) -> int:
    return double(double(x)).get_result()


def test_node_side_hooks_run_on_the_node_and_follow_a_workflows_tasks(
    cluster: Cluster, home_tmp: Path
) -> None:
    diary = home_tmp / "diary.jsonl"
    cluster.callbacks.append(NodeDiary(diary))
    job = doubled_twice(3)
    assert job.get_result(timeout=180) == 12
    lines = [json.loads(line) for line in diary.read_text().splitlines()]
    told = [line for line in lines if line["hook"] == "task-submitted"]
    lines = [line for line in lines if line["hook"] != "task-submitted"]
    mine = [(line["hook"], line.get("status")) for line in lines if line["job_id"] == job.id]
    assert mine == [
        ("begin", None),
        ("workflow-begin", None),
        ("workflow-end", None),
        ("end", "success"),
    ]
    children = [line for line in lines if line["job_id"] != job.id]
    assert [line["hook"] for line in children] == ["begin", "end", "begin", "end"]
    assert {line["function"] for line in children if line["hook"] == "begin"} == {"double"}
    for line in lines:  # each hook ran inside its own job, on a node of the cluster
        assert line["env_job"] == line["job_id"].split("_")[0] and line["node"], line
    # The two tasks, told on the workflow's node as it submitted them, then on the client.
    child_ids = sorted({line["job_id"] for line in children}, key=int)
    on_node = [line["child"] for line in told if line["env_job"] == job.id]
    on_client = [line["child"] for line in told if line["env_job"] is None]
    assert on_node == child_ids and on_client == child_ids


def test_workflow_graph_example_exports_dot_and_json(devcluster: object, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "slurm.examples.workflow_graph",
            "--backend",
            "local",
            "--job-base-dir",
            str(tmp_path / "jobs"),
            "--partition",
            "debug",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert out.returncode == 0, out.stderr
    assert "Results: {'linear': 0.78, 'forest': 0.88}" in out.stdout
    data = json.loads((tmp_path / "workflow_graph.json").read_text())
    graph, order = data["graph"], data["submission_order"]
    root = order[0]
    assert graph[root]["type"] == "workflow" and graph[root]["name"] == "ml_pipeline"
    assert graph[root]["state"] == "COMPLETED"
    names = [graph[child]["name"] for child in graph[root]["children"]]
    assert names == [
        "load_data",
        "preprocess",
        "train_model",
        "train_model",
        "evaluate_model",
        "evaluate_model",
    ]
    dot = (tmp_path / "workflow_graph.dot").read_text()
    assert dot.startswith("digraph workflow {") and dot.count(" -> ") == 6
