"""``slurm doctor``: is this cluster ready for the SDK? One line a check, the fix for each failure.

Takes the cluster options of ``slurm jobs`` (``--hostname``, ``--username``,
``--job-base-dir``, ``--partition``, ``--python``...). Exit status 0 when
nothing blocks submission (warnings allowed), 1 when something does, 2 when
the options themselves are wrong. ``--json`` prints the report as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from slurm.cli.jobs import cluster_from_options, cluster_options
from slurm.errors import SlurmError
from slurm.inspect import doctor_report, render_text

__all__ = ["doctor"]


@click.command()
@cluster_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool, **options: Any) -> None:
    """Check the connection, Slurm, partitions, Python, job directory and clock."""
    try:
        cluster = cluster_from_options(options)
    except SlurmError as exc:
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    try:
        report = doctor_report(cluster)
    finally:
        cluster.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render_text(report))
    sys.exit(0 if report.ok else 1)
