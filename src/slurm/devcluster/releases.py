"""The Slurm releases the dev cluster runs, and where each one's programs come from.

Debian ships one Slurm per suite: bookworm 22.05, trixie 24.11, sid 26.05. The
release this machine's own packages provide runs from them, as it always has; any
other runs from a root file system that :mod:`slurm.devcluster.rootfs` builds with
``mmdebstrap`` from Debian's archive (see docs/devcluster.md). Everything here is
pure: the table, the lookups and the checks, so the unit tests pin them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from slurm.errors import DevclusterError

__all__ = [
    "APPTAINER_PACKAGES",
    "HOST_RELEASE",
    "MIN_CLUSTER_PYTHON",
    "RELEASES",
    "ROOT_PACKAGES",
    "Release",
    "check_cluster_python",
    "get_release",
    "root_key",
    "root_packages",
    "stale_pattern",
]


@dataclass(frozen=True)
class Release:
    """One Slurm release: its name (``major.minor``), the Debian suite that ships it and
    that suite's ``python3`` (what the cluster's jobs get as ``python3``)."""

    name: str
    suite: str
    python: str

    def at_least(self, major: int, minor: int) -> bool:
        """True when this release is ``major.minor`` or later."""
        mine = tuple(int(part) for part in self.name.split("."))
        return mine >= (major, minor)


RELEASES: tuple[Release, ...] = (
    Release("22.05", "bookworm", "3.11"),
    Release("24.11", "trixie", "3.13"),
    Release("26.05", "sid", "3.14"),
)
#: The release of this machine's own Debian packages (bookworm): no root is built for it.
HOST_RELEASE = "22.05"
#: The oldest Python the SDK's jobs run on.
MIN_CLUSTER_PYTHON = (3, 11)

#: What a release's root holds: its Slurm daemons and clients, munge's client library and
#: commands (munged itself is this machine's, shared), sshd (the login host's), Python
#: with venv (jobs, packaging), and the small tools jobs and the SDK call.
ROOT_PACKAGES: tuple[str, ...] = (
    "slurm-wlm",
    "slurmdbd",
    "munge",
    "openssh-server",
    "python3",
    "python3-venv",
    "procps",
    "hostname",
)


#: What ``up --apptainer`` adds to a root: Apptainer (``apptainer exec`` of a ``.sif`` on
#: the compute nodes, ``apptainer build`` on the login host; Debian has it from trixie),
#: and ``umount`` for the nodes' holders, which make the root their own root (pivot_root).
APPTAINER_PACKAGES: tuple[str, ...] = ("apptainer", "mount")


def root_packages(*, apptainer: bool = False) -> tuple[str, ...]:
    """The packages of a release's root: :data:`ROOT_PACKAGES`, and Apptainer's when asked."""
    return (*ROOT_PACKAGES, *(APPTAINER_PACKAGES if apptainer else ()))


def get_release(name: str) -> Release:
    """The release called ``name`` (``"24.11"``; ``"24.11.5"`` works too).

    Raises:
        DevclusterError: no such release; the message lists the known ones.
    """
    wanted = ".".join(name.strip().split(".")[:2])
    for release in RELEASES:
        if release.name == wanted:
            return release
    known = ", ".join(f"{r.name} (Debian {r.suite})" for r in RELEASES)
    raise DevclusterError(
        f"The dev cluster does not know Slurm {name!r}: it runs {known}. "
        f"Pass one of those to --slurm (default {HOST_RELEASE}, this machine's own packages)."
    )


def _flavour(release: Release, packages: tuple[str, ...]) -> str:
    """``sid`` for the plain root of sid, ``sid+apptainer`` for one with Apptainer."""
    return release.suite + ("+apptainer" if APPTAINER_PACKAGES[0] in packages else "")


def root_key(release: Release, packages: tuple[str, ...], mirror: str) -> str:
    """The name of the cached root of ``release``: its suite, the packages it holds beyond
    the plain root (``sid+apptainer``) and a hash of what it holds, so a change of
    the package list (or of the mirror) builds a new one."""
    text = "\n".join([release.suite, mirror, *sorted(packages)])
    return f"{_flavour(release, packages)}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def stale_pattern(release: Release, packages: tuple[str, ...]) -> str:
    """The glob of the cached roots a new root of ``packages`` replaces: those of the same
    suite and the same extra packages (a plain root never replaces one with Apptainer,
    nor the other way round: clusters of both kinds run side by side)."""
    return f"{_flavour(release, packages)}-" + "[0-9a-f]" * 12


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.strip().split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_cluster_python(version: str, where: str) -> None:
    """Refuse a cluster whose ``python3`` (``version``, e.g. ``"3.13.5"``) is older than
    :data:`MIN_CLUSTER_PYTHON`; ``where`` names it in the message.

    Raises:
        DevclusterError: the version is older, or could not be read.
    """
    found = _version_tuple(version)
    if len(found) < 2:
        raise DevclusterError(
            f"Could not read the version of {where} (got {version!r}): the SDK's jobs need "
            f"Python {'.'.join(map(str, MIN_CLUSTER_PYTHON))} or later there. Check that "
            "python3 runs in the cluster's root, or rebuild it."
        )
    if found[:2] < MIN_CLUSTER_PYTHON:
        need = ".".join(map(str, MIN_CLUSTER_PYTHON))
        newer = ", ".join(
            r.name for r in RELEASES if _version_tuple(r.python) >= MIN_CLUSTER_PYTHON
        )
        raise DevclusterError(
            f"{where} is Python {version}, older than the {need} the SDK's jobs need. "
            f"Bring up a release whose Python is {need} or later (--slurm {newer}); "
            "nothing was started."
        )
