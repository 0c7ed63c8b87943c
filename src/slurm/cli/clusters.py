"""``slurm cluster list|show|watch|connect``: a Slurmfile's environments, as
``Cluster.from_env`` sees them, the partitions' use live, a shell on the login node."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from slurm.cli.clusterview import partitions_table, ssh_argv
from slurm.cli.jobs import cluster_from_options, cluster_options
from slurm.cli.jobview import plain
from slurm.errors import SlurmError
from slurm.inspect import choose_backend, environment_names, load_environment

__all__ = ["cluster", "environments_table"]

_FILE = click.option(
    "--file", "--slurmfile", "-f", "path", type=click.Path(path_type=Path), default=None,
    help="The Slurmfile, or a directory holding one (default: $SLURMFILE, else the "
    "nearest Slurmfile).",
)  # fmt: skip


def _fail(exc: SlurmError) -> None:
    Console(stderr=True).print(
        Text.assemble(("error: ", "bold red"), plain(str(exc))), soft_wrap=True
    )
    sys.exit(1)


def _where(settings: dict[str, Any]) -> str:
    backend = choose_backend(settings.get("backend"), settings.get("hostname"))
    if backend != "ssh":
        return "local"
    user = f"{settings['username']}@" if settings.get("username") else ""
    port = f":{settings['port']}" if settings.get("port") else ""
    return f"ssh {user}{settings.get('hostname', '?')}{port}"


@click.group()
def cluster() -> None:
    """The cluster environments of your Slurmfile."""


def environments_table(path: Path | str | None = None) -> Table:
    """Every environment of the Slurmfile (``path``, else the one found): where it
    submits, its partition, its job base dir, or what is wrong with it.

    Raises:
        SlurmError: no Slurmfile, or one that cannot be read.
    """
    names, file = environment_names(path)
    table = Table(title=f"environments in {file}", title_justify="left")
    for column in ("name", "where", "partition", "job base dir", "problem"):
        table.add_column(column)
    for name in names:
        try:
            settings, _ = load_environment(file, name)
        except SlurmError as exc:
            table.add_row(plain(name), "", "", "", plain(str(exc), style="red"))
            continue
        partition = settings.get("default_partition") or (
            settings.get("default_options") or {}
        ).get("partition", "")
        table.add_row(
            name, _where(settings), str(partition), settings.get("job_base_dir") or "", ""
        )
    return table


@cluster.command("list")
@_FILE
def list_environments(path: Path | None) -> None:
    """Every environment of the Slurmfile: where it submits, its partition, its job base dir."""
    try:
        table = environments_table(path)
    except SlurmError as exc:
        _fail(exc)
        return
    Console().print(table)


@cluster.command()
@click.argument("name", required=False)
@click.option("--env", "-e", "env", default=None, help="The environment (as NAME).")
@_FILE
def show(name: str | None, env: str | None, path: Path | None) -> None:
    """The settings of one environment (default: $SLURM_ENV, else ``default``), checked."""
    if name and env and name != env:
        _fail(SlurmError(f"Give the environment once: {name!r} or --env {env!r}."))
        return
    name = name or env
    try:
        settings, file = load_environment(path, name)
    except SlurmError as exc:
        _fail(exc)
        return
    table = Table(title=f"{name or 'default'} in {file}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in settings.items():
        if key == "default_options":
            for option, option_value in value.items():
                table.add_row(f"sbatch {option}", str(option_value))
        else:
            table.add_row(key, str(value))
    Console().print(table)


@cluster.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between looks.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many looks (default: until Ctrl-C).",
)
@cluster_options
def watch(interval: float, count: int | None, **options: Any) -> None:
    """The partitions' use, live: nodes by state, CPUs in use, your running and pending jobs.

    Two commands a look (one sinfo, one squeue --me), whatever the size of the cluster.
    """  # fmt: skip
    console = Console()
    try:
        with cluster_from_options(options) as c:
            where = c.hostname or "this machine"

            def look() -> Table:
                info, queue = c.get_cluster_info(), c.get_queue()
                return partitions_table(info["partitions"], queue, title=f"partitions on {where}")

            with Live(look(), console=console, auto_refresh=False) as live:
                for _ in itertools.count(1) if count is None else range(count - 1):
                    time.sleep(interval)
                    live.update(look(), refresh=True)
    except SlurmError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        console.print("stopped watching")


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@cluster_options
def connect(name: str | None, command: tuple[str, ...], **options: Any) -> None:
    """A shell on the login node of environment NAME (or --env; the Slurmfile's
    ``default`` when neither is given), through your own ``ssh``.

    With a COMMAND after ``--``, run it there instead: ``slurm cluster connect prod --
    sinfo``. An environment of the local backend runs it (or your shell) here.
    """
    if name is not None:
        if options.get("env") not in (None, name):
            _fail(SlurmError(f"give the environment once: {name!r} or --env {options['env']!r}"))
        options["env"] = name
    if (
        options.get("env") is None
        and options.get("slurmfile") is None
        and not options.get("hostname")
    ):
        options["env"] = os.environ.get("SLURM_ENV") or "default"
    try:
        with cluster_from_options(options) as c:
            settings = {
                "hostname": c.hostname,
                "port": c.port,
                "username": c.username,
                "key_filename": c.settings.key_filename,
                "host_key_policy": c.settings.host_key_policy,
                "accept_new_host_key": c.settings.accept_new_host_key,
            }
            local = c.backend_type == "local"
    except SlurmError as exc:
        _fail(exc)
        return
    if local:
        argv = list(command) or [os.environ.get("SHELL") or "/bin/sh", "-l"]
    else:
        argv = ssh_argv(settings, command)
    if not command:
        os.execvp(argv[0], argv)  # noqa: S606 (argv list: ssh or the user's shell)
    sys.exit(subprocess.run(argv, check=False).returncode)  # noqa: S603 (argv list, no shell)
