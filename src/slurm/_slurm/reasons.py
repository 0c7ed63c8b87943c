"""Why a job waits or why it failed, in plain words: Slurm's codes in, a sentence and a fix out.

Pure functions, shared by ``slurm jobs why`` and ``slurm jobs report``:
:func:`explain_pending` turns squeue's ``%r`` / scontrol's ``Reason=`` code and
the facts around it (the dependency and its jobs' states, the partition's
limits, the largest node) into an :class:`Explanation`; :func:`explain_failure`
does the same for an ended job from its state, exit code, error and usage.
:func:`parse_scontrol_record` reads ``scontrol -o show job|partition|node``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from slurm._slurm.usage import Usage

__all__ = [
    "Explanation",
    "NodeSize",
    "PendingFacts",
    "error_lines",
    "explain_failure",
    "explain_pending",
    "format_bytes",
    "format_mb",
    "format_seconds",
    "parse_dependency",
    "parse_scontrol_record",
    "parse_scontrol_records",
    "request_mb",
]


@dataclass(frozen=True)
class Explanation:
    """One plain answer: what is going on, and what would change it (``fix``, may be empty)."""

    sentence: str
    fix: str = ""

    def text(self) -> str:
        return f"{self.sentence} {self.fix}".strip()


@dataclass(frozen=True)
class NodeSize:
    """What one node offers: its name, CPUs and memory (MB)."""

    name: str
    cpus: int
    mem_mb: int


@dataclass(frozen=True)
class PendingFacts:
    """What is known around a pending job (everything optional).

    Attributes:
        job: its ``scontrol -o show job`` fields.
        partition: its partition's ``scontrol -o show partition`` fields.
        nodes: the partition's nodes.
        dependency_states: the state of each job it depends on.
    """

    job: Mapping[str, str] = field(default_factory=dict)
    partition: Mapping[str, str] = field(default_factory=dict)
    nodes: Sequence[NodeSize] = ()
    dependency_states: Mapping[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------- parsing


_KEY_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


def parse_scontrol_record(line: str) -> dict[str, str]:
    """One ``scontrol -o show ...`` line as ``{Key: value}``.

    Values may hold spaces (``Reason=ReqNodeNotAvail, UnavailableNodes:n1``): a value
    runs up to the next `` Key=``.

    Example::

        >>> parse_scontrol_record("JobId=7 JobState=PENDING Reason=Dependency")["Reason"]
        'Dependency'
    """
    record: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(line))
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(line)
        record.setdefault(match.group(1), line[match.end() : end].strip())
    return record


def parse_scontrol_records(stdout: str) -> list[dict[str, str]]:
    """Every record of ``scontrol -o show ...`` output, one a line."""
    return [parse_scontrol_record(line) for line in stdout.splitlines() if "=" in line]


def parse_dependency(text: str) -> list[tuple[str, str, str]]:
    """scontrol's ``Dependency=afterok:12_*(unfulfilled),afterany:13(failed)`` as
    ``[(kind, job id, status)]``; ``(null)`` gives none."""
    found = []
    for part in re.split(r"[,?]", text or ""):
        match = re.match(r"^(\w+):([\d_*+]+)(?:\((\w+)\))?$", part.strip())
        if match:
            found.append((match.group(1), match.group(2).split("(")[0], match.group(3) or ""))
    return found


def request_mb(text: str) -> int | None:
    """scontrol's memory figures (``MinMemoryNode=6G``, ``RealMemory=8192``) in MB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)([KMGT]?)\s*", text or "")
    if not match:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[match.group(2)]
    return int(float(match.group(1)) * factor)


