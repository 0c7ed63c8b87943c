"""Fixtures for the core SDK's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm import Cluster


@pytest.fixture()
def cluster(devcluster: object, tmp_path: Path) -> Iterator[Cluster]:
    """A local-backend cluster on the dev cluster, with its own job directory."""
    del devcluster
    with Cluster(
        backend_type="local", job_base_dir=str(tmp_path / "jobs"), default_partition="debug"
    ) as c:
        yield c
