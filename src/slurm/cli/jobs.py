"""``slurm jobs``: list, show, follow, cancel and watch the SDK's jobs from a shell.

Jobs are found where the SDK records them: ``<job base dir>/.index/<job id>``
holds each job's directory. Their states come from one batched ``squeue``
call (then ``sacct`` for those squeue no longer lists), never one query per
job. The cluster options are those of :meth:`slurm.Cluster.add_argparse_args`.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from slurm import Attempt, Cluster, Job
from slurm.cli.jobview import (
    JobRow,
    JobView,
    StateView,
    describe_state,
    detail_view,
    follow_offset,
    jobs_table,
    plain,
    rows_final,
    tail,
)
from slurm.errors import ConfigurationError, SlurmError
from slurm.inspect import (
    Snapshot,
    cancel_jobs,
    click_options,
    container_name,
    job_outcome,
    job_usages,
    parse_job_dir,
    printable,
    read_outcome,
    script_container,
    settings_from_namespace,
    usage_of,
)
from slurm.inspect import entries as _found_entries
from slurm.inspect import look as query_states

__all__ = [
    "cancel_jobs",
    "cluster_from_options",
    "cluster_options",
    "cluster_options_long",
    "job_outcome",
    "job_usages",
    "job_view",
    "jobs",
    "list_rows",
    "opened_cluster",
    "query_states",
    "read_outcome",
    "watch_loop",
]

F = TypeVar("F", bound=Callable[..., Any])

_LOOKING = StateView("...", final=False)
_LOG_CHUNK = 1 << 20  # bytes of a log read at a time


def _with_slurmfile(command: F, *slurmfile_flags: str) -> F:
    command = click.option(
        "--env", "-e", "env", default=None, metavar="ENV",
        help="Take the cluster from this environment of the Slurmfile (the options above "
        "win over it).",
    )(click_options(command))  # fmt: skip
    return click.option(
        *slurmfile_flags, "slurmfile", default=None, metavar="PATH",
        type=click.Path(dir_okay=False),
        help="Take the cluster from this Slurmfile (environment --env, else $SLURM_ENV, "
        "else default).",
    )(command)  # fmt: skip


def cluster_options(command: F) -> F:
    """Add the cluster options (the same as ``Cluster.add_argparse_args``) to a click
    command, and ``--env/-e``, ``--slurmfile/-f`` (the earlier SDK's: a Slurmfile's
    environment; see :func:`cluster_from_options`)."""
    return _with_slurmfile(command, "--slurmfile", "-f")


def cluster_options_long(command: F) -> F:
    """:func:`cluster_options` for a command whose ``-f`` means something else
    (``jobs logs -f`` follows): ``--slurmfile`` is spelled out there."""
    return _with_slurmfile(command, "--slurmfile")


def cluster_from_options(options: dict[str, Any]) -> Cluster:
    """The ``Cluster`` those options describe: with ``env`` or ``slurmfile``, that
    Slurmfile environment (``Cluster.from_env``), the other options given winning;
    else built exactly as ``Cluster.from_args`` does."""
    given = dict(options)
    env, slurmfile = given.pop("env", None), given.pop("slurmfile", None)
    if env is None and slurmfile is None:
        return Cluster.from_args(argparse.Namespace(**given))
    return Cluster.from_env(path=slurmfile, env=env, **settings_from_namespace(given))


@contextlib.contextmanager
def opened_cluster(options: dict[str, Any]) -> Iterator[Cluster]:
    """A cluster for one command; any SDK error is printed and exits with status 1."""
    try:
        with cluster_from_options(options) as cluster:
            yield cluster
    except SlurmError as exc:
        Console(stderr=True).print(
            Text.assemble(("error: ", "bold red"), plain(str(exc))), soft_wrap=True
        )
        sys.exit(1)


# --- facts from the cluster ------------------------------------------------------------


def _rows(entries: Sequence[tuple[str, str]], snapshot: Snapshot) -> list[JobRow]:
    rows = []
    for job_id, job_dir in entries:
        name, submitted = parse_job_dir(job_dir)
        rows.append(JobRow(job_id, name, describe_state(job_id, snapshot), submitted, job_dir))
    return rows


def list_rows(cluster: Cluster, limit: int, *, usage: bool = False) -> list[JobRow]:
    """The ``limit`` newest jobs under the job base dir, their states from one batched look.

    ``usage`` adds what each job used (one more sacct call; see :func:`job_usages`).
    """
    entries = _entries(cluster, cluster.store.job_ids()[:limit])
    ids = [job_id for job_id, _ in entries]
    rows = _rows(entries, query_states(cluster, ids) if ids else Snapshot())
    if usage and ids:
        usages = job_usages(cluster, ids)
        rows = [dataclasses.replace(row, usage=usages.get(row.job_id)) for row in rows]
    return rows


def job_view(cluster: Cluster, job_id: str, lines: int) -> JobView:
    """Everything ``slurm jobs show`` prints about ``job_id`` (exit code included).

    Raises:
        ConfigurationError: not a job of the SDK under this job base dir.
    """
    job = cluster.get_job(job_id, track=False)  # a retried call: its latest attempt
    snapshot = query_states(cluster, [job.id], exit_codes=True)
    (row,) = _rows([(job.id, job.job_dir)], snapshot)
    usage = usage_of(cluster, job)
    return JobView(
        row=row,
        script_path=job.script_path,
        stdout_path=job.stdout_path,
        stderr_path=job.stderr_path,
        stdout_tail=_log_tail(cluster, job.stdout_path, lines),
        stderr_tail=_log_tail(cluster, job.stderr_path, lines),
        outcome=job_outcome(cluster, job),
        usage=usage,
        attempts=[
            *job.earlier_attempts,
            Attempt(job.id, row.state.text, job.limits, usage, rule=job.rule),
        ],
    )


_TAIL_BYTES = 64 * 1024


def _log_tail(cluster: Cluster, path: str, lines: int) -> str:
    """The last ``lines`` lines of a log, from its last 64 KiB only (a log may be GBs)."""
    try:
        data, _ = cluster.transport.read_range(path, -_TAIL_BYTES, _TAIL_BYTES)
    except OSError:
        return ""
    return tail(data.decode("utf-8", errors="replace"), lines)


def watch_loop(
    rows: list[JobRow],
    look: Callable[[list[str]], Snapshot],
    show: Callable[[list[JobRow]], None],
    *,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobRow]:
    """Refresh ``rows`` until every job is final; return the last rows.

    Each tick makes one ``look`` (one batched query) for the jobs not final
    yet, then calls ``show``. A ``KeyboardInterrupt`` propagates: the caller
    stops watching, the jobs keep running.
    """
    while True:
        waiting = [row.job_id for row in rows if not row.state.final]
        if waiting:
            snapshot = look(waiting)
            rows = [
                row
                if row.state.final
                else JobRow(
                    row.job_id,
                    row.name,
                    describe_state(row.job_id, snapshot),
                    row.submitted,
                    row.directory,
                )
                for row in rows
            ]
        show(rows)
        if rows_final(rows):
            return rows
        sleep(interval)


# --- commands --------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """List, inspect, follow, cancel, watch and connect to the SDK's jobs."""


