"""Packaging: source hashes, environment keys, re-packed wheels, the packaging= spec."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from slurm._client.packaging import PackagingSpec, parse_spec
from slurm._client.packaging.deps import (
    installed_pins,
    pip_platforms,
    requirement_name,
    uv_platform,
)
from slurm._client.packaging.project import source_hash
from slurm._client.packaging.remote import create_script, environment_key
from slurm._client.packaging.wheels import Wheel, repack_installed, wheel_requirements
from slurm._client.preflight import PythonInfo
from slurm.errors import ConfigurationError

INFO = PythonInfo("python3", "3.11.7", "linux-x86_64", "CPython", "glibc", "2.36", "/usr/bin/py")


def _wheel(name: str, sha: str) -> Wheel:
    return Wheel(path=Path(f"/cache/{name}-1.0-py3-none-any.whl"), sha256=sha, name=name)


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\nversion = '1'\n")
    return root


def test_source_hash_is_stable_and_sees_content_changes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "proj")
    first = source_hash(root)
    assert source_hash(root) == first
    (root / "pkg" / "__init__.py").write_text("X = 2\n")
    assert source_hash(root) != first


def test_source_hash_sees_new_and_renamed_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "proj")
    first = source_hash(root)
    (root / "pkg" / "more.py").write_text("")
    second = source_hash(root)
    assert second != first
    (root / "pkg" / "more.py").rename(root / "pkg" / "other.py")
    assert source_hash(root) not in (first, second)


def test_source_hash_ignores_caches_vcs_builds_and_venvs(tmp_path: Path) -> None:
    root = _tree(tmp_path / "proj")
    first = source_hash(root)
    for junk in ("pkg/__pycache__/x.cpython-311.pyc", ".git/HEAD", "dist/p.whl", "build/x"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("junk")
    (root / "venv").mkdir()
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "venv" / "lib.py").write_text("")
    (root / "p.egg-info").mkdir()
    (root / "p.egg-info" / "PKG-INFO").write_text("")
    (root / "pkg" / "mod.pyc").write_bytes(b"\0")
    assert source_hash(root) == first


def test_source_hash_does_not_depend_on_location(tmp_path: Path) -> None:
    assert source_hash(_tree(tmp_path / "a")) == source_hash(_tree(tmp_path / "b"))


def test_source_hash_only_limits_the_walk(tmp_path: Path) -> None:
    root = _tree(tmp_path / "proj")
    only = ("pkg", "pyproject.toml")
    first = source_hash(root, only)
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    assert source_hash(root, only) == first
    assert source_hash(root) != source_hash(root, only)


def test_environment_key_is_stable_and_order_free() -> None:
    a, b = _wheel("a", "1" * 64), _wheel("b", "2" * 64)
    key = environment_key([a, b], ["x==1", "y==2"], INFO)
    assert key == environment_key([b, a], ["y==2", "x==1"], INFO)
    assert len(key) == 24 and all(c in "0123456789abcdef" for c in key)


def test_environment_key_ignores_file_names_but_not_bytes() -> None:
    a = _wheel("a", "1" * 64)
    renamed = Wheel(path=Path("/elsewhere/renamed.whl"), sha256=a.sha256, name="a")
    assert environment_key([a], [], INFO) == environment_key([renamed], [], INFO)
    assert environment_key([a], [], INFO) != environment_key([_wheel("a", "3" * 64)], [], INFO)


@pytest.mark.parametrize(
    "change",
    [
        {"version": "3.11.8"},
        {"platform": "linux-aarch64"},
        {"implementation": "PyPy"},
        {"libc_version": "2.28"},
        {"executable": "/opt/py/bin/python3"},
    ],
)
def test_environment_key_changes_with_the_interpreter(change: dict[str, str]) -> None:
    fields = {**INFO.__dict__, **change}
    other = PythonInfo(**fields)
    wheels = [_wheel("a", "1" * 64)]
    assert environment_key(wheels, [], INFO) != environment_key(wheels, [], other)


def test_environment_key_changes_with_the_pins() -> None:
    wheels = [_wheel("a", "1" * 64)]
    assert environment_key(wheels, ["x==1"], INFO) != environment_key(wheels, ["x==2"], INFO)


def test_repacked_wheel_is_byte_identical_across_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path / "one"))
    first = repack_installed("cloudpickle")
    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path / "two"))
    second = repack_installed("cloudpickle")
    assert first.path != second.path
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert "cloudpickle/__init__.py" in names
    assert any(n.endswith(".dist-info/METADATA") for n in names)
    assert names[-1].endswith(".dist-info/RECORD")
    assert not any(n.endswith(".pyc") for n in names)


def test_repacked_wheel_comes_from_the_cache_the_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path))
    first = repack_installed("cloudpickle")
    mtime = first.path.stat().st_mtime_ns
    assert repack_installed("cloudpickle") == first
    assert first.path.stat().st_mtime_ns == mtime


def test_repack_of_a_missing_distribution_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not installed"):
        repack_installed("no-such-distribution-xyz")


def test_wheel_requirements_skip_extras(tmp_path: Path) -> None:
    path = tmp_path / "x-1-py3-none-any.whl"
    metadata = (
        "Metadata-Version: 2.1\nName: x\nVersion: 1\n"
        "Requires-Dist: a>=1\n"
        "Requires-Dist: b; python_version < '4'\n"
        "Requires-Dist: c; extra == 'dev'\n"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x-1.dist-info/METADATA", metadata)
    assert wheel_requirements(path) == ["a>=1", "b; python_version < '4'"]


def test_installed_pins_leave_out_excluded_and_editable_installs() -> None:
    pins = installed_pins({"cloudpickle"})
    names = {p.split("==")[0] for p in pins}
    assert "paramiko" in names
    assert "cloudpickle" not in names
    assert "slurm-sdk" not in names  # installed editable from this checkout
    assert all("==" in p for p in pins)


@pytest.mark.parametrize(
    ("text", "name"),
    [("Foo_Bar>=1", "foo-bar"), ("a.b ; python_version<'4'", "a-b"), ("x[extra]==1", "x")],
)
def test_requirement_name(text: str, name: str) -> None:
    assert requirement_name(text) == name


def test_platform_tags_for_the_cluster() -> None:
    assert uv_platform(INFO) == "x86_64-unknown-linux-gnu"
    platforms = pip_platforms(INFO)
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in platforms
    assert platforms[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    musl = PythonInfo("p", "3.11.7", "linux-x86_64", "CPython", "", "", "/p")
    assert pip_platforms(musl) == []
    mac = PythonInfo("p", "3.11.7", "macosx-14.0-arm64", "CPython", "", "", "/p")
    assert uv_platform(mac) == "aarch64-apple-darwin"


def test_create_script_quotes_every_value() -> None:
    script = create_script(
        "/base/it's here/$(rm -rf x)", "/py; echo pwned", ["/store/a b.whl"], None
    )
    assert "'/base/it'\"'\"'s here/$(rm -rf x)'" in script
    assert "'/py; echo pwned'" in script
    assert "'/store/a b.whl'" in script
    assert "--no-index --find-links" in script
    assert "package index" in script
    assert "--extra-index-url" not in script


def test_extra_index_urls_reach_the_collection_and_the_cluster_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm._client.packaging import deps

    urls = ("https://pypi.example.org/simple", "file:///srv/it's/simple")
    script = create_script("/env", "/usr/bin/python3", [], "/usr/bin/uv", urls)
    fallback = next(line for line in script.splitlines() if line.startswith("  inst --find"))
    assert fallback == (
        "  inst --find-links ./wheels --extra-index-url https://pypi.example.org/simple "
        "--extra-index-url 'file:///srv/it'\"'\"'s/simple' || exit 1"
    )
    assert "--extra-index-url" not in script.split("then mode=offline")[0]  # not offline
    wheels = [_wheel("a", "1" * 64)]
    assert environment_key(wheels, [], INFO) != environment_key(wheels, [], INFO, extra="x")

    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path))
    seen: list[list[str]] = []

    def run(argv: list[str], what: str) -> None:
        seen.append(argv)

    monkeypatch.setattr(deps, "_run", run)
    monkeypatch.setattr(deps, "find_uv", lambda: "uv")
    deps._compile(["demo"], [], INFO, urls)
    deps._download(["demo==1"], INFO, tmp_path, urls)
    for argv in seen:
        assert argv[argv.index("--extra-index-url") + 1] == urls[0]
        assert argv.count("--extra-index-url") == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, PackagingSpec()),
        ("auto", PackagingSpec()),
        ("WHEEL", PackagingSpec(mode="wheel")),
        ("none", PackagingSpec(mode="none")),
        ({"type": "wheel"}, PackagingSpec(mode="wheel")),
        ({"python": "/opt/py/bin/python3"}, PackagingSpec(python="/opt/py/bin/python3")),
        ({"project": None}, PackagingSpec(project=None)),
        ({"installer": "pip"}, PackagingSpec(installer="pip")),
        (
            {"env_dir": "/scratch/envs", "lock_timeout": 5},
            PackagingSpec(env_dir="/scratch/envs", lock_timeout=5.0),
        ),
    ],
)
def test_parse_spec(value: object, expected: PackagingSpec) -> None:
    assert parse_spec(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "conda",
        {"type": "docker"},
        {"pyhton": "x"},
        3,
        {"lock_timeout": "soon"},
        {"python": 3},
        {"installer": "conda"},
    ],
)
def test_parse_spec_refuses_what_it_does_not_understand(value: object) -> None:
    with pytest.raises(ConfigurationError, match="packaging="):
        parse_spec(value)


def test_dependencies_that_cannot_be_resolved_are_retried_only_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm._client.packaging import deps

    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path))
    calls: list[list[str]] = []

    def offline(requirements: list[str], pins: list[str], info: PythonInfo, *more: object) -> None:
        calls.append(requirements)

    monkeypatch.setattr(deps, "_compile", offline)
    first = deps.collect_dependencies(["rich>=13"], {"slurm-sdk"}, INFO)
    assert first == deps.Dependencies(wheels=(), pins=(), complete=False)
    assert deps.collect_dependencies(["rich>=13"], {"slurm-sdk"}, INFO) == first
    assert len(calls) == 1  # the failure is remembered: the next run costs nothing
    monkeypatch.setattr(deps, "RETRY_INCOMPLETE", -1.0)
    deps.collect_dependencies(["rich>=13"], {"slurm-sdk"}, INFO)
    assert len(calls) == 2


def test_no_dependencies_need_no_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slurm._client.packaging import deps

    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(tmp_path))
    result = deps.collect_dependencies(["slurm-sdk>=0.1"], {"slurm-sdk"}, INFO)
    assert result == deps.Dependencies(wheels=(), pins=(), complete=True)
