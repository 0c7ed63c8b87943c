"""``slurm mcp``: serve the SDK's jobs to an MCP client (an AI assistant) over stdio."""

from __future__ import annotations

from typing import Any

import click

from slurm.cli.jobs import cluster_from_options, cluster_options
from slurm.errors import SlurmError


@click.command("mcp")
@click.option(
    "--poll-interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
    help="Seconds between looks while job_logs follows a job.",
)  # fmt: skip
@cluster_options
def mcp(poll_interval: float, **options: Any) -> None:
    """Run an MCP server on stdin/stdout with tools over the SDK's jobs.

    Tools: list_jobs, show_job, job_logs (follows a running job), job_result,
    cancel_jobs; the same jobs, states and output as `slurm jobs`. Configure
    your MCP client to start, for example:

    \b
        slurm mcp --hostname login.example.org --username alice
    """
    try:
        from slurm.cli.mcp_server import build_server
    except ImportError as exc:
        raise click.ClickException(
            f"slurm mcp needs the mcp package ({exc}). Install it with: "
            "pip install 'slurm-sdk[mcp]' (or uv add 'slurm-sdk[mcp]')."
        ) from exc
    try:
        cluster = cluster_from_options(options)
    except SlurmError as exc:
        raise click.ClickException(str(exc)) from exc
    with cluster:
        build_server(cluster, poll_interval=poll_interval).run("stdio")
