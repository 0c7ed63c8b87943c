"""Fixtures for the core SDK's integration tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodepython import node_python

from slurm import Cluster


@pytest.fixture(scope="session", autouse=True)
def _node_python_first(devcluster: object) -> None:
    """The interpreter the tests give ``python=``, asked before any test (session
    fixtures come first) of the shared dev cluster, up by then: once a fresh-clone
    run under /tmp asked it first from the Apptainer tests' fixture, before the
    shared cluster was up, and every SSH test of the session got an interpreter the
    nodes could not start."""
    del devcluster
    node_python()


@pytest.fixture()
def cluster(devcluster: object, tmp_path: Path) -> Iterator[Cluster]:
    """A local-backend cluster on the dev cluster, with its own job directory."""
    del devcluster
    with Cluster(
        backend_type="local", job_base_dir=str(tmp_path / "jobs"), default_partition="debug"
    ) as c:
        yield c


@pytest.fixture()
def node_local() -> Iterator[Path]:
    """A fresh directory under this machine's /tmp (each node has its own /tmp: no node
    sees it), removed afterwards."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sdk-nodes-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def home_tmp(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh private directory under ``$HOME`` (every node of the cluster sees it; a
    node's private ``/tmp`` would not), removed afterwards."""
    import re
    import secrets
    import shutil

    root = Path.home() / ".cache" / "slurm-sdk-tests"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:40]
    path = root / f"{name}-{secrets.token_hex(3)}"
    path.mkdir(mode=0o700)
    yield path
    for sub in [path, *path.rglob("*")]:  # a test may have made parts read-only or foreign
        if sub.is_dir() and not sub.is_symlink():
            with contextlib.suppress(OSError):
                os.chown(sub, os.getuid(), os.getgid())
                sub.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)
