"""Which code to ship: the user's project and the SDK itself, and their source hashes.

The user's project is the nearest directory holding a ``pyproject.toml`` with
a ``[project]`` table, looking up from the directory of the ``__main__``
script (``python run.py``, ``python -m pkg.mod``) and, when that finds
nothing (a notebook, ``python -c``, a script outside any project), from the
working directory. The SDK's own checkout is never taken for the user's
project, nor a ``pyproject.toml`` another user owns or may rewrite.

A source hash covers every file a build could pick up (hidden directories,
caches, virtual environments and build outputs left out), so an unchanged
project is never rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "SDK_DISTRIBUTION",
    "Project",
    "find_project",
    "normalize_name",
    "read_project",
    "sdk_source_root",
    "source_hash",
]

logger = logging.getLogger(__name__)

SDK_DISTRIBUTION = "slurm-sdk"

_SKIP_DIRS = frozenset({"__pycache__", "build", "dist", "node_modules", "htmlcov"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp")


@dataclass(frozen=True)
class Project:
    """A buildable Python project: its root directory and distribution name."""

    root: Path
    name: str

    @property
    def normalized_name(self) -> str:
        """The name as PEP 503 normalises it (``My_Proj`` -> ``my-proj``)."""
        return normalize_name(self.name)


def normalize_name(name: str) -> str:
    """PEP 503 normalisation of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_project(root: Path) -> Project | None:
    """The project at ``root`` if its ``pyproject.toml`` names one, else ``None``."""
    try:
        with open(root / "pyproject.toml", "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        logger.debug("ignoring %s/pyproject.toml: %s", root, exc)
        return None
    table = data.get("project")
    name = table.get("name") if isinstance(table, dict) else None
    if not isinstance(name, str) or not name:
        return None
    return Project(root=root.resolve(), name=name)


def sdk_source_root() -> Path | None:
    """The SDK's source checkout (``.../src/slurm`` -> ``...``) when it runs from one."""
    package_dir = Path(__file__).resolve().parents[2]  # .../slurm/_client/packaging/project.py
    for candidate in (package_dir.parent.parent, package_dir.parent):
        project = read_project(candidate) if (candidate / "pyproject.toml").is_file() else None
        if project is not None and project.normalized_name == SDK_DISTRIBUTION:
            return project.root
    return None


def _nearest(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` with a ``pyproject.toml``, if that file
    is one this user may build: its build backend runs as the user, and its wheel lands in
    the user's cluster environment, so one that another user owns or may rewrite (planted in
    ``/tmp`` or a shared group directory) ends the search instead, with a warning."""
    current = start.resolve()
    while True:
        candidate = current / "pyproject.toml"
        if candidate.is_file():
            why = _not_ours(candidate)
            if why is None:
                return current
            logger.warning("not building %s: %s", candidate, why)
            return None
        if current.parent == current:
            return None
        current = current.parent


def _not_ours(path: Path) -> str | None:
    """Why ``path`` may not be trusted to build, or ``None``: it, or the directory holding
    it, belongs to another user, or others may rewrite it. (A project directory its group
    may write is the user's choice of collaborators, and is kept.)"""
    uid = os.getuid()
    for where in (path, path.parent):
        owner = where.stat().st_uid
        if owner not in (uid, 0):
            return f"{where} is owned by uid {owner}, not by you (uid {uid})"
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it has mode {mode:04o}: others may rewrite it (`chmod go-w {path}`)"
    return None


def _main_dir() -> Path | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    return Path(path).resolve().parent


def find_project(
    *,
    main_dir: Path | bool | None = True,
    cwd: Path | None = None,
    sdk_root: Path | bool | None = True,
) -> Project | None:
    """The user's project to ship, or ``None``.

    Args:
        main_dir: Directory of the ``__main__`` script (``True``: look it up).
        cwd: The working directory (default: ``os.getcwd()``).
        sdk_root: The SDK checkout to exclude (``True``: look it up).
    """
    if main_dir is True:
        main_dir = _main_dir()
    if sdk_root is True:
        sdk_root = sdk_source_root()
    starts = [d for d in (main_dir, cwd or Path(os.getcwd())) if isinstance(d, Path)]
    for start in starts:
        root = _nearest(start)
        if root is None:
            continue
        project = read_project(root)
        if project is None:
            logger.debug("%s/pyproject.toml has no [project] name: not shipped", root)
            continue
        is_sdk = project.normalized_name == SDK_DISTRIBUTION or (
            isinstance(sdk_root, Path) and project.root == sdk_root.resolve()
        )
        if is_sdk:
            continue
        return project
    return None


def _included(names: list[str], directory: str) -> list[str]:
    kept = []
    for name in names:
        if name.startswith(".") or name in _SKIP_DIRS or name.endswith(".egg-info"):
            continue
        if os.path.isfile(os.path.join(directory, name, "pyvenv.cfg")):
            continue  # a virtual environment inside the project
        kept.append(name)
    return sorted(kept)


def source_hash(root: Path, only: tuple[str, ...] = ()) -> str:
    """SHA-256 over the relative path and content of every source file under ``root``.

    Hidden files and directories, ``__pycache__``, ``build``, ``dist``,
    ``*.egg-info``, ``node_modules`` and virtual environments are left out.
    ``only`` limits the walk to these entries of ``root`` (files or directories).
    """
    digest = hashlib.sha256()
    root = root.resolve()
    tops = [root / entry for entry in only] if only else [root]
    for top in tops:
        if top.is_file():
            _add_file(digest, root, str(top))
            continue
        for directory, dirnames, filenames in os.walk(top):
            dirnames[:] = _included(dirnames, directory)
            for name in sorted(filenames):
                if not name.startswith(".") and not name.endswith(_SKIP_SUFFIXES):
                    _add_file(digest, root, os.path.join(directory, name))
    return digest.hexdigest()


class _Digest(Protocol):
    """What of a hashlib object the project digest uses."""

    def update(self, data: bytes, /) -> None: ...


def _add_file(digest: _Digest, root: Path, path: str) -> None:
    try:
        with open(path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return  # a dangling link or a file removed meanwhile
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    digest.update(f"{relative}\0{content}\n".encode())
