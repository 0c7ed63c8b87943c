"""The container spec of a task and the srun line pyxis reads (pure)."""

from __future__ import annotations

import sys

import pytest

from slurm._slurm.container import ContainerSpec, code_paths, container_spec, srun_prefix
from slurm.errors import InvalidOptionError


def test_no_image_no_container() -> None:
    assert container_spec({"setup": ["x"]}, shared=["/jobs"]) is None


def test_mounts_or_workdir_without_an_image_are_refused() -> None:
    with pytest.raises(InvalidOptionError, match="container_mounts given without"):
        container_spec({"container_mounts": "/a:/b"}, shared=[])
    # container_image=False switches a lower layer's container off, mounts and all.
    assert container_spec({"container_image": False, "container_mounts": "/a:/b"}, []) is None


@pytest.mark.parametrize("bad", ["a b", "x,y", ""])
def test_an_image_is_one_reference(bad: str) -> None:
    if not bad:
        assert container_spec({"container_image": bad}, shared=[]) is None
        return
    with pytest.raises(InvalidOptionError, match="container_image"):
        container_spec({"container_image": bad}, shared=[])


def test_relative_workdir_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="absolute"):
        container_spec({"container_image": "img", "container_workdir": "rel"}, shared=[])


def test_spec_round_trips_through_json() -> None:
    spec = container_spec(
        {
            "container_image": "127.0.0.1:6821#sdk/python:3",
            "container_mounts": "/data:/data:ro,/scratch:/scratch",
            "container_workdir": "/data",
        },
        shared=["/jobs", "/jobs", "/idx"],
    )
    assert spec == ContainerSpec(
        image="127.0.0.1:6821#sdk/python:3",
        mounts=("/data:/data:ro", "/scratch:/scratch"),
        workdir="/data",
        shared=("/jobs", "/idx"),
    )
    assert ContainerSpec.from_json(spec.to_json()) == spec


def test_srun_prefix_mounts_the_job_dirs_and_code_once() -> None:
    spec = ContainerSpec("img.sqsh", mounts=("/d:/data",), shared=("/jobs", "/jobs/.index/.."))
    flags, env = srun_prefix(spec, ["/venv/site-packages", "/jobs/x", "/src"], "/jobs/j1")
    assert flags == [
        "--container-image=img.sqsh",
        "--container-mounts=/jobs:/jobs,/src:/src,/venv/site-packages:/venv/site-packages,/d:/data",
        "--container-workdir=/jobs/j1",
        "--no-container-mount-home",
        "python3",
    ]
    assert env == {
        "PYTHONPATH": "/venv/site-packages:/jobs/x:/src",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SLURM_SDK_CONTAINER": "",
        "PYTHONSAFEPATH": "1",  # -P for the image's runner, however old its Python
    }


def test_code_paths_leave_the_standard_library_to_the_image() -> None:
    paths = code_paths()
    assert not any(p.endswith(("lib-dynload", f"python3.{sys.version_info[1]}")) for p in paths)
    assert any("site-packages" in p for p in paths)


def test_a_pyxis_container_is_named_after_its_job_and_image() -> None:
    """``slurm jobs connect`` attaches to the task's container by this name (issue 23)."""
    from slurm._slurm.container import container_name, launch_prefix, script_container
    from slurm._slurm.script import render_batch_script

    spec = ContainerSpec("/shared/py.sqsh", shared=("/jobs",), runtime="pyxis")
    name = container_name("4321", spec.image)
    assert name.startswith("slurm-sdk-4321-") and name != container_name("4321", "other.sqsh")
    assert container_name("12_3", spec.image).startswith("slurm-sdk-12_3-")
    argv, _ = launch_prefix(spec, [], "/jobs/j1", {"SLURM_JOB_ID": "4321"})
    assert argv[:3] == ["srun", "--container-image=/shared/py.sqsh", f"--container-name={name}"]
    argv, _ = launch_prefix(spec, [], "/jobs/j1", {})
    assert not any(a.startswith("--container-name") for a in argv)
    # The spec is read back from the batch script it travels in, quoting and all.
    hostile = ContainerSpec("reg:5000#team/it's:1", mounts=("/a b:/c",), runtime="pyxis")
    env = {"SLURM_SDK_CONTAINER": hostile.to_json()}
    script = render_batch_script(options={"job_name": "x"}, command=["python3"], env=env)
    assert script_container(script) == hostile
    assert script_container("#!/bin/sh\necho no container\n") is None
