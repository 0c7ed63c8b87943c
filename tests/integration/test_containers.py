"""Tasks in container images through the dev cluster's real pyxis + enroot."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import slurm.devcluster as dc
from slurm import Cluster, JobContext, task
from slurm.errors import ConfigurationError


@pytest.fixture(scope="module")
def containers(devcluster: dc.Status) -> dict[str, str]:
    """The registry and base image of the dev cluster, which the session brought up
    with containers (tests/conftest.py)."""
    if devcluster.containers is None:
        pytest.fail(
            "the dev cluster runs without containers (the one-node layout cannot have them): "
            "run these tests on the multi-node layout",
            pytrace=False,
        )
    return devcluster.containers


@pytest.fixture(scope="module")
def image(containers: dict[str, str]) -> str:
    """The base image as a .sqsh file on the shared file system."""
    return containers["base_image"]


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


def test_a_task_runs_in_an_image_pulled_from_the_registry(
    ccluster: Cluster, containers: dict[str, str], tmp_path: Path
) -> None:
    # Pushed by `up` to the registry; enroot pulls it over HTTP from the node.
    reference = containers["base_image_ref"]
    assert reference.startswith(containers["registry"] + "#")
    (tmp_path / "marker").write_text("pulled")
    mount = f"{tmp_path}:/pulled"
    job = inside.with_options(container_image=reference, container_mounts=mount)("/pulled/marker")
    result = job.get_result(timeout=240)
    assert result["python"] == "/usr/bin/python3" and result["marker"] == "pulled"
    assert "imported docker image" in Path(job.stderr_path).read_text()


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


@task(time="00:02:00", mem="64M")
def resume_after_preemption(workdir: str, ctx: JobContext) -> dict[str, Any]:
    """Works until preempted (TERM: checkpoint), resumes from the checkpoint once requeued."""
    import json

    from slurm.runtime import on_requeue

    checkpoint = Path(workdir) / "checkpoint.json"
    if checkpoint.exists():
        return {"resumed_from": json.loads(checkpoint.read_text()), "restart": ctx.restart_count}
    progress = {"steps": 0, "python": sys.executable}
    on_requeue(lambda: checkpoint.write_text(json.dumps(progress)))
    (Path(workdir) / "started").touch()
    while True:
        time.sleep(0.2)
        progress["steps"] += 1


def test_a_preempted_task_in_a_container_resumes_from_its_checkpoint(
    ccluster: Cluster, image: str, tmp_path: Path
) -> None:
    from test_preemption import _preempt, _runs_of, _wait_running

    work = f"{tmp_path}:{tmp_path}"  # the job base dir is mounted; this one must be asked for
    job = resume_after_preemption.with_options(container_image=image, container_mounts=work)(
        str(tmp_path)
    )
    _wait_running(job.id)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the container is being set up
    _preempt(job.id)
    result = job.get_result(timeout=180)
    assert result["restart"] >= 1
    assert result["resumed_from"]["python"] == "/usr/bin/python3"
    assert result["resumed_from"]["steps"] > 0
    runs = _runs_of(job.id)[job.id]
    assert "PREEMPTED" in runs or "REQUEUED" in runs, runs
