"""packaging="container": the build keys, the content tag, the builder's argv, references."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from slurm._api.task import Task
from slurm._client.packaging import parse_spec
from slurm._client.packaging.container import (
    ImageBuild,
    build_and_push,
    build_argv,
    content_tag,
    default_tls_verify,
    ignore_file_text,
    image_build,
    is_own_address,
    podman_flags,
    push_argv,
)
from slurm._client.packaging.images import earlier_spellings
from slurm._client.packaging.registry import ImageReference, parse_reference
from slurm.errors import ConfigurationError


def _context(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY app.py /app.py\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    return tmp_path / "Dockerfile", tmp_path


def test_the_tag_follows_the_dockerfile_and_the_context(tmp_path: Path) -> None:
    dockerfile, context = _context(tmp_path)
    first = content_tag(dockerfile, context)
    assert first == content_tag(dockerfile, context)  # stable
    assert first.startswith("c") and len(first) == 21
    (context / "app.py").write_text("print(2)\n")
    second = content_tag(dockerfile, context)
    assert second != first
    (context / "app.py").chmod(0o755)  # the executable bit counts
    assert content_tag(dockerfile, context) != second
    assert content_tag(dockerfile, context, "linux/arm64") != content_tag(dockerfile, context)


def test_the_tag_ignores_git_and_what_dockerignore_lists(tmp_path: Path) -> None:
    dockerfile, context = _context(tmp_path)
    (context / ".dockerignore").write_text("# build output\nbuild\n*.log\n")
    before = content_tag(dockerfile, context)
    for ignored in (".git/HEAD", "build/out.bin", "run.log", "sub/deep.log"):
        (context / ignored).parent.mkdir(parents=True, exist_ok=True)
        (context / ignored).write_text("changes every time")
    assert content_tag(dockerfile, context) == before
    (context / "sub" / "kept.txt").write_text("counts")
    assert content_tag(dockerfile, context) != before


@pytest.mark.parametrize(
    ("systemd", "hybrid", "runc", "flags"),
    [
        (True, False, False, []),
        (False, False, True, ["--cgroup-manager=cgroupfs", "--events-backend=file"]),
        (
            False,
            True,
            True,
            ["--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime=runc"],
        ),
        (False, True, False, ["--cgroup-manager=cgroupfs", "--events-backend=file"]),
        (True, True, True, ["--runtime=runc"]),
    ],
)
def test_podman_flags_for_the_machine(
    systemd: bool, hybrid: bool, runc: bool, flags: list[str]
) -> None:
    assert podman_flags(systemd=systemd, hybrid_cgroups=hybrid, have_runc=runc) == flags


def test_build_and_push_argv() -> None:
    build = image_build({"registry": "127.0.0.1:5000", "platform": "linux/amd64"})
    argv = build_argv("podman", build, Path("/p/Dockerfile"), Path("/p"), "127.0.0.1:5000/a:t")
    assert argv[0] == "podman" and argv[-1] == "/p"
    tail = argv[argv.index("build") :]
    assert tail == [
        "build",
        "--network=none",
        "-f",
        "/p/Dockerfile",
        "-t",
        "127.0.0.1:5000/a:t",
        "--format=docker",
        "--tls-verify=false",
        "--platform=linux/amd64",
        "/p",
    ]
    docker = build_argv("docker", build, Path("/p/Dockerfile"), Path("/p"), "r/a:t")
    assert docker == [
        "docker",
        "build",
        "--network=none",
        "-f",
        "/p/Dockerfile",
        "-t",
        "r/a:t",
        "--platform=linux/amd64",
        "/p",
    ]
    assert push_argv("podman", build, "r/a:t")[-2:] == ["--tls-verify=false", "r/a:t"]
    assert push_argv("docker", build, "r/a:t") == ["docker", "push", "r/a:t"]


@pytest.mark.parametrize(
    ("registry", "verify"),
    [
        ("127.0.0.1:6821", False),
        ("localhost:5000", False),
        # Private addresses of other machines: a site's registry, reached over TLS.
        # The dev cluster's bridge: this machine's own while the cluster is up (asked when
        # the test runs, not when it is collected: the cluster may come up in between).
        ("10.217.161.1:6821", None),
        ("192.168.1.4", True),
        ("198.51.100.7:5000", True),
        ("registry.example.org", True),
        ("registry.example.org:5000", True),
        ("8.8.8.8:5000", True),
    ],
)
def test_tls_is_verified_unless_the_registry_is_on_this_machine(
    registry: str, verify: bool | None
) -> None:
    if verify is None:
        verify = not is_own_address(ipaddress.ip_address(registry.split(":")[0]))
    assert default_tls_verify(registry) is verify
    assert image_build({"registry": registry, "tls_verify": True}).verify_tls() is True


def test_the_ignore_file_keeps_the_contexts_lines_and_adds_git(tmp_path: Path) -> None:
    assert ignore_file_text(tmp_path) == ".git\n"
    (tmp_path / ".dockerignore").write_text("*.log\n")
    assert ignore_file_text(tmp_path) == "*.log\n.git\n"
    (tmp_path / ".containerignore").write_text("data/\n")  # podman reads it first
    assert ignore_file_text(tmp_path) == "data/\n.git\n"
    build = image_build({"registry": "127.0.0.1:5000"})
    argv = build_argv("podman", build, tmp_path / "Dockerfile", tmp_path, "r/a:t", tmp_path / "i")
    assert f"--ignorefile={tmp_path / 'i'}" in argv and argv[-1] == str(tmp_path)


def test_an_address_of_this_machine_is_its_own() -> None:
    assert is_own_address(ipaddress.ip_address("127.0.0.1"))
    assert not is_own_address(ipaddress.ip_address("198.51.100.7"))  # documentation range
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:  # the address this machine would send from (a UDP connect sends nothing)
            udp.connect(("198.51.100.7", 9))
        except OSError:
            pytest.skip("no route to pick a source address with")
        own = udp.getsockname()[0]
    assert is_own_address(ipaddress.ip_address(own)) and not default_tls_verify(f"{own}:5000")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "needs the registry"),
        ({"registry": "http://r:5000"}, "needs the registry"),
        ({"registry": "r:5000", "name": "Upper/Case"}, "not a repository name"),
        ({"registry": "r:5000", "runtime": "buildah"}, "runtime"),
        ({"registry": "r:5000", "push": "maybe"}, "True or False"),
        ({"registry": "r:5000", "dockerfiel": "x"}, "does not know"),
        ({"registry": "r:5000", "use_digest": "sometimes"}, "True or False"),
    ],
)
def test_bad_build_keys_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        image_build(values)


def test_use_digest_runs_the_pushed_image_by_the_digest_its_registry_tells(
    tmp_path: Path,
) -> None:
    dockerfile, _ = _context(tmp_path)
    digest = "sha256:" + "ab" * 32
    asked: list[str] = []

    def digest_of(reference: str) -> str:
        asked.append(reference)
        return digest

    build = image_build({"dockerfile": str(dockerfile), "registry": "r:5000", "use_digest": True})
    # The registry has the tag already: no build, the digest asked for that very reference.
    ref = build_and_push(build, exists=lambda ref: True, digest_of=digest_of)
    assert ref.startswith("r:5000#slurm-sdk/") and ref.endswith(f"@{digest}")
    assert asked == [ref.split("@")[0].replace("#", "/", 1)]
    # Unset: by digest too whenever pushed; by tag only when the registry cannot tell.
    plain = image_build({"dockerfile": str(dockerfile), "registry": "r:5000"})
    assert build_and_push(plain, exists=lambda ref: True, digest_of=digest_of) == ref
    assert build_and_push(plain, exists=lambda ref: True) == ref.split("@")[0]
    by_tag = image_build({"dockerfile": str(dockerfile), "registry": "r:5000", "use_digest": "no"})
    assert build_and_push(by_tag, exists=lambda ref: True, digest_of=digest_of) == ref.split("@")[0]
    assert plain.key != build.key != by_tag.key  # another reference: another image of the run
    with pytest.raises(ConfigurationError, match="did not tell the digest"):
        build_and_push(build, exists=lambda ref: True, digest_of=lambda ref: None)
    unpushed = image_build(
        {"dockerfile": str(dockerfile), "registry": "r:5000", "use_digest": True, "push": False}
    )
    with pytest.raises(ConfigurationError, match="does not push it"):
        build_and_push(unpushed)
    assert parse_spec({"type": "container", "registry": "r:1", "use_digest": True}).container


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    build = ImageBuild(dockerfile=str(tmp_path / "nope" / "Dockerfile"), registry="r:1")
    with pytest.raises(ConfigurationError, match="does not exist"):
        build.paths()
    dockerfile, context = _context(tmp_path)
    assert ImageBuild(context=str(context), registry="r:1").paths() == (dockerfile, context)
    assert ImageBuild(registry="r:1").repository(Path("/x/My Project")) == "slurm-sdk/my-project"


def test_packaging_container_spec() -> None:
    spec = parse_spec({"type": "container", "dockerfile": "D", "registry": "r:1"})
    assert spec.mode == "auto"  # the code reaches the container as with "auto"
    assert dict(spec.container or ()) == {"dockerfile": "D", "registry": "r:1"}
    assert parse_spec("container").container == ()
    assert spec == parse_spec("auto")  # the same interpreter setting
    with pytest.raises(ConfigurationError, match="only with 'container'"):
        parse_spec({"type": "wheel", "dockerfile": "D"})


def test_earlier_cluster_spellings() -> None:
    packaging, defaults = earlier_spellings(
        None, "container", {"partition": "p"}, {"default_packaging_dockerfile": "D"}
    )
    assert packaging == "container"
    assert defaults == {"partition": "p", "packaging_dockerfile": "D"}
    with pytest.raises(
        ConfigurationError, match=r"unknown setting 'default_packaging_dockerfle' \(did you mean"
    ):
        earlier_spellings(None, None, None, {"default_packaging_dockerfle": "D"})
    with pytest.raises(ConfigurationError, match="not both"):
        earlier_spellings("wheel", "container", None, {})


@pytest.mark.parametrize(
    ("image", "parsed"),
    [
        ("10.0.0.1:5000#sdk/python:3", ImageReference("10.0.0.1:5000", "sdk/python", "3")),
        ("docker://me@reg.example.org#team/img", ImageReference("reg.example.org", "team/img")),
        (
            "r:1#a@sha256:" + "0" * 64,
            ImageReference("r:1", "a", "latest", "sha256:" + "0" * 64),
        ),
        ("/shared/images/py.sqsh", None),
        ("ubuntu:22.04", None),  # Docker Hub: not checked
        ("nvcr.io/nvidia/pytorch:24.01-py3", None),
    ],
)
def test_registry_references(image: str, parsed: ImageReference | None) -> None:
    assert parse_reference(image) == parsed


def test_a_cluster_takes_the_earlier_spellings() -> None:
    from slurm import Cluster

    cluster = Cluster(
        "local",
        default_packaging="container",
        default_packaging_dockerfile="D",
        default_packaging_registry="r:1",
    )
    assert cluster.packaging == "container"
    assert cluster.default_options["packaging_dockerfile"] == "D"
    with pytest.raises(ConfigurationError, match="default_packaging_dockerfile"):
        Cluster("local", default_packaging_dockerfil="D")


def test_which_build_a_submission_asks_for() -> None:
    from slurm import Cluster
    from slurm._client.packaging.images import build_for

    cluster = Cluster(
        "local", packaging={"type": "container", "registry": "r:1", "dockerfile": "X"}
    )
    assert build_for(cluster.session, {}) == ImageBuild(dockerfile="X", registry="r:1")
    # The options packaging_<key> win; a task's own packaging replaces the cluster's.
    assert build_for(cluster.session, {"packaging_dockerfile": "Y"}) == ImageBuild(
        "Y", registry="r:1"
    )
    assert build_for(cluster.session, {"packaging": "wheel", "packaging_dockerfile": "Y"}) is None
    assert build_for(Cluster("local").session, {"packaging_registry": "r:1"}) is None


def test_a_workflow_hands_its_container_settings_to_its_tasks() -> None:
    from slurm import Cluster, task, workflow
    from slurm._client.packaging.images import prepare

    @workflow
    def flow() -> None: ...

    @task
    def step() -> None: ...

    cluster = Cluster("local")
    given = {"container_image": "/i.sqsh", "container_mounts": "/d:/d", "setup": "x"}
    assert prepare(cluster.session, flow, given) == (
        {"setup": "x"},
        {"container_image": "/i.sqsh", "container_mounts": "/d:/d"},
    )
    assert prepare(cluster.session, step, given) == (given, {})


def test_a_workflows_node_never_builds() -> None:
    from slurm import Cluster, task
    from slurm._client.packaging.images import known_images, prepare, seed_images

    @task
    def step() -> None: ...

    options = {"packaging": "container", "packaging_registry": "r:1", "packaging_dockerfile": "D"}
    key = ImageBuild(dockerfile="D", registry="r:1").key
    on_node = Cluster("local")
    seed_images(on_node.session, {key: "r:1#slurm-sdk/x:c1"})  # what the submitter built
    assert prepare(on_node.session, step, options)[0]["container_image"] == "r:1#slurm-sdk/x:c1"
    assert known_images(on_node.session) == {key: "r:1#slurm-sdk/x:c1"}
    assert prepare(on_node.session, step, {**options, "container_image": False})[0] == {
        **options,
        "container_image": False,
    }  # opted out: nothing looked up or built
    with pytest.raises(ConfigurationError, match="running workflow, where nothing is built"):
        prepare(on_node.session, step, {**options, "packaging_dockerfile": "Other"})


def test_a_slurmfile_holds_a_container_packaging(tmp_path: Path) -> None:
    from slurm import Cluster
    from slurm._client.packaging.images import build_for

    slurmfile = tmp_path / "Slurmfile"
    slurmfile.write_text(
        '[default]\nbackend = "local"\n'
        'packaging = {type = "container", dockerfile = "docker/Dockerfile"}\n'
        '[default.sbatch]\npackaging_registry = "10.0.0.1:5000"\n'
    )
    slurmfile.chmod(0o600)
    cluster = Cluster.from_file(str(slurmfile))
    assert build_for(cluster.session, cluster.options_for(Task(_noop))[1]) == ImageBuild(
        dockerfile="docker/Dockerfile", registry="10.0.0.1:5000"
    )


def _noop() -> None: ...
