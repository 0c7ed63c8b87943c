"""The local cache of built wheels: private, and a changed wheel is never shipped."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from slurm._client.packaging import wheels


def _stored(tmp_path: Path) -> tuple[Path, Path]:
    built = tmp_path / "out" / "proj-1.0-py3-none-any.whl"
    built.parent.mkdir()
    built.write_bytes(b"the wheel as built")
    directory = wheels.private_dir(tmp_path / "cache" / "built") / "proj-0123"
    wheel = wheels._store(directory, built, "proj")
    return directory, wheel.path


def test_the_cache_is_made_private(tmp_path: Path) -> None:
    made = wheels.private_dir(tmp_path / "a" / "b" / "c")
    for path in (tmp_path / "a", tmp_path / "a" / "b", made):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_a_stored_wheel_is_reused_while_it_is_unchanged(tmp_path: Path) -> None:
    directory, path = _stored(tmp_path)
    again = wheels._cached(directory)
    assert again is not None and again.path == path
    assert again.sha256 == wheels.sha256_file(path)


def test_a_wheel_changed_in_the_cache_is_built_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory, path = _stored(tmp_path)
    path.write_bytes(b"something else, same name")
    with caplog.at_level(logging.WARNING):
        assert wheels._cached(directory) is None
    assert "not the" in caplog.text and not directory.exists()


def test_a_wheel_others_may_write_is_built_again(tmp_path: Path) -> None:
    directory, path = _stored(tmp_path)
    path.chmod(0o666)  # the planted mode
    assert wheels._cached(directory) is None and not directory.exists()
