"""``ClusterSettings``: every setting of a ``Cluster``, declared once.

The ``Cluster`` keyword arguments, the argparse options of
``Cluster.add_argparse_args``, the click options of the ``slurm`` command and
the keys of a Slurmfile environment are all derived from :data:`FIELDS`, and
every value is type-checked in one place, whichever way it came in::

    Cluster(hostname="login", port=22)          # keyword arguments
    --hostname login --port 22                  # argparse and click
    [default]                                   # Slurmfile
    hostname = "login"
    port = 22
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from slurm._slurm.options import normalize_options
from slurm._transport.keypolicy import HOST_KEY_POLICIES, resolve_policy
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    import argparse

__all__ = [
    "BACKENDS",
    "FIELDS",
    "PASSWORD_VARIABLE",
    "SLURMFILE_KEYS",
    "ClusterSettings",
    "Field",
    "add_argparse_args",
    "choose_backend",
    "click_options",
    "settings_from_namespace",
    "unknown_names",
]

F = TypeVar("F", bound=Callable[..., Any])

BACKENDS = ("local", "ssh")


def choose_backend(backend: Any, hostname: Any) -> str:
    """The backend of a cluster: the one named, else ``ssh`` with a hostname, else ``local``.

    Every way of making a cluster (keyword arguments, ``--backend``/``--hostname``,
    a Slurmfile) asks here, so that the same settings give the same backend.

    Raises:
        ConfigurationError: not a backend this SDK knows.
    """
    chosen = backend or ("ssh" if hostname else "local")
    if not isinstance(chosen, str) or chosen.lower() not in BACKENDS:
        raise ConfigurationError(
            f"Unknown backend {chosen!r}: use 'local' (on the cluster, sbatch on PATH) "
            "or 'ssh' (with hostname=...)."
        )
    return chosen.lower()


def unknown_names(unknown: Iterable[str], valid: Iterable[str]) -> str:
    """``'hostnme' (did you mean 'hostname'?), 'x'``: the unknown names, each with the
    closest valid one, for an error message."""
    known = list(valid)
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(hints)


DEFAULT_JOB_BASE_DIR = "~/.slurm-sdk/jobs"


@dataclass(frozen=True)
class Field:
    """One setting: its name, type, help, and how the command line spells it.

    ``kind`` is ``"str"``, ``"int"``, ``"bool"``, ``"options"`` (a table of
    sbatch options) or ``"packaging"`` (a string or a table). ``flag`` is the
    command-line option (``None``: not on the command line); ``in_file`` says
    whether a Slurmfile may hold it (never a password).
    """

    name: str
    kind: str
    help: str
    flag: str | None = None
    in_file: bool = True
    choices: tuple[str, ...] = ()
    dest: str = ""  # the parsed option's name, when it is not ``name``

    @property
    def option_name(self) -> str:
        """The attribute argparse (or the parameter click) gives the parsed value."""
        return self.dest or self.name


FIELDS: tuple[Field, ...] = (
    Field("backend", "str", "ssh (default when --hostname is given) or local", "--backend",
          choices=BACKENDS),
    Field("hostname", "str", "login node or ~/.ssh/config alias (ssh backend)", "--hostname"),
    Field("port", "int", "SSH port", "--port"),
    Field("username", "str", "SSH user name", "--username"),
    # Never a command-line option (other users see argv in ps): $SLURM_SDK_PASSWORD.
    Field("password", "str", "SSH password (prefer keys or the agent)", None, in_file=False),
    Field("key_filename", "str", "SSH private key file", "--key-file"),
    Field("accept_new_host_key", "bool", "trust an SSH host key seen for the first time",
          "--accept-new-host-key"),
    Field("host_key_policy", "str", "an SSH host never seen before: reject (default), warn "
          "(accept it for this connection only) or auto (accept and save it)",
          "--host-key-policy", choices=HOST_KEY_POLICIES),
    Field("job_base_dir", "str", f"job directories (default {DEFAULT_JOB_BASE_DIR})",
          "--job-base-dir"),
    Field("default_partition", "str", "default Slurm partition", "--partition",
          dest="partition"),
    Field("default_account", "str", "default Slurm account", "--account", dest="account"),
    Field("python", "str", "Python interpreter on the cluster", "--python"),
    Field("packaging", "packaging", "how code reaches the cluster (auto, wheel, none, container)",
          "--packaging"),
    Field("max_array_size", "int", "split map() into arrays of at most this many elements",
          "--max-array-size"),
    Field("default_options", "options", "sbatch defaults of every job (a Slurmfile's "
          "[ENV.sbatch] table)"),
)  # fmt: skip

_BY_NAME = {f.name: f for f in FIELDS}
#: Keys of a Slurmfile environment (``sbatch`` holds ``default_options``).
SLURMFILE_KEYS = frozenset(
    {f.name for f in FIELDS if f.in_file and f.kind != "options"} | {"backend_type", "sbatch"}
)


def _check(spec: Field, value: Any, source: str) -> Any:
    """``value`` checked against ``spec.kind``; ``None`` means unset."""
    if value is None:
        return None
    expected = {"str": str, "int": int, "bool": bool}.get(spec.kind)
    ok = True
    if spec.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is not None:
        ok = isinstance(value, expected)
    elif spec.kind == "options":
        ok = isinstance(value, Mapping)
    elif spec.kind == "packaging":
        ok = isinstance(value, str | Mapping) or hasattr(value, "mode")
    if not ok:
        want = {
            "str": "a string",
            "int": "a whole number",
            "bool": "true or false (not a string)",
            "options": "a table of sbatch options",
            "packaging": "'auto', 'wheel', 'none', 'container' or a table",
        }[spec.kind]
        raise ConfigurationError(
            f"{source}: {spec.name} must be {want}, got {type(value).__name__} {value!r}."
        )
    if spec.choices and value not in spec.choices:
        raise ConfigurationError(
            f"{source}: {spec.name} must be one of {', '.join(spec.choices)}, got {value!r}."
        )
    return value


@dataclass(frozen=True)
class ClusterSettings:
    """A cluster's settings (see :data:`FIELDS` for each one); make it with
    :meth:`from_mapping`, which validates.

    Raises:
        ConfigurationError: a value of the wrong type, an unknown backend or
            packaging, an SSH backend without a host name, a port or array
            size out of range. The message names the setting and what to do.
    """

    backend: str = "local"
    hostname: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    key_filename: str | None = None
    accept_new_host_key: bool = False
    host_key_policy: str | None = None
    job_base_dir: str | None = None
    default_partition: str | None = None
    default_account: str | None = None
    python: str | None = None
    packaging: Any = None
    max_array_size: int | None = None
    default_options: Mapping[str, Any] | None = None

    def validate(self, source: str) -> None:
        """Check every value; ``source`` says where the settings came from."""
        for spec in FIELDS:
            _check(spec, getattr(self, spec.name), source)
        resolve_policy(self.host_key_policy, self.accept_new_host_key)
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigurationError(f"{source}: port must be 1-65535, got {self.port}.")
        if self.max_array_size is not None and self.max_array_size < 1:
            raise ConfigurationError(
                f"{source}: max_array_size must be at least 1, got {self.max_array_size}."
            )
        if self.packaging is not None:
            from slurm._slurm.packaging import parse_spec

            parse_spec(self.packaging)
        if self.default_options:
            normalize_options(self.default_options)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str) -> ClusterSettings:
        """Settings from a mapping (keyword arguments, a Slurmfile section).

        Raises:
            ConfigurationError: an unknown key (with the closest valid one) or a bad value.
        """
        values = dict(values)
        if "backend_type" in values:
            values["backend"] = values.pop("backend_type")
        unknown = sorted(set(values) - set(_BY_NAME))
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown setting {unknown_names(unknown, _BY_NAME)}. Valid settings: "
                f"{', '.join(sorted(_BY_NAME))}."
            )
        for key, value in values.items():
            _check(_BY_NAME[key], value, source)
        if values.get("backend") is None:
            values["backend"] = "ssh" if values.get("hostname") else "local"
        settings = cls(**values)
        settings.validate(source)
        return settings


# --- the command line, derived -----------------------------------------------------------


_NO_PASSWORD_OPTION = (
    "--password is not accepted: every user of this machine can read a command line. "  # noqa: S105 (a message)
    "Use an SSH key or the agent, or set $SLURM_SDK_PASSWORD."
)


def add_argparse_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every setting that has a command-line flag to ``parser`` (group "cluster")."""
    import argparse  # the caller's parser has loaded it; a cluster alone never does

    class _RefusePassword(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
            parser.error(_NO_PASSWORD_OPTION)

    group = parser.add_argument_group("cluster")
    group.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    for spec in FIELDS:
        if spec.flag is None:
            continue
        if spec.kind == "bool":
            group.add_argument(
                spec.flag, dest=spec.option_name, action="store_true", help=spec.help
            )
        else:
            group.add_argument(
                spec.flag,
                dest=spec.option_name,
                type=int if spec.kind == "int" else str,
                choices=spec.choices or None,
                default=None,
                help=spec.help,
            )
    return parser


def click_options(command: F) -> F:
    """Add every setting that has a command-line flag to a click command."""
    import click

    def refuse_password(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            raise click.UsageError(_NO_PASSWORD_OPTION, ctx)

    command = click.option("--password", hidden=True, expose_value=False, callback=refuse_password)(
        command
    )

    for spec in reversed(FIELDS):
        if spec.flag is None:
            continue
        help_text = spec.help[0].upper() + spec.help[1:] + "."
        if spec.kind == "bool":
            option = click.option(spec.flag, spec.option_name, is_flag=True, help=help_text)
        else:
            option = click.option(
                spec.flag,
                spec.option_name,
                type=click.Choice(spec.choices)
                if spec.choices
                else (int if spec.kind == "int" else str),
                default=None,
                help=help_text,
            )
        command = option(command)
    return command


#: Where the command line takes an SSH password from (never from an option: argv is
#: visible to every user of the machine).
PASSWORD_VARIABLE = "SLURM_SDK_PASSWORD"  # noqa: S105 (a variable name)


def settings_from_namespace(values: Mapping[str, Any]) -> dict[str, Any]:
    """Cluster keyword arguments from parsed command-line options (unset ones left out),
    and the SSH password from ``$SLURM_SDK_PASSWORD`` when it is set."""
    chosen: dict[str, Any] = {}
    if os.environ.get(PASSWORD_VARIABLE):
        chosen["password"] = os.environ[PASSWORD_VARIABLE]
    for spec in FIELDS:
        if spec.flag is None:
            continue
        value = values.get(spec.option_name)
        if value is None or (spec.kind == "bool" and not value):
            continue
        chosen[spec.name] = value
    return chosen
