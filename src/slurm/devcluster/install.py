"""Finding the Slurm, munge, MariaDB and OpenSSH programs, and installing them when missing."""

from __future__ import annotations

import os

from slurm.devcluster.proc import DevclusterError, find_program, run

__all__ = ["APT_PACKAGES", "REQUIRED", "ensure_installed", "find_program", "missing_packages"]

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


def ensure_installed() -> None:
    """Install what is missing (root on Debian/Ubuntu), else say exactly what to install."""
    missing = missing_packages()
    if not missing:
        return
    command = " ".join(_install_command(list(APT_PACKAGES)))
    if os.geteuid() != 0 or find_program("apt-get") is None:
        raise DevclusterError(
            "The dev cluster needs these packages, which are not installed: "
            f"{', '.join(missing)}.\n"
            f"Install them as root, then run `slurm devcluster up` again:\n"
            f"    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive {command}"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], env=env, timeout=600)
    run(_install_command(list(APT_PACKAGES)), env=env, timeout=1800)
    still = missing_packages()
    if still:
        raise DevclusterError(f"apt-get install finished but these are still missing: {still}")
