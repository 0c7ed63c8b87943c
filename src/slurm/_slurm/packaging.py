"""The ``packaging=`` option read into a :class:`PackagingSpec` (pure: no cluster needed).

How a spec is applied (the interpreter, the environment, shipped source, a
container image) is :mod:`slurm._client.packaging`; this module only checks
and parses the value, so that an option check can run at decoration time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slurm.errors import ConfigurationError

__all__ = ["BUILD_KEYS", "DISCOVER", "OLDEST_PYTHON", "PackagingSpec", "parse_spec"]

#: The keys of a container build; each is also the option ``packaging_<key>``.
BUILD_KEYS = (
    "dockerfile",
    "context",
    "registry",
    "name",
    "push",
    "platform",
    "tls_verify",
    "runtime",
    "build_args",
    "build_secrets",
    "no_cache",
    "use_digest",
)

_MODES = ("auto", "wheel", "none")
_CONTAINER = "container"
#: The earlier SDK's names: "inherit" (a workflow's task runs with what the workflow
#: has, which "auto" does) and its wheel keys, read as ours.
_MODE_ALIASES = {"inherit": "auto"}
_EARLIER_KEYS = frozenset({"build_tool", "python_version", "dependencies", "extras"})
_KEYS = frozenset(
    {
        "type",
        "mode",
        "python",
        "project",
        "env_dir",
        "lock_timeout",
        "installer",
        "extra_index_url",
        "upgrade_pip",
        "env",
        *BUILD_KEYS,
        *_EARLIER_KEYS,
    }
)
_INSTALLERS = ("auto", "uv", "pip")
#: ``project=`` by default: find the project above the working directory.
DISCOVER = "discover"
#: The oldest Python the job side runs on (``python_version`` older than this is refused).
OLDEST_PYTHON = (3, 11)


@dataclass(frozen=True)
class PackagingSpec:
    """``Cluster(packaging=...)`` resolved; see the module docstring."""

    mode: str = "auto"
    python: str | None = None
    #: ``python_version="3.12"``: that Python on the cluster, found or installed there
    #: (:mod:`slurm._client.packaging.pythons`); ``python`` is then ``None``.
    python_version: str | None = None
    project: str | None = DISCOVER
    env_dir: str | None = None
    lock_timeout: float = 1800.0
    installer: str = "auto"
    #: More requirements installed in the environment (the earlier ``dependencies``).
    dependencies: tuple[str, ...] = ()
    #: The project's extras whose requirements are installed too (``extras``).
    extras: tuple[str, ...] = ()
    #: More package indexes (``extra_index_url``): asked where the dependency wheels are
    #: collected, and by the cluster's install when the offline one lacks something.
    indexes: tuple[str, ...] = ()
    #: Environment variables (``env``) for the commands that find or install the Python
    #: and create the environment on the cluster (``UV_PYTHON_INSTALL_MIRROR``, ...).
    env: tuple[tuple[str, str], ...] = ()
    # packaging="container": its build keys (slurm._client.packaging.container); not part of what
    # makes an interpreter setting distinct (the code ships as with "auto").
    container: tuple[tuple[str, Any], ...] | None = field(default=None, compare=False)


def parse_spec(value: Any) -> PackagingSpec:
    """Read ``packaging=`` (``None``, a mode name, or a dict).

    Raises:
        ConfigurationError: An unknown mode or key, or a value of the wrong type.
    """
    if value is None or isinstance(value, PackagingSpec):
        return value or PackagingSpec()
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"packaging= must be 'auto', 'wheel', 'none', 'container' or a dict, not {value!r}."
        )
    value = _earlier_keys(value)
    unknown = sorted(set(value) - _KEYS)
    mode = str(value.get("type", value.get("mode", "auto"))).lower()
    mode = _MODE_ALIASES.get(mode, mode)
    installer = str(value.get("installer", "auto")).lower()
    container = None
    if mode == _CONTAINER:
        if value.get("python_version"):
            raise ConfigurationError(
                f"packaging python_version={value['python_version']!r} asks for a Python on "
                "the cluster, but with 'container' the image's own Python runs every task: "
                "choose it in the Dockerfile (e.g. FROM python:3.12-slim) and drop "
                "python_version."
            )
        mode = "auto"
        container = tuple(sorted((k, value[k]) for k in BUILD_KEYS if k in value))
    elif set(value) & set(BUILD_KEYS):
        unknown = sorted(set(unknown) | (set(value) & set(BUILD_KEYS)))
    if unknown or mode not in _MODES or installer not in _INSTALLERS:
        raise ConfigurationError(
            f"packaging={value!r} is not understood: the type must be one of "
            f"{(*_MODES, _CONTAINER, *_MODE_ALIASES)} (a Dockerfile's keys only with "
            f"'container'), the installer one of {_INSTALLERS} and the keys among "
            f"{sorted(_KEYS)}" + (f" (unknown: {unknown})." if unknown else ".")
        )
    project = value.get("project", DISCOVER)
    python = value.get("python")
    env_dir = value.get("env_dir")
    try:
        lock_timeout = float(value.get("lock_timeout", 1800.0))
    except (TypeError, ValueError):
        lock_timeout = -1.0
    if lock_timeout <= 0 or not all(
        v is None or isinstance(v, str | Path) for v in (project, python, env_dir)
    ):
        raise ConfigurationError(
            f"packaging={value!r}: 'python', 'project' and 'env_dir' take paths (or None) and "
            "'lock_timeout' a number of seconds > 0."
        )
    return PackagingSpec(
        mode=mode,
        python=str(python) if python else None,
        python_version=value.get("python_version"),
        project=str(project) if project else None,
        env_dir=str(env_dir) if env_dir else None,
        lock_timeout=lock_timeout,
        installer=installer,
        dependencies=_strings(value, "dependencies") + _pip(value),
        extras=_strings(value, "extras"),
        indexes=_indexes(value),
        env=_env(value),
        container=container,
    )


def _strings(value: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings (or one string) under ``key``, as a tuple."""
    given = value.get(key) or ()
    if isinstance(given, str):
        given = (given,)
    if not isinstance(given, list | tuple) or not all(isinstance(v, str) and v for v in given):
        raise ConfigurationError(
            f"packaging {key}={given!r}: give a list of strings, e.g. "
            + ('["numpy>=2", "rich"]' if key == "dependencies" else '["gpu"]')
            + "."
        )
    return tuple(given)


