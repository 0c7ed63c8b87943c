"""``slurm mcp [run|status]``: serve the SDK's jobs to an MCP client (an AI assistant).

``slurm mcp`` (or ``slurm mcp run``) serves on stdin/stdout; ``run --transport
http`` serves the streamable HTTP transport on a port of this machine instead.
``slurm mcp status`` checks what a server needs (the ``mcp`` package, the
cluster answering) and lists its tools and resources, without serving.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from slurm.cli.jobs import cluster_from_options, cluster_options
from slurm.cli.jobview import plain
from slurm.errors import SlurmError

__all__ = ["mcp"]

_POLL = click.option(
    "--poll-interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
    help="Seconds between looks while job_logs follows a job.",
)  # fmt: skip
_INSTALL = (
    "slurm mcp needs the mcp package ({exc}). Install it with: "
    "pip install 'slurm-sdk[mcp]' (or uv add 'slurm-sdk[mcp]')."
)


def _serve(poll_interval: float, transport: str, host: str, port: int, options: Any) -> None:
    try:
        from slurm.cli.mcp_server import build_server
    except ImportError as exc:
        raise click.ClickException(_INSTALL.format(exc=exc)) from exc
    try:
        cluster = cluster_from_options(options)
    except SlurmError as exc:
        raise click.ClickException(str(exc)) from exc
    with cluster:
        server = build_server(cluster, poll_interval=poll_interval)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port)


@click.group("mcp", invoke_without_command=True)
@_POLL
@cluster_options
@click.pass_context
def mcp(ctx: click.Context, /, poll_interval: float, **options: Any) -> None:
    """Run an MCP server with tools over the SDK's jobs (``slurm mcp run``, on stdio).

    Tools: list_jobs, show_job, job_logs (follows a running job), job_result,
    cancel_jobs, list_partitions, list_environments; resources slurm://queue,
    slurm://partitions, slurm://config, slurm://jobs/{id}. Configure your MCP
    client to start, for example:

    \b
        slurm mcp --hostname login.example.org --username alice
    """
    if ctx.invoked_subcommand is None:
        _serve(poll_interval, "stdio", "127.0.0.1", 8000, options)


@mcp.command()
@_POLL
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
    help="stdio (the client starts the server) or http (streamable HTTP on "
    "--http-host:--http-port, path /mcp).",
)  # fmt: skip
@click.option("--http-host", "host", default="127.0.0.1", show_default=True,
              help="With http: the address to listen on.")  # fmt: skip
@click.option("--http-port", "http_port", type=click.IntRange(1, 65535), default=8000,
              show_default=True, help="With http: the port.")  # fmt: skip
@cluster_options
def run(poll_interval: float, transport: str, host: str, http_port: int, **options: Any) -> None:
    """Serve the tools: on stdin/stdout, or over HTTP (``--transport http``)."""
    _serve(poll_interval, transport, host, http_port, options)


@mcp.command()
@cluster_options
def status(**options: Any) -> None:
    """Check what a server needs (the mcp package, the cluster answering) and list its
    tools and resources; exits 1 when something is missing."""
    console = Console()
    try:
        from slurm.cli.mcp_server import build_server
    except ImportError as exc:
        console.print(f"[red]✗[/] {_INSTALL.format(exc=exc)}")
        sys.exit(1)
    console.print("[green]✓[/] the mcp package is installed")
    try:
        with cluster_from_options(options) as cluster:
            queued = len(cluster.get_queue())
            jobs = len(cluster.store.job_ids())
            where = cluster.hostname or "this machine"
            console.print(
                f"[green]✓[/] the cluster on {where} answers: {queued} of your jobs queued, "
                f"{jobs} jobs of the SDK under {cluster.base_dir}",
                highlight=False,
            )
            server = build_server(cluster)
    except SlurmError as exc:
        console.print(
            Text.assemble(("✗", "red"), " the cluster does not answer: ", plain(str(exc))),
            soft_wrap=True,
        )
        sys.exit(1)
    import anyio

    async def listing() -> tuple[list[str], list[str]]:
        tools = [t.name for t in await server.list_tools()]
        resources = [str(r.uri) for r in await server.list_resources()]
        resources += [t.uri_template for t in await server.list_resource_templates()]
        return tools, resources

    tools, resources = anyio.run(listing)
    console.print(f"tools: {', '.join(tools)}", highlight=False)
    console.print(f"resources: {', '.join(resources)}", highlight=False)