def format_mb(mb: float) -> str:
    """``2048`` gives ``2 GB``, ``300`` gives ``300 MB``."""
    if mb >= 1024:
        return f"{mb / 1024:.3g} GB"
    return f"{mb:.0f} MB"


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def error_lines(type_name: str, message: str, traceback: str, limit: int = 6) -> tuple[str, ...]:
    """A task's exception as a few lines: ``Type: message`` (its first line), then the
    end of the traceback (where it was raised), without repeating the last line.

    Example::

        >>> error_lines("ValueError", "bad", "Traceback ...\\n  File x\\n    f()\\nValueError: bad")
        ('ValueError: bad', 'Traceback ...', '  File x', '    f()')
    """
    head = (f"{type_name}: {message}".strip().splitlines() or ["error"])[0]
    trace = [line for line in traceback.splitlines() if line.strip()]
    if trace and trace[-1].strip().startswith(type_name or "\0"):
        trace = trace[:-1]
    return (head, *trace[-(limit - 1) :]) if limit > 1 else (head,)


# ----------------------------------------------------------------- pending jobs


def _dependency_explanation(facts: PendingFacts, *, never: bool) -> Explanation:
    deps = parse_dependency(facts.job.get("Dependency", ""))
    waiting = [
        f"job {job_id} ({facts.dependency_states.get(job_id.split('(')[0], status or '?')})"
        + (f", {kind}" if kind != "afterok" else "")
        for kind, job_id, status in deps
    ]
    on = ", ".join(waiting) or "another job"
    if never:
        return Explanation(
            f"It can never start: it depends on {on}, which ended in a way its dependency "
            "does not accept (afterok needs success).",
            "Cancel it (slurm jobs cancel ID) and submit it again once the cause is fixed, "
            "or depend with .after(job, kind='afterany') to run whatever the outcome.",
        )
    return Explanation(
        f"It waits for {on} to end.",
        "It starts by itself once that job ends as the dependency asks; "
        "`slurm jobs why` on that job says what keeps it.",
    )


def _partition_name(facts: PendingFacts) -> str:
    return facts.job.get("Partition") or facts.partition.get("PartitionName") or "its partition"


def _largest(nodes: Sequence[NodeSize]) -> tuple[int, int]:
    return max((n.cpus for n in nodes), default=0), max((n.mem_mb for n in nodes), default=0)


def _too_big(facts: PendingFacts) -> Explanation | None:
    """The request against the largest node of the partition, when it exceeds it."""
    if not facts.nodes:
        return None
    cpus = _int(facts.job.get("MinCPUsNode")) or 0
    per_cpu = request_mb(facts.job.get("MinMemoryCPU", ""))
    mem = request_mb(facts.job.get("MinMemoryNode", "")) or (per_cpu or 0) * max(cpus, 1)
    big_cpus, big_mem = _largest(facts.nodes)
    where = _partition_name(facts)
    if cpus > big_cpus:
        return Explanation(
            f"It asks for {cpus} CPUs on one node; the largest node of {where} has {big_cpus}.",
            f"Ask for cpus_per_task={big_cpus} or fewer, spread the work over more tasks or "
            "nodes, or choose a partition with bigger nodes (scontrol show partition).",
        )
    if mem > big_mem:
        return Explanation(
            f"It asks for {format_mb(mem)} of memory on one node; the largest node of {where} "
            f"has {format_mb(big_mem)}.",
            f"Ask for mem={big_mem}M or less, or choose a partition with bigger nodes.",
        )
    return None


def _limit(facts: PendingFacts, key: str) -> str:
    return facts.partition.get(key) or "?"


