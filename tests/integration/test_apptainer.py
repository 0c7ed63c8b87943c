"""Tasks in Apptainer images (``container_runtime="apptainer"``) on a dev cluster of its own.

The module brings up ``slurm devcluster up --slurm 26.05 --apptainer`` (Debian sid's
Slurm and Apptainer, from a root cached in ``/var/cache/slurm-sdk/devcluster-roots``)
on the session's port base + 100, state under ``$SLURM_SDK_TEST_RELEASE_STATE``
(default ``~/.local/state/slurm-sdk``) in ``apptainer-26.05-<base>``, kept between
sessions, taken down at the end. The image is the dev cluster's base image (Debian
bookworm with Python 3.11, as the client) with a marker file added, built into a
``.sif`` once per machine with ``apptainer build`` on the cluster's login host and
cached in ``/var/cache/slurm-sdk/apptainer-images``; each session links it into a
directory the nodes share. The tasks go over SSH, whose login host has ``apptainer``
(the runtime is looked for there). Carries the ``release`` marker, as
test_releases.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobfuncs import CustomError, fail_with
from nodepython import node_python

import slurm.devcluster as dc
from slurm import Cluster, task
from slurm.devcluster import Status
from slurm.devcluster.containers import build_base_image
from slurm.devcluster.settings import env_port_base
from slurm.errors import ConfigurationError, DevclusterError

pytestmark = pytest.mark.release

_RELEASE = "26.05"
_OFFSET = 100
_TIMEOUT = 180.0
_MARKER_PATH = "/etc/slurm-sdk-apptainer-marker"
_MARKER = "built for test_apptainer.py\n"
_SIF_CACHE = Path("/var/cache/slurm-sdk/apptainer-images")


def _state_root() -> Path:
    explicit = os.environ.get("SLURM_SDK_TEST_RELEASE_STATE")
    return Path(explicit) if explicit else Path.home() / ".local" / "state" / "slurm-sdk"


@pytest.fixture(scope="module")
def acluster() -> Iterator[Status]:
    """The module's own Slurm 26.05 cluster with Apptainer, taken down at the end."""
    if os.geteuid() != 0:
        pytest.fail("the dev cluster needs root (`slurm devcluster up` says so)", pytrace=False)
    base = env_port_base() + _OFFSET
    state = _state_root() / f"apptainer-{_RELEASE}-{base}"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = dc.up(
            state, release=_RELEASE, apptainer=True, port_base=base, nodes=2,
            containers=False, accounting=True,
        )  # fmt: skip
    except DevclusterError as exc:
        pytest.fail(f"the Slurm {_RELEASE} cluster with Apptainer could not start: {exc}")
    try:
        yield st
    finally:
        with contextlib.suppress(DevclusterError):
            dc.down(st.state_dir)


def _ssh_argv(st: Status, *argv: str) -> list[str]:
    return ["ssh", "-F", st.ssh.config_file, st.ssh.alias, "--", *argv]


