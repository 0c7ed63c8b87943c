"""Slurmfile: cluster settings in a TOML file, with named environments.

::

    # Slurmfile.toml
    [default]
    backend = "ssh"
    hostname = "login.example.org"
    username = "alice"
    job_base_dir = "~/slurm-jobs"

    [default.sbatch]          # default sbatch options of every job
    partition = "debug"
    account = "ml-team"

    [production]
    backend = "ssh"
    hostname = "big.example.org"
    [production.sbatch]
    partition = "gpu"
    time = "04:00:00"

The file is found from ``path=``, else ``$SLURMFILE``, else ``Slurmfile``,
``Slurmfile.toml`` or ``slurmfile.toml`` in the working directory or one of
its parents, up to the user's home or the root of the repository (a
directory holding ``.git``), whichever comes first, else
``~/.config/slurm-sdk/Slurmfile.toml``. The environment is ``env=``, else
``$SLURM_ENV``, else ``default``.

A Slurmfile decides where code runs and which host keys are trusted, so only
a file owned by the user and not writable by group or others is read (anyone
else's file is refused, not skipped); the file used is logged at INFO level.
"""

from __future__ import annotations

import difflib
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slurm._client.settings import SLURMFILE_KEYS, ClusterSettings
from slurm._slurm.options import normalize_options
from slurm.errors import ConfigurationError

__all__ = [
    "SLURMFILE_KEYS",
    "check_owner",
    "find_slurmfile",
    "load_environment",
    "search_directories",
]

FILE_NAMES = ("Slurmfile", "Slurmfile.toml", "slurmfile.toml")
USER_FILE = Path("~/.config/slurm-sdk/Slurmfile.toml")

logger = logging.getLogger(__name__)


def search_directories(start: Path, home: Path) -> list[Path]:
    """The directories searched for a Slurmfile: ``start`` and its parents, up to and
    including ``home`` or the first one holding ``.git`` (a repository's root).

    Example::

        >>> [str(p) for p in search_directories(Path("/home/u/proj/src"), Path("/home/u"))]
        ['/home/u/proj/src', '/home/u/proj', '/home/u']
    """
    found: list[Path] = []
    for directory in (start, *start.parents):
        found.append(directory)
        if directory == home or (directory / ".git").exists():
            break
    return found


def check_owner(path: Path) -> None:
    """Refuse a settings file that someone else owns or may write.

    Raises:
        ConfigurationError: ``path`` is not owned by this user, or is writable by
            its group or by others.
    """
    info = path.stat()
    uid = os.getuid()
    problem = ""
    if info.st_uid != uid:
        problem = f"it is owned by uid {info.st_uid}, not by you (uid {uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"its group or other users may write it (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem:
        raise ConfigurationError(
            f"Refusing to read the Slurmfile {path}: {problem}, so someone else could choose "
            "where your code runs. Make it yours and private (`chmod go-w` on it, or copy it "
            "to a file you own), or point $SLURMFILE / path= at another file."
        )


def find_slurmfile(path: str | os.PathLike[str] | None = None) -> Path:
    """The Slurmfile to read; raises ConfigurationError saying where it looked."""
    if path is not None:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise ConfigurationError(f"Slurmfile {chosen} does not exist.")
        return chosen
    if os.environ.get("SLURMFILE"):
        chosen = Path(os.environ["SLURMFILE"]).expanduser()
        if not chosen.is_file():
            raise ConfigurationError(f"$SLURMFILE points at {chosen}, which does not exist.")
        return chosen
    looked = search_directories(Path.cwd(), Path.home())
    for directory in looked:
        for name in FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    user = USER_FILE.expanduser()
    if user.is_file():
        return user
    raise ConfigurationError(
        f"No Slurmfile found: looked for {', '.join(FILE_NAMES)} in {looked[0]} and its "
        f"parents up to {looked[-1]}, and for {user}. Create one (see `slurm._client.config`), set "
        "$SLURMFILE, or pass path=."
    )


def load_environment(
    path: str | os.PathLike[str] | None = None, env: str | None = None
) -> tuple[dict[str, Any], Path]:
    """Cluster keyword arguments for one environment of a Slurmfile, and the file read."""
    file = find_slurmfile(path)
    name = env or os.environ.get("SLURM_ENV") or "default"
    check_owner(file)
    logger.info("using Slurmfile %s, environment [%s]", file, name)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"Cannot read Slurmfile {file}: {exc}") from exc
    section = data.get(name)
    if not isinstance(section, Mapping):
        known = ", ".join(sorted(k for k, v in data.items() if isinstance(v, Mapping))) or "none"
        raise ConfigurationError(
            f"Slurmfile {file} has no environment [{name}]; it has: {known}. Choose one with "
            "env= or $SLURM_ENV."
        )
    settings = dict(section)
    where = f"Slurmfile {file}, [{name}]"
    unknown = sorted(set(settings) - SLURMFILE_KEYS)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, SLURMFILE_KEYS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigurationError(
            f"{where}: unknown setting {', '.join(hints)}. Valid settings: "
            f"{', '.join(sorted(SLURMFILE_KEYS))}; sbatch options go in [{name}.sbatch]."
        )
    sbatch = settings.pop("sbatch", {})
    if not isinstance(sbatch, Mapping):
        raise ConfigurationError(f"Slurmfile {file}: [{name}.sbatch] must be a table.")
    if sbatch:
        settings["default_options"] = normalize_options(sbatch)
    if "backend_type" in settings:
        settings["backend"] = settings.pop("backend_type")
    ClusterSettings.from_mapping(settings, source=where)  # every value type-checked here
    return settings, file
