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
    callbacks = ["slurm.callbacks:LoggerCallback"]
    [production.sbatch]
    partition = "gpu"
    time = "04:00:00"

The earlier SDK's nested format (``[ENV.cluster]``,
``[ENV.cluster.backend_config]``, ``[ENV.packaging]``, ``[ENV.submit]``,
``[default]`` merged into every environment, also under ``[tool.slurm]`` or
``[environments]``) is read too, as the same settings: see
:mod:`slurm._client.nestedfile`. One file is in one format.

An environment may name its callbacks: ``callbacks`` is a list of
``"module:Class"`` strings or tables ``{target = "module:Class", args = [...],
kwargs = {...}}``; :meth:`slurm.Cluster.from_env` makes them (a ``callbacks=``
keyword wins).

The file is found from ``path=`` (a file, or a directory holding one), else
``$SLURMFILE``, else ``Slurmfile``, ``Slurmfile.toml``, ``slurmfile`` or
``slurmfile.toml`` in the working directory or one of its parents, up to the
user's home or the root of the repository (a directory holding ``.git``),
whichever comes first, else
``~/.config/slurm-sdk/Slurmfile.toml``. The environment is ``env=``, else
``$SLURM_ENV``, else ``default``.

A Slurmfile decides where code runs and which host keys are trusted, so only
a file owned by the user and not writable by group or others is read (anyone
else's file is refused, not skipped); the file used is logged at INFO level.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from slurm._client.nestedfile import flatten, nested_tables
from slurm._client.settings import SLURMFILE_KEYS, ClusterSettings, unknown_names
from slurm._slurm.options import normalize_options
from slurm.errors import (
    ConfigurationError,
    SlurmfileEnvironmentNotFoundError,
    SlurmfileInvalidError,
    SlurmfileNotFoundError,
)

__all__ = [
    "SLURMFILE_KEYS",
    "check_owner",
    "environment_names",
    "find_slurmfile",
    "load_environment",
    "read_private",
    "search_directories",
]

FILE_NAMES = ("Slurmfile", "Slurmfile.toml", "slurmfile", "slurmfile.toml")
USER_FILE = Path("~/.config/slurm-sdk/Slurmfile.toml")

logger = logging.getLogger(__name__)


def search_directories(
    start: Path, home: Path, owned: Callable[[Path], bool] | None = None
) -> list[Path]:
    """The directories searched for a Slurmfile: ``start`` and its parents, up to and
    including ``home`` or the first one holding ``.git`` (a repository's root), and never
    one the user does not own (``owned``; default: by ``stat``): from ``/tmp/work`` the
    search does not reach ``/tmp``, where anyone may leave a Slurmfile.

    Example::

        >>> mine = lambda path: True
        >>> [str(p) for p in search_directories(Path("/home/u/proj/src"), Path("/home/u"), mine)]
        ['/home/u/proj/src', '/home/u/proj', '/home/u']
    """
    owned = owned or _owned
    found: list[Path] = []
    for directory in (start, *start.parents):
        if not owned(directory):
            break
        found.append(directory)
        if directory == home or (directory / ".git").exists():
            break
    return found


def _owned(directory: Path) -> bool:
    try:
        return directory.stat().st_uid == os.getuid()
    except OSError:
        return False


def check_owner(path: Path) -> None:
    """Refuse a settings file that someone else owns or may write (see :func:`read_private`)."""
    read_private(path)


def read_private(path: Path) -> str:
    """The text of the settings file ``path``, read from the one descriptor that was
    checked: no symbolic link is followed at the file itself (a link swapped in between a
    check and a read, in a sticky directory, would hand over another user's file), and the
    opened file must be a regular file of this user that group and others cannot write.

    Raises:
        ConfigurationError: ``path`` is a link, not a regular file, not this user's, or
            writable by its group or by others.
        SlurmfileInvalidError: it cannot be read or is not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            _refuse(path, "it is a symbolic link (name the file it points at)")
        raise SlurmfileInvalidError(f"Cannot read Slurmfile {path}: {exc}") from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        uid = os.getuid()
        if not stat.S_ISREG(info.st_mode):
            _refuse(path, "it is not a regular file")
        if info.st_uid != uid:
            _refuse(path, f"it is owned by uid {info.st_uid}, not by you (uid {uid})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = stat.S_IMODE(info.st_mode)
            _refuse(path, f"its group or other users may write it (mode {mode:04o})")
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SlurmfileInvalidError(f"Cannot read Slurmfile {path}: {exc}") from exc


def _refuse(path: Path, problem: str) -> NoReturn:
    raise ConfigurationError(
        f"Refusing to read the Slurmfile {path}: {problem}, so someone else could choose "
        "where your code runs. Make it yours and private (`chmod go-w` on it, or copy it "
        "to a file you own), or point $SLURMFILE / path= at another file."
    )


def find_slurmfile(path: str | os.PathLike[str] | None = None) -> Path:
    """The Slurmfile to read; raises SlurmfileNotFoundError saying where it looked."""
    if path is not None:
        chosen = Path(path).expanduser()
        if chosen.is_dir():  # as the earlier SDK: a directory holding a Slurmfile
            inside = [chosen / name for name in FILE_NAMES if (chosen / name).is_file()]
            if not inside:
                raise SlurmfileNotFoundError(
                    f"The directory {chosen} holds no {', '.join(FILE_NAMES)}."
                )
            chosen = inside[0]
        if not chosen.is_file():
            raise SlurmfileNotFoundError(f"Slurmfile {chosen} does not exist.")
        return chosen
    if os.environ.get("SLURMFILE"):
        chosen = Path(os.environ["SLURMFILE"]).expanduser()
        if not chosen.is_file():
            raise SlurmfileNotFoundError(f"$SLURMFILE points at {chosen}, which does not exist.")
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
    raise SlurmfileNotFoundError(
        f"No Slurmfile found: looked for {', '.join(FILE_NAMES)} in {looked[0]} and its "
        f"parents up to {looked[-1]}, and for {user}. Create one (see `slurm._client.config`), set "
        "$SLURMFILE, or pass path=."
    )


def _read(file: Path) -> dict[str, Any]:
    text = read_private(file)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SlurmfileInvalidError(f"Cannot read Slurmfile {file}: {exc}") from exc


def environment_names(path: str | os.PathLike[str] | None = None) -> tuple[list[str], Path]:
    """The names of a Slurmfile's environments, in the file's order, and the file read."""
    file = find_slurmfile(path)
    data = _read(file)
    tables = nested_tables(data)
    if tables is None:
        tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    return list(tables), file


def load_environment(
    path: str | os.PathLike[str] | None = None, env: str | None = None
) -> tuple[dict[str, Any], Path]:
    """Cluster keyword arguments for one environment of a Slurmfile, and the file read."""
    file = find_slurmfile(path)
    name = env or os.environ.get("SLURM_ENV") or "default"
    data = _read(file)
    logger.info("using Slurmfile %s, environment [%s]", file, name)
    where = f"Slurmfile {file}"
    tables = nested_tables(data)
    if tables is not None:
        section: Any = flatten(tables, name, where)
    else:
        section = data.get(name)
    if not isinstance(section, Mapping):
        known = ", ".join(sorted(k for k, v in data.items() if isinstance(v, Mapping))) or "none"
        raise SlurmfileEnvironmentNotFoundError(
            f"Slurmfile {file} has no environment [{name}]; it has: {known}. Choose one with "
            "env= or $SLURM_ENV."
        )
    settings = dict(section)
    where = f"{where}, [{name}]"
    callbacks = _callback_specs(settings.pop("callbacks", None), where)
    unknown = sorted(set(settings) - SLURMFILE_KEYS - {"callbacks"})
    if unknown:
        raise SlurmfileInvalidError(
            f"{where}: unknown setting {unknown_names(unknown, SLURMFILE_KEYS)}. Valid settings: "
            f"{', '.join(sorted(SLURMFILE_KEYS))}; sbatch options go in [{name}.sbatch]."
        )
    sbatch = settings.pop("sbatch", {})
    if not isinstance(sbatch, Mapping):
        raise SlurmfileInvalidError(f"Slurmfile {file}: [{name}.sbatch] must be a table.")
    if sbatch:
        settings["default_options"] = normalize_options(sbatch)
    if "backend_type" in settings:
        settings["backend"] = settings.pop("backend_type")
    ClusterSettings.from_mapping(settings, source=where)  # every value type-checked here
    if callbacks is not None:
        settings["callbacks"] = callbacks
    return settings, file


def _callback_specs(value: Any, where: str) -> list[dict[str, Any]] | None:
    """The ``callbacks`` of an environment, checked: ``{"target", "args", "kwargs"}`` each.

    Raises:
        SlurmfileInvalidError: not a list of ``"module:Class"`` strings or such tables.
    """
    if value is None:
        return None
    example = 'callbacks = ["slurm.callbacks:LoggerCallback"]'
    if not isinstance(value, list):
        raise SlurmfileInvalidError(f"{where}: callbacks must be a list, e.g. {example}.")
    specs = []
    for entry in value:
        spec = {"target": entry} if isinstance(entry, str) else entry
        if not isinstance(spec, Mapping) or not isinstance(spec.get("target"), str):
            raise SlurmfileInvalidError(
                f"{where}: each callback is a 'module:Class' string or a table with "
                f'target = "module:Class" (and args = [...], kwargs = {{...}}), got {entry!r}. '
                f"Example: {example}."
            )
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, Mapping):
            raise SlurmfileInvalidError(
                f"{where}: callback {spec['target']!r}: args must be a list and kwargs a table."
            )
        specs.append({"target": spec["target"], "args": list(args), "kwargs": dict(kwargs)})
    return specs
