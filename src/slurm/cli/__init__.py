"""The ``slurm`` command line tool."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="slurm-sdk")
def main() -> None:
    """slurm-sdk: run Python functions as Slurm jobs."""


def _register() -> None:
    from slurm.cli import (
        cache,
        clusters,
        dash,
        debug,
        devcluster,
        doctor,
        images,
        jobs,
        mcp,
        report,
        why,
    )

    main.add_command(cache.cache)
    main.add_command(clusters.cluster)
    main.add_command(dash.dash)
    main.add_command(devcluster.devcluster)
    main.add_command(doctor.doctor)
    main.add_command(images.images)
    jobs.jobs.add_command(report.report)
    jobs.jobs.add_command(why.why)
    jobs.jobs.add_command(debug.debug)
    main.add_command(jobs.jobs)
    main.add_command(mcp.mcp)


_register()
