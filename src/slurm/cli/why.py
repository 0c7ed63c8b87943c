"""``slurm jobs why ID``: one plain answer to "why is it pending?" or "why did it fail?".

For a job Slurm still holds, ``scontrol -o show job`` gives its state and reason
code; around the code, only what it needs is asked, each a single command: the
partition (``scontrol -o show partition``) and its nodes' sizes (``scontrol -o
show node``) for a limit or a request too big, one batched look (squeue, then
sacct) at the jobs a dependency waits on. For an ended job of the SDK: what
``slurm jobs show`` gathers (state and exit code from accounting, the result's
error or the stderr's last lines, usage against the request). The words come
from the pure functions of :mod:`slurm.cli.reasons`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from rich.console import Console

from slurm import Cluster, Job, JobState
from slurm.cli.jobs import cluster_from_options, cluster_options, job_view, read_outcome
from slurm.cli.jobview import format_bytes, format_seconds
from slurm.cli.reasons import (
    Explanation,
    NodeSize,
    PendingFacts,
    error_lines,
    explain_failure,
    explain_pending,
    parse_dependency,
    parse_scontrol_records,
    request_mb,
)
from slurm.errors import ConfigurationError, SlurmError
from slurm.inspect import ended_state, scontrol_show_job_argv

__all__ = ["Why", "gather_why", "why"]

_ERROR_LINES = 6
#: Reasons whose answer needs the partition and its nodes.
_NEEDS_PARTITION = frozenset(
    {"Resources", "PartitionConfig", "BadConstraints", "PartitionTimeLimit", "PartitionNodeLimit"}
)


@dataclass(frozen=True)
class Why:
    """The answer for one job.

    Attributes:
        job_id: the job looked at (a retried call: its latest attempt).
        state: its state now.
        answer: the plain sentence; ``fix``: what would change it.
        facts: what the answer rests on (reason code, exit code, node, limits...).
        error: the first lines of its error (a failed job).
    """

    job_id: str
    state: str
    answer: str
    fix: str = ""
    facts: dict[str, str] = field(default_factory=dict)
    error: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = list(self.error)
        return data

    def render(self) -> str:
        lines = [f"job {self.job_id}: {self.state}", f"  why: {self.answer}"]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.facts:
            lines.append("  " + " · ".join(f"{k} {v}" for k, v in self.facts.items() if v))
        lines += [f"  | {line}" for line in self.error]
        return "\n".join(lines)


def _scontrol(cluster: Cluster, argv: list[str]) -> list[dict[str, str]]:
    result = cluster.slurm.run(argv, check=False)
    return parse_scontrol_records(result.stdout) if result.returncode == 0 else []


def _pending(cluster: Cluster, job_id: str, record: dict[str, str]) -> Why:
    reason = record.get("Reason", "None")
    code = reason.split(",")[0].strip()
    partition: dict[str, str] = {}
    nodes: list[NodeSize] = []
    name = record.get("Partition", "")
    if code in _NEEDS_PARTITION and name and "," not in name:
        found = _scontrol(cluster, ["scontrol", "-o", "show", "partition", name])
        partition = found[0] if found else {}
        for node in _scontrol(cluster, ["scontrol", "-o", "show", "node"]):
            if name in node.get("Partitions", "").split(","):
                cpus = int(node.get("CPUTot", "0") or 0)
                nodes.append(
                    NodeSize(
                        node.get("NodeName", "?"),
                        cpus,
                        request_mb(node.get("RealMemory", "0")) or 0,
                    )
                )
    states: dict[str, str] = {}
    deps = [job for _, job, _ in parse_dependency(record.get("Dependency", ""))]
    if deps:
        look = cluster.slurm.look([d.split("_")[0] for d in deps])
        for dep in deps:
            info = look.infos.get(dep.split("(")[0])
            if info is not None:
                states[dep] = info.state.value
    facts = PendingFacts(record, partition, nodes, states)
    explanation = explain_pending(reason, facts)
    shown = {
        "reason": reason,
        "partition": name,
        "dependency": record.get("Dependency", "") if deps else "",
        "submitted": record.get("SubmitTime", ""),
        "time limit": record.get("TimeLimit", ""),
    }
    return Why(
        job_id, record.get("JobState", "PENDING"), explanation.sentence, explanation.fix, shown
    )


def _ended(cluster: Cluster, job_id: str) -> Why:
    view = job_view(cluster, job_id, _ERROR_LINES)
    state = view.row.state.text
    usage = view.usage
    facts = {
        "exit code": view.row.state.exit_code or "",
        "node": view.row.state.node or "",
    }
    if usage is not None:
        facts["elapsed"] = format_seconds(usage.elapsed_s)
        if usage.max_rss_bytes:
            of = f" of {format_bytes(usage.mem_bytes)}" if usage.mem_bytes else ""
            facts["MaxRSS"] = format_bytes(usage.max_rss_bytes) + of
    job = cluster.get_job(job_id, track=False)
    outcome = None
    with contextlib.suppress(SlurmError):
        outcome = read_outcome(cluster, job)
    if outcome is not None and outcome.ok:
        return Why(view.row.job_id, "COMPLETED", "It completed: the task returned.", "", facts)
    if outcome is not None:
        error = error_lines(outcome.type_name, outcome.message, outcome.traceback, _ERROR_LINES)
        explanation = explain_failure("FAILED", error=error, usage=usage, raised=True)
        return Why(view.row.job_id, "FAILED", explanation.sentence, explanation.fix, facts, error)
    tail_lines = tuple(line for line in view.stderr_tail.splitlines() if line.strip())
    state = ended_state(state, view.stderr_tail)
    if JobState.parse(state).is_active:
        return Why(view.row.job_id, state, f"It is {state.lower()}.", "", facts)
    if state == "COMPLETED":
        return Why(view.row.job_id, state, "It completed.", "", facts)
    explanation = explain_failure(
        state, exit_code=facts["exit code"] or None, error=tail_lines, usage=usage
    )
    return Why(
        view.row.job_id,
        state,
        explanation.sentence,
        explanation.fix,
        facts,
        tail_lines[-_ERROR_LINES:],
    )


def gather_why(cluster: Cluster, job_id: str) -> Why:
    """The answer for ``job_id``: pending (why it waits), running, or ended (why it failed).

    Raises:
        ConfigurationError: Slurm does not know the job and it is not one of the SDK's.
    """
    job = None
    with contextlib.suppress(ConfigurationError):
        job = cluster.get_job(job_id, track=False)
        job_id = job.id  # a retried call: its latest attempt
    if job is not None and _has_outcome(cluster, job):  # over, even if Slurm says RUNNING still
        return _ended(cluster, job_id)
    records = _scontrol(cluster, scontrol_show_job_argv(job_id))
    record = next((r for r in records if _record_id(r) == job_id), records[0] if records else None)
    if record is not None:
        state = JobState.parse(record.get("JobState", ""))
        if state in (
            JobState.PENDING,
            JobState.REQUEUED,
            JobState.REQUEUE_HOLD,
            JobState.SPECIAL_EXIT,
        ):
            return _pending(cluster, job_id, record)
        if state in (JobState.RUNNING, JobState.COMPLETING, JobState.CONFIGURING):
            since = record.get("StartTime", "?")
            node = record.get("NodeList", "?")
            explanation = Explanation(
                f"It is running on {node} since {since} ({record.get('RunTime', '?')} so far, "
                f"limit {record.get('TimeLimit', '?')}).",
                "`slurm jobs logs -f ID` follows its output.",
            )
            return Why(job_id, state.value, explanation.sentence, explanation.fix, {"node": node})
    try:
        return _ended(cluster, job_id)
    except ConfigurationError:
        if record is None:
            raise
    # Not the SDK's job, and ended: what Slurm says.
    state_text = record.get("JobState", "UNKNOWN")
    exit_code = record.get("ExitCode", "")
    explanation = explain_failure(state_text, exit_code=exit_code)
    return Why(job_id, state_text, explanation.sentence, explanation.fix, {"exit code": exit_code})


def _has_outcome(cluster: Cluster, job: Job[Any]) -> bool:
    try:
        return read_outcome(cluster, job) is not None
    except SlurmError:
        return False


def _record_id(record: dict[str, str]) -> str:
    array, task = record.get("ArrayJobId"), record.get("ArrayTaskId")
    if array and task and task.isdigit():
        return f"{array}_{task}"
    return record.get("JobId", "")


@contextlib.contextmanager
def _session(options: dict[str, Any]) -> Iterator[Cluster]:
    try:
        with cluster_from_options(options) as cluster:
            yield cluster
    except SlurmError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


@click.command("why")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@cluster_options
def why(job_id: str, as_json: bool, **options: Any) -> None:
    """Why a job is pending, or why it failed, in one plain answer with what to change."""
    with _session(options) as cluster:
        answer = gather_why(cluster, job_id)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), indent=1, sort_keys=True))
    else:
        click.echo(answer.render())
