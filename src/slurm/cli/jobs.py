"""``slurm jobs``: list, show, follow, cancel and watch the SDK's jobs from a shell.

Jobs are found where the SDK records them: ``<job base dir>/.index/<job id>``
holds each job's directory. Their states come from one batched ``squeue``
call (then ``sacct`` for those squeue no longer lists), never one query per
job. The cluster options are those of :meth:`slurm.Cluster.add_argparse_args`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live

from slurm.cli.jobview import (
    JobRow,
    JobView,
    Snapshot,
    StateView,
    describe_state,
    detail_view,
    follow_chunk,
    jobs_table,
    outcome_text,
    parse_job_dir,
    rows_final,
    tail,
)
from slurm.cluster import DEFAULT_JOB_BASE_DIR, Cluster
from slurm.errors import CommandError, ConfigurationError, SlurmError
from slurm.job import Job
from slurm.payload import Envelope
from slurm.queries import query_sacct, query_squeue
from slurm.slurmcmd import (
    JobInfo,
    JobState,
    scancel_argv,
)
from slurm.transport.base import CommandResult

__all__ = ["jobs", "query_states", "watch_loop"]

F = TypeVar("F", bound=Callable[..., Any])

_ID_RE = re.compile(r"^\d+(?:_\d+)?$")
_CHUNK = 500
_LOOKING = StateView("...", final=False)

_CLUSTER_OPTIONS = (
    click.option(
        "--backend",
        type=click.Choice(["local", "ssh"]),
        default=None,
        help="ssh (default when --hostname is given) or local.",
    ),
    click.option("--hostname", help="Login node or ~/.ssh/config alias (ssh backend)."),
    click.option("--port", type=int, help="SSH port."),
    click.option("--username", help="SSH user name."),
    click.option("--password", help="SSH password (prefer keys or the agent)."),
    click.option("--key-file", "key_filename", help="SSH private key file."),
    click.option(
        "--accept-new-host-key", is_flag=True, help="Trust an SSH host key seen for the first time."
    ),
    click.option(
        "--job-base-dir", help=f"Where the jobs' directories are (default {DEFAULT_JOB_BASE_DIR})."
    ),
    click.option("--account", help="Default Slurm account (unused by these commands)."),
    click.option("--partition", help="Default Slurm partition (unused by these commands)."),
    click.option("--python", help="Python interpreter on the cluster (unused here)."),
    click.option("--packaging", help="How code reaches the cluster (unused here)."),
)


def cluster_options(command: F) -> F:
    """Add the cluster options of ``Cluster.add_argparse_args`` to a click command."""
    for option in reversed(_CLUSTER_OPTIONS):
        command = option(command)
    return command


def cluster_from_options(options: dict[str, Any]) -> Cluster:
    """The ``Cluster`` those options describe, built exactly as ``Cluster.from_args`` does."""
    return Cluster.from_args(argparse.Namespace(**options))


@contextlib.contextmanager
def _session(options: dict[str, Any]) -> Iterator[Cluster]:
    """A cluster for one command; any SDK error is printed and exits with status 1."""
    cluster: Cluster | None = None
    try:
        cluster = cluster_from_options(options)
        yield cluster
    except SlurmError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        if cluster is not None:
            cluster.close()


# --- facts from the cluster ------------------------------------------------------------


def _id_order(job_id: str) -> tuple[int, int]:
    base, _, index = job_id.partition("_")
    return int(base), int(index) if index else -1


def index_ids(cluster: Cluster) -> list[str]:
    """The ids of every job recorded under the cluster's job base dir, newest first."""
    names = cluster.transport.list_dir(cluster.index_dir)
    return sorted((n for n in names if _ID_RE.match(n)), key=_id_order, reverse=True)


def job_dir_of(cluster: Cluster, job_id: str) -> str:
    """The directory of ``job_id`` (or of its array), from the index.

    Raises:
        ConfigurationError: The job was not submitted through the SDK with this job base dir.
    """
    try:
        return cluster.transport.read_text(f"{cluster.index_dir}/{job_id.split('_')[0]}").strip()
    except FileNotFoundError:
        raise ConfigurationError(
            f"Job {job_id} is not one of the SDK's jobs under {cluster.base_dir} (no record in "
            f"{cluster.index_dir}). Pass the --job-base-dir (and --hostname) it was submitted "
            "with; `slurm jobs list` shows the jobs there."
        ) from None


def _job(cluster: Cluster, job_id: str, job_dir: str) -> Job[Any]:
    """A Job for paths only (logs, script, result); the tracker is not involved."""
    name, _ = parse_job_dir(job_dir)
    base, _, index = job_id.partition("_")
    if index:
        return cluster._array_element(base, job_dir, name, int(index))
    return Job(cluster, job_id, job_dir=job_dir, name=name)


def query_states(cluster: Cluster, job_ids: Sequence[str], *, exit_codes: bool = False) -> Snapshot:
    """One batched look at ``job_ids``: squeue, then sacct for the ones squeue has forgotten.

    With ``exit_codes``, sacct is asked about ended jobs squeue still lists too
    (squeue has no exit codes). For jobs neither knows, the result file says
    whether they finished.

    Raises:
        CommandError: squeue failed for another reason than unknown ids.
    """

    def run(argv: list[str]) -> CommandResult:
        return cluster._run(argv, check=False)

    infos: dict[str, JobInfo] = query_squeue(run, job_ids)
    queued = frozenset(infos)

    def known(job_id: str) -> bool:
        return job_id in infos or any(key.startswith(f"{job_id}_") for key in infos)

    gone = [job_id for job_id in job_ids if not known(job_id)]
    if exit_codes:
        gone += [j for j in job_ids if j in infos and infos[j].state.is_terminal]
    if gone:
        infos.update(query_sacct(run, gone) or {})
    # A job whose result file exists has finished as far as the SDK is concerned,
    # even while squeue still shows it RUNNING/COMPLETING for a moment.
    for job_id in [j for j in job_ids if j in infos and infos[j].state.is_active]:
        outcome = _result_outcome(cluster, job_id)
        if outcome is not None:
            state = JobState.COMPLETED if outcome else JobState.FAILED
            infos[job_id] = dataclasses.replace(infos[job_id], state=state)
    with_result = frozenset(
        j for j in job_ids if not known(j) and _result_outcome(cluster, j) is not None
    )
    return Snapshot(infos, queued, with_result)


