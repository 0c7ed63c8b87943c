"""``slurm devcluster``: a real Slurm cluster on this machine (up / status / down):
a login host and compute nodes in their own namespaces, or one node (``--nodes 1``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slurm.devcluster import (
    ENV_NODES,
    ENV_PORT_BASE,
    ENV_RELEASE,
    ENV_STATE_DIR,
    MAX_NODES,
    Status,
)
from slurm.errors import SlurmError

_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_STATE_DIR,
    default=None,
    help=f"Where configs, logs and data live [env {ENV_STATE_DIR}; "
    "default $XDG_STATE_HOME/slurm-sdk/devcluster].",
)


def _fail(exc: SlurmError) -> None:
    # soft_wrap: log tails in the message stay one line per log line.
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    sys.exit(1)


def status_table(st: Status) -> Table:
    """A readable summary of ``st``."""
    table = Table(title="slurm devcluster", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("running", "[green]yes[/]" if st.running else "[red]no[/]")
    table.add_row("state dir", st.state_dir)
    table.add_row(
        "slurm", f"{st.slurm_version}  (cluster {st.cluster_name}, login host {st.node_name})"
    )
    table.add_row("python", st.python_version or "?")
    if st.slurm_bin:
        table.add_row("clients", f"PATH={st.slurm_bin}:$PATH  (Slurm {st.release}'s commands)")
    table.add_row(
        "nodes",
        "\n".join(
            f"{node.name}  {node.address}  {node.state or '?'}  {node.cpus} CPUs"
            for node in st.nodes
        ),
    )
    table.add_row("per node", f"{st.cpus} CPUs, {st.real_memory_mb} MB")
    table.add_row("partitions", ", ".join(st.partitions) + f"  (default {st.default_partition})")
    accounting = "slurmdbd + MariaDB" if st.accounting else "off"
    if st.enforce_associations:
        accounting += "; associations and QOS enforced"
    table.add_row("accounting", accounting)
    table.add_row("slurm.conf", st.slurm_conf)
    table.add_row(
        "ssh",
        f"ssh {st.ssh.alias}  (or ssh -p {st.ssh.port} -i {st.ssh.key_file} "
        f"{st.ssh.username}@{st.ssh.host})",
    )
    daemons = ", ".join(f"{name}={pid or '-'}" for name, pid in st.daemons.items())
    table.add_row("daemons", daemons)
    if st.containers:
        table.add_row(
            "containers",
            f"pyxis + enroot; registry {st.containers['registry']}; "
            f"base image {st.containers['base_image']}",
        )
    if st.apptainer:
        table.add_row("apptainer", f"apptainer {st.apptainer} (container_runtime='apptainer')")
    table.add_row("logs", st.log_dir)
    return table


@click.group()
def devcluster() -> None:
    """Manage a Slurm dev cluster on this machine: a login host and compute nodes."""


@devcluster.command()
@_STATE_DIR
@click.option(
    "--accounting/--no-accounting",
    default=True,
    show_default=True,
    help="Run MariaDB + slurmdbd so `sacct` answers.",
)
@click.option(
    "--nodes",
    type=click.IntRange(1, MAX_NODES),
    envvar=ENV_NODES,
    default=None,
    help="Compute nodes, each in its own namespaces (1: slurmd on this machine itself) "
    f"[env {ENV_NODES}; default: the last `up`'s, else 2].",
)
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65000),
    envvar=ENV_PORT_BASE,
    default=None,
    help="First of the 6 ports the cluster uses; another base runs a second cluster beside "
    f"the default one [env {ENV_PORT_BASE}; default: the last `up`'s, else 6817].",
)
@click.option(
    "--containers/--no-containers",
    default=None,
    help="Build and enable pyxis + enroot, run a registry, make a base image with Python "
    "(docs/containers.md; about a minute on the first `up` of a machine) [default: the "
    "last `up`'s, else on; off with --nodes 1].",
)
@click.option(
    "--apptainer/--no-apptainer",
    default=None,
    help="Put Debian's apptainer in the release's root, for container_runtime='apptainer' "
    "and .sif images (docs/containers.md); needs --slurm 24.11 or 26.05 [default: the "
    "last `up`'s, else off].",
)
@click.option(
    "--enforce-associations/--no-enforce-associations",
    default=None,
    help="AccountingStorageEnforce=associations,qos: an unknown account or QOS is refused, "
    "only users with an association submit (you get one, account `sdk`) "
    "[default: the last `up`'s, else off].",
)
@click.option(
    "--slurm",
    "release",
    metavar="RELEASE",
    envvar=ENV_RELEASE,
    default=None,
    help="The Slurm release: 22.05 (this machine's packages), 24.11 or 26.05 (run from a "
    "root built with mmdebstrap from Debian's archive, cached for the machine; about 20 s "
    "the first time). A state directory keeps its release: give another one its own "
    f"--state-dir and --port-base [env {ENV_RELEASE}; default: the last `up`'s, else 22.05].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def up(
    state_dir: Path | None,
    accounting: bool,
    nodes: int | None,
    port_base: int | None,
    containers: bool | None,
    apptainer: bool | None,
    enforce_associations: bool | None,
    release: str | None,
    as_json: bool,
) -> None:
    """Install what is missing, write the configs and start every daemon (idempotent)."""
    from slurm import devcluster as dc

    started = time.monotonic()
    try:
        st = dc.up(
            state_dir,
            accounting=accounting,
            nodes=nodes,
            port_base=port_base,
            containers=containers,
            enforce_associations=enforce_associations,
            release=release,
            apptainer=apptainer,
        )
    except SlurmError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(st.to_json())
    else:
        console = Console()
        console.print(status_table(st))
        console.print(f"up in {time.monotonic() - started:.1f} s")


@devcluster.command()
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(state_dir: Path | None, as_json: bool) -> None:
    """Show the dev cluster; exit 1 when it is not running."""
    from slurm import devcluster as dc

    try:
        st = dc.status(state_dir)
    except SlurmError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(st.to_json())
    else:
        Console().print(status_table(st))
    if not st.running:
        sys.exit(1)


@devcluster.command()
@_STATE_DIR
def down(state_dir: Path | None) -> None:
    """Stop the daemons `up` started; keep the state so the next `up` is fast."""
    from slurm import devcluster as dc

    try:
        st = dc.down(state_dir)
    except SlurmError as exc:
        _fail(exc)
        return
    click.echo(f"stopped; state kept in {st.state_dir}")
