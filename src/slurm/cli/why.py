"""``slurm jobs why ID``: one plain answer to "why is it pending?" or "why did it fail?".

The answer is :meth:`slurm.Job.why`'s (gathered by :mod:`slurm._api.why`, worded
by the pure :mod:`slurm._slurm.reasons`); a job that is not the SDK's gets what
Slurm says of it.
"""

from __future__ import annotations

import json
from typing import Any

import click

from slurm import Cluster
from slurm.cli.jobs import cluster_options, opened_cluster
from slurm.errors import ConfigurationError
from slurm.inspect import Why, why_of_id

__all__ = ["Why", "gather_why", "why"]


def gather_why(cluster: Cluster, job_id: str) -> Why:
    """The answer for ``job_id``: pending (why it waits), running, or ended (why it failed);
    :meth:`slurm.Job.why` for one of the SDK's jobs (a retried call: its latest attempt).

    Raises:
        ConfigurationError: Slurm does not know the job and it is not one of the SDK's.
    """
    try:
        job = cluster.get_job(job_id, track=False)
    except ConfigurationError:
        return why_of_id(cluster.session, job_id)
    return job.why()


@click.command("why")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@cluster_options
def why(job_id: str, as_json: bool, **options: Any) -> None:
    """Why a job is pending, or why it failed, in one plain answer with what to change."""
    with opened_cluster(options) as cluster:
        answer = gather_why(cluster, job_id)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), indent=1, sort_keys=True))
    else:
        click.echo(answer.render())
