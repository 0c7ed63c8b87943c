"""Shared fixtures: the real dev cluster, brought up once per test session.

Tests under ``tests/integration`` are marked ``integration`` automatically, so
``pytest -m "not integration"`` runs only the pure unit tests.

The dev cluster's compute nodes each have their own ``/tmp``, so pytest's
temporary directories (``tmp_path``, often a job base directory) go under
``/var/tmp``, which every node shares, as a real cluster shares a network file
system. ``$PYTEST_DEBUG_TEMPROOT`` set by the caller wins.

``$SLURM_SDK_DEVCLUSTER_DIR``, ``$SLURM_SDK_DEVCLUSTER_PORT_BASE`` and
``$SLURM_SDK_DEVCLUSTER_NODES`` choose the cluster the session brings up (see
docs/devcluster.md); the fixture points ``$SLURM_CONF`` at it.
"""

from __future__ import annotations

import itertools
import os
import pwd
from pathlib import Path

import pytest

import slurm.devcluster as dc
from slurm.devcluster import SshInfo, Status

_INTEGRATION_DIR = Path(__file__).parent / "integration"
SHARED_TEMP_ROOT = "/var/tmp"

os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", SHARED_TEMP_ROOT)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if _INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _own_seen_by_nodes(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test its own registry of what the nodes were seen to see (slurm._slurm.probe),
    so that whether a fresh base directory is probed never depends on the tests before it
    (over SSH the login shell does not get it: the directories there are the tests' own)."""
    registry = tmp_path_factory.getbasetemp() / f"seen-by-nodes-{next(_registries)}"
    monkeypatch.setenv("SLURM_SDK_SEEN_BY_NODES", str(registry))


_registries = itertools.count()


def _logs_tail(state_dir: str, lines: int = 40) -> str:
    parts = []
    for log in sorted(Path(state_dir, "log").glob("*")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log} ---\n" + "\n".join(text))
    return "\n".join(parts)


@pytest.fixture(scope="session")
def devcluster() -> Status:
    """The dev cluster, up with accounting, through the code path of `slurm devcluster up`.

    Never skips: if the cluster cannot start, the session fails with the daemons' logs.
    Clients started by the tests (sbatch, the SDK's local backend) reach this cluster
    through ``$SLURM_CONF``, also when it is not the machine's default one.
    """
    try:
        # With containers (pyxis + enroot, registry, base image), unless the layout is one
        # node: from the start, so that no test restarts the daemons halfway.
        # $SLURM_SDK_DEVCLUSTER_RELEASE=24.11 runs the suite on another Slurm release
        # (docs/devcluster.md), which has no containers.
        multi_node = len(dc.status().nodes) > 1
        other = os.environ.get(dc.ENV_RELEASE, dc.HOST_RELEASE) != dc.HOST_RELEASE
        st = dc.up(accounting=True, containers=False if other else multi_node or None)
    except Exception as exc:
        state_dir = str(dc.default_state_dir())
        pytest.fail(
            f"the dev cluster could not start: {exc}\n{_logs_tail(state_dir)}", pytrace=False
        )
    if not st.running:
        pytest.fail(
            f"the dev cluster is not running after up():\n{st.to_json()}\n"
            f"{_logs_tail(st.state_dir)}",
            pytrace=False,
        )
    os.environ["SLURM_CONF"] = st.slurm_conf
    if st.slurm_bin:  # another release: its own client commands (sbatch, squeue, ...)
        os.environ["PATH"] = f"{st.slurm_bin}:{os.environ['PATH']}"
    # For client scripts the tests run as processes of their own: this cluster's SSH alias
    # (slurm-devcluster, or slurm-devcluster-<port base> for a cluster beside it).
    os.environ["SLURM_SDK_TEST_SSH_ALIAS"] = st.ssh.alias
    return st


@pytest.fixture(scope="session")
def devcluster_ssh(devcluster: Status) -> SshInfo:
    """How to reach the dev cluster over SSH: host, port, username, key_file, alias."""
    return devcluster.ssh


@pytest.fixture(scope="session")
def intruder() -> pwd.struct_passwd:
    """The user ``sdk-intruder``, a hostile neighbour for attacks (made once with
    ``useradd`` if missing; needs root)."""
    import subprocess

    name = "sdk-intruder"
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            pytest.skip("making a second Unix user needs root")
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)
