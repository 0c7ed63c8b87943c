"""The environment on the cluster: uploaded once, created once, reused by every job.

Layout under the environments directory (default ``{job_base_dir}/.envs``)::

    .store/<sha256>/<wheel file>   every uploaded wheel, by content (shared by all envs)
    <key>/                         one environment; <key> hashes wheels + Python + platform
        .lock/                     held (mkdir) while it is being created
        wheels/                    links to this environment's wheels in .store
        requirements.txt           the shipped wheels (project, SDK)
        constraints.txt            the pinned dependency versions
        venv/                      the virtual environment; jobs run venv/bin/python
        install.log                what the installer said
        ready.json                 written last: the environment is complete, with its
                                   key and the manifest hash of venv/
        last_used                  touched on every use (`slurm jobs prune` goes by it)

Nothing is trusted because a file exists. A stored wheel is used only if its
SHA-256 is the one its directory names (otherwise it is uploaded again), and an
environment is reused only if ``ready.json`` names its key and the manifest of
``venv/`` hashes as it did when it was created. The manifest lists every entry
of ``venv/`` (path, type, size, mode, owner and change time of each file; path,
mode and owner of each directory; ``__pycache__`` left out, since jobs write
byte code there): any write, chmod, added or removed file changes it, and a
change time cannot be set back by the user. Contents are
not re-read, so that a large environment is checked in a fraction of a second.

The environment is created with ``uv`` when the cluster has it, else with
``python -m venv`` and pip, from the base interpreter. The install is tried
offline first (``--no-index --find-links wheels``); if that fails it is
retried against the cluster's package index (and the ``extra_index_url``
ones), and the log says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from slurm._client.packaging.lock import DirLock, LockPolicy
from slurm._client.packaging.wheels import Wheel
from slurm._client.preflight import PythonInfo
from slurm._transport.base import Transport
from slurm.errors import CommandError, ConfigurationError

__all__ = [
    "LAYOUT_VERSION",
    "Environment",
    "create_script",
    "ensure_environment",
    "environment_key",
]

logger = logging.getLogger(__name__)

LAYOUT_VERSION = "2"
READY = "ready.json"
#: Prints the manifest hash of the venv/ in "$env" (see the module docstring).
# Directories count by name, mode and owner only: a job writing a new __pycache__
# changes its parent's size and times.
_MANIFEST = (
    'cd -- "$env/venv" && find . -name __pycache__ -prune -o '
    "-type d -printf '%P|d|%m|%U\\n' -o "
    "-printf '%P|%y|%s|%m|%U|%C@\\n' | LC_ALL=C sort | sha256sum | cut -d' ' -f1"
)
_INSTALL_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Environment:
    """An environment on the cluster.

    Attributes:
        key: Content hash naming it.
        path: Its directory.
        python: The interpreter jobs run (``path/venv/bin/python``).
        created: Whether this call created it (``False``: it was there, or
            another client created it meanwhile).
        install: ``"offline"`` or ``"index"`` when created here, else ``""``.
        timings: Seconds spent per step (``build``, ``check``, ``upload``, ``create``).
    """

    key: str
    path: str
    python: str
    created: bool
    install: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def environment_key(
    wheels: Sequence[Wheel], pins: Sequence[str], info: PythonInfo, *, extra: str = ""
) -> str:
    """A content hash of everything that makes an environment what it is.

    The bytes of every wheel (by SHA-256), the pinned dependency versions, the
    cluster interpreter's version, implementation, platform, C library and
    path, and the layout version. File names and upload times do not count.
    """
    data = {
        "layout": LAYOUT_VERSION,
        "wheels": sorted(w.sha256 for w in wheels),
        "pins": sorted(pins),
        "python": [
            info.version,
            info.implementation,
            info.platform,
            info.libc,
            info.libc_version,
            info.executable,
        ],
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def _store_path(envs_dir: str, wheel: Wheel) -> str:
    return f"{envs_dir}/.store/{wheel.sha256}/{wheel.filename}"


def create_script(
    env_dir: str,
    base_python: str,
    links: Sequence[str],
    uv: str | None,
    indexes: Sequence[str] = (),
    check: str = "import slurm.runner",
) -> str:
    """The shell script that creates ``env_dir/venv``; every value is quoted.

    ``indexes`` (``extra_index_url``) are offered to the install from the index, the
    one tried when the offline install lacks something; ``check`` is the Python the
    new environment must run. It prints ``install|offline`` or ``install|index``
    last; a non-zero exit means the environment could not be created.
    """
    q = shlex.quote
    more = "".join(f" --extra-index-url {q(url)}" for url in indexes)
    lines = [
        "set -u",
        f"env={q(env_dir)}; base={q(base_python)}; uv={q(uv or '')}",
        # No uv.toml/pyproject.toml from the directories above, no module of the working
        # directory (`python -m venv` puts it first on sys.path): the tools run in "$env".
        "export UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        'case $env in /*) ;; *) env="$PWD/$env" ;; esac',
        'case $base in /*) ;; */*) base="$PWD/$base" ;; esac',
        'rm -rf -- "$env/venv" "$env/wheels"',
        'mkdir -p -- "$env/wheels" && cd -- "$env" || exit 1',
        "for f in " + " ".join(q(link) for link in links) + "; do",
        '  ln -s -- "$f" "$env/wheels/" || exit 1',
        "done",
        # The installer's own arguments are relative to "$env": uv reads " #" in a path
        # (a base directory's name) as the start of a comment.
        "req=./requirements.txt; con=./constraints.txt",
        'if [ -n "$uv" ]; then',
        '  "$uv" venv --quiet --python "$base" "$env/venv" || exit 1',
        '  inst() { "$uv" pip install --python "$env/venv/bin/python" --link-mode copy '
        '--compile-bytecode "$@" -r "$req" -c "$con"; }',
        "else",
        '  "$base" -m venv "$env/venv" || exit 1',
        '  inst() { "$env/venv/bin/python" -m pip install --no-input "$@" -r "$req" -c "$con"; }',
        "fi",
        "if inst --no-index --find-links ./wheels; then mode=offline",
        "else",
        '  echo "slurm-sdk: the offline install failed; installing from the package index" >&2',
        f"  inst --find-links ./wheels{more} || exit 1",
        "  mode=index",
        "fi",
        f'"$env/venv/bin/python" -c {q(check)} || exit 1',
        'echo "install|$mode"',
    ]
    return "\n".join(lines) + "\n"


def ensure_environment(
    transport: Transport,
    envs_dir: str,
    *,
    main: Sequence[Wheel],
    deps: Sequence[Wheel],
    pins: Sequence[str],
    info: PythonInfo,
    uv: str | None,
    policy: LockPolicy | None = None,
    requirements: Sequence[str] = (),
    indexes: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Environment:
    """The environment for these wheels on the cluster, created if it does not exist yet.

    Args:
        transport: The cluster.
        envs_dir: The environments directory (absolute).
        main: Wheels installed by name (the SDK, the user's project).
        deps: Dependency wheels offered to the offline install.
        pins: ``name==version`` constraints for the install.
        info: The base interpreter (from the preflight).
        uv: ``uv`` on the cluster, or ``None`` to use ``python -m venv`` and pip.
        policy: Lock timeouts.
        requirements: More ``name==version`` lines to install (the distributions
            the shipped local source imports).
        indexes: More package indexes for the install from the index (``extra_index_url``).
        env: More environment for the installer (the packaging's ``env``).

    Raises:
        ConfigurationError: The environment cannot be created (with the installer's output).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    extra = "\n".join([*sorted(requirements), *(f"--extra-index-url {u}" for u in indexes)])
    key = environment_key([*main, *deps], pins, info, extra=extra)
    env_dir = f"{envs_dir}/{key}"
    python = f"{env_dir}/venv/bin/python"
    ready = f"{env_dir}/{READY}"
    found = _verified(transport, env_dir, key)
    timings["check"] = time.perf_counter() - started
    if found:
        return Environment(key, env_dir, python, created=False, timings=timings)
    started = time.perf_counter()
    wheels = list({w.sha256: w for w in [*main, *deps]}.values())
    uploaded = _upload_missing(transport, envs_dir, wheels)
    timings["upload"] = time.perf_counter() - started
    transport.mkdir(env_dir, mode=0o700)
    lock = DirLock(transport, f"{env_dir}/.lock", policy)
    started = time.perf_counter()
    if not lock.acquire(ready_path=ready):
        timings["wait"] = time.perf_counter() - started
        return Environment(key, env_dir, python, created=False, timings=timings)
    try:
        if _verified(transport, env_dir, key):
            return Environment(key, env_dir, python, created=False, timings=timings)
        started = time.perf_counter()
        install = _create(
            transport,
            env_dir,
            [*main, *requirements],
            wheels,
            pins,
            info,
            uv,
            envs_dir,
            indexes,
            env,
        )
        timings["create"] = time.perf_counter() - started
        record = {
            "key": key,
            "created": time.time(),
            "host": socket.gethostname(),
            "install": install,
            "python": info.version,
            "base": info.executable,
            "wheels": sorted(w.filename for w in wheels),
            "wheel_sha256": sorted(w.sha256 for w in wheels),
            "uploaded": uploaded,
            "manifest": _manifest(transport, env_dir),
        }
        transport.write_text(ready, json.dumps(record, indent=1) + "\n", mode=0o644)
    finally:
        lock.release()
    logger.info(
        "created the environment %s on %s in %.1f s (%s install)",
        env_dir,
        transport.description,
        timings["create"],
        install,
    )
    return Environment(key, env_dir, python, created=True, install=install, timings=timings)


def _manifest(transport: Transport, env_dir: str) -> str:
    """The manifest hash of ``env_dir/venv`` (see the module docstring)."""
    script = f"env={shlex.quote(env_dir)}\n{_MANIFEST}\n"
    return transport.run(["sh", "-c", script], check=True).stdout.strip()


def _verified(transport: Transport, env_dir: str, key: str) -> bool:
    """Whether the environment is complete and unchanged (``False``: not created yet).

    Raises:
        ConfigurationError: ``ready.json`` names another key, or ``venv/`` changed
            since it was created.
    """
    script = (
        f"env={shlex.quote(env_dir)}\n"
        f'cat -- "$env/{READY}" 2>/dev/null || exit 0\n'
        'touch -- "$env/last_used" 2>/dev/null\n'  # what `slurm jobs prune` goes by
        'echo; echo "@@manifest"\n'
        f"{_MANIFEST}\n"
    )
    out = transport.run(["sh", "-c", script], check=True).stdout
    if not out.strip():
        return False
    text, _, manifest = out.partition("\n@@manifest\n")
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    problem = ""
    if not isinstance(record, dict) or record.get("key") != key:
        problem = f"its {READY} does not name the key {key}"
    elif record.get("manifest") != manifest.strip():
        problem = "its venv/ changed since it was created (a file was written, added or removed)"
    if problem:
        raise ConfigurationError(
            f"The environment {env_dir} on {transport.description} cannot be trusted: "
            f"{problem}. Nothing was submitted. Remove that directory (`rm -rf {env_dir}`); "
            "the next submission creates it again."
        )
    return True


def _upload_missing(transport: Transport, envs_dir: str, wheels: Sequence[Wheel]) -> int:
    """Upload the wheels the store lacks or holds with another hash; return how many."""
    paths = {_store_path(envs_dir, w): w for w in wheels}
    # pairs of arguments: path, expected sha256
    script = (
        'while [ "$#" -gt 1 ]; do f=$1; h=$2; shift 2; '
        's=$(sha256sum -- "$f" 2>/dev/null | cut -d" " -f1); '
        '[ "$s" = "$h" ] || printf "%s\\n" "$f"; done'
    )
    argv = [arg for path, wheel in paths.items() for arg in (path, wheel.sha256)]
    result = transport.run(["sh", "-c", script, "sh", *argv], check=True)
    missing = [line for line in result.stdout.splitlines() if line in paths]
    for remote in missing:
        wheel = paths[remote]
        transport.mkdir(remote.rsplit("/", 1)[0], mode=0o700)
        transport.upload(str(wheel.path), remote, mode=0o644)
    if missing:
        logger.info("uploaded %d wheel(s) to %s/.store", len(missing), envs_dir)
    return len(missing)


def _create(
    transport: Transport,
    env_dir: str,
    main: Sequence[Wheel | str],
    wheels: Sequence[Wheel],
    pins: Sequence[str],
    info: PythonInfo,
    uv: str | None,
    envs_dir: str,
    indexes: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> str:
    # Relative to "$env", where the script runs the install: a wheel's file name is safe
    # for a requirements file, a base directory named with spaces, quotes or newlines is not.
    requirements = "".join(
        f"./wheels/{w.filename}\n" if isinstance(w, Wheel) else f"{w}\n" for w in main
    )
    transport.write_text(f"{env_dir}/requirements.txt", requirements, mode=0o644)
    transport.write_text(f"{env_dir}/constraints.txt", "".join(f"{p}\n" for p in pins))
    links = [_store_path(envs_dir, w) for w in wheels]
    script = create_script(env_dir, info.executable, links, uv, indexes)
    try:
        result = transport.run(
            ["sh", "-c", script], check=False, env=env or None, timeout=_INSTALL_TIMEOUT
        )
    except CommandError as exc:
        raise ConfigurationError(
            f"Creating the environment {env_dir} on {transport.description} did not finish: {exc}"
        ) from exc
    log = f"$ sh -c <create script>\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    transport.write_text(f"{env_dir}/install.log", log)
    if result.returncode != 0:
        raise ConfigurationError(
            f"Creating the environment {env_dir} on {transport.description} failed (exit "
            f"code {result.returncode}); nothing was submitted. The installer said:\n"
            f"{(result.stderr or result.stdout).strip()[-3000:]}\nThe full log is in "
            f"{env_dir}/install.log. Check that {info.executable} can create virtual "
            "environments and that the cluster can reach a package index for what the "
            "offline install lacked, or pass Cluster(python=...) with a ready interpreter."
        )
    if "package index" in result.stderr:
        logger.warning(
            "the offline install of %s failed; it was installed from the cluster's package "
            "index instead (see %s/install.log)",
            env_dir,
            env_dir,
        )
    return "index" if "install|index" in result.stdout else "offline"
