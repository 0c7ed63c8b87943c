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
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobfuncs import CustomError, fail_with, resume_after_preemption
from nodepython import node_python

import slurm.devcluster as dc
from slurm import Cluster, Job, JobContext, task
from slurm.devcluster import Status
from slurm.devcluster.containers import build_base_image
from slurm.devcluster.registry import push_image, tag_digest
from slurm.devcluster.settings import env_port_base
from slurm.errors import ConfigurationError, DevclusterError, InvalidOptionError, SlurmError
from slurm.inspect import JobPaths

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
    assert report["runtimes"] == {"apptainer": acluster.apptainer}  # no pyxis
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
    """Job directories under ``base`` (not the SDK's own ``.envs`` and the like)."""
    if not base.exists():
        return []
    return [p for p in base.glob("*/*") if p.is_dir() and not p.parent.name.startswith(".")]


def _accounted(acluster: Status) -> list[str]:
    """The cluster's jobs of the last hour, as sacct lists them, without the preflight's
    probe of what the nodes see (``slurm-sdk-probe``: one step, nothing of the user's)."""
    env = {**os.environ, "SLURM_CONF": acluster.slurm_conf}
    sacct = [f"{acluster.slurm_bin}/sacct", "-X", "-n", "-P", "-o", "JobID,JobName",
             "-S", "now-1hour"]  # fmt: skip
    out = subprocess.run(sacct, capture_output=True, text=True, check=True, env=env).stdout
    return [line for line in out.splitlines() if not line.endswith("|slurm-sdk-probe")]


