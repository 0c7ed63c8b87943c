"""Shared fixtures: the real dev cluster, brought up once per test session.

Tests under ``tests/integration`` are marked ``integration`` automatically, so
``pytest -m "not integration"`` runs only the pure unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import slurm.devcluster as dc
from slurm.devcluster import SshInfo, Status

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if _INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


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
    """
    try:
        st = dc.up(accounting=True)
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
    return st


@pytest.fixture(scope="session")
def devcluster_ssh(devcluster: Status) -> SshInfo:
    """How to reach the dev cluster over SSH: host, port, username, key_file, alias."""
    return devcluster.ssh