def explain_pending(reason: str, facts: PendingFacts | None = None) -> Explanation:
    """Slurm's pending reason (squeue ``%r``, scontrol ``Reason=``) as a sentence and a fix.

    ``facts`` make it specific: the jobs a dependency waits on, the partition's
    limit and the job's request, the largest node. Unknown codes are named as
    they are, with where to look.

    Example::

        >>> explain_pending("BeginTime", PendingFacts(job={"StartTime": "2026-12-02T08:00:00"}))
        Explanation(sentence='It was asked not to start before 2026-12-02T08:00:00.', \
fix='It starts by itself then; to start sooner: scontrol update JobId=ID StartTime=now.')
    """
    facts = facts or PendingFacts()
    code = reason.split(",")[0].strip()
    explain = _PENDING.get(code)
    if explain is None and code.startswith(_LIMIT_PREFIXES):
        explain = _limit_reached
    if explain is None:
        return Explanation(
            f"Slurm says {reason!r}.",
            "See the Slurm documentation's list of job reason codes (squeue man page, "
            "JOB REASON CODES); scontrol show job ID has the details.",
        )
    return explain(code, reason, facts)


def _dependency(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return _dependency_explanation(facts, never=code == "DependencyNeverSatisfied")


def _priority(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation(
        "Jobs of higher priority are ahead of it in the queue of " + _partition_name(facts) + ".",
        "It starts when they have; `squeue -p PARTITION --sort=-p` shows the queue, "
        "`sprio -j ID` its priority. A shorter time= can let backfill start it sooner.",
    )


def _resources(code: str, reason: str, facts: PendingFacts) -> Explanation:
    too_big = _too_big(facts)
    if too_big is not None:
        return too_big
    return Explanation(
        f"It waits for free resources: the nodes of {_partition_name(facts)} are busy with "
        "other jobs.",
        "It starts when enough CPUs and memory free up; asking for less (cpus, mem, "
        "nodes) or a shorter time= can let it start sooner.",
    )


def _partition_config(code: str, reason: str, facts: PendingFacts) -> Explanation:
    too_big = _too_big(facts)
    if too_big is not None:
        return too_big
    return Explanation(
        f"Its request does not fit how {_partition_name(facts)} is configured (CPUs, memory, "
        "features or accounts the partition allows).",
        "Compare it with `scontrol show partition` and the nodes' sizes; ask for less, "
        "or choose another partition.",
    )


def _partition_time_limit(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation(
        f"It asks for time={facts.job.get('TimeLimit', '?')}, more than "
        f"{_partition_name(facts)} allows (MaxTime={_limit(facts, 'MaxTime')}).",
        f"Ask for time={_limit(facts, 'MaxTime')} or less (split the work into segments "
        "that requeue, as the tutorial does), or choose a partition with a longer MaxTime.",
    )


def _partition_node_limit(code: str, reason: str, facts: PendingFacts) -> Explanation:
    nodes = facts.job.get("NumNodes", "?").split("-")[0]
    total = facts.partition.get("TotalNodes", "?")
    return Explanation(
        f"It asks for {nodes} nodes; {_partition_name(facts)} allows MaxNodes="
        f"{_limit(facts, 'MaxNodes')} and has {total}.",
        f"Ask for nodes={total} or fewer, or choose a larger partition.",
    )


def _partition_down(code: str, reason: str, facts: PendingFacts) -> Explanation:
    how = "down" if code == "PartitionDown" else "inactive"
    return Explanation(
        f"{_partition_name(facts)} is {how}: it starts no jobs.",
        "Wait for the administrators to bring it up, or submit to another partition.",
    )


def _nodes_unavailable(code: str, reason: str, facts: PendingFacts) -> Explanation:
    detail = reason.split("UnavailableNodes:", 1)[1].strip() if "Unavail" in reason else ""
    nodes = f" ({detail})" if detail else ""
    return Explanation(
        f"The nodes it may use are unavailable: down, drained or reserved{nodes}.",
        "Wait for them to return (sinfo -R says why they are out), or drop nodelist= / "
        "choose another partition.",
    )


def _begin_time(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation(
        f"It was asked not to start before {facts.job.get('StartTime', 'a later time')}.",
        "It starts by itself then; to start sooner: scontrol update JobId=ID StartTime=now.",
    )


def _held(code: str, reason: str, facts: PendingFacts) -> Explanation:
    who = "you (or another user of your account)" if code == "JobHeldUser" else "an admin"
    return Explanation(
        f"It is held by {who}: it will not start until released.",
        "scontrol release ID" if code == "JobHeldUser" else "Ask the administrators.",
    )


_LIMIT_PREFIXES = ("QOSMax", "QOSGrp", "AssocMax", "AssocGrp", "MaxJobs", "MaxCpu")


def _limit_reached(code: str, reason: str, facts: PendingFacts) -> Explanation:
    scope = "your QOS" if code.startswith("QOS") else "your account (association)"
    limit = re.sub(r"^(QOS|Assoc)(Grp|Max)?", "", code).removesuffix("Limit")
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", limit).lower()
    return Explanation(
        f"A limit of {scope} is reached: {words} ({code}); QOS={facts.job.get('QOS', '?')}.",
        "It starts when your other jobs end; `sacctmgr show qos` and `sacctmgr show assoc "
        "user=$USER` show the limits. Fewer jobs at once (a smaller array throttle %N) "
        "or another QOS avoids it.",
    )


def _array_throttle(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation(
        "Its array runs as many elements at once as its throttle (%N) allows.",
        "The rest start as elements end; a larger throttle runs more at once.",
    )


def _invalid(code: str, reason: str, facts: PendingFacts) -> Explanation:
    what = "QOS" if code == "InvalidQOS" else "account"
    return Explanation(
        f"Its {what} is not valid for you (or not allowed in {_partition_name(facts)}): it can "
        "never start.",
        f"Cancel it and submit with a {what} `sacctmgr show assoc user=$USER` lists.",
    )


def _reservation(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation(
        "It waits for its reservation to begin (or the nodes are reserved for others).",
        "scontrol show reservation says when.",
    )


def _licenses(code: str, reason: str, facts: PendingFacts) -> Explanation:
    return Explanation("It waits for licenses it asked for.", "scontrol show licenses.")


def _no_reason(code: str, reason: str, facts: PendingFacts) -> Explanation:
    state = facts.job.get("JobState", "PENDING")
    return Explanation(
        f"Slurm gives no reason yet ({state}): it has not been looked at by the scheduler, "
        "or it is about to start.",
        "Look again in a few seconds.",
    )


#: Each pending reason code and the function that words it.
_PENDING: dict[str, Callable[[str, str, PendingFacts], Explanation]] = {
    "Dependency": _dependency,
    "DependencyNeverSatisfied": _dependency,
    "Priority": _priority,
    "Resources": _resources,
    "PartitionConfig": _partition_config,
    "BadConstraints": _partition_config,
    "PartitionTimeLimit": _partition_time_limit,
    "PartitionNodeLimit": _partition_node_limit,
    "PartitionDown": _partition_down,
    "PartitionInactive": _partition_down,
    "ReqNodeNotAvail": _nodes_unavailable,
    "NodeDown": _nodes_unavailable,
    "BeginTime": _begin_time,
    "JobHeldUser": _held,
    "JobHeldAdmin": _held,
    "JobArrayTaskLimit": _array_throttle,
    "InvalidQOS": _invalid,
    "InvalidAccount": _invalid,
    "Reservation": _reservation,
    "Licenses": _licenses,
    "None": _no_reason,
    "": _no_reason,
}


# ------------------------------------------------------------------- ended jobs


def _grow_mem(mem_bytes: int | None, peak: int | None) -> str:
    base = max(mem_bytes or 0, peak or 0)
    if not base:
        return "more memory (mem=)"
    mb = math.ceil(base * 1.5 / 1024**2)
    return f"mem={math.ceil(mb / 1024)}G" if mb >= 1024 else f"mem={mb}M"


def explain_failure(
    state: str,
    *,
    exit_code: str | None = None,
    error: Sequence[str] = (),
    usage: Usage | None = None,
    raised: bool = False,
) -> Explanation:
    """How an ended job ended, and what to change.

    ``raised``: the task raised (its error is the exception); else ``error`` holds
    the last lines of its stderr.

    Example::

        >>> explain_failure("OUT_OF_MEMORY", usage=Usage("sacct", max_rss_bytes=2**31,
        ...                 mem_bytes=2**31)).fix
        "Ask for mem=3G, or use Retry(grow={'mem': 1.5}) to grow it on each attempt."
    """
    exit_text = f" (exit code {exit_code})" if exit_code else ""
    if state == "OUT_OF_MEMORY" or any("exceeded job memory limit" in e.lower() for e in error):
        # The peak seen when it was killed is what it needed at least: grow from the larger.
        peak = usage.max_rss_bytes if usage else None
        used = ""
        if usage and usage.max_rss_bytes and usage.mem_bytes:
            used = (
                f": MaxRSS {format_mb(usage.max_rss_bytes / 1024**2)} of "
                f"{format_mb(usage.mem_bytes / 1024**2)}"
            )
        return Explanation(
            f"It ran out of memory{used}; Slurm killed it.",
            f"Ask for {_grow_mem(usage.mem_bytes if usage else None, peak)}, or use "
            "Retry(grow={'mem': 1.5}) to grow it on each attempt.",
        )
    if state == "TIMEOUT":
        ran = ""
        if usage and usage.elapsed_s and usage.time_limit_s:
            ran = f": it ran {usage.elapsed_s:.0f} s of its {usage.time_limit_s:.0f} s limit"
        if any("wrote nothing new since the previous run" in e for e in error):
            return Explanation(
                f"It reached its time limit{ran} and was not requeued again: its previous "
                "run made no progress (its checkpoint callbacks wrote the same as the run "
                "before).",
                "Find why it gets no further (data it waits for, a checkpoint that saves "
                "the same state), ask for more time=, or make the checkpoint record how far "
                "it got.",
            )
        return Explanation(
            f"It reached its time limit{ran}; Slurm stopped it.",
            "Ask for more time=, use Retry(grow={'time': 2.0}), or save a checkpoint when "
            "requeue_requested() turns true and let it requeue (the tutorial's pattern).",
        )
    if state == "FAILED" and raised:
        first = error[0] if error else "an exception"
        return Explanation(
            f"The task raised {first}.",
            "Fix the cause in the task (its traceback is in the error); if it is transient, "
            "Retry(exceptions=(TheError,)) runs it again.",
        )
    if state == "FAILED":
        return Explanation(
            f"The job failed before the task returned{exit_text}: the batch script or the "
            "interpreter stopped without a result.",
            "Read the end of its stderr (slurm jobs logs --stderr ID): a missing module, a "
            "setup= command that failed, or the node's Python.",
        )
    if state == "CANCELLED":
        return Explanation(
            "It was cancelled (scancel, by you or an admin, or a dependency that failed).",
            "Submit it again if it should run.",
        )
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return Explanation(
            "Its node failed" + (" to boot" if state == "BOOT_FAIL" else "") + ".",
            "Run it again; Retry(on={'NODE_FAIL'}) does it by itself.",
        )
    if state == "PREEMPTED":
        return Explanation(
            "A job of higher priority preempted it and it was not requeued.",
            "Let it requeue (the default; max_requeues=) and resume from a checkpoint.",
        )
    if state == "DEADLINE":
        return Explanation("It could not finish before its deadline.", "Give a later deadline.")
    return Explanation(f"It ended {state}{exit_text}.", "")


def format_seconds(seconds: float | None) -> str:
    """``"-"``, ``"0.8s"``, ``"6s"``, ``"2m05s"``, ``"1h02m"``, ``"2d03h"``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_bytes(size: float | None) -> str:
    """``"-"``, ``"512 KiB"``, ``"316 MiB"``, ``"1.5 GiB"``."""
    if size is None:
        return "-"
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size:.0f} B"
