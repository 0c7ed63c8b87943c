"""Tasks in container images through the dev cluster's real pyxis + enroot."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

import slurm.devcluster as dc
from slurm import Cluster, JobContext, task
from slurm.errors import ConfigurationError


@pytest.fixture(scope="module")
def image(devcluster: dc.Status) -> str:
    """The dev cluster's base image, the cluster brought up with --containers (fast once
    enroot, pyxis and the image are built and cached)."""
    st = dc.up(accounting=True, containers=True)
    assert st.containers is not None and st.running
    os.environ["SLURM_CONF"] = st.slurm_conf
    return st.containers["base_image"]


@pytest.fixture()
def ccluster(image: str, cluster: Cluster) -> Cluster:
    """The core tests' local-backend cluster, on the dev cluster with containers."""
    del image
    return cluster


@task(time="00:05:00")
def inside(marker: str) -> dict[str, Any]:
    return {
        "python": sys.executable,
        "version": sys.version.split()[0],
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "marker": Path(marker).read_text(),
    }


@task(time="00:05:00", nodes=2, ntasks_per_node=2)
def rank_inside(ctx: JobContext) -> dict[str, Any]:
    return {
        "rank": ctx.rank,
        "host": socket.gethostname(),
        "python": sys.executable,
        "meet": ctx.torch_distributed_env(),
    }


def test_a_task_runs_in_a_sqsh_image_with_mounts_and_workdir(
    ccluster: Cluster, image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "marker").write_text("mounted")
    job = inside.with_options(
        container_image=image,
        container_mounts=f"{data}:/data:ro",
        container_workdir="/data",
    )("/data/marker")
    result = job.get_result(timeout=180)
    assert result["python"] == "/usr/bin/python3"  # the image's, not this machine's
    assert result["marker"] == "mounted" and result["cwd"] == "/data"
    assert "--container-image" not in Path(job.script_path).read_text()  # the runner hands over


def test_a_cluster_default_image_and_two_nodes_of_two_ranks(image: str, tmp_path: Path) -> None:
    with Cluster(
        backend_type="local",
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
        default_options={"container_image": image},
    ):
        results = rank_inside().get_results(timeout=180)
    assert [r["rank"] for r in results] == [0, 1, 2, 3]
    assert {r["host"] for r in results} == {"node1", "node2"}
    assert {r["python"] for r in results} == {"/usr/bin/python3"}
    assert len({(r["meet"]["MASTER_ADDR"], r["meet"]["MASTER_PORT"]) for r in results}) == 1


def test_a_missing_image_fails_before_submission(ccluster: Cluster, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.sqsh")
    with pytest.raises(ConfigurationError, match="does not exist on the cluster"):
        inside.with_options(container_image=missing)("/x")
    assert not list((tmp_path / "jobs").glob("inside-*"))


def test_a_cluster_without_pyxis_is_named_before_submission(
    image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same cluster seen through a slurm.conf without pyxis: srun lacks the option.
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    plain = tmp_path / "slurm.conf"
    plain.write_text("".join(line for line in conf.splitlines(True) if "PlugStack" not in line))
    monkeypatch.setenv("SLURM_CONF", str(plain))
    with (
        Cluster(backend_type="local", job_base_dir=str(tmp_path / "jobs")),
        pytest.raises(ConfigurationError, match="pyxis"),
    ):
        inside.with_options(container_image=image)("/x")
