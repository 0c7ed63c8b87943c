"""Retrying a call that ran out of time or memory, with more of what it ran out of.

:class:`Retry` is the task option (``@task(retry=slurm.Retry())``); the pure
functions here decide whether an ended attempt is retried and with which
limits; :class:`Attempt` records one attempt. The resubmission itself is
:func:`slurm._client.submission.resubmit`, the same path that resubmits a preempted
job Slurm could not requeue (a preemption is not an attempt).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from slurm._slurm.usage import Usage
from slurm._wire.payload import Envelope
from slurm.errors import ConfigurationError

__all__ = [
    "RETRYABLE_STATES",
    "Attempt",
    "Retry",
    "current_rule",
    "ended_state",
    "format_minutes",
    "grown_limits",
    "limits_of",
    "mem_megabytes",
    "next_limits",
    "raised_one_of",
    "read_attempts",
    "time_seconds",
]

#: The states a Retry may name: ends that more resources (or another node) may mend.
RETRYABLE_STATES = frozenset({"TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"})
#: Which limit grows for which state.
_GROWS = {"TIMEOUT": "time", "OUT_OF_MEMORY": "mem"}
_MEMORY_KEYS = ("mem", "mem_per_cpu", "mem_per_gpu")
_MEM_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}


@dataclass(frozen=True)
class Retry:
    """Run a call again, with more time or memory, when Slurm stopped it for lack of them.

    Args:
        max_attempts: attempts in all, the first one included (>= 1).
        on: the end states that are retried: any of ``TIMEOUT``,
            ``OUT_OF_MEMORY``, ``NODE_FAIL``, ``BOOT_FAIL``.
        grow: factors by which the limit that ran out grows at each retry:
            ``time`` after a TIMEOUT, ``mem`` after an OUT_OF_MEMORY (a node
            failure is retried with the same limits).
        max_time: a cap on the grown time (anything ``time=`` accepts).
        max_mem: a cap on the grown memory (anything ``mem=`` accepts).
        exceptions: exception types raised by the task that are retried too
            (same limits); by default an exception is the task's answer and
            is never retried.
        learn: remember the request of the last attempt that succeeded, per
            task and option set (under the job base directory, ``.learned/``),
            and start the next call of the same task with the same options
            there instead of at its own request (default off).

    What a retry asks for: after a TIMEOUT or OUT_OF_MEMORY, the larger of the
    limit times its growth factor and what the attempt used (Elapsed, MaxRSS)
    times the factor; after a node failure, the same limits with that node
    excluded (``--exclude``). ``Job.attempts`` names the rule of each request
    (:mod:`slurm._slurm.sizing`).

    A preemption is not an attempt: a preempted job is requeued (or
    resubmitted) under ``max_requeues`` as before.

    Raises:
        ConfigurationError: a value out of range, an unknown state or limit.

    Example::

        @task(time="00:10:00", mem="2G",
              retry=Retry(max_attempts=3, grow={"time": 2.0, "mem": 1.5}))
        def train(...): ...
    """

    max_attempts: int = 3
    # Any collection of names (a set, a list, one name), kept as a frozenset.
    on: Collection[str] = field(default_factory=lambda: frozenset(RETRYABLE_STATES - {"BOOT_FAIL"}))
    grow: Mapping[str, float] = field(default_factory=lambda: {"time": 2.0, "mem": 1.5})
    max_time: str | int | None = None
    max_mem: str | int | None = None
    exceptions: tuple[type[BaseException], ...] = ()
    learn: bool = False

    def __post_init__(self) -> None:
        states = frozenset(
            str(s).upper() for s in ([self.on] if isinstance(self.on, str) else self.on)
        )
        object.__setattr__(self, "on", states)
        object.__setattr__(self, "grow", dict(self.grow))
        object.__setattr__(self, "exceptions", tuple(self.exceptions))
        problems = []
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(f"max_attempts must be a whole number >= 1, got {self.max_attempts!r}")
        if states - RETRYABLE_STATES:
            problems.append(
                f"on names {', '.join(sorted(states - RETRYABLE_STATES))}; a Retry may name "
                f"{', '.join(sorted(RETRYABLE_STATES))} (a failure by exception is retried "
                "through exceptions=)"
            )
        for key, factor in self.grow.items():
            if key not in ("time", "mem"):
                problems.append(f"grow names {key!r}; it may grow 'time' and 'mem'")
            elif not isinstance(factor, int | float) or factor < 1:
                problems.append(f"grow[{key!r}] must be a number >= 1, got {factor!r}")
        if self.max_time is not None and time_seconds(self.max_time) is None:
            problems.append(f"max_time {self.max_time!r} is not a Slurm time")
        if self.max_mem is not None and mem_megabytes(self.max_mem) is None:
            problems.append(f"max_mem {self.max_mem!r} is not a Slurm memory size")
        if not isinstance(self.learn, bool):
            problems.append(f"learn must be True or False, got {self.learn!r}")
        if any(not (isinstance(e, type) and issubclass(e, BaseException)) for e in self.exceptions):
            problems.append(f"exceptions must be exception types, got {self.exceptions!r}")
        if problems:
            raise ConfigurationError("Invalid Retry: " + "; ".join(problems) + ".")

    def check_limits(self, task_name: str, sbatch_options: Mapping[str, Any]) -> None:
        """Refuse, before submission, a growth with nothing to grow from.

        Raises:
            ConfigurationError: the Retry grows time (or memory) on TIMEOUT (or
                OUT_OF_MEMORY) but the task sets no ``time=`` (or ``mem=``).
        """
        for state, key in _GROWS.items():
            if state not in self.on or self.grow.get(key, 1.0) == 1.0:
                continue
            keys = (key,) if key == "time" else _MEMORY_KEYS
            if not any(limits_of(sbatch_options).get(k) for k in keys):
                raise ConfigurationError(
                    f"{task_name}() retries {state} with more {key}, but sets no `{key}=`: "
                    f"there is nothing to grow from. Nothing was submitted. Give the task "
                    f"`{key}=` (or drop {state} from Retry.on, or grow={{'{key}': 1.0}})."
                )


@dataclass(frozen=True)
class Attempt:
    """One attempt of a call: its job id, how it ended, its limits and what it used.

    ``rule`` says which rule chose its limits: ``asked`` (the task's own),
    ``learned``, ``grown``, ``measured``, ``exclude`` or ``same`` (see
    :mod:`slurm._slurm.sizing`).
    """

    job_id: str
    state: str
    limits: Mapping[str, str]
    usage: Usage | None = None
    submitted: float | None = None
    rule: str = "asked"

    def to_json(
        self,
        *,
        next_id: str,
        next_limits: Mapping[str, str],
        next_submitted: float,
        next_rule: str = "grown",
    ) -> str:
        """One line of the attempts file, naming the attempt that follows."""
        return json.dumps(
            {
                "job_id": self.job_id,
                "state": self.state,
                "limits": dict(self.limits),
                "usage": self.usage.__dict__ if self.usage else None,
                "submitted": self.submitted,
                "next_id": next_id,
                "next_limits": dict(next_limits),
                "next_submitted": next_submitted,
                "rule": self.rule,
                "next_rule": next_rule,
            },
            sort_keys=True,
        )


def read_attempts(text: str) -> tuple[list[Attempt], str | None, dict[str, str]]:
    """Parse an attempts file: the earlier attempts, the current job id and its limits
    (the rule that chose them: :func:`current_rule`)."""
    attempts: list[Attempt] = []
    rule = "asked"
    current: str | None = None
    limits: dict[str, str] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        usage = record.get("usage")
        attempts.append(
            Attempt(
                record["job_id"],
                record["state"],
                record.get("limits", {}),
                Usage(**usage) if usage else None,
                record.get("submitted"),
                str(record.get("rule", rule)),
            )
        )
        current, limits = record["next_id"], dict(record.get("next_limits", {}))
        rule = str(record.get("next_rule", "grown"))  # files before rules: grown
    return attempts, current, limits


def current_rule(text: str) -> str:
    """The rule that chose the current attempt's limits, from an attempts file."""
    rule = "asked"
    for line in text.splitlines():
        try:
            rule = str(json.loads(line).get("next_rule", "grown"))
        except (json.JSONDecodeError, AttributeError):
            continue
    return rule


def ended_state(state: str, stderr_tail: str) -> str:
    """How an attempt really ended: ``OUT_OF_MEMORY`` for a job Slurm killed for memory.

    With cgroups Slurm says OUT_OF_MEMORY; when the accounting gatherer enforces the
    limit (``JobAcctGatherParams=OverMemoryKill``, the dev cluster) Slurm 22.05 says
    FAILED and only slurmstepd's line in the job's stderr tells why.
    """
    if state == "FAILED" and "exceeded job memory limit" in stderr_tail.lower():
        return "OUT_OF_MEMORY"
    return state


# ------------------------------------------------------------------ limits


_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def time_seconds(value: str | int) -> int | None:
    """Seconds in a Slurm time (``int`` minutes, ``M``, ``M:S``, ``H:M:S``, ``D-H[:M[:S]]``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 60 if value >= 0 else None
    match = _TIME_RE.match(str(value).strip())
    if not match:
        return None
    days, first, second, third = match.groups()
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if third is not None:  # H:M:S
        return int(first) * 3600 + int(second) * 60 + int(third)
    if second is not None:  # M:S
        return int(first) * 60 + int(second)
    return int(first) * 60  # M


def format_minutes(seconds: float) -> str:
    """A Slurm time of whole minutes, rounded up: ``D-HH:MM:00``."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 1440)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def mem_megabytes(value: str | int) -> int | None:
    """Megabytes in a Slurm memory size (``int`` megabytes, ``512M``, ``4G``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    match = re.match(r"^(\d+)([KMGT]?)$", str(value).strip(), re.IGNORECASE)
    if not match:
        return None
    return math.ceil(int(match.group(1)) * _MEM_UNITS[(match.group(2) or "M").upper()])


def limits_of(sbatch_options: Mapping[str, Any]) -> dict[str, str]:
    """The time and memory limits a job was submitted with, and the nodes it excludes,
    as sbatch option values (what a retry may change)."""
    return {
        key: str(value)
        for key in ("time", *_MEMORY_KEYS, "exclude")
        if (value := sbatch_options.get(key)) is not None and not isinstance(value, bool)
    }


def grown_limits(retry: Retry, state: str, limits: Mapping[str, str]) -> dict[str, str]:
    """The limits for the next attempt after one that ended in ``state``.

    The limit that ran out grows by its factor (capped by ``max_time`` /
    ``max_mem``); the others stay.

    Example::

        >>> grown_limits(Retry(), "TIMEOUT", {"time": "1", "mem": "500M"})
        {'time': '0-00:02:00', 'mem': '500M'}
    """
    grown = dict(limits)
    key = _GROWS.get(state)
    factor = float(retry.grow.get(key, 1.0)) if key else 1.0
    if key == "time" and "time" in grown:
        seconds = time_seconds(grown["time"])
        if seconds is not None:
            new = seconds * factor
            if retry.max_time is not None:
                new = min(new, float(time_seconds(retry.max_time) or new))
            grown["time"] = format_minutes(new)
    elif key == "mem":
        for name in _MEMORY_KEYS:
            megabytes = mem_megabytes(grown[name]) if name in grown else None
            if megabytes is None:
                continue
            new = math.ceil(megabytes * factor)
            if retry.max_mem is not None and name == "mem":
                new = min(new, mem_megabytes(retry.max_mem) or new)
            grown[name] = f"{new}M"
    return grown


def next_limits(
    retry: Retry, state: str, attempts_so_far: int, limits: Mapping[str, str]
) -> dict[str, str] | None:
    """The limits to retry with after an attempt that ended in ``state``, or None.

    None when ``state`` is not retried, ``max_attempts`` is reached
    (``attempts_so_far`` counts the one that just ended), or the limit that
    ran out cannot grow any more (its cap is reached).
    """
    if state not in retry.on or attempts_so_far >= retry.max_attempts:
        return None
    grown = grown_limits(retry, state, limits)
    key = _GROWS.get(state)
    if key and retry.grow.get(key, 1.0) > 1.0 and _amount(grown, key) <= _amount(limits, key):
        return None
    return grown


def _amount(limits: Mapping[str, str], key: str) -> float:
    if key == "time":
        return float(time_seconds(limits.get("time", "")) or 0)
    return float(sum(mem_megabytes(limits[k]) or 0 for k in _MEMORY_KEYS if k in limits))


def raised_one_of(envelope: Envelope, types: tuple[type[BaseException], ...]) -> bool:
    """Whether the failed call's exception is one of ``types`` (a Retry's ``exceptions``)."""
    if envelope.ok or not types:
        return False
    error: object = None
    if envelope.exception is not None:
        import cloudpickle

        try:
            error = cloudpickle.loads(envelope.exception)
        except Exception:
            error = None
    if isinstance(error, BaseException):
        return isinstance(error, types)
    names = {f"{t.__module__}.{t.__qualname__}".removeprefix("builtins.") for t in types}
    return envelope.type_name in names
