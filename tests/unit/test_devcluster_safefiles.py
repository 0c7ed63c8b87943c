"""The dev cluster's own files: no symlink followed, no state directory others can write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slurm.devcluster.safefiles import check_state_dir, open_lock, write_file
from slurm.errors import DevclusterError


def test_write_replaces_a_planted_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    config = tmp_path / "state" / "slurm.conf"
    config.parent.mkdir()
    config.symlink_to(victim)
    for name in ("slurm.conf.tmp", ".slurm.conf.tmp"):  # the old fixed temp names, too
        (config.parent / name).symlink_to(victim)
    write_file(config, "ClusterName=dev\n", 0o600)
    assert victim.read_text() == "precious\n"
    assert not config.is_symlink() and config.read_text() == "ClusterName=dev\n"
    assert config.stat().st_mode & 0o777 == 0o600


def test_lock_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".lock").symlink_to(victim)
    with pytest.raises(DevclusterError, match="symlink"):
        open_lock(tmp_path / ".lock")
    assert victim.read_text() == "precious\n"
    with open_lock(tmp_path / "real.lock"):
        pass


@pytest.mark.parametrize(("mode", "parent_mode"), [(0o777, 0o700), (0o775, 0o700), (0o700, 0o777)])
def test_state_dir_others_can_write_is_refused(tmp_path: Path, mode: int, parent_mode: int) -> None:
    state = tmp_path / "parent" / "state"
    state.mkdir(parents=True)
    state.chmod(mode)
    state.parent.chmod(parent_mode)
    with pytest.raises(DevclusterError, match="Refusing the dev cluster's state directory"):
        check_state_dir(state)


def test_state_dir_of_the_user_is_accepted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    check_state_dir(state)  # /tmp itself has the sticky bit


def test_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    with pytest.raises(DevclusterError, match="owned by uid 65534"):
        check_state_dir(state)
