"""Tasks in container images through the dev cluster's real pyxis + enroot."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobfuncs import resume_after_preemption
from slurmrecords import wait_for_records

import slurm.devcluster as dc
from slurm import Cluster, JobContext, task, workflow
from slurm._client.packaging.container import build_and_push, image_build
from slurm._transport.ssh import SSHTransport
from slurm.devcluster.registry import push_image, tag_digest
from slurm.errors import ConfigurationError


@pytest.fixture(scope="module")
def containers(devcluster: dc.Status) -> dict[str, str]:
    """The registry and base image of the dev cluster, which the session brought up
    with containers (tests/conftest.py)."""
    if devcluster.containers is None and len(devcluster.nodes) <= 1:
        pytest.skip("the one-node layout cannot have containers: run on the multi-node layout")
    if devcluster.containers is None:  # the session brings them up on this layout
        pytest.fail("the multi-node dev cluster runs without containers", pytrace=False)
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
    assert (tmp_path / "started").exists(), "the task made no step within a minute"
    _preempt(job.id)
    result = job.get_result(timeout=180)
    assert result["restart"] >= 1
    assert result["resumed_from"]["python"] == "/usr/bin/python3"
    assert result["resumed_from"]["steps"] > 0
    runs = _runs_of(job.id)[job.id]
    assert "PREEMPTED" in runs or "REQUEUED" in runs, runs


@workflow(time="00:05:00")
def flow_with_image(marker: str) -> dict[str, Any]:
    return {"workflow_python": sys.executable, "child": inside(marker).get_result()}


def test_a_workflow_given_an_image_runs_outside_it_and_its_tasks_inside(
    ccluster: Cluster, image: str, tmp_path: Path
) -> None:
    (tmp_path / "marker").write_text("child")
    flow = flow_with_image.with_options(
        container_image=image, container_mounts=f"{tmp_path}:/mnt/marker"
    )
    out = flow("/mnt/marker/marker").get_result(timeout=180)
    # The cluster's Python, outside the image: this one, or (a clone the nodes cannot see,
    # under /tmp) the environment the SDK made from it under the job base directory.
    ran = out["workflow_python"]
    assert ran == sys.executable or ran.startswith(f"{ccluster.base_dir}/.envs/"), ran
    assert out["child"]["python"] == "/usr/bin/python3" and out["child"]["marker"] == "child"


def _dockerfile(context: Path, containers: dict[str, str], nonce: str) -> Path:
    """``FROM`` the dev cluster's base image in its registry, plus a step adding a marker
    (``nonce`` makes the content, hence the tag, new: a real build and push)."""
    context.mkdir(parents=True, exist_ok=True)
    base = containers["base_image_ref"].replace("#", "/")  # podman spells it REGISTRY/NAME
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(f"FROM {base}\nRUN echo marker-{nonce} > /marker\n")
    return dockerfile


def test_the_build_context_leaves_git_out_of_the_image(
    containers: dict[str, str], tmp_path: Path
) -> None:
    """A context's .git (history, and credentials its config may hold) never reaches the
    image, beside the context's own ignore file; the rest of the context does."""
    context = tmp_path / "context"
    dockerfile = _dockerfile(context, containers, secrets.token_hex(6))
    (context / ".git").mkdir()
    (context / ".git" / "config").write_text("[credential]\n\thelper = store\n")
    (context / "kept.txt").write_text("kept\n")
    (context / "scratch.log").write_text("left out by the context's own file\n")
    (context / ".containerignore").write_text("*.log\n")
    dockerfile.write_text(
        dockerfile.read_text()
        + "COPY . /context\n"
        + "RUN test -f /context/kept.txt && test ! -e /context/scratch.log "
        + "&& test ! -e /context/.git\n"
    )
    build = image_build(
        {"registry": containers["registry"], "dockerfile": str(dockerfile), "push": False}
    )
    assert "#" in build_and_push(build)  # a failed `RUN test` is a ConfigurationError


@task(time="00:05:00")
def print_inside(text: str) -> str:
    print(text, flush=True)
    return text


def test_srun_args_reach_the_container_step(ccluster: Cluster, image: str) -> None:
    """The earlier SDK's srun_args: here --label, which prefixes each line with the task."""
    job = print_inside.with_options(container_image=image, srun_args=["--label"])("labelled")
    assert job.get_result(timeout=180) == "labelled"
    assert "0: labelled" in job.get_stdout().splitlines()


