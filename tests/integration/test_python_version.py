"""``packaging={"python_version": "3.X"}`` on the dev cluster, over SSH: found, or installed.

The dev cluster's login host has Python 3.11 (``python3.11`` on its ``PATH``)
and no working ``python3.12`` (at most a pyenv shim that does not run). So a
request for 3.11 is found on the ``PATH``, and one for 3.12 is installed by the
cluster's uv, offline, from a mirror this test makes: a standalone build of a
Python 3.12 of this machine, laid out as python-build-standalone's
``install_only`` archives are (``python/bin/python3.12``, ``python/lib/...``),
in ``<mirror>/<build>/<archive>``, with a downloads list of our own that gives
its hash (uv checks what it downloads against its built-in hashes otherwise).
The jobs report the Python they ran on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from pythonfacts import where

from slurm import Cluster
from slurm._client.packaging import environment_for
from slurm.devcluster import SshInfo
from slurm.errors import ConfigurationError

#: The URLs of python-build-standalone's releases: what UV_PYTHON_INSTALL_MIRROR replaces.
UPSTREAM = "https://github.com/astral-sh/python-build-standalone/releases/download"
BUILD = "20990101"
WANTED = "3.12"


def _source_python() -> Path:
    """The prefix of a Python 3.12 on this machine to package: pyenv's beside this
    client's, or one uv finds here (a standalone build already)."""
    versions = Path(sys.base_prefix).parent
    for prefix in sorted(versions.glob(f"{WANTED}.*"), reverse=True):
        if (prefix / "bin" / f"python{WANTED}").is_file():
            return prefix
    found = subprocess.run(
        ["uv", "python", "find", "--system", "--no-python-downloads", WANTED],
        capture_output=True,
        text=True,
        check=False,
    )
    binary = Path(found.stdout.strip()).resolve() if found.returncode == 0 else None
    if binary is not None and (binary.parent.parent / "lib" / f"python{WANTED}").is_dir():
        return binary.parent.parent
    pytest.skip(f"no Python {WANTED} on this machine to make a standalone build of")