def _pip(value: dict[str, Any]) -> tuple[str, ...]:
    """``upgrade_pip=True``: the environment gets a current pip, collected and shipped as
    a wheel like any other dependency (with either installer), as the earlier SDK's
    ``pip install --upgrade pip`` gave it one."""
    given = value.get("upgrade_pip", False)
    if not isinstance(given, bool):
        raise ConfigurationError(
            f"packaging upgrade_pip={given!r}: give true or false (not a string)."
        )
    return ("pip",) if given else ()


def _indexes(value: dict[str, Any]) -> tuple[str, ...]:
    """``extra_index_url``: one URL or a list (``https://...``, ``file:///...``)."""
    given = value.get("extra_index_url") or ()
    if isinstance(given, str):
        given = (given,)
    if not isinstance(given, list | tuple) or not all(
        isinstance(v, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", v) for v in given
    ):
        raise ConfigurationError(
            f"packaging extra_index_url={given!r}: give a package index's URL or a list of "
            "them, e.g. 'https://pypi.example.org/simple' or 'file:///srv/wheels/simple' "
            "(a local directory is file:// and its absolute path)."
        )
    return tuple(given)


def _env(value: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``env``: variable names to string values, sorted (part of what the spec is)."""
    given = value.get("env") or {}
    if not isinstance(given, dict) or not all(
        isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and isinstance(v, str)
        for k, v in given.items()
    ):
        raise ConfigurationError(
            f"packaging env={given!r}: give a dict of environment variable names to string "
            "values for the cluster's uv and pip, e.g. "
            "{'UV_PYTHON_INSTALL_MIRROR': 'file:///shared/python-mirror'}."
        )
    return tuple(sorted(given.items()))


def _python_version(version: Any) -> str:
    """``python_version``: ``"3.X"`` or ``"3.X.Y"``, 3.11 or later, as given."""
    oldest = ".".join(map(str, OLDEST_PYTHON))
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", version) if isinstance(version, str) else None
    if match is None:
        hint = " (as a string: 3.10 as a number is 3.1)" if isinstance(version, float) else ""
        raise ConfigurationError(
            f"packaging python_version={version!r}: give a version such as '3.12' or "
            f"'3.12.4'{hint}; the environment is made from that Python on the cluster."
        )
    if (int(match[1]), int(match[2])) < OLDEST_PYTHON:
        raise ConfigurationError(
            f"packaging python_version={version!r} is older than the Python {oldest} "
            f"slurm-sdk needs on the cluster: ask for {oldest} or later."
        )
    return str(version)


def _earlier_keys(value: dict[str, Any]) -> dict[str, Any]:
    """The earlier SDK's ``build_tool`` (what installs the environment: ``installer``)
    spelled as ours (both given is an error), and its ``python_version`` (``"3.12"``)
    checked: a version, 3.11 or later, and not with ``python``."""
    value = dict(value)
    tool = value.pop("build_tool", None)
    if tool is not None:
        if "installer" in value and value["installer"] != tool:
            raise ConfigurationError(
                "packaging: give installer= or build_tool= (its earlier name), not both."
            )
        value["installer"] = tool
    version = value.get("python_version")
    if version is not None:
        if value.get("python"):
            raise ConfigurationError(
                "packaging: give python= (an interpreter on the cluster) or python_version=, "
                "not both."
            )
        value["python_version"] = _python_version(version)
    return value
