"""``slurm devcluster``: a real single-node Slurm on localhost (placeholder)."""

from __future__ import annotations

import click


@click.group()
def devcluster() -> None:
    """Manage a single-node Slurm dev cluster on this machine."""
