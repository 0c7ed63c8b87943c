"""Issue 12 on the real dev cluster: nobody else's code runs as the user.

Each test has its own job base directory under ``$HOME`` (see ``home_tmp``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from jobfuncs import add

from slurm import Cluster
from slurm.errors import ConfigurationError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cluster(base: Path, **kwargs: object) -> Cluster:
    return Cluster(
        backend_type="local", job_base_dir=str(base), default_partition="debug", **kwargs
    )


def _job_dirs(base: Path) -> list[str]:
    return [p.name for p in base.iterdir() if not p.name.startswith(".")] if base.exists() else []


def test_new_base_dir_and_index_are_created_private(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "new" / "jobs"
    with _cluster(base):
        assert add(1, 2).get_result(timeout=120) == 3
    assert _mode(base) == 0o700 and _mode(base.parent) == 0o700
    assert _mode(base / ".index") == 0o700
    [job_dir] = _job_dirs(base)
    assert _mode(base / job_dir) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_base_dir_writable_by_others_is_refused(
    devcluster: object, home_tmp: Path, mode: int
) -> None:
    base = home_tmp / "jobs"
    base.mkdir()
    base.chmod(mode)
    with (
        _cluster(base),
        pytest.raises(ConfigurationError, match=rf"has mode {mode:04o}(.|\n)*chmod 700"),
    ):
        add(1, 2)
    assert _job_dirs(base) == []


def test_index_writable_by_others_is_refused(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    (base / ".index").mkdir(parents=True)
    (base / ".index").chmod(0o777)
    with _cluster(base), pytest.raises(ConfigurationError, match=r"index_owner: .*\.index"):
        add(1, 2)
    assert _job_dirs(base) == []


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_base_dir_of_another_user_is_refused(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    base.mkdir(mode=0o700)
    os.chown(base, 65534, 65534)
    with _cluster(base), pytest.raises(ConfigurationError, match="owned by uid 65534, not by you"):
        add(1, 2)


def test_parent_writable_by_others_needs_the_sticky_bit(devcluster: object, home_tmp: Path) -> None:
    shared = home_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    base = shared / "jobs"
    with _cluster(base), pytest.raises(ConfigurationError, match="without the sticky bit"):
        add(1, 2)
    shared.chmod(0o1777)  # like /tmp: others cannot rename what is not theirs
    with _cluster(base):
        assert add(2, 3).get_result(timeout=120) == 5


def test_doctor_and_diagnose_report_an_env_dir_others_can_write(
    devcluster: object, home_tmp: Path
) -> None:
    envs = home_tmp / "envs"
    envs.mkdir()
    envs.chmod(0o777)
    cluster = _cluster(home_tmp / "jobs", packaging={"type": "wheel", "env_dir": str(envs)})
    with cluster:
        report = cluster.diagnose()
    assert not report["ok"]
    [check] = [c for c in report["checks"] if c["name"] == "base_dir"]
    assert check["status"] == "fail" and "has mode 0777" in check["detail"]
