"""From task calls to placements: :func:`submit_calls` (one call, a map, a batch's group).

A task without ``cache=True`` goes straight to
:func:`~slurm._client.submission.submit_parts`. With it (:func:`submit_cached`), what
the cache has is answered from it, only the rest is submitted (a map: one array of
just those).

The arguments are hashed before phase 2 (an argument that cannot be hashed stops
the whole submission before packaging runs) and the keys completed after it (the
interpreter and image are part of them), before anything is written. After
``sbatch``, each submitted call's entry is written
(:class:`~slurm._client.cache.ResultCache`), pointing at its job directory: it
is a hit for later calls once that run has a result, also when this client is
gone by then.

In a running workflow the journal keeps one position per cached submission,
whatever the cache answers (its fingerprint is made of the keys), so that a
restarted workflow replays the same positions; a call the earlier run of the
workflow submitted and that has no result yet is reattached through its entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slurm._client.cache import ResultCache, sdk_version
from slurm._client.cachekey import KeyMaker
from slurm._client.submission import (
    Placement,
    Resolved,
    resolve,
    stage,
    submit_packed,
    submit_parts,
)
from slurm._client.tasks import SubmittedTask
from slurm._slurm.pack import Packing
from slurm._wire.cache import CacheEntry
from slurm._wire.journal import JournalEntry, fingerprint
from slurm._wire.payload import Call
from slurm._wire.record import replace
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["submit_batch", "submit_cached", "submit_calls"]

logger = logging.getLogger("slurm.cache")


def submit_calls(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    *,
    array: bool,
    max_concurrent: int | None = None,
    packing: Packing | None = None,
) -> tuple[list[tuple[str, str]], list[Placement]]:
    """Submit ``calls`` (one job, or arrays): the (Slurm id, job directory) of each
    submission, and one :class:`Placement` per call, in call order.

    Slurm caps array indices below MaxArraySize: more calls become several
    arrays, transparently (results still in call order).

    A task with ``cache=True``: a call whose key has a result is answered from
    the cache (its placement carries the entry; nothing is submitted), and only
    the others are submitted, as one array of just those when ``array``
    (see :func:`submit_cached`). With ``packing`` each array element runs several
    calls (see :mod:`slurm._job.pack`).

    Raises:
        ConfigurationError: ``packing`` for a task with ``cache=True`` (not both yet).
    """
    resolved = resolve(session, task)
    if packing is not None:
        if resolved.cache is not None:
            raise ConfigurationError(
                f"{task.name}.map(pack=...) with cache=True: a packed map does not use the "
                "cache yet. Nothing was submitted. Drop one of them."
            )
        return submit_packed(session, task, calls, packing, max_concurrent)
    if resolved.cache is not None:
        return submit_cached(session, task, calls, resolved, array, max_concurrent)
    return submit_parts(session, task, calls, array=array, max_concurrent=max_concurrent)


def submit_batch(
    session: Session,
    collected: Sequence[tuple[SubmittedTask, Call]],
    packing: Packing | None = None,
) -> list[Placement]:
    """Submit the calls a ``cluster.batch()`` block collected: one array per task and
    option set (a lone call as a plain job; packed when ``packing`` says so). One
    placement per call, in their order."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position, (task, _) in enumerate(collected):
        key = (
            task.unwrapped,
            task.is_workflow,
            repr(sorted(task.options.items())),
            tuple((kind, id(dep)) for kind, dep in task.dependencies),
        )
        groups.setdefault(key, []).append(position)
    placements: dict[int, Placement] = {}
    for members in groups.values():
        calls = [collected[i][1] for i in members]
        task = collected[members[0]][0]
        _, placed = submit_calls(session, task, calls, array=len(members) > 1, packing=packing)
        placements.update(zip(members, placed, strict=True))
    return [placements[i] for i in range(len(collected))]


def submit_cached(
    session: Session,
    task: SubmittedTask,
    calls: Sequence[Call],
    resolved: Resolved,
    array: bool,
    max_concurrent: int | None,
) -> tuple[list[tuple[str, str]], list[Placement]]:
    """The (Slurm id, job directory) of each submission made and one placement per call,
    in call order; a call answered from the cache has a placement with its entry.

    Raises:
        ConfigurationError: as :func:`submit_calls`, and an
            argument that cannot be hashed stably (nothing is submitted then).
    """
    policy = resolved.cache
    assert policy is not None  # noqa: S101 (the caller checked; for mypy)
    maker = KeyMaker(task, policy, {**resolved.sbatch, **resolved.sdk})
    partials = [maker.partial(call) for call in calls]  # bad arguments fail before packaging
    staged = stage(session, task, resolved, calls)
    container = staged.prepared.container
    python, image = staged.prepared.launch.python, container.image if container else None
    keyed = [KeyMaker.complete(p, python=python, image=image) for p in partials]
    cache = ResultCache(session)
    replayable = _take_position(session, task, [key for key, _ in keyed])
    placed: dict[int, Placement] = {}
    for index, (key, _) in enumerate(keyed):
        hit = cache.lookup(key)
        if hit is not None:
            logger.info(
                "%s(): answered from the cache: the result of job %s (%s)",
                task.name,
                hit.job_id,
                hit.job_dir,
            )
            placed[index] = Placement.from_cache(hit)
            continue
        earlier = cache.unfinished(key, under=session.store.base_dir) if replayable else None
        if earlier is not None:  # the earlier run of this workflow submitted it
            placed[index] = Placement(
                earlier.job_id,
                earlier.job_dir,
                earlier.array_index,
                resolved.policy.max_requeues,
                (),
                resolved.retry,
                dict(resolved.limits),
                None,
            )
    missing = [i for i in range(len(calls)) if i not in placed]
    parts: list[tuple[str, str]] = []
    if missing:
        staged = replace(staged, journal=False)
        todo = [calls[i] for i in missing]
        parts, placements = submit_parts(
            session, task, todo, array=array, max_concurrent=max_concurrent, staged=staged
        )
        now = time.time()
        for index, placement in zip(missing, placements, strict=True):
            key, made_of = keyed[index]
            entry = CacheEntry(
                key,
                task.name,
                placement.job_id,
                placement.job_dir,
                placement.array_index,
                now,
                sdk_version(),
                made_of,
            )
            cache.record(entry)
            placed[index] = placement
    return parts, [placed[i] for i in range(len(calls))]


def _take_position(session: Session, task: SubmittedTask, keys: Sequence[str]) -> bool:
    """In a running workflow, the journal's position of this submission (True), taken
    whatever the cache answers, so that a restarted workflow replays the same ones."""
    journal = session.journal
    if journal is None:
        return False
    digest = fingerprint("cache", task.name, *keys)
    seq, entry = journal.claim(task.name, digest)
    if entry is None:
        journal.begin(JournalEntry(seq, task.name, digest, ""))
    return True