def _result_outcome(cluster: Cluster, job_id: str) -> bool | None:
    """True/False when the job left a result (success or not), None when it has none."""
    array_id, _, index = job_id.partition("_")
    try:
        job_dir = cluster.transport.read_text(f"{cluster.index_dir}/{array_id}").strip()
        result = f"{job_dir}/results/{index}.pkl" if index else f"{job_dir}/result.pkl"
        return Envelope.from_bytes(cluster.transport.read_bytes(result)).ok
    except (FileNotFoundError, SlurmError):
        return None


def _rows(entries: Sequence[tuple[str, str]], snapshot: Snapshot) -> list[JobRow]:
    rows = []
    for job_id, job_dir in entries:
        name, submitted = parse_job_dir(job_dir)
        rows.append(JobRow(job_id, name, describe_state(job_id, snapshot), submitted, job_dir))
    return rows


def _outcome(cluster: Cluster, job: Job[Any]) -> tuple[str, str] | None:
    try:
        data = cluster.transport.read_bytes(job.result_path)
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        envelope = Envelope.from_bytes(data, job_id=job.id)
    except SlurmError as exc:
        return "error", str(exc)
    if not envelope.ok:
        return "error", f"{envelope.type_name}: {envelope.message}"
    try:
        return "ok", outcome_text(envelope.unwrap())
    except Exception as exc:
        return "ok", f"(a value that cannot be loaded here: {type(exc).__name__}: {exc})"


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
    """List, inspect, follow, cancel and watch the SDK's jobs."""


@jobs.command("list")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@cluster_options
def list_jobs(limit: int, **options: Any) -> None:
    """The newest jobs under the job base dir: id, name, state, submitted time, directory."""
    with _session(options) as cluster:
        ids = index_ids(cluster)[:limit]
        entries = [(job_id, job_dir_of(cluster, job_id)) for job_id in ids]
        snapshot = query_states(cluster, ids) if ids else Snapshot()
        Console().print(jobs_table(_rows(entries, snapshot), title=f"jobs in {cluster.base_dir}"))


@jobs.command()
@click.argument("job_id")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=10, show_default=True)
@cluster_options
def show(job_id: str, lines: int, **options: Any) -> None:
    """State, exit code, node, paths, result or error, and the last lines of the logs."""
    with _session(options) as cluster:
        job_dir = job_dir_of(cluster, job_id)
        job = _job(cluster, job_id, job_dir)
        snapshot = query_states(cluster, [job_id], exit_codes=True)
        (row,) = _rows([(job_id, job_dir)], snapshot)
        view = JobView(
            row=row,
            script_path=job.script_path,
            stdout_path=job.stdout_path,
            stderr_path=job.stderr_path,
            stdout_tail=tail(job.get_stdout(), lines),
            stderr_tail=tail(job.get_stderr(), lines),
            outcome=_outcome(cluster, job),
        )
        Console().print(detail_view(view, lines=lines), highlight=False)


@jobs.command()
@click.argument("job_id")
@click.option("--stderr", "errors", is_flag=True, help="Show stderr instead of stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds per look.")
@cluster_options
def logs(job_id: str, errors: bool, follow: bool, interval: float, **options: Any) -> None:
    """Print a job's stdout (or stderr); with --follow, until the job ends (Ctrl-C stops)."""
    with _session(options) as cluster:
        job = _job(cluster, job_id, job_dir_of(cluster, job_id))
        path = job.stderr_path if errors else job.stdout_path
        seen = 0
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                final = not follow or describe_state(job_id, query_states(cluster, [job_id])).final
                try:
                    data = cluster.transport.read_bytes(path)
                except FileNotFoundError:
                    data = b""
                new, seen = follow_chunk(seen, data)
                if new:
                    click.echo(new, nl=False)
                if final:
                    break
                time.sleep(interval)


@jobs.command()
@click.argument("job_ids", nargs=-1, required=True)
@cluster_options
def cancel(job_ids: tuple[str, ...], **options: Any) -> None:
    """Cancel these jobs (one scancel call); only the SDK's jobs under the job base dir."""
    with _session(options) as cluster:
        known = set(index_ids(cluster))
        unknown = [j for j in job_ids if not _ID_RE.match(j) or j.split("_")[0] not in known]
        if unknown:
            raise ConfigurationError(
                f"Not the SDK's jobs under {cluster.base_dir}: {', '.join(unknown)}. Nothing was "
                "cancelled; check the ids with `slurm jobs list` (and --job-base-dir)."
            )
        result = cluster._run(scancel_argv(list(job_ids)), check=False)
        if result.returncode != 0:
            raise CommandError(
                "scancel failed",
                argv=result.argv,
                returncode=result.returncode,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        click.echo(f"cancelled {', '.join(job_ids)}")


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
    with _session(options) as cluster:
        ids = list(job_ids) or index_ids(cluster)[:limit]
        entries = [(job_id, job_dir_of(cluster, job_id)) for job_id in ids]
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
