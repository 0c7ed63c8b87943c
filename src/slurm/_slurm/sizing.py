"""What the next attempt of a call asks for, and which rule chose it.

Pure: an ended attempt's state, its request and what it used go in, the next
request comes out. The rules, each named in ``Attempt.rule``:

- ``asked``: the task's own request (the first attempt);
- ``learned``: the last request that succeeded for the same task and options
  (``Retry(learn=True)``, see :mod:`slurm._client.learned`);
- ``grown``: the limit that ran out times the Retry's growth factor;
- ``measured``: what the attempt used (MaxRSS, Elapsed) times the growth
  factor, when that is more than ``grown``: the growth factor is a floor, a
  retry never asks for less than the grown limit;
- ``exclude``: after ``NODE_FAIL`` / ``BOOT_FAIL``, the same limits with the
  failed node(s) added to ``--exclude``;
- ``same``: the same request again (an exception named in ``Retry.exceptions``,
  or a node failure whose node is not known).

Caps (``max_time``, ``max_mem``) bound ``grown`` and ``measured`` alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from slurm._slurm.retry import (
    Retry,
    format_minutes,
    grown_limits,
    mem_megabytes,
    time_seconds,
)
from slurm._slurm.usage import Usage
from slurm._wire.record import record

__all__ = [
    "LIMIT_KEYS",
    "RULES",
    "Request",
    "exclude_nodes",
    "killed_at_rss",
    "measured_limits",
    "next_request",
    "split_hostlist",
]

#: Every rule that may choose a request (see the module's docstring).
RULES = ("asked", "learned", "grown", "measured", "exclude", "same")
#: The request keys that sizing and learning change (``exclude`` is not learned).
LIMIT_KEYS = ("time", "mem", "mem_per_cpu", "mem_per_gpu")
_NODE_FAILS = frozenset({"NODE_FAIL", "BOOT_FAIL"})
_MIB = 1024 * 1024


@record(frozen=True)
class Request:
    """The limits of an attempt (sbatch option values) and the rule that chose them."""

    limits: dict[str, str]
    rule: str


def split_hostlist(text: str) -> list[str]:
    """The comma-separated parts of a Slurm host list, brackets kept whole.

    Example::

        >>> split_hostlist("node[1-3,7],gpu1")
        ['node[1-3,7]', 'gpu1']
    """
    return re.findall(r"[^,\[\]]+(?:\[[^\]]*\][^,\[\]]*)*", text or "")


def exclude_nodes(limits: Mapping[str, str], nodes: str) -> dict[str, str]:
    """``limits`` with ``nodes`` (a host list) added to ``exclude``, nothing twice."""
    parts = split_hostlist(limits.get("exclude", ""))
    parts += [p for p in split_hostlist(nodes) if p not in parts]
    out = dict(limits)
    if parts:
        out["exclude"] = ",".join(parts)
    return out


_KILLED_AT = re.compile(r"exceeded (?:job )?memory limit \((\d+) > (\d+)\)", re.IGNORECASE)


def killed_at_rss(stderr_tail: str) -> int | None:
    """The memory (bytes) slurmstepd saw when it killed the step, from its stderr line.

    The accounting gatherer (``JobAcctGatherParams=OverMemoryKill``) writes
    ``StepId=7.batch exceeded memory limit (329900032 > 209715200), being killed``:
    what it measured, at least as much as sacct's MaxRSS, and there even when
    accounting is off or has not recorded the step yet.

    Example::

        >>> killed_at_rss("slurmstepd: error: StepId=7.batch exceeded memory limit "
        ...               "(329900032 > 209715200), being killed")
        329900032
    """
    found = [int(m.group(1)) for m in _KILLED_AT.finditer(stderr_tail or "")]
    return max(found) if found else None


def _per(usage: Usage, key: str) -> int | None:
    """What a memory key counts per: 1 for ``mem``, the CPUs or GPUs for the others."""
    if key == "mem":
        return 1
    count = usage.cpus if key == "mem_per_cpu" else usage.gpus
    return count if count else None


def measured_limits(
    retry: Retry, state: str, limits: Mapping[str, str], usage: Usage | None
) -> dict[str, str]:
    """The limit that ran out sized from what the attempt used, times the growth factor
    (capped like the grown one); the other limits as they were.

    ``TIMEOUT``: Elapsed (at least the time limit Slurm applied, which rounds up to a
    minute) times ``grow["time"]``. ``OUT_OF_MEMORY``: MaxRSS (per CPU or GPU for
    ``mem_per_cpu`` / ``mem_per_gpu``) times ``grow["mem"]``. Nothing measured: as
    they were.

    Example::

        >>> used = Usage("sacct", max_rss_bytes=316 * 2**20)
        >>> measured_limits(Retry(), "OUT_OF_MEMORY", {"mem": "200M"}, used)
        {'mem': '474M'}
    """
    out = dict(limits)
    if usage is None:
        return out
    if state == "TIMEOUT" and "time" in out:
        ran = max(usage.elapsed_s or 0.0, usage.time_limit_s or 0.0)
        if ran > 0:
            new = ran * float(retry.grow.get("time", 1.0))
            if retry.max_time is not None:
                new = min(new, float(time_seconds(retry.max_time) or new))
            out["time"] = format_minutes(new)
    elif state == "OUT_OF_MEMORY" and usage.max_rss_bytes:
        factor = float(retry.grow.get("mem", 1.0))
        for key in LIMIT_KEYS[1:]:
            per = _per(usage, key)
            if key not in out or per is None:
                continue
            new = math.ceil(usage.max_rss_bytes / per / _MIB * factor)
            if retry.max_mem is not None and key == "mem":
                new = min(new, mem_megabytes(retry.max_mem) or new)
            out[key] = f"{new}M"
    return out


def _amount(limits: Mapping[str, str], key: str) -> float:
    """Seconds of ``time``, or megabytes of the memory keys together."""
    if key == "time":
        return float(time_seconds(limits.get("time", "")) or 0)
    return float(sum(mem_megabytes(limits[k]) or 0 for k in LIMIT_KEYS[1:] if k in limits))


def next_request(
    retry: Retry,
    state: str,
    attempts_so_far: int,
    limits: Mapping[str, str],
    usage: Usage | None = None,
    *,
    nodes: str | None = None,
) -> Request | None:
    """The request of the attempt after one that ended in ``state``, or None (no retry).

    None when ``state`` is not retried, ``max_attempts`` is reached
    (``attempts_so_far`` counts the one that just ended), or the limit that ran
    out cannot grow any more (its cap is reached). ``usage`` is what the ended
    attempt used; ``nodes`` where it ran (a host list), excluded after a node
    failure.

    Example::

        >>> used = Usage("sacct", max_rss_bytes=316 * 2**20)
        >>> next_request(Retry(grow={"mem": 2.0}), "OUT_OF_MEMORY", 1, {"mem": "200M"}, used)
        Request(limits={'mem': '632M'}, rule='measured')
    """
    if state not in retry.on or attempts_so_far >= retry.max_attempts:
        return None
    if state in _NODE_FAILS:
        where = nodes or (usage.nodes if usage else None)
        if not where:
            return Request(dict(limits), "same")
        return Request(exclude_nodes(limits, where), "exclude")
    key = {"TIMEOUT": "time", "OUT_OF_MEMORY": "mem"}[state]
    grown = grown_limits(retry, state, limits)
    measured = measured_limits(retry, state, limits, usage)
    chosen, rule = dict(grown), "grown"
    for name in ("time",) if key == "time" else LIMIT_KEYS[1:]:
        if name in measured and _amount({name: measured[name]}, key) > _amount(
            {name: grown[name]}, key
        ):
            chosen[name], rule = measured[name], "measured"
    if retry.grow.get(key, 1.0) > 1.0 and _amount(chosen, key) <= _amount(limits, key):
        return None
    return Request(chosen, rule)