def _build_sif(st: Status, target: Path) -> None:
    """The base image unpacked with the marker added, built into ``target`` on the
    cluster's login host (in a directory it shares with this machine)."""
    work = Path("/var/tmp") / f"apptainer-build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        rootfs = work / "rootfs"
        squash = ["unsquashfs", "-q", "-no-progress", "-d", str(rootfs), str(build_base_image())]
        subprocess.run(squash, check=True, capture_output=True, timeout=600)
        (rootfs / _MARKER_PATH.lstrip("/")).write_text(_MARKER)
        built = work / "image.sif"
        out = subprocess.run(
            _ssh_argv(st, "apptainer", "build", "--force", str(built), str(rootfs)),
            capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert out.returncode == 0, f"apptainer build failed:\n{out.stdout}\n{out.stderr}"
        os.replace(built, target)  # the same file system (/var here)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def sif(acluster: Status) -> Iterator[str]:
    """The test image as a ``.sif`` file the compute nodes see: built once per machine
    (named by the base image and the marker), linked into a shared directory."""
    digest = hashlib.sha256(f"{build_base_image().name}\n{_MARKER}".encode()).hexdigest()[:12]
    cached = _SIF_CACHE / f"sdk-python-bookworm-marker-{digest}.sif"
    _SIF_CACHE.mkdir(parents=True, exist_ok=True)
    with open(_SIF_CACHE / ".lock", "w") as lock:  # one build on the machine at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_file():
            _build_sif(acluster, cached)
    shared = Path.home() / ".cache" / "slurm-sdk-tests" / f"apptainer-{os.getpid()}"
    shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    linked = shared / cached.name
    linked.unlink(missing_ok=True)
    os.link(cached, linked)
    yield str(linked)
    shutil.rmtree(shared, ignore_errors=True)


def _ssh(st: Status, base: Path, **kwargs: Any) -> Cluster:
    return Cluster(
        backend_type="ssh",
        hostname=st.ssh.alias,
        username=st.ssh.username,
        job_base_dir=str(base),
        default_partition="debug",
        python=node_python(),
        **kwargs,
    )


@task(time="00:05:00")
def in_image(marker: str) -> dict[str, Any]:
    return {
        "marker": Path(marker).read_text(),
        "python": sys.executable,
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "apptainer": os.environ.get("APPTAINER_CONTAINER", ""),
        "leak": os.environ.get("SDK_TEST_LEAK"),
        "job_id": os.environ.get("SLURM_JOB_ID"),
    }


def test_a_task_in_a_sif_returns_its_result_and_sees_the_image(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    base = home_tmp / "jobs"
    with _ssh(acluster, base, default_options={"container_runtime": "apptainer"}):
        # The batch step's own environment (setup= runs there) stays outside the image.
        job = in_image.with_options(container_image=sif, setup=["export SDK_TEST_LEAK=1"])(
            _MARKER_PATH
        )
        facts = job.get_result(timeout=_TIMEOUT)
    assert facts["marker"] == _MARKER  # read inside the image
    assert facts["apptainer"] == sif
    assert facts["python"] == "/usr/bin/python3"  # the image's, not the cluster's
    assert facts["host"] in {"node1", "node2"}
    assert facts["cwd"] == job.paths.job_dir  # --pwd: the job directory
    assert facts["leak"] is None  # --cleanenv: only what the runner needs is passed
    assert facts["job_id"] == job.job_id


def test_auto_picks_apptainer_on_a_cluster_without_pyxis(
    acluster: Status, sif: str, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="slurm")
    with _ssh(acluster, home_tmp / "jobs"):
        facts = in_image.with_options(container_image=sif)(_MARKER_PATH).get_result(
            timeout=_TIMEOUT
        )
    assert facts["marker"] == _MARKER
    assert "this cluster has Apptainer 1.4" in caplog.text


def test_doctor_reports_apptainer(acluster: Status, home_tmp: Path) -> None:
    report = _ssh(acluster, home_tmp / "jobs").diagnose()
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["containers"]["status"] == "ok"
    assert checks["containers"]["detail"] == (
        f"apptainer {acluster.apptainer}; container_runtime='auto' takes apptainer"
    )


def test_a_failing_task_in_a_sif_brings_back_its_traceback(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    with _ssh(acluster, home_tmp / "jobs"), pytest.raises(CustomError) as info:
        fail_with.with_options(container_image=sif, container_runtime="apptainer")(
            "boom in apptainer", 6
        ).get_result(timeout=_TIMEOUT)
    assert info.value.code == 6
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "remote traceback" in notes
    assert "raise CustomError(message, code)" in notes
    assert "boom in apptainer" in notes


def _submitted(base: Path) -> list[Path]:
    return [p for p in base.glob("*/*") if p.is_dir()] if base.exists() else []


def test_a_missing_or_wrong_sif_is_refused_before_submission(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    base = home_tmp / "jobs"
    not_sif = home_tmp / "not-an-image.sif"
    not_sif.write_text("#!/bin/sh\n" * 10)
    env = {**os.environ, "SLURM_CONF": acluster.slurm_conf}
    sacct = [f"{acluster.slurm_bin}/sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now-1hour"]
    before = subprocess.run(sacct, capture_output=True, text=True, check=True, env=env).stdout
    with _ssh(acluster, base, default_options={"container_runtime": "apptainer"}):
        with pytest.raises(ConfigurationError, match=r"cannot be read on the cluster") as missing:
            in_image.with_options(container_image=str(home_tmp / "nowhere.sif"))("/x")
        assert "Nothing was submitted" in str(missing.value)
        with pytest.raises(ConfigurationError, match=r"is not a SIF image"):
            in_image.with_options(container_image=str(not_sif))("/x")
        with pytest.raises(ConfigurationError, match=r"registry references are not pulled"):
            in_image.with_options(container_image="docker://debian:bookworm")("/x")
        with pytest.raises(ConfigurationError, match=r"runs one rank for now"):
            in_image.with_options(container_image=sif, nodes=2)("/x")
    after = subprocess.run(sacct, capture_output=True, text=True, check=True, env=env).stdout
    assert after == before  # nothing reached Slurm
    assert "in_image" not in "".join(p.name for p in _submitted(base))


def test_pyxis_asked_on_a_cluster_with_only_apptainer_is_refused(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    with (
        _ssh(acluster, home_tmp / "jobs"),
        pytest.raises(ConfigurationError, match=r"no --container-image option: pyxis"),
    ):
        in_image.with_options(container_image=sif, container_runtime="pyxis")("/x")
