"""A Slurmfile in the earlier SDK's nested format runs tasks on the dev cluster (issue 23):
locally, and over SSH through the dev cluster's alias, by ``Cluster.from_env`` and by the
``slurm`` command's ``-e``/``-f``."""

from __future__ import annotations

from pathlib import Path

import jobfuncs
import pytest
from click.testing import CliRunner
from nodepython import node_python

from slurm import Cluster
from slurm.callbacks import LoggerCallback
from slurm.cli import main
from slurm.devcluster import Status

_TIMEOUT = 240.0  # generous: other sessions run jobs on the shared cluster


@pytest.fixture()
def nested_slurmfile(devcluster: Status, tmp_path: Path) -> Path:
    """[default] runs here (local backend); [login] reaches the same cluster over SSH
    and inherits [default]'s submit table and callbacks, as the earlier SDK merged them."""
    path = tmp_path / "Slurmfile"
    path.write_text(
        f"""
[default]
callbacks = ["slurm.callbacks:LoggerCallback"]

[default.cluster]
backend = "local"
job_base_dir = "{tmp_path / "jobs"}"

[default.submit]
partition = "debug"
time = "00:05:00"

[login.cluster]
backend = "ssh"
job_base_dir = "{tmp_path / "ssh-jobs"}"

[login.cluster.backend_config]
hostname = "{devcluster.ssh.alias}"
username = "{devcluster.ssh.username}"
python = "{node_python()}"
"""
    )
    path.chmod(0o600)
    return path


def _listed(path: Path, env: str, job_id: str) -> str:
    argv = ["jobs", "list", "-f", str(path), "-e", env]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f" {job_id} " in result.output, result.output
    return result.output


def test_a_task_runs_from_a_nested_slurmfile_locally(nested_slurmfile: Path) -> None:
    with Cluster.from_env(str(nested_slurmfile)) as cluster:
        assert cluster.backend_type == "local"
        assert [type(c) for c in cluster.callbacks] == [LoggerCallback]
        job = jobfuncs.add(2, 3)
        assert job.get_result(timeout=_TIMEOUT) == 5
    assert "COMPLETED" in _listed(nested_slurmfile, "default", job.id)


def test_a_task_runs_from_a_nested_slurmfile_over_ssh(nested_slurmfile: Path) -> None:
    with Cluster.from_env(str(nested_slurmfile), env="login") as cluster:
        assert (cluster.backend_type, cluster.default_partition) == ("ssh", "debug")
        job = jobfuncs.add.with_options(job_name="nested-slurmfile")(20, 22)
        assert job.get_result(timeout=_TIMEOUT) == 42
    _listed(nested_slurmfile, "login", job.id)