@workflow(time="00:05:00")
def flow_with_child_image(dockerfile: str, registry: str) -> dict[str, Any]:
    """A workflow outside any image whose task runs in an image of its own."""
    child = inside.with_options(
        packaging="container", packaging_dockerfile=dockerfile, packaging_registry=registry
    )
    return child("/marker").get_result()


def test_with_dependencies_builds_a_workflows_task_image_before_it_starts(
    ccluster: Cluster, containers: dict[str, str], tmp_path: Path
) -> None:
    nonce = secrets.token_hex(6)
    dockerfile = str(_dockerfile(tmp_path / "child-image", containers, nonce))
    registry = containers["registry"]
    child = inside.with_options(
        packaging="container", packaging_dockerfile=dockerfile, packaging_registry=registry
    )
    # Without it, the workflow's node cannot build the task's image, and says so.
    alone = flow_with_child_image(dockerfile, registry)
    with pytest.raises(ConfigurationError, match="where nothing is built"):
        alone.get_result(timeout=180)
    # The earlier SDK's spelling: the image is built here first and handed to the workflow.
    job = ccluster.submit(flow_with_child_image).with_dependencies([child])(dockerfile, registry)
    out = job.get_result(timeout=300)
    assert out["marker"].strip() == f"marker-{nonce}" and out["python"] == "/usr/bin/python3"
    assert "building image" not in Path(job.stderr_path).read_text()


def test_use_digest_runs_the_pushed_image_by_its_digest(
    ccluster: Cluster, containers: dict[str, str], tmp_path: Path
) -> None:
    """The earlier SDK's use_digest: built, pushed, then run as REGISTRY#NAME:TAG@DIGEST,
    the digest the registry gives the manifest; pyxis (enroot) pulls it by that digest."""
    nonce = secrets.token_hex(6)
    dockerfile = str(_dockerfile(tmp_path / "digest-image", containers, nonce))
    job = inside.with_options(
        packaging="container",
        packaging_dockerfile=dockerfile,
        packaging_registry=containers["registry"],
        packaging_use_digest=True,
    )("/marker")
    out = job.get_result(timeout=300)
    assert out["marker"].strip() == f"marker-{nonce}" and out["python"] == "/usr/bin/python3"
    found = re.search(r"#slurm-sdk/digest-image:\w+@(sha256:[0-9a-f]{64})", job.get_script())
    assert found is not None, job.get_script()


_PIN_MARKER = "/etc/slurm-sdk-pin-marker"


@task(time="00:05:00")
def read_text(path: str) -> str:
    return Path(path).read_text()


