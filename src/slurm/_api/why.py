"""Why a job is pending, or why it failed: one plain answer with what to change.

:meth:`Job.why` and ``slurm jobs why`` give this record; the reading of
Slurm's codes is the pure :mod:`slurm._slurm.reasons`. One ``scontrol show
job`` for a job that has no result yet (and, for a resource reason, its
partition and nodes); for an ended one, one batched look, its JSON outcome
(never unpickled), the last lines of its stderr and its usage.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from slurm._slurm.commands import JobState, scontrol_show_job_argv
from slurm._slurm.reasons import (
    Explanation,
    NodeSize,
    PendingFacts,
    error_lines,
    explain_failure,
    explain_pending,
    format_bytes,
    format_seconds,
    parse_dependency,
    parse_scontrol_records,
    request_mb,
)
from slurm._slurm.retry import ended_state
from slurm._slurm.usage import Usage
from slurm._wire.payload import Outcome
from slurm.errors import SlurmError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["AskedJob", "Why", "why_of", "why_of_id"]

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


class AskedJob(Protocol):
    """What the answer reads of a :class:`~slurm.Job`."""

    @property
    def id(self) -> str: ...

    @property
    def session(self) -> Session: ...

    @property
    def outcome_path(self) -> str: ...

    def stderr_tail(self, lines: int = ...) -> str: ...

    def measured_usage(self) -> Usage | None: ...


def why_of(job: AskedJob) -> Why:
    """The answer for one of the SDK's jobs: pending, running, or ended (why it failed)."""
    if _outcome(job) is not None:  # over, even if Slurm still says RUNNING for a moment
        return _ended(job)
    record = _record(job.session, job.id)
    if record is not None:
        answer = _pending_or_running(job.session, job.id, record)
        if answer is not None:
            return answer
    return _ended(job)


def why_of_id(session: Session, job_id: str) -> Why:
    """The answer for a job that is not the SDK's: what Slurm says of it.

    Raises:
        ConfigurationError: Slurm does not know the job.
    """
    from slurm.errors import ConfigurationError

    record = _record(session, job_id)
    if record is None:
        raise ConfigurationError(
            f"Slurm does not know job {job_id} and it is not one of the SDK's jobs under the "
            "job base directory; check the id (`slurm jobs list`, `squeue --me`)."
        )
    answer = _pending_or_running(session, job_id, record)
    if answer is not None:
        return answer
    state_text = record.get("JobState", "UNKNOWN")
    exit_code = record.get("ExitCode", "")
    explanation = explain_failure(state_text, exit_code=exit_code)
    return Why(job_id, state_text, explanation.sentence, explanation.fix, {"exit code": exit_code})


def _scontrol(session: Session, argv: list[str]) -> list[dict[str, str]]:
    result = session.slurm.run(argv, check=False)
    return parse_scontrol_records(result.stdout) if result.returncode == 0 else []


def _record(session: Session, job_id: str) -> dict[str, str] | None:
    records = _scontrol(session, scontrol_show_job_argv(job_id))
    return next((r for r in records if _record_id(r) == job_id), records[0] if records else None)


def _record_id(record: dict[str, str]) -> str:
    array, task = record.get("ArrayJobId"), record.get("ArrayTaskId")
    if array and task and task.isdigit():
        return f"{array}_{task}"
    return record.get("JobId", "")


def _pending_or_running(session: Session, job_id: str, record: dict[str, str]) -> Why | None:
    state = JobState.parse(record.get("JobState", ""))
    if state in (JobState.PENDING, JobState.REQUEUED, JobState.REQUEUE_HOLD, JobState.SPECIAL_EXIT):
        return _pending(session, job_id, record)
    if state in (JobState.RUNNING, JobState.COMPLETING, JobState.CONFIGURING):
        since = record.get("StartTime", "?")
        node = record.get("NodeList", "?")
        explanation = Explanation(
            f"It is running on {node} since {since} ({record.get('RunTime', '?')} so far, "
            f"limit {record.get('TimeLimit', '?')}).",
            "`slurm jobs logs -f ID` follows its output.",
        )
        return Why(job_id, state.value, explanation.sentence, explanation.fix, {"node": node})
    return None


