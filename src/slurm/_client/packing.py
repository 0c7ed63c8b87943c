"""Choosing how a map is packed: ``pack=K`` as given, ``pack="auto"`` from the cluster.

``pack="auto"`` asks ``sinfo`` once for the partition's idle CPUs, and reads how
long the task's calls took the last times it ran here (the runner's figures,
``results/0.usage`` or ``result.usage`` of up to three earlier job directories
of the task: one listing and a few small reads), then lets
:func:`~slurm._slurm.pack.auto_per_element` decide. Nothing here is public;
:mod:`slurm._client.submission` calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slurm._slurm.pack import Packing, auto_per_element, idle_cpus, sinfo_cpus_argv
from slurm._slurm.usage import median, runner_usage
from slurm._wire.layout import JobPaths
from slurm._wire.pack import PackPlan
from slurm.errors import SlurmError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["plan_for"]

logger = logging.getLogger(__name__)

_EARLIER_RUNS = 3


def plan_for(
    session: Session, name: str, calls: int, packing: Packing, sbatch: Mapping[str, Any]
) -> PackPlan:
    """The plan of a packed map of ``calls`` calls of task ``name`` (``sbatch``: its options)."""
    if packing.per_element is not None:
        return PackPlan(calls, min(packing.per_element, calls), packing.parallel)
    idle = _idle(session, sbatch.get("partition"))
    seconds = _call_seconds(session, name)
    per_element = auto_per_element(
        calls,
        idle=idle,
        cpus_per_call=int(sbatch.get("cpus_per_task") or 1),
        parallel=packing.parallel,
        call_seconds=seconds,
        target_s=packing.target_s,
    )
    logger.info(
        "pack='auto' for %s: %d calls per element (%s idle CPUs, calls of %s s before)",
        name,
        per_element,
        idle,
        "unknown" if seconds is None else f"{seconds:.1f}",
    )
    return PackPlan(calls, per_element, packing.parallel)


def _idle(session: Session, partition: Any) -> int | None:
    try:
        done = session.slurm.run(
            sinfo_cpus_argv(str(partition) if partition else None), check=False
        )
    except SlurmError:
        return None
    return idle_cpus(done.stdout) if done.returncode == 0 else None


def _call_seconds(session: Session, name: str) -> float | None:
    """The median elapsed seconds of the task's calls in its last runs here, or None."""
    found: list[float] = []
    transport = session.transport
    for job_dir in session.store.latest_job_dirs(name, _EARLIER_RUNS):
        for paths in (JobPaths(job_dir, 0), JobPaths(job_dir)):
            try:
                usage = runner_usage(transport.read_text(paths.usage))
            except (OSError, SlurmError):
                continue
            if usage is not None and usage.elapsed_s is not None:
                found.append(usage.elapsed_s)
                break
    return median(found) if found else None
