"""``slurm cluster list|show``: a Slurmfile's environments, as ``Cluster.from_env`` sees them."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from slurm.errors import SlurmError
from slurm.inspect import choose_backend, find_slurmfile, load_environment

__all__ = ["cluster"]

_FILE = click.option(
    "--file", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The Slurmfile (default: $SLURMFILE, else the nearest Slurmfile).",
)  # fmt: skip


def _fail(exc: SlurmError) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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


@cluster.command("list")
@_FILE
def list_environments(path: Path | None) -> None:
    """Every environment of the Slurmfile: where it submits, its partition, its job base dir."""
    try:
        file = find_slurmfile(path)
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (SlurmError, OSError, tomllib.TOMLDecodeError) as exc:
        _fail(exc if isinstance(exc, SlurmError) else SlurmError(f"Cannot read {path}: {exc}"))
        return
    table = Table(title=f"environments in {file}", title_justify="left")
    for column in ("name", "where", "partition", "job base dir", "problem"):
        table.add_column(column)
    for name in (k for k, v in data.items() if isinstance(v, dict)):
        try:
            settings, _ = load_environment(file, name)
        except SlurmError as exc:
            table.add_row(name, "", "", "", f"[red]{exc}[/]")
            continue
        partition = settings.get("default_partition") or (
            settings.get("default_options") or {}
        ).get("partition", "")
        table.add_row(
            name, _where(settings), str(partition), settings.get("job_base_dir") or "", ""
        )
    Console().print(table)


@cluster.command()
@click.argument("name", required=False)
@_FILE
def show(name: str | None, path: Path | None) -> None:
    """The settings of one environment (default: $SLURM_ENV, else ``default``), checked."""
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