def test_a_moved_tag_is_not_picked_up_pyxis_runs_the_digest_pinned_first(
    containers: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``REGISTRY#NAME:TAG`` runs by the digest the tag named the first time: a new image
    pushed under the same tag later (by anyone who may push) is not run, in a later
    client either; the warning says how to take it, and asking by digest takes it."""
    caplog.set_level("INFO", logger="slurm")
    registry, sqsh = containers["registry"], Path(containers["base_image"])
    repository = f"sdk/pinned-{secrets.token_hex(3)}"
    ref = push_image(registry, sqsh, "moving", repository=repository, files={_PIN_MARKER: b"one\n"})
    first = tag_digest(registry, repository, "moving")
    settings: dict[str, Any] = {
        "job_base_dir": str(tmp_path / "jobs"),
        "default_partition": "debug",
    }
    with Cluster(backend_type="local", **settings):
        job = read_text.with_options(container_image=ref)(_PIN_MARKER)
        assert job.get_result(timeout=240) == "one\n"
    assert job.image == f"{ref}@{first}"
    push_image(registry, sqsh, "moving", repository=repository, files={_PIN_MARKER: b"two\n"})
    second = tag_digest(registry, repository, "moving")
    assert second != first
    with Cluster(backend_type="local", **settings):  # a later client
        job = read_text.with_options(container_image=ref)(_PIN_MARKER)
        assert job.get_result(timeout=240) == "one\n"  # the pinned image, not the tag's
        assert job.image == f"{ref}@{first}"
        moved = f"the tag docker://{registry}/{repository}:moving moved in its registry (now"
        assert f"{moved} {second}); running the pinned {first}" in caplog.text
        assert f"container_image='{registry}#{repository}@{second}'" in caplog.text
        newer = read_text.with_options(container_image=f"{registry}#{repository}@{second}")
        assert newer(_PIN_MARKER).get_result(timeout=240) == "two\n"
    # `slurm images list` shows the pin; `unpin` lets the next run take the tag's digest.
    from click.testing import CliRunner

    from slurm.cli import main

    where = ["--backend", "local", "--job-base-dir", settings["job_base_dir"]]
    listed = CliRunner().invoke(main, ["images", "list", *where], catch_exceptions=False)
    assert f"docker://{registry}/{repository}:moving" in listed.output
    assert first[:19] in listed.output and "1 pins, 0 .sif images" in listed.output
    unpinned = CliRunner().invoke(main, ["images", "unpin", ref, *where], catch_exceptions=False)
    assert unpinned.output == f"unpinned {ref}\n"
    with Cluster(backend_type="local", **settings):
        job = read_text.with_options(container_image=ref)(_PIN_MARKER)
        assert job.get_result(timeout=240) == "two\n"
    assert job.image == f"{ref}@{second}"


@task(time="00:05:00")
def mark_and_wait(marker: str, flag: str) -> str:
    """Writes ``marker`` into the container's own file system, then waits for ``flag``."""
    Path("/opt/sdk-connect-marker").write_text(marker)
    deadline = time.monotonic() + 240
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return marker


def test_jobs_connect_attaches_to_the_tasks_running_container(
    ccluster: Cluster, image: str
) -> None:
    """The earlier SDK's `slurm jobs connect` into a task's container: a step of the job
    joins the pyxis container the task runs in (``--container-name=NAME:exec``), so it
    sees a file the task wrote there; ``--no-container`` runs on the node itself."""
    from click.testing import CliRunner

    from slurm.cli import main

    nonce = secrets.token_hex(6)
    flag = Path(ccluster.base_dir) / f"go-{nonce}"
    job = mark_and_wait.with_options(container_image=image)(nonce, str(flag))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            probe = CliRunner().invoke(
                main,
                ["jobs", "connect", job.id, "--backend", "local", "--job-base-dir",
                 ccluster.base_dir, "--", "cat", "/opt/sdk-connect-marker"],
                catch_exceptions=False,
            )  # fmt: skip
            if probe.exit_code == 0 and nonce in probe.output:
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"never saw the task's file in its container: {probe.output}")
        outside = CliRunner().invoke(
            main,
            ["jobs", "connect", job.id, "--no-container", "--backend", "local", "--job-base-dir",
             ccluster.base_dir, "--", "cat", "/opt/sdk-connect-marker"],
            catch_exceptions=False,
        )  # fmt: skip
        assert outside.exit_code != 0, outside.output  # the node has no such file
    finally:
        flag.write_text("")
    assert job.get_result(timeout=180) == nonce


def _ssh_cluster(devcluster: dc.Status, tmp_path: Path, **settings: Any) -> Cluster:
    """An SSH cluster on this session's dev cluster (its own ssh config, whatever
    ``~/.ssh/config``'s alias points at)."""
    ssh = devcluster.ssh
    return Cluster(
        backend_type="ssh",
        transport=SSHTransport(ssh.alias, ssh_config=ssh.config_file),
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
        **settings,
    )


