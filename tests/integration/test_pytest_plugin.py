"""The pytest plugin, as a user runs it: pytest on examples/pytest-plugin, in a subprocess.

The example project's tests ask for ``slurm_cluster`` and run against the
shared dev cluster, once per backend. The dev cluster's daemons must be the
same processes before and after: the plugin uses a running cluster as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from slurm.devcluster import Status
from slurm.devcluster import status as devcluster_status

EXAMPLE = Path(__file__).parents[2] / "examples" / "pytest-plugin"


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SLURM_SDK_TEST_")) and k != "SLURM_JOB_ID"
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLE),
            "-p",
            "no:cacheprovider",
            "-v",
            "--basetemp",
            str(tmp_path / "basetemp"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_example_project_runs_on_the_dev_cluster_locally_and_over_ssh(
    devcluster: Status, tmp_path: Path
) -> None:
    # Now, not the session's first view: tests of the dev cluster itself restart it.
    before = devcluster_status().daemons
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for test in ("test_one_job", "test_an_array_then_a_job_that_depends_on_it"):
        for backend in ("local", "ssh"):
            assert f"{test}[{backend}] PASSED" in result.stdout, result.stdout
    assert "test_only_over_ssh[ssh] PASSED" in result.stdout
    assert "5 passed" in result.stdout
    after = devcluster_status()
    assert after.running
    assert after.daemons == before, "the plugin restarted a daemon of the running dev cluster"


def test_a_named_cluster_local(devcluster: Status, tmp_path: Path) -> None:
    del devcluster
    jobs = tmp_path / "jobs"
    result = _pytest(
        tmp_path, "--slurm-cluster", "local", "--slurm-job-base-dir", str(jobs), "-k", "one_job"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_one_job[local] PASSED" in result.stdout
    assert "[ssh]" not in result.stdout
    assert len(list((jobs / "local" / ".index").iterdir())) == 1  # the one job


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--slurm-backend", "slurmrestd")
    assert result.returncode == 4
    assert "'slurmrestd' is not one of local, ssh" in result.stderr
    result = _pytest(tmp_path, "--slurm-cluster", "local", "--slurm-backend", "ssh")
    assert result.returncode == 4
    assert "--slurm-backend local" in result.stderr
