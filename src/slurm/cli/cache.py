"""``slurm cache list|show|clear``: the results ``cache=True`` calls keep across runs.

The entries are those of :class:`slurm.inspect.ResultCache` (``Cluster.cache``)
under the job base directory; nothing is unpickled to show them. Rendering is
pure (:func:`list_lines`, :func:`show_lines`); the cluster options are those of
:meth:`slurm.Cluster.add_argparse_args`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click

from slurm.cli.jobs import cluster_options, opened_cluster
from slurm.inspect import CachedCall

__all__ = ["cache", "list_lines", "show_lines"]


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def list_lines(calls: Sequence[CachedCall], directory: str) -> list[str]:
    """``slurm cache list``: one line per entry (key prefix, task, job, state, written)."""
    if not calls:
        return [f"no cached results under {directory}"]
    width = max(len(c.entry.task) for c in calls)
    lines = [f"{'KEY':<12}  {'TASK':<{width}}  {'JOB':<12}  {'STATE':<9}  WRITTEN"]
    for call in calls:
        entry = call.entry
        state = call.state if len(call.state) <= 9 else "refused"
        lines.append(
            f"{entry.key[:12]}  {entry.task:<{width}}  {entry.job_id:<12}  {state:<9}  "
            f"{_when(entry.created)}"
        )
    hits = sum(c.hit for c in calls)
    lines.append(f"{len(calls)} entries, {hits} with a result (in {directory})")
    return lines


def show_lines(call: CachedCall) -> list[str]:
    """``slurm cache show KEY``: the entry, its run and what its key is made of."""
    entry = call.entry
    element = "" if entry.array_index is None else f" (array element {entry.array_index})"
    lines = [
        f"key:       {entry.key}",
        f"task:      {entry.task}",
        f"state:     {call.state}",
        f"job:       {entry.job_id}{element}",
        f"job dir:   {entry.job_dir}",
        f"result:    {entry.paths.result}",
        f"written:   {_when(entry.created)} by slurm-sdk {entry.sdk_version}",
        "made of:",
    ]
    lines += [f"  {name:<10} {value}" for name, value in sorted(entry.parts.items())]
    return lines


@click.group()
def cache() -> None:
    """The results of cache=True calls, kept under the job base directory."""


@cache.command("list")
@click.option("--task", default=None, help="Only the entries of this task.")
@cluster_options
def list_entries(task: str | None, **options: Any) -> None:
    """Every cached call, newest first: its key, task, the job that made it, its state."""
    with opened_cluster(options) as cluster:
        store = cluster.cache
        click.echo("\n".join(list_lines(store.list(task=task), store.directory)))


@cache.command()
@click.argument("key")
@cluster_options
def show(key: str, **options: Any) -> None:
    """One entry (KEY, or a unique prefix of it): its run and what its key is made of."""
    with opened_cluster(options) as cluster:
        click.echo("\n".join(show_lines(cluster.cache.show(key))))


@cache.command()
@click.argument("keys", nargs=-1)
@click.option("--task", default=None, help="Only the entries of this task.")
@click.option(
    "--older-than", type=float, default=None, metavar="DAYS",
    help="Only entries written more than DAYS days ago.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@cluster_options
def clear(
    keys: tuple[str, ...],
    task: str | None,
    older_than: float | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Forget cached results: those of KEYS, else all (of --task; --older-than DAYS).

    The job directories stay; `slurm jobs prune` removes them once no entry needs them.
    """
    with opened_cluster(options) as cluster:
        removed = cluster.cache.clear(
            keys=keys, task=task, older_than_days=older_than, dry_run=dry_run
        )
        verb = "would remove" if dry_run else "removed"
        for call in removed:
            click.echo(f"{verb} {call.entry.key[:12]} {call.entry.task} (job {call.entry.job_id})")
        click.echo(f"{verb} {len(removed)} cache entries")