def test_a_missing_or_wrong_sif_is_refused_before_submission(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    base = home_tmp / "jobs"
    not_sif = home_tmp / "not-an-image.sif"
    not_sif.write_text("#!/bin/sh\n" * 10)
    before = _accounted(acluster)
    with _ssh(acluster, base, default_options={"container_runtime": "apptainer"}):
        with pytest.raises(ConfigurationError, match=r"cannot be read on the cluster") as missing:
            in_image.with_options(container_image=str(home_tmp / "nowhere.sif"))("/x")
        assert "Nothing was submitted" in str(missing.value)
        with pytest.raises(ConfigurationError, match=r"is not a SIF image"):
            in_image.with_options(container_image=str(not_sif))("/x")
        with pytest.raises(ConfigurationError, match=r"not a registry reference the SDK can"):
            in_image.with_options(container_image="docker://debian:bookworm")("/x")
        with pytest.raises(InvalidOptionError, match=r"'auto', 'pyxis', 'apptainer', got 'sing"):
            in_image.with_options(container_image=sif, container_runtime="singularity")("/x")
    assert _accounted(acluster) == before  # nothing reached Slurm
    assert "in_image" not in "".join(p.name for p in _submitted(base))


def test_pyxis_asked_on_a_cluster_with_only_apptainer_is_refused(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    with (
        _ssh(acluster, home_tmp / "jobs"),
        pytest.raises(ConfigurationError, match=r"no --container-image option: pyxis"),
    ):
        in_image.with_options(container_image=sif, container_runtime="pyxis")("/x")


@pytest.fixture(scope="module")
def registry(acluster: Status) -> Iterator[str]:
    """A registry (Debian's ``docker-registry``) of the module's own on the cluster's
    bridge address (which the login host and the nodes reach), port base + 4 (the port
    the pyxis layout would give it; this cluster has none), storage in a temporary
    directory; stopped (by its pid) at the end."""
    port_base = int(acluster.ssh.alias.rsplit("-", 1)[1])
    host, port = f"10.217.{port_base % 256}.1", port_base + 4
    work = Path("/var/tmp") / f"a26-registry-{os.getpid()}-{secrets.token_hex(3)}"
    work.mkdir(mode=0o700)
    conf = work / "registry.yml"
    conf.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'storage'}\nhttp:\n  addr: {host}:{port}\n"
    )
    log = open(work / "registry.log", "w")  # noqa: SIM115 (closed at the end)
    server = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
                break
            assert server.poll() is None, (work / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
        yield f"{host}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


_REGISTRY_MARKER = "/etc/slurm-sdk-registry-marker"


@task(time="00:05:00")
def read_marker(path: str) -> str:
    return Path(path).read_text()


def _pulls(caplog: pytest.LogCaptureFixture, digest: str) -> int:
    return sum(
        1 for r in caplog.records if r.getMessage().startswith("pulling ") and digest in r.message
    )


def test_a_registry_image_is_pinned_by_digest_and_pulled_once_per_digest(
    acluster: Status, registry: str, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="slurm")
    repository = f"sdk/marked-{secrets.token_hex(3)}"
    base, sqsh = home_tmp / "jobs", build_base_image()
    push_image(registry, sqsh, "moving", repository=repository, files={_REGISTRY_MARKER: b"one\n"})
    first = tag_digest(registry, repository, "moving")
    uri = f"docker://{registry}/{repository}:moving"
    options = {"container_runtime": "apptainer"}
    with _ssh(acluster, base, default_options=options):
        job = read_marker.with_options(container_image=uri)(_REGISTRY_MARKER)
        assert job.get_result(timeout=_TIMEOUT) == "one\n"
    assert job.image == f"{uri}@{first}"  # what ran: the tag's digest, pinned
    # The tag moves: a new image under the same name and tag.
    push_image(registry, sqsh, "moving", repository=repository, files={_REGISTRY_MARKER: b"two\n"})
    second = tag_digest(registry, repository, "moving")
    assert second != first
    with _ssh(acluster, base, default_options=options):  # another run, the same job base
        job = read_marker.with_options(container_image=uri)(_REGISTRY_MARKER)
        assert job.get_result(timeout=_TIMEOUT) == "one\n"  # the pinned digest, not the tag's
    assert job.image == f"{uri}@{first}"
    assert f"the tag {uri} moved in its registry (now {second}); running the pinned" in caplog.text
    assert _pulls(caplog, first) == 1  # the second run reused the .sif
    # Asking for the new digest by name takes it: two clusters at once pull it once.
    pinned = f"docker://{registry}/{repository}@{second}"
    answers: list[object] = []

    def run() -> None:
        with _ssh(acluster, base, default_options=options):
            answers.append(
                read_marker.with_options(container_image=pinned)(_REGISTRY_MARKER).get_result(
                    timeout=_TIMEOUT
                )
            )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["two\n", "two\n"]
    assert _pulls(caplog, second) == 1
    assert _pulls(caplog, first) == 1
    cached = sorted(p.name for p in (base / ".image-cache" / "sif").iterdir())
    assert cached == sorted(f"docker-{d.replace(':', '-')}.sif" for d in (first, second))


def test_a_registry_image_that_does_not_match_is_refused_before_submission(
    acluster: Status, registry: str, home_tmp: Path
) -> None:
    repository = f"sdk/marked-{secrets.token_hex(3)}"
    push_image(registry, build_base_image(), "v1", repository=repository)
    base = home_tmp / "jobs"
    wrong = "sha256:" + "0" * 64
    with _ssh(acluster, base, default_options={"container_runtime": "apptainer"}):
        with pytest.raises(ConfigurationError, match=r"the digest does not match") as info:
            read_marker.with_options(container_image=f"docker://{registry}/{repository}@{wrong}")(
                "/x"
            )
        assert "Nothing was submitted" in str(info.value)
        with pytest.raises(ConfigurationError, match=r"has no image .*:nowhere"):
            read_marker.with_options(container_image=f"docker://{registry}/{repository}:nowhere")(
                "/x"
            )
        with pytest.raises(ConfigurationError, match=r"neither a path nor a registry"):
            read_marker.with_options(container_image="debian.sif")("/x")
    assert not _submitted(base)
    assert not (base / ".image-cache" / "sif").exists() or not any(
        (base / ".image-cache" / "sif").iterdir()
    )


_BUILT_MARKER = "/etc/slurm-sdk-dockerfile-marker"


def _dockerfile_project(project: Path, registry: str, marker: str) -> dict[str, Any]:
    """A Dockerfile ``FROM`` the base image (pushed to ``registry`` as
    ``sdk/python:bookworm``) that copies ``marker`` to :data:`_BUILT_MARKER`; the
    ``packaging=`` table that builds it and pushes it there."""
    push_image(registry, build_base_image(), "bookworm")
    project.mkdir()
    (project / "marker.txt").write_text(marker)
    (project / "Dockerfile").write_text(
        f"FROM {registry}/sdk/python:bookworm\nCOPY marker.txt {_BUILT_MARKER}\n"
    )
    return {"type": "container", "dockerfile": str(project / "Dockerfile"), "registry": registry}


def test_an_image_built_from_a_dockerfile_runs_as_a_sif_built_and_converted_once(
    acluster: Status, registry: str, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="slurm")
    nonce = secrets.token_hex(6)
    packaging = _dockerfile_project(home_tmp / "project", registry, f"built {nonce}\n")
    base, images = home_tmp / "jobs", []
    for _ in range(2):  # two runs, each a cluster of its own: one build, one conversion
        with _ssh(
            acluster, base, packaging=packaging, default_options={"container_runtime": "apptainer"}
        ):
            job = read_marker(_BUILT_MARKER)
            assert job.get_result(timeout=_TIMEOUT) == f"built {nonce}\n"
            images.append(job.image)
    messages = [r.getMessage() for r in caplog.records]
    builds = [m for m in messages if m.startswith("building image")]
    pulls = [m for m in messages if m.startswith("pulling ")]
    assert len(builds) == 1, messages
    assert len(pulls) == 1, messages
    assert any(
        m.endswith("is in the registry already (same Dockerfile and context)") for m in messages
    )
    built = builds[0].split()[2]  # REGISTRY/NAME:TAG
    assert images[0] == images[1] and images[0] is not None
    assert images[0].startswith(f"docker://{built}@sha256:")


@task(time="00:05:00", ntasks=2, mem="256M")
def ranks_in_image(marker: str, ctx: JobContext) -> list[dict[str, Any]]:
    """Each rank's view from inside its container; rank 0 gathers them (through a file
    per rank in the job directory, the working directory) and returns them all."""
    import json

    facts = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "procid": os.environ.get("SLURM_PROCID"),
        "marker": Path(marker).read_text(),
        "python": sys.executable,
        "apptainer": os.environ.get("APPTAINER_CONTAINER", ""),
        "meeting": [os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")],
        "host": socket.gethostname(),
    }
    Path(f"rank-{ctx.rank}.json.tmp").write_text(json.dumps(facts))
    os.replace(f"rank-{ctx.rank}.json.tmp", f"rank-{ctx.rank}.json")
    if ctx.rank != 0:
        return [facts]
    deadline = time.monotonic() + 120
    paths = [Path(f"rank-{r}.json") for r in range(ctx.world_size)]
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the other rank wrote nothing"
        time.sleep(0.2)
    return [json.loads(p.read_text()) for p in paths]


def test_a_two_rank_task_runs_one_container_per_rank_in_a_sif(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    with _ssh(acluster, home_tmp / "jobs", default_options={"container_runtime": "apptainer"}):
        job = ranks_in_image.with_options(container_image=sif)(_MARKER_PATH)
        ranks = job.get_result(timeout=_TIMEOUT)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["procid"] for r in ranks] == ["0", "1"]  # each rank's own Slurm variables
    for facts in ranks:
        assert facts["world_size"] == 2
        assert facts["marker"] == _MARKER  # read inside the image
        assert facts["python"] == "/usr/bin/python3"
        assert facts["apptainer"] == sif
        assert facts["host"] in {"node1", "node2"}
    assert ranks[0]["meeting"] == ranks[1]["meeting"] and None not in ranks[0]["meeting"]
    assert job.image == sif


def test_an_oras_image_is_pinned_and_pulled_once(
    acluster: Status, registry: str, sif: str, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="slurm")
    repository = f"sdk/oras-{secrets.token_hex(3)}"
    uri = f"oras://{registry}/{repository}:v1"
    pushed = subprocess.run(
        _ssh_argv(acluster, "apptainer", "push", "--no-https", sif, uri),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pushed.returncode == 0, f"apptainer push failed:\n{pushed.stdout}\n{pushed.stderr}"
    base = home_tmp / "jobs"
    for _ in range(2):
        with _ssh(acluster, base, default_options={"container_runtime": "apptainer"}):
            job = read_marker.with_options(container_image=uri)(_MARKER_PATH)
            assert job.get_result(timeout=_TIMEOUT) == _MARKER
        assert job.image is not None and job.image.startswith(f"{uri}@sha256:")
    assert sum(1 for r in caplog.records if r.getMessage().startswith("pulling oras://")) == 1


def test_tutorial_over_ssh_every_task_in_a_sif_built_from_a_dockerfile(
    acluster: Status, registry: str, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from slurm.examples.parallel_train_eval.workflow import parallel_train_eval_workflow

    caplog.set_level("INFO", logger="slurm")
    nonce = secrets.token_hex(6)
    packaging = _dockerfile_project(home_tmp / "tutorial-image", registry, f"tutorial {nonce}\n")
    base = home_tmp / "jobs"
    with _ssh(
        acluster, base, packaging=packaging, default_options={"container_runtime": "apptainer"}
    ):
        flow = parallel_train_eval_workflow(
            epochs=1, epoch_steps=1, steps_per_job_cap=1, partition_train=None, partition_eval=None
        )
        marker = read_marker(_BUILT_MARKER)  # a task of its own, in the same image
        state_path = Path(flow.get_result(timeout=300))
        assert marker.get_result(timeout=_TIMEOUT) == f"tutorial {nonce}\n"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("building image")]) == 1, messages
    pulls = [m for m in messages if m.startswith("pulling ")]
    assert len(pulls) == 1, messages  # converted once, before the workflow was submitted
    sif = pulls[0].split(" into ")[1].split()[0]
    workflow_dir = state_path.parent.parent
    children = sorted((workflow_dir / "tasks").glob("*-*/job.sh"))
    assert {p.parent.name.rsplit("-", 3)[0] for p in children} == {
        "train_epoch_segment",
        "evaluate_epoch",
    }
    # The orchestrator ran outside the image (it submits with sbatch); every child in the
    # .sif the client pulled, and nothing was pulled or built on the workflow's node.
    assert "SLURM_SDK_CONTAINER" not in (workflow_dir / "job.sh").read_text()
    for script in children:
        assert sif in script.read_text() and '"runtime": "apptainer"' in script.read_text()
    workflow_log = (workflow_dir / "stderr").read_text()
    assert "pulling " not in workflow_log and "building image" not in workflow_log


def _on_login(st: Status, *argv: str) -> str:
    """A Slurm command of the cluster's own release, on its login host."""
    quoted = [shlex.quote(a) for a in argv]  # ssh joins its arguments into one command line
    out = subprocess.run(_ssh_argv(st, *quoted), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{argv}: {out.stderr}"
    return out.stdout.strip()


def _left_by(job: Job[Any], work: Path) -> str:
    """The work directory's files and the job's run log and stderr, for a failure."""
    paths = JobPaths(job.job_dir)
    parts = [f"work: {sorted(p.name for p in work.iterdir())}"]
    for name, path in (("run log", paths.runs), ("stderr", paths.stderr)):
        with contextlib.suppress(OSError):
            parts.append(f"--- {name} ---\n{Path(path).read_text()[-4000:]}")
    return "\n".join(parts)


def test_a_preempted_task_in_a_sif_resumes_from_its_checkpoint(
    acluster: Status, sif: str, home_tmp: Path
) -> None:
    """Preemption reaches the runner inside the container (its checkpoint runs there),
    Slurm requeues the job, and the next run resumes from what it saved."""
    work = home_tmp / "work"
    work.mkdir()
    with _ssh(acluster, home_tmp / "jobs", default_options={"container_runtime": "apptainer"}):
        # Apptainer's own processes count in the step's memory (71 MB seen at 64M).
        job = resume_after_preemption.with_options(
            container_image=sif, container_mounts=f"{work}:{work}", mem="256M"
        )(str(work))
        deadline = time.monotonic() + _TIMEOUT
        while not (work / "started").exists():
            assert time.monotonic() < deadline, "the task made no step in the image"
            time.sleep(0.2)
        node = _on_login(acluster, "squeue", "-h", "-j", job.id, "-o", "%N")
        cpus = _on_login(acluster, "sinfo", "-h", "-N", "-n", node, "-o", "%c").split()[0]
        _on_login(
            acluster, "sbatch", "--parsable", "-p", "urgent", "-w", node, f"-c{cpus}",
            "--mem=512M", "-J", "preemptor", "-o", "/dev/null", "--wrap", "sleep 2",
        )  # fmt: skip
        try:
            result = job.get_result(timeout=_TIMEOUT)
        except SlurmError as exc:  # what the runs left: a lost checkpoint, or a slow start
            raise AssertionError(f"{exc}\n{_left_by(job, work)}") from exc
    assert result["restart"] >= 1
    assert result["resumed_from"]["python"] == "/usr/bin/python3"  # saved inside the image
    assert result["resumed_from"]["steps"] > 0
    runs = _on_login(acluster, "sacct", "-X", "-n", "-P", "--duplicates", "-j", job.id,
                     "-o", "State").split()  # fmt: skip
    assert "PREEMPTED" in runs or "REQUEUED" in runs, runs
