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

__all__ = ["BUILD_KEYS", "DISCOVER", "PackagingSpec", "parse_spec"]

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
        *BUILD_KEYS,
        *_EARLIER_KEYS,
    }
)
_INSTALLERS = ("auto", "uv", "pip")
#: ``project=`` by default: find the project above the working directory.
DISCOVER = "discover"


@dataclass(frozen=True)
class PackagingSpec:
    """``Cluster(packaging=...)`` resolved; see the module docstring."""

    mode: str = "auto"
    python: str | None = None
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
        project=str(project) if project else None,
        env_dir=str(env_dir) if env_dir else None,
        lock_timeout=lock_timeout,
        installer=installer,
        dependencies=_strings(value, "dependencies") + _pip(value),
        extras=_strings(value, "extras"),
        indexes=_indexes(value),
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


def _earlier_keys(value: dict[str, Any]) -> dict[str, Any]:
    """The earlier SDK's ``build_tool`` (what installs the environment: ``installer``) and
    ``python_version`` (``"3.11"``: the cluster's ``python3.11`` makes the environment),
    spelled as ours; both given with ours is an error."""
    value = dict(value)
    tool = value.pop("build_tool", None)
    if tool is not None:
        if "installer" in value and value["installer"] != tool:
            raise ConfigurationError(
                "packaging: give installer= or build_tool= (its earlier name), not both."
            )
        value["installer"] = tool
    version = value.pop("python_version", None)
    if version is not None:
        text = str(version)
        if not text.replace(".", "").isdigit() or text.count(".") > 2:
            raise ConfigurationError(
                f"packaging python_version={version!r}: give a version such as '3.11' "
                "(the environment is made from python3.11 on the cluster)."
            )
        if value.get("python"):
            raise ConfigurationError(
                "packaging: give python= (an interpreter on the cluster) or python_version=, "
                "not both."
            )
        value["python"] = f"python{text}"
    return value
