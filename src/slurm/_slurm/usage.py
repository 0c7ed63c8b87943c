"""What a job used: one typed record, from accounting or from the runner's own measurements.

Pure: sacct's usage output and the runner's measurement file go in, a
:class:`Usage` comes out; nothing here runs a command or reads a file.

``source`` says where the figures came from: ``"sacct"`` when Slurm's
accounting answered, ``"runner"`` when it did not (the runner measures
timestamps and ``getrusage`` itself and writes them beside the result). sacct
samples memory every ``JobAcctGatherFrequency`` seconds and may record no
MaxRSS for a job shorter than that; the runner's own peak then fills the gap
(``max_rss_source`` says so).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "USAGE_SACCT_FIELDS",
    "Figure",
    "Usage",
    "UsageSummary",
    "median",
    "parse_duration",
    "parse_size",
    "parse_usage_sacct",
    "runner_usage",
    "summarise",
    "usage_sacct_argv",
]

#: sacct fields for usage; steps are kept (MaxRSS is measured per step).
USAGE_SACCT_FIELDS = (
    "JobID",
    "State",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "TotalCPU",
    "MaxRSS",
    "AllocCPUS",
    "ReqMem",
    "TimelimitRaw",
    "NodeList",
    "AllocTRES",
)

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


@dataclass(frozen=True)
class Usage:
    """What one job (or array element) used, and what it had asked for.

    Attributes:
        source: ``"sacct"`` (Slurm's accounting) or ``"runner"`` (the runner's
            own measurements, when accounting is off).
        queue_wait_s: seconds from submission to start.
        elapsed_s: seconds from start to end.
        cpu_time_s: user + system CPU seconds of all its processes.
        max_rss_bytes: peak resident memory (MaxRSS).
        cpus: CPUs allocated.
        mem_bytes: memory requested (the job's limit).
        time_limit_s: the time limit.
        nodes: the node list.
        gpus: GPUs allocated, where Slurm accounts them.
        state: the state it ended in (sacct only).
        max_rss_source: where ``max_rss_bytes`` came from when it differs
            from ``source``: ``"runner"`` (sacct had not sampled a short job), or
            ``"slurmstepd"`` (the peak its kill for memory reported, for a retry).
    """

    source: str
    queue_wait_s: float | None = None
    elapsed_s: float | None = None
    cpu_time_s: float | None = None
    max_rss_bytes: int | None = None
    cpus: int | None = None
    mem_bytes: int | None = None
    time_limit_s: float | None = None
    nodes: str | None = None
    gpus: int | None = None
    state: str = ""
    max_rss_source: str = ""

    @property
    def cpu_efficiency(self) -> float | None:
        """CPU time used over CPU time allocated (``elapsed * cpus``), 0..1."""
        if self.cpu_time_s is None or not self.elapsed_s or not self.cpus:
            return None
        return self.cpu_time_s / (self.elapsed_s * self.cpus)

    @property
    def mem_efficiency(self) -> float | None:
        """Peak memory over memory requested, 0..1 (above 1 when not enforced)."""
        if self.max_rss_bytes is None or not self.mem_bytes:
            return None
        return self.max_rss_bytes / self.mem_bytes

    @property
    def time_efficiency(self) -> float | None:
        """Elapsed time over the time limit, 0..1."""
        if self.elapsed_s is None or not self.time_limit_s:
            return None
        return self.elapsed_s / self.time_limit_s

    def to_dict(self) -> dict[str, Any]:
        """Every figure, efficiencies included (for JSON and logs)."""
        return {
            **asdict(self),
            "cpu_efficiency": self.cpu_efficiency,
            "mem_efficiency": self.mem_efficiency,
            "time_efficiency": self.time_efficiency,
        }


# --------------------------------------------------------------------- parsing


def parse_size(text: str) -> int | None:
    """Bytes from sacct's MaxRSS: ``"323672K"``, ``"1.5G"``, ``"0"`` (bytes); junk gives None."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)([KMGTP]?)\s*$", text or "", re.IGNORECASE)
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_duration(text: str) -> float | None:
    """Seconds from sacct's ``[D-][HH:]MM:SS[.mmm]`` (TotalCPU, Elapsed); junk gives None.

    Example::

        >>> parse_duration("00:00.827"), parse_duration("1-02:00:00")
        (0.827, 93600.0)
    """
    match = re.match(r"^\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$", text or "")
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _time(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _req_mem(text: str, cpus: int | None) -> int | None:
    """ReqMem: ``400M``, ``2G`` (megabytes without a unit); older Slurm appends ``n``
    (per node) or ``c`` (per CPU)."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)([KMGTP]?)([nc]?)\s*$", text or "", re.IGNORECASE)
    if not match:
        return None
    number, unit, per = match.groups()
    size = int(float(number) * _UNITS[(unit or "M").upper()])
    return size * (cpus or 1) if per.lower() == "c" else size


def _gpus(tres: str) -> int | None:
    for part in tres.split(","):
        name, _, value = part.partition("=")
        if name == "gres/gpu" and value.isdigit():
            return int(value)
    return None


def usage_sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """sacct for the usage of many jobs: allocation and step rows, ``|``-separated."""
    return [
        "sacct",
        "--noheader",
        "--parsable2",
        f"--jobs={','.join(job_ids)}",
        f"--format={','.join(USAGE_SACCT_FIELDS)}",
    ]


def parse_usage_sacct(stdout: str) -> dict[str, Usage]:
    """Parse :func:`usage_sacct_argv` output into ``{job id: Usage}`` (source ``"sacct"``).

    The allocation row gives times, CPUs, limits and nodes; the largest MaxRSS
    of its steps (``123.batch``, ``123.0``) gives the peak memory.
    """
    rows: dict[str, list[str]] = {}
    peaks: dict[str, int] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != len(USAGE_SACCT_FIELDS) or not fields[0]:
            continue
        job_id, _, step = fields[0].partition(".")
        if step:
            step_rss = parse_size(fields[7]) if fields[7].strip() else None
            if step_rss is not None:
                peaks[job_id] = max(peaks.get(job_id, 0), step_rss)
        else:
            rows[job_id] = fields
    result: dict[str, Usage] = {}
    for job_id, fields in rows.items():
        state, submit, start, _, elapsed, total_cpu, rss, cpus_text, req_mem, limit = fields[1:11]
        nodes, tres = fields[11].strip(), fields[12]
        submitted, started = _time(submit), _time(start)
        cpus = _number(cpus_text)
        wait = (started - submitted).total_seconds() if submitted and started else None
        limit_min, elapsed_s = _number(limit), _number(elapsed)
        peak = peaks.get(job_id, parse_size(rss) if rss.strip() else None)
        result[job_id] = Usage(
            source="sacct",
            queue_wait_s=max(wait, 0.0) if wait is not None else None,
            elapsed_s=float(elapsed_s) if elapsed_s is not None else None,
            cpu_time_s=parse_duration(total_cpu),
            max_rss_bytes=peak,
            cpus=cpus,
            mem_bytes=_req_mem(req_mem, cpus),
            time_limit_s=limit_min * 60.0 if limit_min is not None else None,
            nodes=nodes if nodes and nodes != "None assigned" else None,
            gpus=_gpus(tres),
            state=state.split()[0] if state.strip() else "",
        )
    return result


def runner_usage(text: str, *, state: str = "") -> Usage | None:
    """The runner's measurement file (JSON) as a :class:`Usage` (source ``"runner"``)."""
    try:
        data = json.loads(text)
        started, ended = float(data["started"]), float(data["ended"])
    except (ValueError, KeyError, TypeError):
        return None
    submitted = data.get("submitted")
    mem_mb = data.get("mem_mb")
    limit = data.get("time_limit_s")
    return Usage(
        source="runner",
        queue_wait_s=max(started - float(submitted), 0.0) if submitted else None,
        elapsed_s=max(ended - started, 0.0),
        cpu_time_s=float(data.get("cpu_s", 0.0)),
        max_rss_bytes=int(data["max_rss_bytes"]) if data.get("max_rss_bytes") else None,
        cpus=int(data["cpus"]) if data.get("cpus") else None,
        mem_bytes=int(mem_mb) * 1024**2 if mem_mb else None,
        time_limit_s=float(limit) if limit else None,
        nodes=data.get("node") or None,
        gpus=int(data["gpus"]) if data.get("gpus") is not None else None,
        state=state,
    )


# ------------------------------------------------------------------ summaries


@dataclass(frozen=True)
class Figure:
    """One figure over an array's elements: min, median, max, and which element had the max."""

    min: float
    median: float
    max: float
    worst: int  # the array index of the element with the max


@dataclass(frozen=True)
class UsageSummary:
    """An array's usage over its finished elements.

    Attributes:
        count: elements with figures.
        elapsed_s, cpu_time_s, max_rss_bytes, queue_wait_s: a :class:`Figure`
            each, or None when no element had that figure.
        sources: how many elements' figures came from each source.
    """

    count: int
    elapsed_s: Figure | None
    cpu_time_s: Figure | None
    max_rss_bytes: Figure | None
    queue_wait_s: Figure | None
    sources: Mapping[str, int]


def _figure(values: Sequence[tuple[int, float | int | None]]) -> Figure | None:
    known = [(index, float(v)) for index, v in values if v is not None]
    if not known:
        return None
    worst = max(known, key=lambda item: item[1])
    numbers = [v for _, v in known]
    return Figure(min(numbers), median(numbers), worst[1], worst[0])


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones), as ``statistics.median``,
    whose import (``fractions``, ``decimal``) costs the client's start 4 ms."""
    if not values:
        raise ValueError("no median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def summarise(usages: Mapping[int, Usage]) -> UsageSummary:
    """Summarise elements' usage (``{array index: Usage}``)."""
    items = sorted(usages.items())
    sources: dict[str, int] = {}
    for _, usage in items:
        sources[usage.source] = sources.get(usage.source, 0) + 1
    return UsageSummary(
        count=len(items),
        elapsed_s=_figure([(i, u.elapsed_s) for i, u in items]),
        cpu_time_s=_figure([(i, u.cpu_time_s) for i, u in items]),
        max_rss_bytes=_figure([(i, u.max_rss_bytes) for i, u in items]),
        queue_wait_s=_figure([(i, u.queue_wait_s) for i, u in items]),
        sources=sources,
    )
