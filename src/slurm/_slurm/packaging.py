"""The ``packaging=`` option read into a :class:`PackagingSpec` (pure: no cluster needed).

How a spec is applied (the interpreter, the environment, shipped source, a
container image) is :mod:`slurm._client.packaging`; this module only checks
and parses the value, so that an option check can run at decoration time.
"""

from __future__ import annotations

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
)

_MODES = ("auto", "wheel", "none")
_CONTAINER = "container"
_KEYS = frozenset(
    {"type", "mode", "python", "project", "env_dir", "lock_timeout", "installer", *BUILD_KEYS}
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
    unknown = sorted(set(value) - _KEYS)
    mode = str(value.get("type", value.get("mode", "auto"))).lower()
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
            f"{(*_MODES, _CONTAINER)} (a Dockerfile's keys only with 'container'), the "
            f"installer one of {_INSTALLERS} and the keys among {sorted(_KEYS)}"
            + (f" (unknown: {unknown})." if unknown else ".")
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
        container=container,
    )
