"""The earlier SDK's calls, pure parts: get_status's dict, the queue and partition dicts,
host_key_policy, from_env's first argument, with_dependencies (issue 23)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeslurm import FakeSlurm

from slurm import Cluster, JobState, JobStatus, LoggerCallback, task, workflow
from slurm._slurm.commands import JobInfo
from slurm._slurm.overview import (
    PARTITION_KEYS,
    QUEUE_KEYS,
    parse_partitions,
    parse_queue,
    queue_argv,
    sinfo_argv,
)
from slurm._transport.keypolicy import HOST_KEY_POLICIES, resolve_policy
from slurm._wire.layout import JobPaths
from slurm._wire.payload import loads_payload
from slurm.errors import ConfigurationError, SlurmfileEnvironmentNotFoundError

# --- get_status(): the earlier dict, equal to our enum -----------------------------------


def test_a_status_is_the_earlier_dict_and_equal_to_its_state() -> None:
    info = JobInfo("41", JobState.FAILED, 3, 0, reason="NonZeroExitCode", node="node2")
    status = JobStatus.of(JobState.FAILED, info, job_id="41", files={"JobName": "fit"})
    # The earlier SDK's documented uses.
    assert status["JobState"] == "FAILED"
    assert status["ExitCode"] == "3:0"
    assert not status.get("ExitCode", "").startswith("0:0")
    assert status["NodeList"] == "node2" and status["Reason"] == "NonZeroExitCode"
    assert status["JobName"] == "fit" and "StartTime" not in status  # Slurm did not say
    assert dict(status) == status.to_dict() and list(status.items())[:2] == [
        ("JobId", "41"),
        ("JobName", "fit"),
    ]
    # Ours: equal to the enum (both ways), its text, hashed alike, its properties.
    assert status == JobState.FAILED
    assert JobState.FAILED == status  # noqa: SIM300 (the enum on the left, as users write it)
    assert status == "FAILED" and status != JobState.COMPLETED
    assert status in {JobState.FAILED} and status in (JobState.COMPLETED, JobState.FAILED)
    assert status.state is JobState.FAILED
    assert status is not JobState.FAILED  # type: ignore[comparison-overlap]
    assert (status.value, status.name, status.is_terminal, status.is_active) == (
        "FAILED",
        "FAILED",
        True,
        False,
    )
    assert f"{status}" == str(status) == "FAILED" and f"{status:>8}" == "  FAILED"


def test_a_status_before_slurm_answers_and_from_a_result_alone() -> None:
    pending = JobStatus.of(JobState.PENDING, None, job_id="7")
    assert dict(pending) == {"JobId": "7", "JobState": "PENDING", "ExitCode": "0:0"}
    done = JobStatus.of(JobState.COMPLETED, None, job_id="8", ok=True)
    failed = JobStatus.of(JobState.FAILED, None, job_id="9", ok=False)
    assert (done["ExitCode"], failed["ExitCode"]) == ("0:0", "1:0")
    assert done == {"JobId": "8", "JobState": "COMPLETED", "ExitCode": "0:0"}
    assert done != failed and hash(done) == hash(JobState.COMPLETED)


# --- get_queue() and get_cluster_info(): the earlier keys --------------------------------


def test_the_queue_is_the_users_own_with_the_earlier_keys() -> None:
    argv = queue_argv()
    assert argv[:3] == ["squeue", "--me", "--noheader"]
    # What squeue printed on the dev cluster for a running SDK job and a pending array.
    out = (
        "12|RUNNING|root|2026-12-01T23:20:01|0:04|2:00|debug|(null)|1|node1|None|sleep_then\n"
        "13_[0-3]|PENDING|root|N/A|0:00|2:00|debug|(null)|1||Dependency|a|name|with|bars\n"
        "garbage\n"
    )
    rows = parse_queue(out)
    assert [tuple(row) for row in rows] == [QUEUE_KEYS, QUEUE_KEYS]
    assert rows[0]["JOBID"] == "12" and rows[0]["STATE"] == "RUNNING"
    assert rows[0]["NODELIST"] == "node1" and rows[0]["NAME"] == "sleep_then"
    assert rows[1]["NAME"] == "a|name|with|bars" and rows[1]["REASON"] == "Dependency"
    assert {"JOBID", "NAME", "STATE", "USER", "TIME", "PARTITION", "REASON"} <= set(QUEUE_KEYS)


def test_the_partitions_with_the_earlier_keys_and_the_default_marked() -> None:
    assert sinfo_argv()[:2] == ["sinfo", "--noheader"]
    out = (  # as the dev cluster's sinfo printed it
        "debug|up|infinite|2|idle|0/8/0/8|debug*|node[1-2]\n"
        "compute|up|infinite|1|mixed|2/2/0/4|compute|node1\n"
        "\n"
    )
    rows = parse_partitions(out)
    assert [tuple(row) for row in rows] == [PARTITION_KEYS, PARTITION_KEYS]
    assert rows[0] == {
        "PARTITION": "debug",
        "AVAIL": "up",
        "TIMELIMIT": "infinite",
        "NODES": "2",
        "STATE": "idle",
        "CPUS": "0/8/0/8",
        "DEFAULT": "yes",
        "NODELIST": "node[1-2]",
    }
    assert rows[1]["DEFAULT"] == "no" and rows[1]["STATE"] == "mixed"


# --- host_key_policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "accept_new", "chosen"),
    [
        (None, False, "reject"),
        (None, True, "auto"),
        ("reject", False, "reject"),
        ("warn", False, "warn"),
        ("auto", False, "auto"),
        ("auto", True, "auto"),
    ],
)
def test_host_key_policy_and_accept_new_host_key(
    policy: str | None, accept_new: bool, chosen: str
) -> None:
    assert resolve_policy(policy, accept_new) == chosen


def test_a_bad_host_key_policy_lists_the_valid_ones_before_connecting() -> None:
    assert HOST_KEY_POLICIES == ("reject", "warn", "auto")
    with pytest.raises(ConfigurationError, match="one of reject, warn, auto, got 'trust'"):
        Cluster(hostname="login.example.org", host_key_policy="trust")
    with pytest.raises(ConfigurationError, match="give one of them"):
        Cluster(hostname="login.example.org", host_key_policy="warn", accept_new_host_key=True)
    cluster = Cluster(hostname="login.example.org", host_key_policy="warn")  # nothing opened
    assert cluster.settings.host_key_policy == "warn"


# --- Cluster.from_env(path_or_env, *, env=, overrides=, callbacks=) ----------------------


@pytest.fixture()
def slurmfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "Slurmfile.toml"
    path.parent.mkdir()
    path.write_text(
        '[default]\nbackend = "local"\njob_base_dir = "/tmp/a"\n'
        '[dev]\nbackend = "ssh"\nhostname = "dev.example.org"\nusername = "ann"\n'
    )
    path.chmod(0o600)
    monkeypatch.setenv("SLURMFILE", str(path))
    monkeypatch.delenv("SLURM_ENV", raising=False)
    return path


def test_from_env_takes_a_path_or_an_environment_first(slurmfile: Path) -> None:
    assert Cluster.from_env("dev").hostname == "dev.example.org"  # a name
    assert Cluster.from_env(str(slurmfile)).backend_type == "local"  # a path: [default]
    assert Cluster.from_env(str(slurmfile), env="dev").username == "ann"
    assert Cluster.from_env("default", env="dev").hostname == "dev.example.org"  # env= wins
    with pytest.raises(SlurmfileEnvironmentNotFoundError, match=r"no environment \[prod\]"):
        Cluster.from_env("prod")
    with pytest.raises(ConfigurationError, match="two Slurmfiles"):
        Cluster.from_env(str(slurmfile), path="/elsewhere/Slurmfile")


def test_from_env_overrides_and_callbacks_as_the_earlier_sdk_passed_them(
    slurmfile: Path,
) -> None:
    mine = LoggerCallback()
    cluster = Cluster.from_env(
        "dev",
        overrides={"backend_config": {"hostname": "dev2.example.org"}, "port": 2222},
        callbacks=[mine],
    )
    assert (cluster.hostname, cluster.port, cluster.username) == ("dev2.example.org", 2222, "ann")
    assert cluster.callbacks == [mine]
    assert Cluster.from_env("dev", overrides={"callbacks": []}, callbacks=[mine]).callbacks == []
    with pytest.raises(
        ConfigurationError, match="unknown setting 'hostnam' \\(did you mean 'hostname'"
    ):
        Cluster.from_env("dev", overrides={"hostnam": "x"})


# --- with_dependencies: the images of a workflow's tasks, built before it ----------------


@task(time="00:01:00")
def _step() -> int:
    return 1


@workflow(time="00:01:00")
def _flow() -> int:
    return _step().get_result()


def test_with_dependencies_takes_tasks_only() -> None:
    with pytest.raises(ConfigurationError, match=r"with_dependencies\(\) takes tasks"):
        _flow.with_dependencies([_step, "not a task"])  # type: ignore[list-item]
    child = _step.with_options(packaging="container")
    chained = _flow.with_dependencies([child]).with_options(time="00:02:00")
    assert chained.prebuild == (child,) and _flow.prebuild == ()
    bound = Cluster("local").submit(_flow).with_dependencies([_step])
    assert bound.task.prebuild == (_step,) and bound.task.options["time"] == "00:01:00"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlurm]:
    monkeypatch.setattr(
        "slurm._client.packaging.interpreter_for", lambda cluster, *settings: "python3"
    )
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    yield FakeSlurm()


def test_with_dependencies_builds_the_tasks_images_into_the_workflows_spec(
    fake: FakeSlurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    def build_and_push(build: Any, **_: Any) -> str:
        built.append(build)
        return f"r:1#slurm-sdk/{Path(build.dockerfile).name.lower()}:c1"

    monkeypatch.setattr("slurm._client.packaging.container.build_and_push", build_and_push)
    monkeypatch.setattr("slurm._client.packaging.images.check_pyxis", lambda *a: None)
    child = _step.with_options(
        packaging="container", packaging_dockerfile="Gpu", packaging_registry="r:1"
    )
    plain = _step.with_options(packaging="none")  # nothing to build
    with Cluster(transport=fake, job_base_dir=str(tmp_path / "jobs"), python="python3") as c:
        job = c.submit(_flow).with_dependencies([child, plain])()
        again = _flow.with_dependencies([child])()  # built once per cluster
    assert [b.dockerfile for b in built] == ["Gpu"]
    for submitted in (job, again):
        data = Path(JobPaths(submitted.job_dir).payload).read_bytes()
        spec = loads_payload(data, lambda ref: ref).workflow
        assert spec is not None
        assert list(dict(spec.images).values()) == ["r:1#slurm-sdk/gpu:c1"]


# --- the earlier packaging keys ------------------------------------------------------------


def test_the_earlier_packaging_names_read_as_ours() -> None:
    from slurm._client.packaging import parse_spec

    assert parse_spec("inherit").mode == "auto"
    spec = parse_spec(
        {
            "type": "wheel",
            "build_tool": "pip",
            "python_version": "3.11",
            "dependencies": ["rich>=13", "numpy"],
            "extras": "gpu",
        }
    )
    assert (spec.mode, spec.installer, spec.python_version) == ("wheel", "pip", "3.11")
    assert spec.python is None  # found (or installed) on the cluster, not a name
    assert spec.dependencies == ("rich>=13", "numpy") and spec.extras == ("gpu",)
    assert parse_spec({"type": "wheel", "dependencies": ["x"]}) != parse_spec("wheel")


def test_extra_index_url_and_upgrade_pip_as_the_earlier_sdk_wrote_them() -> None:
    from slurm._client.packaging import parse_spec

    spec = parse_spec({"type": "wheel", "extra_index_url": "https://pypi.example.org/simple"})
    assert spec.indexes == ("https://pypi.example.org/simple",)
    both = ["https://a.example.org/simple", "file:///srv/simple"]
    assert parse_spec({"extra_index_url": both}).indexes == tuple(both)
    # upgrade_pip: a current pip is collected and installed with the rest.
    spec = parse_spec({"type": "wheel", "upgrade_pip": True, "dependencies": ["rich"]})
    assert spec.dependencies == ("rich", "pip")
    assert parse_spec({"upgrade_pip": False}) == parse_spec("auto")
    assert parse_spec({"extra_index_url": "https://x/simple"}) != parse_spec("auto")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"build_tool": "poetry"}, r"installer one of \('auto', 'uv', 'pip'\)"),
        ({"build_tool": "uv", "installer": "pip"}, "not both"),
        ({"python_version": "three"}, "a version such as '3.12'"),
        ({"python_version": "3.11", "python": "/opt/py"}, "not both"),
        ({"dependencies": [1]}, "a list of strings"),
        ({"extra_index_url": "/srv/simple"}, "file:// and its absolute path"),
        ({"extra_index_url": ["https://x", 3]}, "a package index's URL or a list"),
        ({"upgrade_pip": "yes"}, "give true or false"),
        ({"upgrade_pip": True, "extra_index_utl": "https://x"}, r"unknown: \['extra_index_utl'\]"),
        ({"type": "wheel", "build_args": {"A": "1"}}, "only with 'container'"),
    ],
)
def test_bad_earlier_packaging_keys_say_what_is_valid(value: dict[str, Any], message: str) -> None:
    from slurm._client.packaging import parse_spec

    with pytest.raises(ConfigurationError, match=message):
        parse_spec(value)


def _wheel_with(tmp_path: Path, metadata: str) -> Path:
    import zipfile

    path = tmp_path / "proj-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("proj-1.0.dist-info/METADATA", metadata)
    return path


def test_a_projects_extras_add_their_requirements(tmp_path: Path) -> None:
    from slurm._client.packaging.wheels import wheel_requirements

    wheel = _wheel_with(
        tmp_path,
        "Metadata-Version: 2.1\nName: proj\nVersion: 1.0\n"
        "Provides-Extra: gpu\nProvides-Extra: docs_site\n"
        "Requires-Dist: rich\n"
        'Requires-Dist: cupy; extra == "gpu"\n'
        'Requires-Dist: nvtx; python_version >= "3.10" and extra == "gpu"\n'
        "Requires-Dist: mkdocs; extra == 'docs-site'\n",
    )
    assert wheel_requirements(wheel) == ["rich"]
    assert wheel_requirements(wheel, ["gpu"]) == ["rich", "cupy", 'nvtx; python_version >= "3.10"']
    assert wheel_requirements(wheel, ["docs-site"]) == ["rich", "mkdocs"]
    with pytest.raises(ConfigurationError, match=r"no extra \['cuda'\]; its extras are"):
        wheel_requirements(wheel, ["cuda"])


def test_the_earlier_container_keys_reach_the_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm._client.packaging.container import build_argv, content_tag, image_build

    (tmp_path / "Dockerfile").write_text("FROM base\nARG V\n")
    (tmp_path / "token").write_text("s3cret")
    monkeypatch.setenv("PIP_TOKEN", "t")
    build = image_build(
        {
            "registry": "r:1",
            "build_args": {"V": 3, "A": "x y"},
            "build_secrets": [
                "id=tok,src=" + str(tmp_path / "token"),
                {"id": "pip", "env": "PIP_TOKEN"},
            ],
            "no_cache": "true",
        }
    )
    argv = build_argv("docker", build, tmp_path / "Dockerfile", tmp_path, "r:1/x:c1")
    assert argv[argv.index("--build-arg") :] == [
        "--build-arg", "A=x y", "--build-arg", "V=3",
        "--secret", f"id=tok,src={tmp_path / 'token'}", "--secret", "id=pip,env=PIP_TOKEN",
        "--no-cache", str(tmp_path),
    ]  # fmt: skip
    plain = content_tag(tmp_path / "Dockerfile", tmp_path)
    assert content_tag(tmp_path / "Dockerfile", tmp_path, None, build.build_args) != plain
    with pytest.raises(ConfigurationError, match="NAME = value"):
        image_build({"registry": "r:1", "build_args": ["V=3"]})
    with pytest.raises(ConfigurationError, match="does not exist"):
        image_build({"registry": "r:1", "build_secrets": "id=t,src=/no/such/file"})
    with pytest.raises(ConfigurationError, match="MISSING_VAR is not set"):
        image_build({"registry": "r:1", "build_secrets": {"id": "t", "env": "MISSING_VAR"}})


def test_the_earlier_default_packaging_keywords_of_a_cluster() -> None:
    cluster = Cluster(
        "local",
        default_packaging="wheel",
        default_packaging_python_version="3.12",
        default_packaging_build_tool="uv",
        default_packaging_mounts=["/data:/data:ro", "/scratch:/scratch"],
    )
    assert cluster.packaging == {"type": "wheel", "python_version": "3.12", "build_tool": "uv"}
    assert cluster.default_options["container_mounts"] == "/data:/data:ro,/scratch:/scratch"
    with pytest.raises(ConfigurationError, match="did you mean 'default_packaging_mounts'"):
        Cluster("local", default_packaging_mount=["/d:/d"])


def test_dependencies_and_extras_are_asked_for_with_the_wheels_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slurm._client.packaging as packaging
    from slurm._client.packaging import deps, wheels
    from slurm._client.packaging.project import Project
    from slurm._client.packaging.wheels import Wheel
    from slurm._client.preflight import PreflightReport, PythonInfo

    project_wheel = _wheel_with(
        tmp_path,
        "Metadata-Version: 2.1\nName: proj\nVersion: 1.0\nProvides-Extra: gpu\n"
        'Requires-Dist: rich\nRequires-Dist: cupy; extra == "gpu"\n',
    )
    sdk_dir = tmp_path / "sdk"
    sdk_dir.mkdir()
    sdk = _wheel_with(sdk_dir, "Metadata-Version: 2.1\nName: slurm-sdk\nVersion: 1\n")
    # The builders are imported where they are used: patched in their own modules.
    monkeypatch.setattr(wheels, "sdk_wheel", lambda: Wheel(sdk, "a", "slurm-sdk"))
    monkeypatch.setattr(wheels, "build_project", lambda p: Wheel(project_wheel, "b", "proj"))
    monkeypatch.setattr(packaging, "_project", lambda spec: Project(root=tmp_path, name="proj"))
    asked: list[list[str]] = []

    class Asked(Exception):
        pass

    indexes: list[tuple[str, ...]] = []

    def collect(
        requirements: list[str], names: set[str], info: object, urls: tuple[str, ...] = ()
    ) -> None:
        asked.append(requirements)
        indexes.append(urls)
        raise Asked

    monkeypatch.setattr(deps, "collect_dependencies", collect)
    info = PythonInfo("python3", "3.11.7", "linux-x86_64", "CPython", "glibc", "2.36", "/p")
    report = PreflightReport("login", [], python=info)
    spec = packaging.parse_spec({"type": "wheel", "dependencies": ["numpy>=2"], "extras": ["gpu"]})
    with pytest.raises(Asked):
        packaging._environment(Cluster("local").session, spec, report, ())
    assert asked == [["rich", "cupy", "numpy>=2"]]
    # The earlier upgrade_pip and extra_index_url: pip is asked for, from that index too.
    spec = packaging.parse_spec(
        {"type": "wheel", "upgrade_pip": True, "extra_index_url": "file:///srv/simple"}
    )
    with pytest.raises(Asked):
        packaging._environment(Cluster("local").session, spec, report, ())
    assert asked[-1][-1] == "pip" and indexes[-1] == ("file:///srv/simple",)


def test_srun_args_go_before_pyxis_flags_and_travel_in_the_spec() -> None:
    from slurm._slurm.container import ContainerSpec, container_spec, srun_prefix
    from slurm.errors import InvalidOptionError

    spec = container_spec(
        {"container_image": "/i.sqsh", "srun_args": "--label --cpu-bind=cores"}, shared=["/j"]
    )
    assert spec is not None and spec.srun_args == ("--label", "--cpu-bind=cores")
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert ContainerSpec.from_json('{"image": "/i.sqsh"}').srun_args == ()  # an older script
    flags, _ = srun_prefix(spec, [], "/j/d")
    assert flags[:3] == ["--label", "--cpu-bind=cores", "--container-image=/i.sqsh"]
    for bad, message in (
        (["label"], "is not a flag"),
        (["--container-image=/x"], "sets pyxis's --container-\\* flags itself"),
    ):
        with pytest.raises(InvalidOptionError, match=message):
            container_spec({"container_image": "/i.sqsh", "srun_args": bad}, shared=[])
    with pytest.raises(InvalidOptionError, match="srun_args given without container_image"):
        container_spec({"srun_args": ["--label"]}, shared=[])
    cluster = Cluster("local", default_packaging_srun_args=["--label"])
    assert cluster.default_options["srun_args"] == ["--label"]


def test_modules_become_module_load_lines_after_setup() -> None:
    from slurm._slurm.options import check_task_options, module_lines
    from slurm.errors import InvalidOptionError

    assert module_lines(["gcc/12", "cuda/12.2"]) == ["module load gcc/12", "module load cuda/12.2"]
    assert module_lines("x;y") == ["module load 'x;y'"]
    check_task_options({"modules": ["gcc/12"]})
    with pytest.raises(InvalidOptionError, match="environment module names"):
        check_task_options({"modules": ["gcc 12"]})
    with pytest.raises(InvalidOptionError, match="environment module names"):
        task(modules=[3])(_step.unwrapped)