def _standalone_tree(prefix: Path, tree: Path) -> str:
    """``tree/python`` from ``prefix``, relocatable; returns the full version."""
    skip = {"test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo"}
    root = tree / "python"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    binary = root / "bin" / f"python{WANTED}"
    shutil.copy2(prefix / "bin" / f"python{WANTED}", binary)
    for name in ("python3", "python"):
        (root / "bin" / name).symlink_to(binary.name)
    for lib in prefix.joinpath("lib").glob(f"libpython{WANTED}.so*"):
        shutil.copy2(lib, root / "lib" / lib.name, follow_symlinks=False)
    shutil.copytree(
        prefix / "lib" / f"python{WANTED}",
        root / "lib" / f"python{WANTED}",
        symlinks=True,
        ignore=lambda _, names: [n for n in names if n in skip or n.startswith("config-")],
    )
    (root / "lib" / f"python{WANTED}" / "site-packages").mkdir()
    # A shared-library build finds libpython by its absolute RUNPATH; the standalone
    # builds say $ORIGIN/../lib. Same length or shorter, padded: the ELF stays valid.
    data = binary.read_bytes()
    old = f"{prefix}/lib".encode() + b"\0"
    if old in data:
        new = b"$ORIGIN/../lib\0"
        binary.write_bytes(data.replace(old, new + b"\0" * (len(old) - len(new)), 1))
    out = subprocess.run(
        [str(binary), "-I", "-c", "import sys, ssl; print(sys.prefix, sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == str(root), out  # it runs from its own tree
    return out[1]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The uv environment that installs our 3.12 offline: the mirror and its list."""
    base = tmp_path_factory.mktemp("python-mirror")
    version = _standalone_tree(_source_python(), base / "tree")
    name = f"cpython-{version}+{BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    archive = base / "mirror" / BUILD / name
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(base / "tree" / "python", arcname="python")
    major, minor, patch = (int(part) for part in version.split("."))
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": "",
        "url": f"{UPSTREAM}/{BUILD}/{name.replace('+', '%2B')}",
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "variant": None,
        "build": BUILD,
    }
    downloads = base / "mirror" / "downloads.json"
    downloads.write_text(json.dumps({f"cpython-{version}-linux-x86_64-gnu": entry}))
    return {
        "UV_PYTHON_INSTALL_MIRROR": (base / "mirror").as_uri(),
        "UV_PYTHON_DOWNLOADS_JSON_URL": str(downloads),
        "UV_OFFLINE": "1",  # nothing from the Internet: only the mirror
    }


def _cluster(ssh: SshInfo | None, jobs: Path, packaging: dict[str, Any]) -> Cluster:
    """Over SSH to the dev cluster, or (``ssh=None``) its local backend."""
    where: dict[str, Any] = {"backend_type": "local"}
    if ssh is not None:
        where = {"backend_type": "ssh", "hostname": ssh.alias, "username": ssh.username}
    return Cluster(**where, job_base_dir=str(jobs), default_partition="debug", packaging=packaging)


def _runs_there(cluster: Cluster, command: str) -> bool:
    """Whether ``command`` succeeds on the login host (exit 127 means more than "not found")."""
    script = f"if {command} >/dev/null 2>&1; then echo yes; fi"
    return cluster.session.transport.run(["sh", "-c", script], check=False).stdout.strip() == "yes"


def test_a_python_the_cluster_lacks_is_installed_by_its_uv_from_a_mirror(
    devcluster_ssh: SshInfo,
    mirror: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = tmp_path / "jobs"
    packaging = {"python_version": WANTED, "env": mirror}
    caplog.set_level(logging.INFO, logger="slurm")
    with _cluster(devcluster_ssh, jobs, packaging) as cluster:
        if _runs_there(cluster, f"python{WANTED} -c pass"):
            pytest.skip(f"python{WANTED} runs on the login host: nothing to install")
        if not _runs_there(cluster, "command -v uv"):
            pytest.skip("no uv on the dev cluster's login host")
        ran = cluster.submit(where)().get_result(timeout=240)
        env = environment_for(cluster.session)
    installs = jobs / ".envs" / ".python"
    assert ran["version"][:2] == [3, 12]
    assert ran["base_prefix"].startswith(f"{installs}/cpython-{WANTED}")
    assert env is not None and ran["executable"] == env.python
    assert "installed by `uv python install`" in caplog.text
    assert not (Path.home() / ".local" / "bin" / f"python{WANTED}").exists()
    # The next session finds it there, through uv, and runs in the same environment.
    caplog.clear()
    with _cluster(devcluster_ssh, jobs, packaging) as cluster:
        again = environment_for(cluster.session)
    assert "found by `uv python find`" in caplog.text
    assert again is not None and again.key == env.key and not again.created


def test_locally_a_python_unlike_this_one_is_installed_and_jobs_run_on_it(
    devcluster: object, mirror: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    del devcluster
    jobs = tmp_path / "jobs"
    caplog.set_level(logging.INFO, logger="slurm")
    with _cluster(None, jobs, {"python_version": WANTED, "env": mirror}) as cluster:
        if _runs_there(cluster, f"python{WANTED} -c pass"):
            pytest.skip(f"python{WANTED} runs here: nothing to install")
        ran = cluster.submit(where)().get_result(timeout=240)
    assert ran["version"][:2] == [3, 12]
    assert ran["base_prefix"].startswith(f"{jobs}/.envs/.python/cpython-{WANTED}")
    assert "installed by `uv python install`" in caplog.text


def test_a_python_on_the_path_is_found_not_installed(
    devcluster_ssh: SshInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = tmp_path / "jobs"
    caplog.set_level(logging.INFO, logger="slurm")
    with _cluster(devcluster_ssh, jobs, {"python_version": "3.11"}) as cluster:
        ran = cluster.submit(where)().get_result(timeout=240)
        report = cluster.diagnose()
    assert ran["version"][:2] == [3, 11]
    assert "found on the PATH" in caplog.text
    assert report["python_version"]["how"] == "found on the PATH", report
    assert report["python_version"]["version"].startswith("3.11.")
    python = next(c for c in report["checks"] if c["name"] == "python")
    assert python["detail"].endswith("; python_version='3.11', found on the PATH"), python
    assert not list((jobs / ".envs" / ".python").iterdir())  # nothing installed


def test_a_python_that_cannot_be_installed_is_refused_before_submission(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs"
    # A Python no mirror has, and uv told not to reach out: its install fails.
    packaging = {"python_version": "3.13", "env": {"UV_OFFLINE": "1"}}
    with _cluster(devcluster_ssh, jobs, packaging) as cluster:
        if _runs_there(cluster, "python3.13 -c pass"):
            pytest.skip("python3.13 runs on the login host")
        with pytest.raises(ConfigurationError) as caught:
            cluster.submit(where)()
        report = cluster.diagnose()  # a finding there, not an exception
    assert report["ok"] is False and report["python_version"] is None
    assert any(
        p.startswith("python_version: packaging python_version='3.13'") for p in report["problems"]
    )
    message = str(caught.value)
    assert "no Python 3.13 on" in message and "nothing was submitted" in message
    assert "uv said:" in message and "UV_PYTHON_INSTALL_MIRROR" in message
    assert not list((jobs / ".index").glob("*")) if (jobs / ".index").exists() else True


def test_a_python_installed_where_the_nodes_cannot_see_it_is_refused(
    devcluster_ssh: SshInfo, mirror: dict[str, str], tmp_path: Path, node_local: Path
) -> None:
    jobs = tmp_path / "jobs"
    env = {**mirror, "UV_PYTHON_INSTALL_DIR": str(node_local / "pythons")}
    with _cluster(devcluster_ssh, jobs, {"python_version": WANTED, "env": env}) as cluster:
        if _runs_there(cluster, f"python{WANTED} -c pass"):
            pytest.skip(f"python{WANTED} runs on the login host: nothing to install")
        with pytest.raises(ConfigurationError, match="python_on_nodes") as caught:
            cluster.submit(where)()
    assert str(node_local / "pythons") in str(caught.value)
    assert "leave UV_PYTHON_INSTALL_DIR unset" in str(caught.value)
    assert (node_local / "pythons").is_dir()  # installed there: on the login host only