@jobs.command("list")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--usage", "with_usage", is_flag=True,
    help="Add what each job used: queue wait, elapsed, CPU, peak memory (an array: its worst).",
)  # fmt: skip
@cluster_options
def list_jobs(limit: int, with_usage: bool, **options: Any) -> None:
    """The newest jobs under the job base dir: id, name, state, submitted time, directory."""
    with opened_cluster(options) as cluster:
        rows = list_rows(cluster, limit, usage=with_usage)
        Console().print(jobs_table(rows, title=f"jobs in {cluster.base_dir}", usage=with_usage))


def _entries(cluster: Cluster, job_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(id, job directory) of each job; a refused index entry is reported and left out."""
    found, refused = _found_entries(cluster, job_ids)
    for exc in refused:
        Console(stderr=True).print(Text.assemble(("skipped: ", "yellow"), plain(str(exc))))
    return found


@jobs.command()
@click.argument("job_id")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=10, show_default=True)
@cluster_options
def show(job_id: str, lines: int, **options: Any) -> None:
    """State, exit code, node, paths, result or error, and the last lines of the logs."""
    with opened_cluster(options) as cluster:
        view = job_view(cluster, job_id, lines)
        Console().print(detail_view(view, lines=lines), highlight=False)


@jobs.command()
@click.argument("job_id")
@click.option("--stderr", "errors", is_flag=True, help="Show stderr instead of stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds per look.")
@click.option(
    "--raw",
    is_flag=True,
    help="Print the bytes as they are: escape sequences too (colours, and whatever else "
    "the log holds). By default control characters but newline, tab and carriage return "
    "are shown as escapes, so that a log cannot drive the terminal.",
)
@cluster_options_long
def logs(
    job_id: str, errors: bool, follow: bool, interval: float, raw: bool, **options: Any
) -> None:
    """Print a job's stdout (or stderr); with --follow, until the job ends (Ctrl-C stops)."""
    with opened_cluster(options) as cluster:
        job = cluster.get_job(job_id, track=False)
        path = job.stderr_path if errors else job.stdout_path
        seen = 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                final = not follow or describe_state(job_id, query_states(cluster, [job_id])).final
                # Only what is new crosses the connection, a chunk at a time.
                while True:
                    try:
                        new, size = cluster.transport.read_range(path, seen, _LOG_CHUNK)
                        if follow_offset(seen, size) != seen:  # it shrank: from its start
                            seen = 0
                            new, size = cluster.transport.read_range(path, 0, _LOG_CHUNK)
                    except FileNotFoundError:
                        new = b""
                    if new:
                        if raw:
                            click.echo(new, nl=False)
                        else:  # a character cut by a chunk's end waits for the next
                            click.echo(printable(decoder.decode(new), keep="\r"), nl=False)
                        seen += len(new)
                    if len(new) < _LOG_CHUNK:
                        break
                if final:
                    break
                time.sleep(interval)


@jobs.command()
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    required=True,
    help="Days: job directories unchanged for longer go (not those of live jobs).",
)
@click.option(
    "--envs-unused",
    "envs_unused",
    type=click.FloatRange(min=0),
    default=None,
    help="Days: environments not used for longer go, with the wheels only they used.",
)
@click.option(
    "--images-unused",
    "images_unused",
    type=click.FloatRange(min=0),
    default=None,
    help="Days: Apptainer .sif images not used for longer go (their pins stay).",
)
@click.option(
    "--cache-max",
    "cache_max",
    type=click.IntRange(min=0),
    default=None,
    help="Megabytes: trim ~/.cache/slurm-sdk to this size, oldest files first.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@cluster_options
def prune(
    older_than: float,
    envs_unused: float | None,
    images_unused: float | None,
    cache_max: int | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Reclaim space: old job directories, unused environments, wheels and images, the
    cache."""
    with opened_cluster(options) as cluster:
        report = cluster.prune(
            older_than_days=older_than,
            env_unused_days=envs_unused,
            cache_max_bytes=None if cache_max is None else cache_max * 1024 * 1024,
            dry_run=dry_run,
            images_unused_days=images_unused,
        )
        click.echo(report.render())


@jobs.command()
@click.argument("job_ids", nargs=-1, required=True)
@cluster_options
def cancel(job_ids: tuple[str, ...], **options: Any) -> None:
    """Cancel these jobs (one scancel call); only the SDK's jobs under the job base dir."""
    with opened_cluster(options) as cluster:
        cancel_jobs(cluster, job_ids)
        click.echo(f"cancelled {', '.join(job_ids)}")


@jobs.command(context_settings={"ignore_unknown_options": True})
@click.argument("job_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--node", "-n", default=None, metavar="NODE",
    help="Which of the job's nodes (default: its first); `slurm jobs show` lists them.",
)  # fmt: skip
@click.option(
    "--no-container", is_flag=True,
    help="For a task in a pyxis container: the node itself, not the task's container.",
)  # fmt: skip
@cluster_options
def connect(
    job_id: str, command: tuple[str, ...], node: str | None, no_container: bool, **options: Any
) -> None:
    """A shell on a running job's node, inside its allocation (``srun --overlap``), in
    the job's directory; for a task in a pyxis container, inside that running container
    (``--no-container``: the node).

    With a COMMAND (after ``--``), run it there instead and print its output:
    ``slurm jobs connect 123 -- nvidia-smi``; ``--node node2`` picks another node
    of a multi-node job.
    """
    with opened_cluster(options) as cluster:
        job = cluster.get_job(job_id, track=False)  # only the SDK's own jobs
        if describe_state(job_id, query_states(cluster, [job_id])).text != "RUNNING":
            raise ConfigurationError(
                f"Job {job_id} is not running, so it has no node to connect to; "
                "`slurm jobs show` tells its state."
            )
        # In the job's directory, which every node sees (not this shell's, which a node
        # may not: slurmstepd would complain into the output and go to /tmp).
        step = ["srun", f"--jobid={job.id}", "--overlap", f"--chdir={job.job_dir}"]
        if node is not None:
            step += [f"--nodelist={node}", "--nodes=1", "--ntasks=1"]
        if not no_container:
            step += _container_flags(cluster, job)
        if command:
            result = cluster.slurm.run([*step, *command], check=False)
            click.echo(result.stdout, nl=False)
            click.echo(result.stderr, nl=False, err=True)
            sys.exit(result.returncode or 0)
        interactive = [*step, "--pty", "bash", "-l"]
        if cluster.backend_type == "local":
            os.execvp(interactive[0], interactive)  # noqa: S606 (argv list: srun, no shell)
        s = cluster.settings
        ssh = ["ssh", "-t", *(["-p", str(s.port)] if s.port else [])]
        target = f"{s.username}@{s.hostname}" if s.username else str(s.hostname)
        os.execvp("ssh", [*ssh, target, shlex.join(interactive)])  # noqa: S606, S607 (ssh from PATH, as the user types it; remote argv shlex-joined)


def _container_flags(cluster: Cluster, job: Job[Any]) -> list[str]:
    """``--container-name=NAME:exec`` for a job whose task runs in a pyxis container
    (read from its batch script), else nothing."""
    try:
        spec = script_container(job.get_script())
    except OSError:
        return []
    if spec is None or spec.runtime != "pyxis":
        return []
    raw = job.id
    if not raw.isdigit():  # an array element: pyxis knows it by Slurm's own job id
        answer = cluster.slurm.run(["squeue", "--noheader", "--format=%A", f"--jobs={job.id}"])
        raw = answer.stdout.strip().split()[0] if answer.stdout.strip() else raw
    return [f"--container-name={container_name(raw, spec.image)}:exec"]


@jobs.command()
@click.argument("job_ids", nargs=-1)
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds per look.")
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True,
    help="Without ids: how many of the newest jobs to consider.",
)  # fmt: skip
@cluster_options
def watch(job_ids: tuple[str, ...], interval: float, limit: int, **options: Any) -> None:
    """A live table of these jobs (default: the unfinished ones) until all have ended.

    One batched query per refresh. Ctrl-C stops watching; the jobs keep running.
    """
    console = Console()
    with opened_cluster(options) as cluster:
        if job_ids:
            entries = [(job_id, cluster.store.job_dir_of(job_id)) for job_id in job_ids]
        else:
            entries = _entries(cluster, cluster.store.job_ids()[:limit])
        ids = [job_id for job_id, _ in entries]
        if job_ids:  # looked up by the first tick
            rows = _rows(entries, Snapshot())
            rows = [JobRow(r.job_id, r.name, _LOOKING, r.submitted, r.directory) for r in rows]
        else:
            snapshot = query_states(cluster, ids) if ids else Snapshot()
            rows = [r for r in _rows(entries, snapshot) if not r.state.final]
        if not rows:
            console.print("no unfinished jobs to watch")
            return
        title = f"watching {len(rows)} job(s) in {cluster.base_dir}"
        try:
            with Live(jobs_table(rows, title=title), console=console, auto_refresh=False) as live:
                watch_loop(
                    rows,
                    lambda waiting: query_states(cluster, waiting),
                    lambda shown: live.update(jobs_table(shown, title=title), refresh=True),
                    interval=interval,
                )
        except KeyboardInterrupt:
            console.print("stopped watching; the jobs keep running")