def _pending(session: Session, job_id: str, record: dict[str, str]) -> Why:
    reason = record.get("Reason", "None")
    code = reason.split(",")[0].strip()
    partition: dict[str, str] = {}
    nodes: list[NodeSize] = []
    name = record.get("Partition", "")
    if code in _NEEDS_PARTITION and name and "," not in name:
        found = _scontrol(session, ["scontrol", "-o", "show", "partition", name])
        partition = found[0] if found else {}
        for node in _scontrol(session, ["scontrol", "-o", "show", "node"]):
            if name in node.get("Partitions", "").split(","):
                cpus = int(node.get("CPUTot", "0") or 0)
                memory = request_mb(node.get("RealMemory", "0")) or 0
                nodes.append(NodeSize(node.get("NodeName", "?"), cpus, memory))
    states: dict[str, str] = {}
    deps = [job for _, job, _ in parse_dependency(record.get("Dependency", ""))]
    if deps:
        look = session.slurm.look([d.split("_")[0] for d in deps])
        for dep in deps:
            info = look.infos.get(dep.split("(")[0])
            if info is not None:
                states[dep] = info.state.value
    explanation = explain_pending(reason, PendingFacts(record, partition, nodes, states))
    shown = {
        "reason": reason,
        "partition": name,
        "dependency": record.get("Dependency", "") if deps else "",
        "submitted": record.get("SubmitTime", ""),
        "time limit": record.get("TimeLimit", ""),
    }
    state = record.get("JobState", "PENDING")
    return Why(job_id, state, explanation.sentence, explanation.fix, shown)


def _outcome(job: AskedJob) -> Outcome | None:
    try:
        text = job.session.transport.read_text(job.outcome_path)
    except (FileNotFoundError, IsADirectoryError):
        return None
    with contextlib.suppress(SlurmError):
        return Outcome.from_json(text, job_id=job.id)
    return None


def _ended(job: AskedJob) -> Why:
    look = job.session.slurm.look([job.id], exit_codes=True)
    info = look.infos.get(job.id)
    usage = job.measured_usage()
    facts = {"exit code": "", "node": ""}
    if info is not None:
        if info.exit_code is not None:
            facts["exit code"] = f"{info.exit_code}:{info.signal or 0}"
        facts["node"] = info.node or ""
    if usage is not None:
        facts["elapsed"] = format_seconds(usage.elapsed_s)
        if usage.max_rss_bytes:
            of = f" of {format_bytes(usage.mem_bytes)}" if usage.mem_bytes else ""
            facts["MaxRSS"] = format_bytes(usage.max_rss_bytes) + of
    outcome = _outcome(job)
    if outcome is not None and outcome.ok:
        return Why(job.id, "COMPLETED", "It completed: the task returned.", "", facts)
    if outcome is not None:
        error = error_lines(outcome.type_name, outcome.message, outcome.traceback, _ERROR_LINES)
        explanation = explain_failure("FAILED", error=error, usage=usage, raised=True)
        return Why(job.id, "FAILED", explanation.sentence, explanation.fix, facts, error)
    stderr = job.stderr_tail()
    tail_lines = tuple(line for line in stderr.splitlines() if line.strip())
    state = ended_state(info.state.value if info is not None else "UNKNOWN", stderr)
    if JobState.parse(state).is_active:
        return Why(job.id, state, f"It is {state.lower()}.", "", facts)
    if state == "COMPLETED":
        return Why(job.id, state, "It completed.", "", facts)
    explanation = explain_failure(
        state, exit_code=facts["exit code"] or None, error=tail_lines, usage=usage
    )
    return Why(
        job.id, state, explanation.sentence, explanation.fix, facts, tail_lines[-_ERROR_LINES:]
    )
