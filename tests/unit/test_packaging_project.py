"""Packaging: which project is the user's, and where the SDK's own checkout is."""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

import pytest

import slurm
from slurm._client.packaging.project import Project, find_project, read_project, sdk_source_root

SDK_ROOT = Path(slurm.__file__).resolve().parent.parent.parent


def _project(root: Path, name: str = "user-proj", *, table: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = f"[project]\nname = {name!r}\nversion = '0.1'\n" if table else "[tool.ruff]\n"
    (root / "pyproject.toml").write_text(text)
    return root


def test_script_directory_inside_a_project(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    scripts = root / "scripts" / "deep"
    scripts.mkdir(parents=True)
    found = find_project(main_dir=scripts, cwd=tmp_path, sdk_root=None)
    assert found == Project(root=root.resolve(), name="user-proj")


def test_nearest_pyproject_wins(tmp_path: Path) -> None:
    _project(tmp_path / "outer", "outer")
    inner = _project(tmp_path / "outer" / "inner", "inner")
    (inner / "x").mkdir()
    found = find_project(main_dir=inner / "x", cwd=tmp_path, sdk_root=None)
    assert found is not None and found.name == "inner"


def test_working_directory_when_there_is_no_main_script(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    found = find_project(main_dir=None, cwd=root, sdk_root=None)
    assert found is not None and found.root == root.resolve()


def test_working_directory_when_the_script_is_outside_any_project(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    root = _project(tmp_path / "proj")
    found = find_project(main_dir=loose, cwd=root, sdk_root=None)
    assert found is not None and found.root == root.resolve()


def test_no_project_anywhere(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    assert find_project(main_dir=loose, cwd=loose, sdk_root=None) is None


def test_pyproject_without_a_project_table_is_not_shipped(tmp_path: Path) -> None:
    root = _project(tmp_path / "tools-only", table=False)
    assert read_project(root) is None
    assert find_project(main_dir=root, cwd=root, sdk_root=None) is None


def test_broken_pyproject_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project\nname=")
    assert read_project(root) is None


def test_the_sdk_is_never_the_users_project(tmp_path: Path) -> None:
    assert sdk_source_root() == SDK_ROOT
    examples = Path(slurm.__file__).resolve().parent / "examples"
    # `python -m slurm.examples...` from the SDK's checkout: nothing of the user's to ship.
    assert find_project(main_dir=examples, cwd=SDK_ROOT) is None
    # The SDK's name is recognised even in another checkout.
    other = _project(tmp_path / "fork", "slurm_sdk")
    assert find_project(main_dir=other, cwd=other, sdk_root=None) is None


def test_sdk_script_with_a_user_project_as_working_directory(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    examples = Path(slurm.__file__).resolve().parent / "examples"
    found = find_project(main_dir=examples, cwd=root)
    assert found is not None and found.root == root.resolve()


def test_normalized_name() -> None:
    assert Project(root=Path("/x"), name="My_Proj.Name").normalized_name == "my-proj-name"


def test_a_pyproject_another_user_planted_above_is_never_built(
    tmp_path: Path, intruder: pwd.struct_passwd, caplog: pytest.LogCaptureFixture
) -> None:
    """A neighbour's ``pyproject.toml`` in a shared sticky directory above the user's work
    is not the user's project: its build backend would run as the user."""
    shared = tmp_path / "shared"
    planted = _project(shared, "planted")
    shared.chmod(0o1777)
    os.chown(planted / "pyproject.toml", intruder.pw_uid, intruder.pw_gid)
    work = shared / "work"
    work.mkdir()
    with caplog.at_level(logging.WARNING):
        assert find_project(main_dir=work, cwd=work, sdk_root=None) is None
    assert f"is owned by uid {intruder.pw_uid}, not by you" in caplog.text
    os.chown(planted / "pyproject.toml", os.getuid(), os.getgid())
    assert find_project(main_dir=work, cwd=work, sdk_root=None) is not None  # the user's own


def test_a_pyproject_others_may_rewrite_is_never_built(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    (root / "pyproject.toml").chmod(0o666)
    assert find_project(main_dir=root, cwd=root, sdk_root=None) is None
    (root / "pyproject.toml").chmod(0o644)
    assert find_project(main_dir=root, cwd=root, sdk_root=None) is not None
