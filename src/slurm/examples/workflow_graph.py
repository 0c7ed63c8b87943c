"""A workflow's graph, drawn by a callback and exported to DOT (Graphviz) and JSON.

The callback stays on the client (``requires_pickling = False``) and listens
to the cluster's events: the workflow is a node once it is submitted; once it
is over, each task it submitted from its node is reported (from the
workflow's journal), in order, and becomes a node with an edge from the
workflow. No code runs on the cluster for the drawing.

    python -m slurm.examples.workflow_graph --backend local --partition debug
    dot -Tpng workflow_graph.dot -o workflow_graph.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from slurm.callbacks import (
    BaseCallback,
    CompletedContext,
    SubmitEndContext,
    WorkflowCallbackContext,
    WorkflowTaskSubmitContext,
)
from slurm.cluster import Cluster
from slurm.decorators import task, workflow
from slurm.workflow import WorkflowContext


class WorkflowGraphCallback(BaseCallback):
    """Builds the graph of the workflows submitted through its cluster and their tasks.

    ``graph`` maps a job id to ``{"name", "type" ("workflow" | "task"), "children",
    "parent", "state"}``; ``order`` lists the job ids as they were reported.
    """

    requires_pickling = False  # the graph is drawn here, from the events the client hears
    execution_loci = {  # the workflow's begin and end, as the client sees them
        "on_workflow_begin_ctx": "client",
        "on_workflow_end_ctx": "client",
    }

    def __init__(self) -> None:
        self.graph: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    def _node(self, job_id: str, name: str, kind: str, parent: str | None = None) -> None:
        if job_id not in self.graph:
            self.graph[job_id] = {
                "name": name,
                "type": kind,
                "children": [],
                "parent": parent,
                "state": None,
            }
            self.order.append(job_id)

    def on_end_submit_job_ctx(self, ctx: SubmitEndContext) -> None:
        if getattr(ctx.task, "is_workflow", False):
            self._node(ctx.job_id, ctx.task.name, "workflow")

    def on_workflow_begin_ctx(self, ctx: WorkflowCallbackContext) -> None:
        self._node(ctx.workflow_job_id, ctx.workflow_name, "workflow")

    def on_workflow_task_submitted_ctx(self, ctx: WorkflowTaskSubmitContext) -> None:
        self._node(ctx.parent_workflow_id, ctx.parent_workflow_name, "workflow")
        kind = "workflow" if ctx.child_is_workflow else "task"
        self._node(ctx.child_job_id, ctx.child_task_name, kind, parent=ctx.parent_workflow_id)
        self.graph[ctx.parent_workflow_id]["children"].append(ctx.child_job_id)

    def on_completed_ctx(self, ctx: CompletedContext) -> None:
        if ctx.job_id in self.graph:
            self.graph[ctx.job_id]["state"] = ctx.job_state

    def roots(self) -> list[str]:
        """The workflows no other workflow submitted."""
        return [i for i in self.order if self.graph[i]["parent"] is None]

    def export_dot(self) -> str:
        """The graph in Graphviz's DOT language: workflows as boxes, tasks as ellipses."""
        lines = ["digraph workflow {", "  rankdir=TB;", "  node [style=filled];"]
        for job_id in self.order:
            node = self.graph[job_id]
            shape, color = (
                ("box", "lightblue") if node["type"] == "workflow" else ("ellipse", "lightgray")
            )
            label = f'"{_escape(node["name"])}\\n{_escape(job_id)}"'  # DOT's \n: a new line
            lines.append(f"  {_quote(job_id)} [label={label} shape={shape} fillcolor={color}];")
        for job_id in self.order:
            for child in self.graph[job_id]["children"]:
                lines.append(f"  {_quote(job_id)} -> {_quote(child)};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def export_json(self) -> str:
        """The graph and the order its nodes were reported in, as JSON."""
        return json.dumps({"graph": self.graph, "submission_order": self.order}, indent=2)


def _escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    """A DOT identifier: any text, in double quotes."""
    return f'"{_escape(text)}"'


@task(time="00:02:00", mem="256M")
def load_data(name: str) -> dict[str, Any]:
    return {"dataset": name, "rows": 1000}


@task(time="00:02:00", mem="256M")
def preprocess(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "clean": True}


@task(time="00:02:00", mem="256M")
def train_model(data: dict[str, Any], model: str) -> dict[str, Any]:
    return {"model": model, "rows": data["rows"], "accuracy": 0.9 if model == "forest" else 0.8}


@task(time="00:02:00", mem="256M")
def evaluate_model(trained: dict[str, Any]) -> dict[str, Any]:
    return {**trained, "test_accuracy": trained["accuracy"] - 0.02}


@workflow(time="00:05:00", mem="512M")
def ml_pipeline(dataset: str, ctx: WorkflowContext) -> dict[str, Any]:
    """Load, preprocess, train two models side by side, evaluate both."""
    data = preprocess(load_data(dataset))  # a Job as an argument: afterok, and its result
    models = [train_model(data, model) for model in ("linear", "forest")]
    evaluations = [evaluate_model(model) for model in models]
    results = [job.get_result() for job in evaluations]
    return {r["model"]: r["test_accuracy"] for r in results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.examples.workflow_graph")
    Cluster.add_argparse_args(parser)
    parser.add_argument("--dataset", default="iris")
    parser.add_argument("--output-dir", default=".", help="where the .dot and .json files go")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    graph = WorkflowGraphCallback()
    with Cluster.from_args(args, callbacks=[graph]):
        job = ml_pipeline(args.dataset)
        print(f"Submitted workflow {job.id}")
        print(f"Results: {job.get_result(timeout=args.timeout)}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "workflow_graph.dot").write_text(graph.export_dot(), encoding="utf-8")
    (out / "workflow_graph.json").write_text(graph.export_json(), encoding="utf-8")
    print(f"Graph: {len(graph.graph)} nodes, {len(graph.roots())} root workflow(s)")
    for job_id in graph.order:
        node = graph.graph[job_id]
        indent = "  " if node["parent"] else ""
        print(f"{indent}{node['type']} {node['name']} ({job_id})")
    print(f"Wrote {out / 'workflow_graph.dot'} and {out / 'workflow_graph.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
