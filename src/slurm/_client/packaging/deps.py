"""Dependencies as wheels, collected on the client for an offline install on the cluster.

Clusters often have no Internet; the client usually has. So the dependencies
of the shipped wheels are resolved here for the cluster's Python and platform
(``uv pip compile --python-version --python-platform``), preferring the
versions installed in this environment (the client and the cluster then run
the same cloudpickle, the same numpy, ...), and downloaded as wheels for the
cluster (``pip download --only-binary :all: --platform ...``) into
``CACHE/wheelhouse/<target>/``. A pure-Python package that cannot be
downloaded but is installed here in the pinned version is re-packed from
the installed files.

The result is cached in ``CACHE/deps/<key>.json``, keyed by the requirements,
the versions installed here and the target: a second run does nothing. When
something cannot be collected (no network, a package without wheels for the
cluster), what was collected is still shipped and the cluster's install falls
back to its package index; that is logged, never fatal here, and tried again
an hour later.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from slurm._client.packaging.project import normalize_name
from slurm._client.packaging.wheels import (
    Wheel,
    cache_dir,
    find_uv,
    private_dir,
    repack_installed,
    sha256_file,
)
from slurm._client.preflight import PythonInfo
from slurm.errors import ConfigurationError

__all__ = [
    "Dependencies",
    "collect_dependencies",
    "installed_pins",
    "pip_platforms",
    "requirement_name",
    "requirements_for_modules",
    "uv_platform",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
#: Seconds before dependencies that could not all be collected are tried again.
RETRY_INCOMPLETE = 3600.0
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


@dataclass(frozen=True)
class Dependencies:
    """The dependency wheels for one target, and the pins they were resolved to.

    Attributes:
        wheels: Wheel files to ship.
        pins: ``name==version`` lines (constraints for the cluster's install).
        complete: Whether every pin has a wheel (an offline install can work).
    """

    wheels: tuple[Wheel, ...]
    pins: tuple[str, ...]
    complete: bool


def requirement_name(requirement: str) -> str:
    """The normalised distribution name at the start of a requirement line."""
    match = _NAME.match(requirement)
    return normalize_name(match.group(1)) if match else ""


def installed_pins(exclude: set[str]) -> list[str]:
    """``name==version`` for every distribution installed here from an index.

    Editable, local-directory and VCS installs (those with a
    ``direct_url.json``) and the names in ``exclude`` are left out: the
    cluster's index would not know them.
    """
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = normalize_name(name)
        if key in exclude or dist.read_text("direct_url.json") is not None:
            continue
        pins.setdefault(key, f"{key}=={dist.version}")
    return sorted(pins.values())


def requirements_for_modules(modules: Iterable[str]) -> tuple[str, ...]:
    """``name==version`` of the installed distributions providing these top-level modules.

    A module no installed distribution claims (or one installed from a local
    directory, which the cluster's index would not know) is left out; the
    job's import error names it.
    """
    providers = metadata.packages_distributions()
    pins: set[str] = set()
    for module in modules:
        for name in providers.get(module, ()):
            key = normalize_name(name)
            if key == "slurm-sdk":
                continue
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            if dist.read_text("direct_url.json") is None:
                pins.add(f"{key}=={dist.version}")
    return tuple(sorted(pins))


def uv_platform(info: PythonInfo) -> str | None:
    """``uv pip compile --python-platform`` for the cluster, ``None`` if unknown."""
    system, _, machine = info.platform.partition("-")
    if system == "linux":
        arch = machine or "x86_64"
        libc = "musl" if "musl" in info.libc.lower() else "gnu"
        return f"{arch}-unknown-linux-{libc}" if arch in ("x86_64", "aarch64") else None
    if system == "macosx":
        arch = info.platform.rsplit("-", 1)[-1]
        return f"{'aarch64' if arch == 'arm64' else 'x86_64'}-apple-darwin"
    return None


def pip_platforms(info: PythonInfo) -> list[str]:
    """``pip download --platform`` values for a glibc Linux cluster (newest first).

    pip does not widen ``manylinux_2_X`` to older glibc versions by itself, so
    every compatible one is listed. Empty for other platforms.
    """
    system, _, arch = info.platform.partition("-")
    if system != "linux" or info.libc != "glibc" or not arch:
        return []
    try:
        glibc_minor = int(info.libc_version.split(".")[1])
    except (IndexError, ValueError):
        glibc_minor = 17
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 4, -1)]
    for alias, minimum in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
        if glibc_minor >= minimum:
            platforms.append(f"{alias}_{arch}")
    return platforms


def _pip_command() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    return [find_uv(), "tool", "run", "--from", "pip", "pip"]


def _target_name(info: PythonInfo) -> str:
    libc = f"{info.libc}{info.libc_version}" if info.libc else "nolibc"
    return f"{info.implementation.lower()}{info.version}-{info.platform}-{libc}"


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str] | None:
    try:
        proc = subprocess.run(  # noqa: S603 (uv or pip, argv list)
            argv, capture_output=True, text=True, check=False, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("%s failed: %s", what, exc)
        return None
    if proc.returncode != 0:
        logger.info("%s failed (exit %s): %s", what, proc.returncode, proc.stderr.strip()[-800:])
        return None
    return proc


def _index_flags(indexes: Iterable[str]) -> list[str]:
    return [flag for url in indexes for flag in ("--extra-index-url", url)]


def _compile(
    requirements: list[str], pins: list[str], info: PythonInfo, indexes: tuple[str, ...] = ()
) -> list[str] | None:
    """Resolve ``requirements`` for the cluster; ``None`` when uv cannot."""
    if not requirements:
        return []
    try:
        uv = find_uv()
    except ConfigurationError:
        return None
    with tempfile.TemporaryDirectory(prefix="slurm-sdk-deps-") as tmp:
        req = Path(tmp, "requirements.in")
        req.write_text("\n".join(requirements) + "\n")
        cons = Path(tmp, "constraints.txt")
        cons.write_text("\n".join(pins) + "\n")
        argv = [uv, "pip", "compile", str(req), "--quiet", "--no-header", "--no-annotate"]
        argv += _index_flags(indexes)
        argv += ["--python-version", ".".join(info.version.split(".")[:2])]
        platform = uv_platform(info)
        if platform:
            argv += ["--python-platform", platform]
        # Prefer the versions installed here; if they cannot hold, resolve freely.
        for extra in (["--constraint", str(cons)], []):
            proc = _run(argv + extra, "resolving the dependencies for the cluster")
            if proc is not None:
                return [
                    line.split(";")[0].strip()
                    for line in proc.stdout.splitlines()
                    if _PIN.match(line.strip())
                ]
    return None


def _wheel_key(filename: str) -> tuple[str, str]:
    parts = filename[: -len(".whl")].split("-")
    return normalize_name(parts[0]), parts[1] if len(parts) > 1 else ""


def _download(pins: list[str], info: PythonInfo, dest: Path, indexes: tuple[str, ...] = ()) -> None:
    minor = "".join(info.version.split(".")[:2])
    argv = [*_pip_command(), "download", "--no-deps", "--only-binary", ":all:", "--dest"]
    argv += _index_flags(indexes)
    argv += [str(dest), "--disable-pip-version-check", "--quiet", "--python-version", minor]
    if info.implementation == "CPython":
        argv += ["--implementation", "cp", "--abi", f"cp{minor}", "--abi", "abi3"]
        argv += ["--abi", "none"]
    for platform in pip_platforms(info):
        argv += ["--platform", platform]
    if _run(argv + pins, "downloading the dependency wheels") is None:
        # One missing wheel fails the batch: fetch the others one by one.
        for pin in pins:
            _run([*argv, pin], f"downloading {pin}")


def collect_dependencies(
    requirements: list[str], exclude: set[str], info: PythonInfo, indexes: tuple[str, ...] = ()
) -> Dependencies:
    """Dependency wheels for ``requirements`` on the cluster described by ``info``.

    Args:
        requirements: ``Requires-Dist`` lines of the shipped wheels.
        exclude: Normalised names shipped as wheels already (the project, the SDK).
        info: The cluster's interpreter (version, platform, libc).
        indexes: More package indexes to resolve and download from (``extra_index_url``).
    """
    wanted = sorted({r for r in requirements if requirement_name(r) not in exclude})
    pins = installed_pins(exclude)
    target = _target_name(info)
    key_text = json.dumps([wanted, pins, target, uv_platform(info), *indexes])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    manifest = cache_dir() / "deps" / f"{key}.json"
    cached = _load(manifest)
    if cached is not None:
        return cached
    resolved = _compile(wanted, pins, info, indexes)
    if resolved is None:
        logger.warning(
            "could not resolve the dependencies for the cluster here; the cluster will "
            "install them from its package index"
        )
        result = Dependencies(wheels=(), pins=(), complete=False)
        _save(manifest, result)
        return result
    house = private_dir(cache_dir() / "wheelhouse" / target)
    have = {_wheel_key(p.name) for p in house.glob("*.whl")}
    missing = [pin for pin in resolved if _pin_key(pin) not in have]
    if missing and pip_platforms(info):
        _download(missing, info, house, indexes)
    wheels: list[Wheel] = []
    complete = True
    files = sorted(house.glob("*.whl"))
    for pin in resolved:
        matches = [p for p in files if _wheel_key(p.name) == _pin_key(pin)]
        if not matches:
            repacked = _repack_pure(pin)
            if repacked is None:
                complete = False
                logger.warning("no wheel of %s for the cluster; it will use its index", pin)
                continue
            wheels.append(repacked)
            continue
        for path in matches:
            wheels.append(Wheel(path=path, sha256=sha256_file(path), name=_pin_key(pin)[0]))
    result = Dependencies(wheels=tuple(wheels), pins=tuple(resolved), complete=complete)
    _save(manifest, result)
    return result


def _pin_key(pin: str) -> tuple[str, str]:
    match = _PIN.match(pin)
    return (normalize_name(match.group(1)), match.group(2)) if match else ("", "")


def _repack_pure(pin: str) -> Wheel | None:
    """A pure-Python wheel re-packed from this environment, if it has the pinned version."""
    name, version = _pin_key(pin)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    tags = (dist.read_text("WHEEL") or "").splitlines()
    pure = any(line.strip() in ("Tag: py3-none-any", "Tag: py2.py3-none-any") for line in tags)
    if dist.version != version or not pure:
        return None
    try:
        return repack_installed(name)
    except ConfigurationError:
        return None


def _load(manifest: Path) -> Dependencies | None:
    try:
        data = json.loads(manifest.read_text())
        wheels = tuple(
            Wheel(path=Path(w["path"]), sha256=w["sha256"], name=w["name"]) for w in data["wheels"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(w.path.is_file() for w in wheels):
        return None
    changed = [w.path for w in wheels if sha256_file(w.path) != w.sha256]
    if changed:  # a wheel of the cache was changed since: resolved and fetched again
        logger.warning("cached wheels changed since they were stored: %s", changed)
        return None
    complete = data.get("complete") is True
    # What could not be collected (no network, no wheel) is tried again after a while.
    if not complete and time.time() - float(data.get("time", 0)) > RETRY_INCOMPLETE:
        return None
    return Dependencies(wheels=wheels, pins=tuple(data["pins"]), complete=complete)


def _save(manifest: Path, deps: Dependencies) -> None:
    private_dir(manifest.parent)
    data = {
        "wheels": [{"path": str(w.path), "sha256": w.sha256, "name": w.name} for w in deps.wheels],
        "pins": list(deps.pins),
        "complete": deps.complete,
        "time": time.time(),
    }
    tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(manifest)
