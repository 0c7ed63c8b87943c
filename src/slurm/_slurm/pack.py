"""Packing many calls into few array elements: the options' checks and arithmetic, pure.

``pack=K`` puts K calls into each Slurm array element, ``pack_parallel=N``
runs N of them at a time there, and ``pack="auto"`` chooses K from what the
partition can run at once and, when the task has run before, from how long
its calls took (no element longer than ``pack_target``). The element asks
for the time of the calls it runs one after the other (``time`` is a call's)
and for the CPUs of those it runs at once (``cpus_per_task`` is a call's).
The free CPUs come from ``sinfo``'s ``%C`` (``allocated/idle/other/total``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from slurm._slurm.retry import format_minutes, time_seconds
from slurm._wire.record import record
from slurm.errors import ConfigurationError

__all__ = [
    "DEFAULT_PACK_TARGET",
    "Packing",
    "auto_per_element",
    "check_packing",
    "element_options",
    "idle_cpus",
    "sinfo_cpus_argv",
]

DEFAULT_PACK_TARGET = "00:10:00"


@record(frozen=True)
class Packing:
    """How a map is packed: ``per_element`` calls (``None``: choose, ``pack="auto"``),
    ``parallel`` at a time, no element longer than ``target_s`` seconds (auto)."""

    per_element: int | None
    parallel: int = 1
    target_s: int = 600


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_packing(
    where: str, pack: Any, pack_parallel: Any = 1, pack_target: Any = DEFAULT_PACK_TARGET
) -> Packing:
    """The checked packing options (``where`` names the call in messages).

    Raises:
        ConfigurationError: ``pack`` is not a whole number >= 1 nor ``"auto"``,
            ``pack_parallel`` not a whole number >= 1, or ``pack_target`` not a
            Slurm time; nothing was submitted.
    """
    if not (pack == "auto" or (_whole(pack) and pack >= 1)):
        raise ConfigurationError(
            f"{where}: pack={pack!r} is not a number of calls per array element. Nothing was "
            'submitted. Pass a whole number >= 1 (pack=20: twenty calls per element) or "auto".'
        )
    if not (_whole(pack_parallel) and pack_parallel >= 1):
        raise ConfigurationError(
            f"{where}: pack_parallel={pack_parallel!r} is not a number of calls to run at once. "
            "Nothing was submitted. Pass a whole number >= 1 (pack_parallel=4)."
        )
    target = time_seconds(pack_target) if isinstance(pack_target, str | int) else None
    if not target:
        raise ConfigurationError(
            f"{where}: pack_target={pack_target!r} is not a Slurm time. Nothing was submitted. "
            'Pass minutes or "HH:MM:SS" (pack_target="00:10:00").'
        )
    return Packing(None if pack == "auto" else pack, pack_parallel, target)


def auto_per_element(
    calls: int,
    *,
    idle: int | None,
    cpus_per_call: int,
    parallel: int,
    call_seconds: float | None,
    target_s: float,
) -> int:
    """Calls per element for ``pack="auto"``: about as many elements as the partition
    can run at once (``idle`` CPUs over what an element asks), and no element longer
    than ``target_s`` by the measured ``call_seconds`` (when the task has run before).

    >>> auto_per_element(1000, idle=8, cpus_per_call=1, parallel=1, call_seconds=None,
    ...                  target_s=600)
    125
    >>> auto_per_element(1000, idle=8, cpus_per_call=1, parallel=1, call_seconds=60,
    ...                  target_s=600)
    10
    """
    slots = max(1, (idle or 1) // max(1, cpus_per_call * parallel))
    per_element = math.ceil(calls / slots)
    if call_seconds is not None and call_seconds > 0:
        longest = max(1, math.floor(target_s / call_seconds)) * parallel
        per_element = min(per_element, longest)
    return max(1, min(per_element, calls))


def element_options(options: Mapping[str, Any], per_element: int, parallel: int) -> dict[str, Any]:
    """An element's sbatch options from a call's: the time of the calls it runs one
    after the other, the CPUs of those it runs at once."""
    element = dict(options)
    rounds = math.ceil(per_element / parallel)
    seconds = time_seconds(options["time"]) if options.get("time") is not None else None
    if seconds and rounds > 1:
        element["time"] = format_minutes(seconds * rounds)
    if parallel > 1:
        element["cpus_per_task"] = int(options.get("cpus_per_task") or 1) * parallel
    return element


def sinfo_cpus_argv(partition: str | None) -> list[str]:
    """``sinfo`` printing the CPUs of the partition (all partitions: ``None``) as ``A/I/O/T``."""
    argv = ["sinfo", "-h", "-o", "%C"]
    return [*argv, "-p", partition] if partition else argv


def idle_cpus(stdout: str) -> int | None:
    """The idle CPUs in ``sinfo -o %C`` output (one line per partition: summed), or None."""
    total = None
    for line in stdout.split():
        parts = line.split("/")
        if len(parts) == 4 and parts[1].isdigit():
            total = (total or 0) + int(parts[1])
    return total
