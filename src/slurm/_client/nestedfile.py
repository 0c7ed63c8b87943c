"""The earlier SDK's nested Slurmfile format, read as this SDK's flat settings.

The earlier ``slurm-sdk`` (0.4.x) wrote its environments as nested tables::

    [default.cluster]
    backend = "ssh"
    job_base_dir = "~/slurm_jobs"

    [default.cluster.backend_config]      # the SSH connection
    hostname = "login.example.org"
    username = "alice"
    port = 22

    [default.packaging]                   # packaging=, as a table
    type = "wheel"
    python_version = "3.11"

    [default.submit]                      # sbatch defaults of every job
    partition = "debug"

    [gpu.cluster.backend_config]          # [default] is merged into every environment
    hostname = "gpu.example.org"

    [gpu]
    callbacks = ["slurm.callbacks:LoggerCallback"]

The tables may also sit under ``[tool.slurm]`` (in a ``pyproject.toml``) and
under an ``environments`` table. :func:`nested_tables` says whether a file is
in this format (an environment with a ``cluster``, ``submit`` or
``backend_config`` table, or the ``tool.slurm``/``environments`` roots), and
:func:`flatten` turns one environment into the flat keys of
:mod:`slurm._client.config`, which checks them as it checks its own. The two
formats do not mix: a flat key (``hostname = ...``, ``[ENV.sbatch]``) in a
nested file is an error saying which format each key belongs to.

A password is not read from this format either (the flat one never reads it):
an SSH key, the agent or ``$SLURM_SDK_PASSWORD``. The earlier SSH backend's
``look_for_keys``, ``allow_agent`` and ``banner_timeout`` are accepted and
ignored with a warning: this SDK always offers the agent and the keys of
``~/.ssh/config`` and ``~/.ssh/id_*``, and has its own connection timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slurm._client.settings import SLURMFILE_KEYS, unknown_names
from slurm.errors import SlurmfileEnvironmentNotFoundError, SlurmfileInvalidError

__all__ = ["CLUSTER_KEYS", "ENVIRONMENT_KEYS", "flatten", "nested_tables"]

logger = logging.getLogger(__name__)

#: The tables of a nested environment.
ENVIRONMENT_KEYS = frozenset({"cluster", "packaging", "submit", "callbacks"})
#: The keys of its ``cluster`` table.
CLUSTER_KEYS = frozenset({"backend", "backend_type", "job_base_dir", "backend_config"})
#: The earlier SSH backend's options this SDK has no use for (see the module docstring).
_IGNORED = frozenset({"look_for_keys", "allow_agent", "banner_timeout"})
_MARKS = frozenset({"cluster", "submit", "backend_config"})


def _is_nested(section: Any) -> bool:
    return isinstance(section, Mapping) and any(
        isinstance(section.get(key), Mapping) for key in _MARKS
    )


def nested_tables(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]] | None:
    """The environments of a nested Slurmfile by name, or ``None`` for a flat one."""
    root: Mapping[str, Any] = data
    marked = False
    tool = data.get("tool")
    if isinstance(tool, Mapping) and isinstance(tool.get("slurm"), Mapping):
        root, marked = tool["slurm"], True
    environments = root.get("environments")
    if isinstance(environments, Mapping):
        root, marked = environments, True
    tables = {k: v for k, v in root.items() if isinstance(v, Mapping)}
    if marked or any(_is_nested(v) for v in tables.values()):
        return tables
    return None


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(old, value)
        else:
            merged[key] = value
    return merged


def flatten(tables: Mapping[str, Mapping[str, Any]], name: str, where: str) -> dict[str, Any]:
    """Environment ``name`` (``[default]`` merged under it) as flat Slurmfile keys.

    Raises:
        SlurmfileEnvironmentNotFoundError: no such environment (the message lists them).
        SlurmfileInvalidError: a key of neither format, the two formats mixed, a
            password, or a table that is not one.
    """
    if name not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise SlurmfileEnvironmentNotFoundError(
            f"{where}: no environment [{name}]; it has: {known}. Choose one with env= "
            "or $SLURM_ENV."
        )
    section = _merge(tables.get("default", {}), tables[name]) if name != "default" else tables[name]
    where = f"{where}, [{name}]"
    other = sorted(set(section) - ENVIRONMENT_KEYS)
    if other:
        raise SlurmfileInvalidError(
            f"{where}: {', '.join(repr(k) for k in other)} belong to this SDK's flat format, "
            "but this file is in the earlier SDK's nested one ([ENV.cluster], "
            "[ENV.cluster.backend_config], [ENV.packaging], [ENV.submit], callbacks); the "
            "two do not mix. Move connection settings to [ENV.cluster.backend_config] and "
            "sbatch options to [ENV.submit], or write the whole file flat "
            "(hostname = ... and [ENV.sbatch] in each environment)."
        )
    cluster = _table(section, "cluster", where)
    unknown = sorted(set(cluster) - CLUSTER_KEYS)
    if unknown:
        raise SlurmfileInvalidError(
            f"{where}: unknown key {', '.join(repr(k) for k in unknown)} in [{name}.cluster]; "
            f"it takes {', '.join(sorted(CLUSTER_KEYS))} (connection settings go in "
            f"[{name}.cluster.backend_config])."
        )
    flat: dict[str, Any] = {}
    backend = cluster.get("backend", cluster.get("backend_type"))
    if backend is not None:
        flat["backend"] = backend
    if "job_base_dir" in cluster:
        flat["job_base_dir"] = cluster["job_base_dir"]
    connection = dict(_table(cluster, "backend_config", where, f"{name}.cluster.backend_config"))
    if "password" in connection:
        raise SlurmfileInvalidError(
            f"{where}: a password in [{name}.cluster.backend_config] is not read (anyone who "
            "can read the file could log in as you). Use an SSH key or the agent, or set "
            "$SLURM_SDK_PASSWORD, and remove the password from the file."
        )
    ignored = sorted(set(connection) & _IGNORED)
    if ignored:
        logger.warning(
            "%s: %s ignored: this SDK always offers the SSH agent and your keys "
            "(~/.ssh/config and ~/.ssh/id_*), with its own connection timeout",
            where,
            ", ".join(ignored),
        )
    for key in ignored:
        del connection[key]
    valid = sorted(SLURMFILE_KEYS - {"sbatch", "packaging", "backend_type"})
    unknown = sorted(set(connection) - set(valid))
    if unknown:
        raise SlurmfileInvalidError(
            f"{where}: unknown setting {unknown_names(unknown, valid)} in "
            f"[{name}.cluster.backend_config]. "
            f"Valid settings: {', '.join(valid)}; sbatch options go in [{name}.submit]."
        )
    for key, value in connection.items():
        if key in flat and flat[key] != value:
            raise SlurmfileInvalidError(
                f"{where}: {key} is given in [{name}.cluster] and in its backend_config, "
                "differently; give it once."
            )
        flat[key] = value
    if "packaging" in section:
        flat["packaging"] = section["packaging"]
    submit = _table(section, "submit", where)
    if submit:
        flat["sbatch"] = dict(submit)
    if "callbacks" in section:
        flat["callbacks"] = section["callbacks"]
    return flat


def _table(section: Mapping[str, Any], key: str, where: str, title: str = "") -> Mapping[str, Any]:
    value = section.get(key, {})
    if not isinstance(value, Mapping):
        raise SlurmfileInvalidError(
            f"{where}: {title or key} must be a table ([...{title or key}]), got {value!r}."
        )
    return value
