"""Job options: names, validation, precedence and rendering as sbatch flags.

Option names are sbatch's long options with ``-`` written as ``_``
(``cpus_per_task`` for ``--cpus-per-task``), plus a few the SDK itself
understands (:data:`SDK_OPTIONS`). Values:

* ``None`` or ``True`` -- a bare flag (``exclusive=None`` gives ``--exclusive``),
  only for the options sbatch takes without a value (:data:`SWITCHES`); any
  other option needs a value;
* ``False`` -- leave the option out (useful to switch off a lower layer's value);
* ``int``, ``float``, ``str`` (or a path) -- ``--name=value``. Counts
  (``cpus_per_task``, ``nodes``, ...) must be whole numbers of at least 1,
  times and memory sizes fit Slurm's 32- and 64-bit fields, a float must be
  finite, and a string must be encodable as UTF-8.

Everything here is pure: no I/O, no Slurm calls. Options are merged once, in
:func:`merge_options`, with precedence lowest first: cluster defaults, config
file, decorator, ``with_options``, submit-time overrides.

Example::

    >>> opts = merge_options({"partition": "cpu"}, {"time": "5", "name": "train"})
    >>> sbatch_flags(opts)
    ['--job-name=train', '--partition=cpu', '--time=5']
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from slurm.errors import InvalidOptionError

__all__ = [
    "ALIASES",
    "FILENAME_PATTERN_OPTIONS",
    "RESERVED_OPTIONS",
    "SBATCH_OPTIONS",
    "SDK_MANAGED_OPTIONS",
    "SDK_OPTIONS",
    "SWITCHES",
    "check_task_options",
    "literal_filename_pattern",
    "merge_options",
    "module_lines",
    "normalize_option_name",
    "normalize_options",
    "sbatch_flags",
    "split_options",
]

#: Every long option of ``sbatch`` (Slurm 22.05 and later), ``-`` written as ``_``.
SBATCH_OPTIONS: frozenset[str] = frozenset(
    {
        "account",
        "acctg_freq",
        "array",
        "batch",
        "bb",
        "bbf",
        "begin",
        "chdir",
        "cluster_constraint",
        "clusters",
        "comment",
        "constraint",
        "container",
        "contiguous",
        "core_spec",
        "cores_per_socket",
        "cpu_freq",
        "cpus_per_gpu",
        "cpus_per_task",
        "deadline",
        "delay_boot",
        "dependency",
        "distribution",
        "error",
        "exclude",
        "exclusive",
        "export",
        "export_file",
        "extra_node_info",
        "get_user_env",
        "gid",
        "gpu_bind",
        "gpu_freq",
        "gpus",
        "gpus_per_node",
        "gpus_per_socket",
        "gpus_per_task",
        "gres",
        "gres_flags",
        "help",
        "hint",
        "hold",
        "ignore_pbs",
        "input",
        "job_name",
        "kill_on_invalid_dep",
        "licenses",
        "mail_type",
        "mail_user",
        "mcs_label",
        "mem",
        "mem_bind",
        "mem_per_cpu",
        "mem_per_gpu",
        "mincpus",
        "network",
        "nice",
        "no_kill",
        "no_requeue",
        "nodefile",
        "nodelist",
        "nodes",
        "ntasks",
        "ntasks_per_core",
        "ntasks_per_gpu",
        "ntasks_per_node",
        "ntasks_per_socket",
        "open_mode",
        "output",
        "overcommit",
        "oversubscribe",
        "parsable",
        "partition",
        "power",
        "prefer",
        "priority",
        "profile",
        "propagate",
        "qos",
        "quiet",
        "reboot",
        "requeue",
        "reservation",
        "signal",
        "sockets_per_node",
        "spread_job",
        "switches",
        "test_only",
        "thread_spec",
        "threads_per_core",
        "time",
        "time_min",
        "tmp",
        "uid",
        "usage",
        "use_min_nodes",
        "verbose",
        "version",
        "wait",
        "wait_all_nodes",
        "wckey",
        "wrap",
    }
)

#: Options the SDK understands in the same keyword set that are not sbatch flags.
SDK_OPTIONS: frozenset[str] = frozenset(
    {
        "packaging",
        "python",
        "max_requeues",
        "requeue_grace",
        "requeue_on_time_limit",
        "retry",
        "setup",
        "modules",
        # cache=True: results kept across runs (slurm._client.cachekey, slurm._client.cache)
        "cache",
        "cache_key",
        "cache_on",
        "container_image",
        "container_mounts",
        "container_workdir",
        "container_runtime",
        "container_gpu_vendor",
        "srun_args",
        # packaging="container": the image's build keys (slurm._client.packaging.container)
        "packaging_dockerfile",
        "packaging_context",
        "packaging_registry",
        "packaging_name",
        "packaging_push",
        "packaging_platform",
        "packaging_tls_verify",
        "packaging_runtime",
        "packaging_build_args",
        "packaging_build_secrets",
        "packaging_no_cache",
        "packaging_use_digest",
    }
)

#: Friendly spellings accepted for compatibility, mapped to the real option name.
ALIASES: Mapping[str, str] = {
    "name": "job_name",
    "memory": "mem",
}

#: sbatch options the SDK sets or relies on itself; a user may not set them.
RESERVED_OPTIONS: Mapping[str, str] = {
    "parsable": "the SDK passes --parsable itself to read the job id sbatch prints",
    "wrap": "the SDK writes the batch script itself; put shell lines in `setup=`",
    "wait": "it would block submission until the job ends; use Job.wait() instead",
    "test_only": "sbatch would not submit the job, so there is no job id to track",
    "help": "it prints help instead of submitting",
    "usage": "it prints usage instead of submitting",
    "version": "it prints the version instead of submitting",
}

#: sbatch options the SDK sets for every job itself: a task or a cluster's defaults
#: may not set them (they would be overwritten or break tracking); each says where
#: the setting belongs instead.
SDK_MANAGED_OPTIONS: Mapping[str, str] = {
    "output": "the SDK writes each job's stdout into its job directory; read it with "
    "job.get_stdout(), or write your own files from the task",
    "error": "the SDK writes each job's stderr into its job directory; read it with "
    "job.get_stderr(), or write your own files from the task",
    "comment": "the SDK tags each job with --comment=slurm-sdk:<job directory> to find it "
    "again after a lost connection; put notes in the job name (job_name=) instead",
    "dependency": "use task.after(job) (or .after(job, kind='afterany')), or pass a Job as "
    "an argument, which waits for it and passes its result",
    "array": "use task.map(items) (max_concurrent=N for the %N limit)",
    "clusters": "a Cluster submits to and tracks one Slurm cluster; make a Cluster for "
    "the other one",
}

#: Options whose value is a Slurm filename pattern (``%j``, ``%x``, ``%%``, ...).
FILENAME_PATTERN_OPTIONS: frozenset[str] = frozenset({"output", "error", "input"})

#: Options sbatch takes without a value (some take an optional one, e.g. ``exclusive=user``).
SWITCHES: frozenset[str] = frozenset(
    {
        "contiguous",
        "exclusive",
        "get_user_env",
        "help",
        "hold",
        "ignore_pbs",
        "nice",
        "no_kill",
        "no_requeue",
        "overcommit",
        "oversubscribe",
        "parsable",
        "propagate",
        "quiet",
        "reboot",
        "requeue",
        "spread_job",
        "test_only",
        "usage",
        "use_min_nodes",
        "verbose",
        "version",
        "wait",
    }
)

#: Options that count something: a whole number of at least 1 when given as a number.
_COUNT_OPTIONS = frozenset(
    {
        "cores_per_socket",
        "cpus_per_gpu",
        "cpus_per_task",
        "gpus",
        "gpus_per_node",
        "gpus_per_socket",
        "gpus_per_task",
        "mincpus",
        "nodes",
        "ntasks",
        "ntasks_per_core",
        "ntasks_per_gpu",
        "ntasks_per_node",
        "ntasks_per_socket",
        "sockets_per_node",
        "threads_per_core",
    }
)
_MAX_COUNT = 2**31 - 1
# Slurm keeps a time limit in minutes in 32 bits (the top values mean "unset"/"infinite")
# and memory in megabytes in 63 bits.
_MAX_MINUTES = 2**32 - 3
_MAX_MEGABYTES = 2**63 - 1
_MEMORY_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}

_TIME_OPTIONS = frozenset({"time", "time_min"})
_MEMORY_OPTIONS = frozenset({"mem", "mem_per_cpu", "mem_per_gpu"})

_TIME_UNLIMITED = frozenset({"unlimited", "infinite"})
_MEMORY_UNIT_LETTERS = "KMGTkmgt"
_FORBIDDEN_CHARS = ("\n", "\r", "\x00")


def _valid_names_hint() -> str:
    sdk = ", ".join(sorted(SDK_OPTIONS))
    aliases = ", ".join(f"{a}={t}" for a, t in sorted(ALIASES.items()))
    return (
        "Options are sbatch's long options with '-' written as '_' (see `man sbatch`, "
        f"or slurm._slurm.options.SBATCH_OPTIONS), plus the SDK's own: {sdk}; aliases: {aliases}."
    )


def normalize_option_name(name: str) -> str:
    """Return the canonical name of an option.

    Lower-cases, strips leading dashes, writes ``-`` as ``_`` and resolves
    aliases (``name`` -> ``job_name``, ``memory`` -> ``mem``).

    Raises:
        InvalidOptionError: the name is neither an sbatch long option nor one
            of :data:`SDK_OPTIONS`; the message suggests the closest names.

    Example::

        >>> normalize_option_name("--cpus-per-task")
        'cpus_per_task'
    """
    if not isinstance(name, str):
        raise InvalidOptionError(f"Option names must be strings, got {name!r}.")
    key = name.strip().lstrip("-").lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in SBATCH_OPTIONS or key in SDK_OPTIONS:
        return key
    candidates = sorted(SBATCH_OPTIONS | SDK_OPTIONS | set(ALIASES))
    import difflib

    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    suggestion = ""
    if close:
        suggestion = " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    raise InvalidOptionError(f"Unknown Slurm option {name!r}.{suggestion} {_valid_names_hint()}")


def _check_time(name: str, value: Any) -> Any:
    accepted = (
        "Accepted: minutes as an int, a datetime.timedelta, or a string "
        "'M', 'M:S', 'H:M:S', 'D-H', 'D-H:M', 'D-H:M:S', 'UNLIMITED'/'infinite'."
    )
    # A timedelta exists only once its module was imported: the job's start need not import it.
    datetime = sys.modules.get("datetime")
    if datetime is not None and isinstance(value, datetime.timedelta):
        total = int(value.total_seconds())
        if total < 0:
            raise InvalidOptionError(f"Option {name!r} must not be negative: {value!r}. {accepted}")
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    if isinstance(value, int):
        if value < 0:
            raise InvalidOptionError(f"Option {name!r} must not be negative: {value!r}. {accepted}")
        return _check_minutes(name, value, value)
    if isinstance(value, str) and value.strip().lower() in _TIME_UNLIMITED:
        return value.strip()
    if isinstance(value, str) and _is_slurm_time(value.strip()):
        return _check_minutes(name, _minutes(value.strip()), value.strip())
    raise InvalidOptionError(f"Invalid value for option {name!r}: {value!r}. {accepted}")


def _digits(text: str) -> bool:
    """``text`` is one or more of 0-9 (``str.isdigit`` alone takes other scripts' digits)."""
    return text.isascii() and text.isdigit()


def _is_slurm_time(text: str) -> bool:
    """One of Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (without :mod:`re`,
    which a job's start need not import: the node imports the user's module, decorators and
    all)."""
    days, dash, clock = text.partition("-")
    if not dash:
        days, clock = "0", text
    parts = clock.split(":")
    return _digits(days) and len(parts) <= 3 and all(_digits(part) for part in parts)


def _is_memory(text: str) -> bool:
    """``<integer>[K|M|G|T]``, the unit in either case."""
    number = text[:-1] if text and text[-1] in _MEMORY_UNIT_LETTERS else text
    return _digits(number)


def _minutes(text: str) -> float:
    """Minutes in one of Slurm's time formats (already checked by :func:`_is_slurm_time`)."""
    days, _, clock = text.rpartition("-") if "-" in text else ("", "", text)
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = [*parts, 0, 0][:3]
        return int(days) * 1440 + hours * 60 + minutes + seconds / 60
    if len(parts) == 3:  # H:M:S
        return parts[0] * 60 + parts[1] + parts[2] / 60
    return parts[0] + (parts[1] / 60 if len(parts) == 2 else 0)  # M or M:S


def _check_minutes(name: str, minutes: float, value: Any) -> Any:
    if minutes > _MAX_MINUTES:
        raise InvalidOptionError(
            f"Option {name!r} is {value!r}, more than Slurm can hold ({_MAX_MINUTES} minutes); "
            "use 'UNLIMITED' for no limit."
        )
    return value


def _check_memory(name: str, value: Any) -> Any:
    accepted = (
        "Accepted: an int (megabytes) or a string '<integer>[K|M|G|T]', "
        "e.g. '512M', '4G' (no decimals: write '1536M' for 1.5G)."
    )
    if isinstance(value, int):
        if value < 0:
            raise InvalidOptionError(f"Option {name!r} must not be negative: {value!r}. {accepted}")
        megabytes: float = value
    elif isinstance(value, str) and _is_memory(value.strip()):
        text = value.strip()
        unit = text[-1].upper() if text[-1].isalpha() else ""
        megabytes = int(text.rstrip("KMGTkmgt")) * _MEMORY_UNITS[unit]
        value = text
    else:
        raise InvalidOptionError(f"Invalid value for option {name!r}: {value!r}. {accepted}")
    if megabytes > _MAX_MEGABYTES:
        raise InvalidOptionError(
            f"Option {name!r} is {value!r}, more memory than Slurm can hold "
            f"({_MAX_MEGABYTES} MB). {accepted}"
        )
    return value


def _check_number(name: str, value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidOptionError(f"Option {name!r} must be a finite number, got {value!r}.")
    if name in _COUNT_OPTIONS:
        if not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
            raise InvalidOptionError(
                f"Option {name!r} counts something: give a whole number from 1 to "
                f"{_MAX_COUNT}, got {value!r}."
            )
    elif abs(value) > _MAX_COUNT:
        raise InvalidOptionError(
            f"Option {name!r} is {value!r}, out of the range Slurm accepts "
            f"(-{_MAX_COUNT} to {_MAX_COUNT})."
        )
    return value


def _check_value(name: str, value: Any) -> Any:
    """Validate one sbatch option value; return it in canonical form."""
    if value is False:
        return value
    if value is None or value is True:
        if name in SWITCHES:
            return value
        raise InvalidOptionError(
            f"Option {name!r} needs a value (got {value!r}); only switches such as "
            f"exclusive, requeue or hold may be bare. Give {name}=<value>, or False to "
            "leave it out."
        )
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            raise InvalidOptionError(f"Option {name!r}: bytes paths are not supported.")
    if name in _TIME_OPTIONS:
        return _check_time(name, value)
    if name in _MEMORY_OPTIONS:
        return _check_memory(name, value)
    if isinstance(value, int | float):
        return _check_number(name, value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidOptionError(
                f"Option {name!r} cannot be encoded as UTF-8 ({value!r}: {exc.reason}); "
                "pass text without lone surrogates."
            ) from None
        if not value:
            raise InvalidOptionError(
                f"Option {name!r} has an empty value. Use None (or True) for a bare flag, "
                "False to leave the option out."
            )
        bad = [c for c in _FORBIDDEN_CHARS if c in value]
        if bad:
            raise InvalidOptionError(
                f"Option {name!r} contains a newline, carriage return or NUL character "
                f"({value!r}); such a value cannot be passed to sbatch safely."
            )
        return value
    raise InvalidOptionError(
        f"Option {name!r} has a value of type {type(value).__name__} ({value!r}). "
        "Use a str, int or float; None or True for a bare flag; False to leave it out."
    )


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise the names and validate the values of one layer of options.

    SDK options (:data:`SDK_OPTIONS`) pass through unchanged; sbatch options
    are validated (see the module docstring). ``time``/``time_min`` must use
    one of Slurm's time formats; ``mem``/``mem_per_cpu``/``mem_per_gpu`` must
    be ``<integer>[K|M|G|T]`` (an int means megabytes).

    Raises:
        InvalidOptionError: unknown name, two names for the same option, an
            option the SDK reserves for itself, or a value sbatch would reject
            or that cannot be passed safely.

    Example::

        >>> normalize_options({"Job-Name": "x", "memory": 512})
        {'job_name': 'x', 'mem': 512}
    """
    result: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for raw_name, value in options.items():
        key = normalize_option_name(raw_name)
        if key in result:
            raise InvalidOptionError(
                f"Options {origin[key]!r} and {raw_name!r} both set {key!r}; give only one."
            )
        if key in RESERVED_OPTIONS and value is not False:
            raise InvalidOptionError(f"Option {raw_name!r} cannot be set: {RESERVED_OPTIONS[key]}.")
        origin[key] = raw_name
        result[key] = value if key in SDK_OPTIONS else _check_value(key, value)
    return result


def _check_setup(value: Any) -> str | None:
    lines = [value] if isinstance(value, str) else value
    if isinstance(lines, list | tuple) and all(isinstance(line, str) for line in lines):
        return None
    return "setup= takes a shell line or a list of shell lines (e.g. ['module load cuda'])"


def _check_modules(value: Any) -> str | None:
    names = [value] if isinstance(value, str) else value
    if isinstance(names, list | tuple) and all(
        isinstance(n, str) and n and not any(c.isspace() for c in n) for n in names
    ):
        return None
    return "modules= takes environment module names (e.g. ['gcc/12', 'cuda/12.2'])"


def module_lines(value: Any) -> list[str]:
    """``modules=`` (the earlier SDK's) as the batch script's ``module load`` lines."""
    import shlex

    names = [value] if isinstance(value, str) else list(value or ())
    return [f"module load {shlex.quote(name)}" for name in names]


def _check_count(name: str, value: Any, minimum: int) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return None
    return f"{name}= takes a whole number >= {minimum}"


def check_task_options(options: Mapping[str, Any], *, where: str = "@task") -> None:
    """Refuse, at decoration, options that could not take effect for a task.

    ``options`` are normalised (:func:`normalize_options`). sbatch options the
    SDK sets itself (:data:`SDK_MANAGED_OPTIONS`) are refused with where the
    setting belongs; SDK options are checked: ``python`` an interpreter path,
    ``packaging`` as ``Cluster(packaging=...)``, ``setup`` shell lines,
    ``max_requeues`` and ``requeue_grace`` whole numbers.

    Raises:
        InvalidOptionError: an option is refused or its value is wrong.
    """
    for key, value in options.items():
        problem: str | None = None
        if key in SDK_MANAGED_OPTIONS and value is not False:
            problem = f"it cannot be set: {SDK_MANAGED_OPTIONS[key]}"
        elif key == "python" and (not isinstance(value, str | os.PathLike) or not str(value)):
            problem = "python= takes the path of an interpreter on the cluster, as a string"
        elif key == "setup":
            problem = _check_setup(value)
        elif key == "modules":
            problem = _check_modules(value)
        elif key == "max_requeues":
            problem = _check_count(key, value, 0)
        elif key == "requeue_grace":
            problem = _check_count(key, value, 1)
        elif key == "requeue_on_time_limit" and not isinstance(value, bool):
            problem = "it takes True (requeue at the time limit even without a checkpoint) or False"
        elif key in ("cache", "cache_key", "cache_on"):
            problem = _check_cache(key, value)
        elif key == "packaging":
            from slurm._slurm.packaging import parse_spec
            from slurm.errors import ConfigurationError

            try:
                parse_spec(value)
            except ConfigurationError as exc:
                problem = str(exc)
        if problem:
            raise InvalidOptionError(f"{key}={value!r} in {where}: {problem}.")


def _check_cache(key: str, value: Any) -> str | None:
    """``cache`` a bool, ``cache_key`` a function, ``cache_on`` option names."""
    if key == "cache":
        return None if isinstance(value, bool) else "it takes True or False"
    if key == "cache_key":
        ok = value is None or callable(value)
        return None if ok else "it takes a function of the call's arguments returning its key"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        return "it takes the names of options whose values the result depends on"
    unknown = []
    for name in names:
        try:
            normalize_option_name(name)
        except InvalidOptionError:
            unknown.append(name)
    if unknown:
        return (
            f"{', '.join(map(repr, unknown))} is no option name; name sbatch or SDK options "
            "such as 'partition', 'gres' or 'container_image'"
        )
    return None


def merge_options(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalise each layer and merge them; later layers win, ``None`` layers are skipped.

    Pass the layers lowest precedence first: cluster defaults, config file,
    decorator, ``with_options``, submit-time overrides. A ``False`` value is
    kept in the result so that it overrides lower layers; :func:`sbatch_flags`
    leaves it out.

    Raises:
        InvalidOptionError: as :func:`normalize_options`, for any layer.

    Example::

        >>> merge_options({"time": "10", "mem": "1G"}, None, {"time": "20"})
        {'time': '20', 'mem': '1G'}
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            merged.update(normalize_options(layer))
    return merged


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split normalised options into ``(sbatch options, SDK options)``."""
    sbatch = {k: v for k, v in options.items() if k not in SDK_OPTIONS}
    sdk = {k: v for k, v in options.items() if k in SDK_OPTIONS}
    return sbatch, sdk


def _format_value(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return str(value)


def sbatch_flags(options: Mapping[str, Any]) -> list[str]:
    """Render normalised options as sbatch long flags, sorted by name.

    SDK options and ``False`` values are left out; ``None``/``True`` give a
    bare flag. The flags are argv items (no shell quoting); the batch script
    quotes them for ``#SBATCH`` lines itself.

    Example::

        >>> sbatch_flags({"time": "00:05:00", "exclusive": None, "python": "python3"})
        ['--exclusive', '--time=00:05:00']
    """
    flags: list[str] = []
    for key in sorted(options):
        value = options[key]
        if key in SDK_OPTIONS or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is None or value is True else f"{flag}={_format_value(value)}")
    return flags


def literal_filename_pattern(path: str | os.PathLike[str]) -> str:
    """Write a path as an sbatch filename pattern that means exactly that path.

    ``--output``/``--error``/``--input`` expand ``%j``-style symbols, so a
    literal ``%`` must be written ``%%``. Slurm also removes every backslash
    from these options (a backslash switches pattern expansion off), so a path
    containing one cannot be represented.

    Raises:
        InvalidOptionError: the path contains a backslash, newline or NUL.

    Example::

        >>> literal_filename_pattern("/runs/100% done/out.txt")
        '/runs/100%% done/out.txt'
    """
    text = os.fspath(path)
    if any(c in text for c in ("\\", "\n", "\r", "\x00")):
        raise InvalidOptionError(
            f"Path {text!r} cannot be used for Slurm's --output/--error/--input: Slurm strips "
            "backslashes from these options, and newlines cannot be passed. Choose a path "
            "without backslashes or control characters."
        )
    return text.replace("%", "%%")
