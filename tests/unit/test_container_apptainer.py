"""The Apptainer runtime's pure parts: the option, the apptainer exec line, the variables
passed into the image, GPUs, the SIF check."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm._client.config import load_environment
from slurm._client.doctor.checks import OK, WARN, containers_check
from slurm._slurm.container import (
    IMAGE_PATH,
    ContainerSpec,
    apptainer_env,
    apptainer_prefix,
    asks_for_gpus,
    container_spec,
    is_sif,
    launch_prefix,
)
from slurm._wire.env import CONTAINER_VARIABLE
from slurm.errors import InvalidOptionError

SIF = "/shared/images/py.sif"
ENV = {
    "SLURM_JOB_ID": "42",
    "SLURM_SDK_DONE_DIR": "/jobs/.done",
    CONTAINER_VARIABLE: '{"image": "/shared/images/py.sif"}',
    "CUDA_VISIBLE_DEVICES": "0",
    "HOME": "/home/me",
    "PATH": "/home/me/venv/bin:/usr/bin",
    "VIRTUAL_ENV": "/home/me/venv",
    "PYTHONPATH": "/home/me/lib",
}


def test_the_runtime_is_auto_unless_asked_and_checked() -> None:
    spec = container_spec({"container_image": SIF}, shared=["/jobs"])
    assert spec is not None and spec.runtime == "auto"
    spec = container_spec({"container_image": SIF, "container_runtime": "apptainer"}, ["/jobs"])
    assert spec is not None and spec.runtime == "apptainer"
    with pytest.raises(InvalidOptionError, match="container_runtime must be 'auto', 'pyxis'"):
        container_spec({"container_image": SIF, "container_runtime": "singularity"}, [])
    with pytest.raises(InvalidOptionError, match="container_runtime"):
        container_spec({"container_runtime": "docker"}, [])  # checked even without an image
    # A cluster's default runtime alone puts nothing in a container.
    assert container_spec({"container_runtime": "apptainer"}, shared=["/jobs"]) is None


def test_the_spec_keeps_its_runtime_and_gpus_through_json() -> None:
    spec = ContainerSpec(SIF, shared=("/jobs",), runtime="apptainer", gpus=True)
    assert ContainerSpec.from_json(spec.to_json()) == spec


def test_only_slurm_s_variables_and_the_runner_s_own_are_passed() -> None:
    env = apptainer_env(ENV, ["/venv/site-packages", "/jobs/x"])
    assert env == {
        "CUDA_VISIBLE_DEVICES": "0",
        "PATH": IMAGE_PATH,
        "PYTHONPATH": "/venv/site-packages:/jobs/x",
        "PYTHONSAFEPATH": "1",
        CONTAINER_VARIABLE: "",  # the runner inside runs the call (no second hand-over)
        "SLURM_JOB_ID": "42",
        "SLURM_SDK_DONE_DIR": "/jobs/.done",
    }


def test_the_apptainer_exec_line() -> None:
    spec = ContainerSpec(SIF, mounts=("/data:/data:ro",), shared=("/jobs", "/jobs/.idx/.."),
                         runtime="apptainer")  # fmt: skip
    argv = apptainer_prefix(spec, ["/venv/site-packages", "/jobs/x"], "/jobs/j1", ENV)
    head = ["apptainer", "exec", "--cleanenv", "--no-home"]
    binds = ["--bind", "/jobs:/jobs", "--bind", "/venv/site-packages:/venv/site-packages",
             "--bind", "/data:/data:ro"]  # fmt: skip
    assert argv[: len(head) + len(binds)] == [*head, *binds]
    rest = argv[len(head) + len(binds) :]
    assert rest[:2] == ["--pwd", "/jobs/j1"]
    assert "--nv" not in argv
    passed = [rest[i + 1] for i, flag in enumerate(rest) if flag == "--env"]
    assert passed == [
        f"{k}={v}" for k, v in apptainer_env(ENV, ["/venv/site-packages", "/jobs/x"]).items()
    ]
    assert argv[-2:] == [SIF, "python3"]


def test_the_workdir_and_gpus() -> None:
    spec = ContainerSpec(SIF, workdir="/data", runtime="apptainer", gpus=True)
    argv = apptainer_prefix(spec, [], "/jobs/j1", {})
    assert argv[argv.index("--pwd") + 1] == "/data"
    assert "--nv" in argv


def test_amd_gpus_get_rocm_and_a_vendor_apptainer_lacks_is_refused() -> None:
    options = {"container_image": SIF, "container_runtime": "apptainer"}
    amd = container_spec({**options, "container_gpu_vendor": "amd"}, ["/jobs"], gpus=True)
    assert amd is not None and ContainerSpec.from_json(amd.to_json()) == amd
    argv = apptainer_prefix(amd, [], "/jobs/j1", {})
    assert "--rocm" in argv and "--nv" not in argv
    plain = container_spec({**options, "container_gpu_vendor": "amd"}, ["/jobs"], gpus=False)
    assert plain is not None and "--rocm" not in apptainer_prefix(plain, [], "/jobs/j1", {})
    with pytest.raises(InvalidOptionError, match="'nvidia' or 'amd'"):
        container_spec({**options, "container_gpu_vendor": "intel"}, ["/jobs"], gpus=True)
    # A cluster's default for the tasks that have images: no error for one without.
    assert container_spec({"container_gpu_vendor": "amd"}, ["/jobs"]) is None


@pytest.mark.parametrize(
    ("options", "gpus"),
    [
        ({}, False),
        ({"gpus": 1}, True),
        ({"gpus_per_node": "a100:2"}, True),
        ({"gpus_per_task": 0}, False),
        ({"gres": "gpu:1"}, True),
        ({"gres": "tmp:10G,gpu:a100:1"}, True),
        ({"gres": "tmp:10G"}, False),
        ({"cpus_per_task": 4}, False),
    ],
)
def test_asks_for_gpus(options: dict[str, object], gpus: bool) -> None:
    assert asks_for_gpus(options) is gpus


def test_launch_prefix_runs_apptainer_itself_and_pyxis_through_srun() -> None:
    apptainer = ContainerSpec(SIF, shared=("/jobs",), runtime="apptainer")
    argv, env = launch_prefix(apptainer, [], "/jobs/j1", ENV)
    assert argv[:2] == ["apptainer", "exec"]
    assert env == ENV  # apptainer itself runs in the job's environment
    pyxis = ContainerSpec("/shared/py.sqsh", shared=("/jobs",), runtime="pyxis")
    argv, env = launch_prefix(pyxis, ["/venv/site-packages"], "/jobs/j1", ENV)
    assert argv[0] == "srun" and argv[1] == "--container-image=/shared/py.sqsh"
    assert argv[-1] == "python3"
    assert env["PATH"] == IMAGE_PATH and env["HOME"] == "/home/me"


def test_is_sif() -> None:
    head = b"#!/usr/bin/env run-singularity\n\x00SIF_MAGIC\x0001\x0002\x00" + b"\x00" * 16
    assert len(head[:32]) == 32 and is_sif(head)
    assert not is_sif(b"#!/bin/sh\n" * 10)
    assert not is_sif(b"hsqs" + b"\x00" * 60)  # a squashfs file (.sqsh)
    assert not is_sif(b"")


def test_doctor_names_the_container_runtimes() -> None:
    both = containers_check({"pyxis": "srun --container-image", "apptainer": "1.4.5"})
    assert both.status == OK
    assert both.detail == (
        "pyxis (srun --container-image), apptainer 1.4.5; container_runtime='auto' takes pyxis"
    )
    only = containers_check({"apptainer": "1.4.5"})
    assert only.status == OK and only.detail.endswith(
        "apptainer 1.4.5; container_runtime='auto' takes apptainer"
    )
    none = containers_check({})
    assert none.status == WARN and not none.blocking
    assert "no container runtime" in none.detail


def test_a_slurmfile_sets_the_runtime_for_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "Slurmfile.toml").write_text(
        '[default]\nbackend = "local"\n[default.sbatch]\ncontainer_runtime = "apptainer"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLURMFILE", raising=False)
    monkeypatch.delenv("SLURM_ENV", raising=False)
    settings, _ = load_environment()
    assert settings["default_options"] == {"container_runtime": "apptainer"}
    spec = container_spec({**settings["default_options"], "container_image": SIF}, ["/jobs"])
    assert spec is not None and spec.runtime == "apptainer"


def test_the_ranks_meeting_point_is_passed_into_the_image() -> None:
    env = apptainer_env({**ENV, "MASTER_ADDR": "node1", "MASTER_PORT": "29500"}, ["/code"])
    assert env["MASTER_ADDR"] == "node1" and env["MASTER_PORT"] == "29500"
    assert env["SLURM_JOB_ID"] == "42" and "HOME" not in env


def test_each_rank_hands_over_to_apptainer_but_not_to_pyxis() -> None:
    from slurm._job.entry import _per_rank

    assert _per_rank(ContainerSpec(image=SIF, runtime="apptainer").to_json())
    assert not _per_rank(ContainerSpec(image="reg#img", runtime="pyxis").to_json())