def test_tutorial_over_ssh_every_task_in_an_image_built_from_a_dockerfile(
    devcluster: dc.Status,
    containers: dict[str, str],
    image: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from slurm.examples.parallel_train_eval.workflow import parallel_train_eval_workflow

    nonce = secrets.token_hex(6)
    dockerfile = _dockerfile(tmp_path / "image", containers, nonce)
    caplog.set_level(logging.INFO, logger="slurm._client.packaging")
    # The earlier SDK's spellings; the environment shipped where the other SSH tests
    # ship theirs (the same wheels: made once).
    envs = str(Path.home() / ".slurm-sdk" / "jobs" / ".envs")
    with _ssh_cluster(
        devcluster,
        tmp_path,
        default_packaging={"type": "container", "env_dir": envs},
        default_packaging_dockerfile=str(dockerfile),
        default_packaging_registry=containers["registry"],
    ):
        flow = parallel_train_eval_workflow(
            epochs=1, epoch_steps=1, steps_per_job_cap=1, partition_train=None, partition_eval=None
        )
        marker = inside("/marker")  # a task of its own, in the same image
        sqsh = inside.with_options(container_image=image)("/etc/debian_version")
        state_path = Path(flow.get_result(timeout=300))
        seen, in_sqsh = marker.get_result(timeout=120), sqsh.get_result(timeout=120)
    builds = [r for r in caplog.records if r.getMessage().startswith("building image")]
    assert len(builds) == 1, [r.getMessage() for r in caplog.records]
    assert seen["marker"].strip() == f"marker-{nonce}" and seen["python"] == "/usr/bin/python3"
    assert in_sqsh["python"] == "/usr/bin/python3" and in_sqsh["marker"].strip()
    # Every child of the workflow ran in that image, pulled by pyxis; none was built there.
    workflow_dir = state_path.parent.parent
    reference = builds[0].getMessage().split()[2]  # REGISTRY/NAME:TAG
    pyxis_ref = reference.replace("/", "#", 1)
    children = sorted((workflow_dir / "tasks").glob("*-*/stderr"))
    assert {p.parent.name.rsplit("-", 3)[0] for p in children} == {
        "train_epoch_segment",
        "evaluate_epoch",
    }
    for stderr in children:
        assert f"imported docker image: {pyxis_ref}" in stderr.read_text(), stderr
    assert "building image" not in (workflow_dir / "stderr").read_text()
    # The orchestrator ran outside the image (it submits with sbatch), its children inside.
    assert "SLURM_SDK_CONTAINER" not in (workflow_dir / "job.sh").read_text()
    assert all("SLURM_SDK_CONTAINER" in (p.parent / "job.sh").read_text() for p in children)
    state = json.loads(state_path.read_text())
    ids = [state["workflow_job_id"], *state["eval_jobs"].values()]
    records = wait_for_records(*ids, timeout=60)
    assert {r["State"] for r in records.values()} == {"COMPLETED"}


@pytest.fixture()
def refusing_registry() -> Iterator[str]:
    """A registry on loopback that refuses every request (403)."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            body = b'{"errors":[{"code":"DENIED","message":"pushes are not allowed here"}]}'
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _refuse

        def log_message(self, *args: Any) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_registry_that_refuses_the_push_is_quoted(
    ccluster: Cluster, containers: dict[str, str], refusing_registry: str, tmp_path: Path
) -> None:
    dockerfile = _dockerfile(tmp_path / "image", containers, "refused")
    job_task = inside.with_options(
        packaging="container",
        packaging_dockerfile=str(dockerfile),
        packaging_registry=refusing_registry,
    )
    with pytest.raises(ConfigurationError, match="refused") as info:
        job_task("/marker")
    assert "pushes are not allowed here" in str(info.value) or "403" in str(info.value)
    assert not list((tmp_path / "jobs").glob("inside-*"))


def test_an_image_missing_from_its_registry_fails_before_submission(
    ccluster: Cluster, containers: dict[str, str], tmp_path: Path
) -> None:
    missing = f"{containers['registry']}#sdk/python:no-such-tag"
    with pytest.raises(ConfigurationError, match="has no image sdk/python:no-such-tag"):
        inside.with_options(container_image=missing)("/x")
    assert not list((tmp_path / "jobs").glob("inside-*"))


def test_a_registry_that_wants_credentials_or_cannot_be_reached_is_not_a_refusal(
    refusing_registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    from slurm._client.packaging.registry import check_manifest
    from slurm._transport.local import LocalTransport

    caplog.set_level(logging.INFO, logger="slurm._client.packaging.registry")
    # 403 on reading: it may want credentials, which enroot has and this check has not.
    check_manifest(LocalTransport(), sys.executable, f"{refusing_registry}#team/img:1")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    check_manifest(LocalTransport(), sys.executable, f"127.0.0.1:{closed}#team/img:1")
    messages = [r.getMessage() for r in caplog.records]
    assert any("asks for credentials" in m for m in messages), messages
    assert any("could not reach the registry" in m for m in messages), messages
