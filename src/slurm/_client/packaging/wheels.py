"""Wheels of the user's project and of the SDK, built once per source hash.

Built wheels are cached on the client under ``CACHE/built/<name>-<hash>/``
(``CACHE`` is ``$SLURM_SDK_CACHE_DIR``, else ``$XDG_CACHE_HOME/slurm-sdk``,
else ``~/.cache/slurm-sdk``). A project whose sources did not change is not
rebuilt: looking it up costs one walk over its files.

The SDK comes from its source checkout when it runs from one (an editable
install, or ``src/`` on the path): it is built like any project. When it was
installed from a wheel, that wheel is re-packed from the installed files as
the installer's ``RECORD`` lists them (the installed version, byte for byte
the same files, no network): :func:`repack_installed`.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from slurm._client.packaging.project import (
    SDK_DISTRIBUTION,
    Project,
    normalize_name,
    sdk_source_root,
    source_hash,
)
from slurm.errors import ConfigurationError

__all__ = [
    "SDK_SOURCES",
    "Wheel",
    "build_project",
    "cache_dir",
    "find_uv",
    "repack_installed",
    "sdk_wheel",
    "sha256_file",
    "wheel_requirements",
    "wheel_top_levels",
]

logger = logging.getLogger(__name__)

# What of the SDK's checkout goes into its wheel (and so into its source hash).
SDK_SOURCES = ("src", "pyproject.toml", "README.md", "LICENSE")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_INSTALLED = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


@dataclass(frozen=True)
class Wheel:
    """A wheel file on the client and the SHA-256 of its bytes."""

    path: Path
    sha256: str
    name: str

    @property
    def filename(self) -> str:
        return self.path.name


def cache_dir() -> Path:
    """The client-side cache of built wheels and dependency wheels."""
    explicit = os.environ.get("SLURM_SDK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slurm-sdk"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find_uv() -> str:
    """The ``uv`` executable: ``$UV``, the ``PATH``, or the ``uv`` Python package.

    Raises:
        ConfigurationError: uv is nowhere to be found.
    """
    candidates = [os.environ.get("UV"), shutil.which("uv")]
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found, unused-ignore]

        candidates.append(str(find_uv_bin()))
    except (ImportError, FileNotFoundError):
        pass
    candidates.append(os.path.join(os.path.expanduser("~"), ".local", "bin", "uv"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigurationError(
        "Shipping your code to the cluster builds wheels with uv, which is not installed "
        "here. Install it (`pip install uv`), or pass Cluster(python='/path/to/python') "
        "with an interpreter on the cluster that already has your code and slurm-sdk, "
        "or packaging='none'."
    )


def _cached(directory: Path) -> Wheel | None:
    """The wheel stored in ``directory``, if it is there, the user's own (nobody else may
    have written it) and still hashes to what was recorded when it was stored; one that
    does not is removed, to be built again."""
    meta = directory / "wheel.json"
    try:
        info = json.loads(meta.read_text())
        path = directory / info["filename"]
        if not path.is_file():
            return None
        why = _not_private(directory, path)
        actual = sha256_file(path)
        if why is None and actual != info["sha256"]:
            why = f"it hashes to {actual}, not the {info['sha256']} recorded"
        if why is None:
            return Wheel(path=path, sha256=actual, name=str(info["name"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    logger.warning("not using the cached wheel %s: %s; building it again", path, why)
    shutil.rmtree(directory, ignore_errors=True)
    return None


def _not_private(*paths: Path) -> str | None:
    uid = os.getuid()
    for path in paths:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode) or st.st_uid != uid:
            return f"{path} is a link or not yours"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} may be written by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents, created mode 0700 (a cache that holds what
    jobs install is nobody else's to read or change)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    return path


def _store(directory: Path, built: Path, name: str) -> Wheel:
    """Move a freshly built wheel into its cache directory (atomically, first one wins)."""
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        target = staging / built.name
        shutil.move(str(built), target)
        info = {"filename": built.name, "sha256": sha256_file(target), "name": name}
        (staging / "wheel.json").write_text(json.dumps(info))
        try:
            os.rename(staging, directory)
        except OSError:
            if _cached(directory) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wheel = _cached(directory)
    assert wheel is not None  # noqa: S101 (just stored above; for mypy)
    return wheel


def build_project(project: Project, *, only: tuple[str, ...] = ()) -> Wheel:
    """The wheel of ``project``, from the cache when its sources did not change.

    Raises:
        ConfigurationError: uv is missing or the build failed (with uv's output).
    """
    digest = source_hash(project.root, only)
    directory = cache_dir() / "built" / f"{project.normalized_name}-{digest[:24]}"
    wheel = _cached(directory)
    if wheel is not None:
        return wheel
    private_dir(directory.parent)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as out:
        argv = [find_uv(), "build", "--wheel", "--out-dir", out, str(project.root)]
        logger.info("building a wheel of %s (%s)", project.name, project.root)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 (uv, argv list)
        built = sorted(Path(out).glob("*.whl"))
        if proc.returncode != 0 or len(built) != 1:
            raise ConfigurationError(
                f"Building a wheel of {project.name} ({project.root}) with `uv build` failed "
                f"(exit code {proc.returncode}), so it cannot be shipped to the cluster:\n"
                f"{(proc.stderr or proc.stdout).strip()[-3000:]}\nFix the build (try "
                f"`uv build --wheel {project.root}`), or pass packaging={{'project': None}} "
                "to ship only the SDK."
            )
        return _store(directory, built[0], project.normalized_name)


def sdk_wheel() -> Wheel:
    """A wheel of the running SDK: built from its checkout, or re-packed when installed."""
    root = sdk_source_root()
    if root is not None:
        return build_project(Project(root=root, name=SDK_DISTRIBUTION), only=SDK_SOURCES)
    return repack_installed(SDK_DISTRIBUTION)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def repack_installed(distribution: str) -> Wheel:
    """Rebuild the wheel of an installed (non-editable) distribution from its files.

    The installed files listed in the distribution's ``RECORD`` (compiled
    ``.pyc`` files and scripts outside site-packages left out) are zipped
    again with the original ``METADATA``, ``WHEEL`` and entry points and a new
    ``RECORD``; entries are sorted and dated 1980 so the bytes are the same on
    every run.

    Raises:
        ConfigurationError: The distribution is not installed or lists no files.
    """
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"{distribution} is not installed here, so it cannot be shipped to the cluster."
        ) from None
    files = dist.files or []
    name = dist.metadata["Name"]
    version = dist.version
    digest = hashlib.sha256(f"{name} {version}".encode())
    entries: list[tuple[str, Path]] = []
    for item in files:
        relative = str(item).replace(os.sep, "/")
        parts = relative.split("/")
        if relative.startswith("..") or "__pycache__" in parts or relative.endswith(".pyc"):
            continue
        if parts[0].endswith(".dist-info") and parts[-1] in _SKIP_INSTALLED:
            continue
        path = Path(str(dist.locate_file(item)))
        if path.is_file():
            entries.append((relative, path))
            digest.update(f"{relative}\0{item.hash.value if item.hash else ''}\n".encode())
    info_dirs = {r.split("/")[0] for r, _ in entries if r.split("/")[0].endswith(".dist-info")}
    if not entries or len(info_dirs) != 1:
        raise ConfigurationError(
            f"{distribution} {version} is installed without a usable file list (RECORD), so "
            "it cannot be re-packed for the cluster. Reinstall it from a wheel, or pass "
            "Cluster(python=...) with an interpreter on the cluster that has it."
        )
    info_dir = info_dirs.pop()
    directory = cache_dir() / "repacked" / f"{normalize_name(name)}-{digest.hexdigest()[:24]}"
    wheel = _cached(directory)
    if wheel is not None:
        return wheel
    tag = "py3-none-any"
    wheel_text = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(":", 1)[1].strip() for line in wheel_text if line.startswith("Tag:")]
    if len(tags) == 1:
        tag = tags[0]
    filename = f"{name.replace('-', '_')}-{version}-{tag}.whl"
    private_dir(directory.parent)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".repack-") as out:
        target = Path(out) / filename
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative, path in sorted(entries):
                data = path.read_bytes()
                archive.writestr(_zip_info(relative), data)
                writer.writerow([relative, _record_hash(data), str(len(data))])
            writer.writerow([f"{info_dir}/RECORD", "", ""])
            archive.writestr(_zip_info(f"{info_dir}/RECORD"), record.getvalue())
        return _store(directory, target, normalize_name(name))


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def wheel_requirements(wheel: Path, extras: Sequence[str] = ()) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel: those of no extra, and those of ``extras``
    (the ``extra == "name"`` clause taken out of their marker).

    Raises:
        ConfigurationError: an extra the wheel does not declare (the valid ones listed).
    """
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        if not names:
            return []
        text = archive.read(names[0]).decode("utf-8")
    from email.parser import Parser

    message = Parser().parsestr(text)
    declared = {_normal_extra(e) for e in message.get_all("Provides-Extra") or []}
    wanted = {_normal_extra(e) for e in extras}
    if wanted - declared:
        raise ConfigurationError(
            f"packaging extras={sorted(extras)}: {wheel.name} declares no extra "
            f"{sorted(wanted - declared)}; its extras are {sorted(declared) or 'none'}."
        )
    requirements = []
    for value in message.get_all("Requires-Dist") or []:
        requirement, _, marker = value.partition(";")
        if "extra" not in marker:
            requirements.append(value.strip())
            continue
        found = _EXTRA_CLAUSE.search(marker)
        if found is None or _normal_extra(found.group("name")) not in wanted:
            continue
        rest = (marker[: found.start()] + marker[found.end() :]).strip()
        rest = re.sub(r"^\s*and\s+|\s+and\s*$", "", rest).strip()
        requirements.append(requirement.strip() + (f"; {rest}" if rest else ""))
    return requirements


_EXTRA_CLAUSE = re.compile(r"""\(?\s*extra\s*==\s*["'](?P<name>[^"']+)["']\s*\)?""")


def _normal_extra(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_top_levels(wheel: Path) -> frozenset[str]:
    """The top-level modules and packages a wheel installs (``pkg/...``, ``mod.py``)."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for entry in archive.namelist():
            top = entry.split("/", 1)[0]
            if top.endswith((".dist-info", ".data")):
                continue
            if "/" in entry:
                names.add(top)
            elif top.endswith(".py"):
                names.add(top[: -len(".py")])
    return frozenset(names)
