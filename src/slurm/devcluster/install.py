"""Finding the Slurm, munge, MariaDB and OpenSSH programs, and installing them when missing."""

from __future__ import annotations

import glob
import os

from slurm.devcluster.proc import DevclusterError, find_program, run

__all__ = [
    "APT_PACKAGES",
    "CONTAINER_PACKAGES",
    "PAM_OATH_PACKAGE",
    "REQUIRED",
    "ensure_container_packages",
    "ensure_installed",
    "ensure_mmdebstrap",
    "ensure_pam_oath",
    "find_pam_module",
    "find_program",
    "missing_packages",
]

APT_PACKAGES = (
    "slurm-wlm",
    "munge",
    "slurmdbd",
    "mariadb-server",
    "openssh-server",
    "openssh-client",
)

# program -> Debian/Ubuntu package that provides it
REQUIRED: dict[str, str] = {
    "slurmctld": "slurm-wlm",
    "slurmd": "slurm-wlm",
    "sbatch": "slurm-wlm",
    "sacctmgr": "slurm-wlm",
    "sinfo": "slurm-wlm",
    "scontrol": "slurm-wlm",
    "munged": "munge",
    "munge": "munge",
    "unmunge": "munge",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-server",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def missing_packages(programs: dict[str, str] | None = None) -> list[str]:
    """The packages to install so that every required program exists (in APT_PACKAGES order)."""
    needed = {pkg for prog, pkg in (programs or REQUIRED).items() if find_program(prog) is None}
    return [pkg for pkg in APT_PACKAGES if pkg in needed]


def _install_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def _apt_install(packages: list[str], missing: list[str], needed_by: str) -> None:
    """Install ``packages`` with apt-get as root, else raise saying what to install."""
    command = " ".join(_install_command(packages))
    if os.geteuid() != 0 or find_program("apt-get") is None:
        raise DevclusterError(
            f"{needed_by} needs these packages, which are not installed: "
            f"{', '.join(missing)}.\n"
            f"Install them as root, then try again:\n"
            f"    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive {command}"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], env=env, timeout=600)
    run(_install_command(packages), env=env, timeout=1800)


def ensure_installed() -> None:
    """Install what is missing (root on Debian/Ubuntu), else say exactly what to install."""
    missing = missing_packages()
    if not missing:
        return
    _apt_install(list(APT_PACKAGES), missing, "The dev cluster (`slurm devcluster up`)")
    still = missing_packages()
    if still:
        raise DevclusterError(f"apt-get install finished but these are still missing: {still}")


# The TOTP PAM module the tests of logins with a second factor use (a throwaway
# sshd asks for a one-time code after the key); not needed by the cluster itself.
PAM_OATH_PACKAGE = "libpam-oath"
_PAM_DIRS = ("/lib/*/security", "/usr/lib/*/security", "/lib/security", "/usr/lib/security")


def find_pam_module(name: str) -> str | None:
    """Absolute path of the PAM module ``name`` (e.g. ``pam_oath.so``), if installed."""
    for pattern in _PAM_DIRS:
        found = sorted(glob.glob(f"{pattern}/{name}"))
        if found:
            return found[0]
    return None


def ensure_pam_oath() -> str:
    """Return the path of ``pam_oath.so``, installing libpam-oath (root, Debian) when missing.

    Raises:
        DevclusterError: It is missing and cannot be installed here (says what to run).
    """
    found = find_pam_module("pam_oath.so")
    if found is None:
        _apt_install([PAM_OATH_PACKAGE], [PAM_OATH_PACKAGE], "The one-time-code login tests")
        found = find_pam_module("pam_oath.so")
    if found is None:
        raise DevclusterError(f"apt-get installed {PAM_OATH_PACKAGE} but pam_oath.so is missing")
    return found


# What `slurm devcluster up --containers` needs: the tools to build enroot and pyxis
# from the vendored sources, enroot's run-time helpers, Debian's registry server,
# mmdebstrap for the base image, and podman (with runc, which handles hybrid cgroups)
# for packaging="container" (see docs/containers.md).
CONTAINER_PACKAGES = (
    "gcc",
    "make",
    "libtool",
    "automake",
    "libmd-dev",
    "libcap2-bin",
    "curl",
    "gawk",
    "jq",
    "squashfs-tools",
    "parallel",
    "fuse-overlayfs",
    "pigz",
    "squashfuse",
    "makeself",
    "musl-tools",
    "mmdebstrap",
    "libslurm-dev",
    "zstd",
    "docker-registry",
    "podman",
    "runc",
)


def _dpkg_installed(package: str) -> bool:
    out = run(["dpkg-query", "-W", "-f=${Status}", package], check=False, timeout=30)
    return out.returncode == 0 and out.stdout.strip().endswith(" installed")


def ensure_container_packages() -> None:
    """Install the Debian packages container support needs (root), else say which."""
    missing = [pkg for pkg in CONTAINER_PACKAGES if not _dpkg_installed(pkg)]
    if not missing:
        return
    _apt_install(missing, missing, "`slurm devcluster up --containers`")
    still = [pkg for pkg in missing if not _dpkg_installed(pkg)]
    if still:
        raise DevclusterError(f"apt-get install finished but these are still missing: {still}")


def ensure_mmdebstrap() -> None:
    """Install mmdebstrap (root, Debian), which builds the roots of other Slurm releases."""
    if find_program("mmdebstrap") is not None:
        return
    _apt_install(["mmdebstrap"], ["mmdebstrap"], "`slurm devcluster up --slurm RELEASE`")
    if find_program("mmdebstrap") is None:
        raise DevclusterError("apt-get install finished but mmdebstrap is still missing")
