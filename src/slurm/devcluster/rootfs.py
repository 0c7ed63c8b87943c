"""A release's root file system: built once per machine, entered by its daemons.

For a Slurm release this machine's packages do not provide (``--slurm 24.11``), ``up``
builds a root with ``mmdebstrap --variant=apt`` from Debian's archive (the suite that
ships the release, :data:`~slurm.devcluster.releases.ROOT_PACKAGES`), into the machine's
cache (``/var/cache/slurm-sdk/devcluster-roots/<suite>-<hash>``, the hash naming the
package list and mirror: a new list builds a new root). It is built in a temporary
directory and renamed into place, so a failed build leaves nothing.

The cached root is never changed by a running cluster. Each cluster has a *root
holder* (``sleep infinity`` in a private mount namespace, pid file
``run/rootns.sdk.pid``) in which the root gets, on top of its own files: ``/proc``,
``/sys``, ``/dev``; a fresh ``/run`` holding this machine's ``/run/munge`` (munged is
shared); this machine's ``/tmp``, ``/var/tmp``, ``/etc/hosts`` and
``/etc/resolv.conf``; and every top-level directory of this machine that is not the
operating system's (``/home``, ``/root``, ``/work``, ``/opt``, ``/srv``, ...) plus
``/usr/local`` and the state directory, each at its own path. So the release's
login daemons see the same shared files as this machine, as on a real cluster. The
compute nodes' holders start inside that namespace and put their own ``/tmp`` and
hosts file over the root's. Each daemon then runs as
``nsenter --target=HOLDER --mount -- chroot ROOT /usr/sbin/DAEMON``.

``<state dir>/bin`` gets one small script per Slurm client command (``sbatch``,
``squeue``, ...) that runs the release's own command the same way, in the caller's
working directory: put it first on ``PATH`` to be a client of that cluster here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import time
from pathlib import Path

from slurm.devcluster.proc import DevclusterError, find_program, run, tail
from slurm.devcluster.releases import ROOT_PACKAGES, Release, root_key, stale_pattern
from slurm.devcluster.safefiles import open_lock

__all__ = [
    "CLIENT_COMMANDS",
    "ENV_MIRROR",
    "ENV_ROOT_CACHE",
    "ROOT_MARKER",
    "ensure_root",
    "enter_argv",
    "mirror",
    "mount_script",
    "render_apptainer_conf",
    "render_client_wrapper",
    "root_cache_dir",
    "root_path",
    "shared_dirs",
]

ENV_ROOT_CACHE = "SLURM_SDK_DEVCLUSTER_ROOTS"
ENV_MIRROR = "SLURM_SDK_DEVCLUSTER_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Written last into a finished root: its presence means the build completed.
ROOT_MARKER = ".slurm-sdk-root.json"
#: The Slurm client commands ``<state dir>/bin`` provides for a release cluster.
CLIENT_COMMANDS = (
    "sacct",
    "sacctmgr",
    "salloc",
    "sattach",
    "sbatch",
    "sbcast",
    "scancel",
    "scontrol",
    "sdiag",
    "sinfo",
    "sprio",
    "squeue",
    "sreport",
    "srun",
    "sshare",
    "sstat",
)
# The operating system's own top-level directories: the root has its own. Every other
# top-level directory of this machine is shared into the root at the same path.
_OS_DIRS = frozenset(
    {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "lost+found", "proc",
     "run", "sbin", "sys", "tmp", "usr", "var", "old_root"}
)  # fmt: skip
_BUILD_TIMEOUT = 1800.0


def root_cache_dir() -> Path:
    """``$SLURM_SDK_DEVCLUSTER_ROOTS``, else ``/var/cache/slurm-sdk/devcluster-roots``."""
    explicit = os.environ.get(ENV_ROOT_CACHE)
    return Path(explicit) if explicit else Path("/var/cache/slurm-sdk/devcluster-roots")


def mirror() -> str:
    """The Debian archive roots are built from: ``$SLURM_SDK_DEVCLUSTER_MIRROR``, else
    Debian's own."""
    return os.environ.get(ENV_MIRROR, "").strip() or DEFAULT_MIRROR


def root_path(release: Release, packages: tuple[str, ...] = ROOT_PACKAGES) -> Path:
    """Where ``release``'s root is (or would be) cached."""
    return root_cache_dir() / root_key(release, packages, mirror())


def _mmdebstrap_argv(release: Release, target: Path, packages: tuple[str, ...]) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        # The archive's Release files may be past their Valid-Until on a machine whose
        # clock runs ahead of the mirror's snapshot; the signatures are still checked.
        "--aptopt=Acquire::Check-Valid-Until false",
        "--aptopt=Acquire::Check-Date false",
        "--aptopt=Acquire::Retries 2",
        f"--include={','.join(packages)}",
        release.suite,
        str(target),
        mirror(),
    ]


def _roots_in_use() -> set[str]:
    """The roots some process runs in (``/proc/PID/root``): never removed."""
    used = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                used.add(os.readlink(entry / "root"))
    return used


def _remove_stale(release: Release, packages: tuple[str, ...], keep: Path) -> None:
    """Remove older roots of ``release``'s suite with the same extra packages (another
    mirror or base list) nobody runs in."""
    used = _roots_in_use()
    for old in root_cache_dir().glob(stale_pattern(release, packages)):
        if old != keep and old.is_dir() and str(old) not in used:
            shutil.rmtree(old, ignore_errors=True)
            for leftover in (old.with_name(f"{old.name}.log"), old.with_name(f"{old.name}.lock")):
                leftover.unlink(missing_ok=True)


def ensure_root(release: Release, packages: tuple[str, ...] = ROOT_PACKAGES) -> Path:
    """``release``'s root, built now (about 20-60 s, ~0.3 GB) unless cached.

    Raises:
        DevclusterError: mmdebstrap is missing and cannot be installed, or the build
            failed (the archive unreachable, a package gone); the message has the tail
            of mmdebstrap's output and what to do. Nothing of the failed build is kept.
    """
    final = root_path(release, packages)
    if (final / ROOT_MARKER).is_file():
        return final
    if find_program("mmdebstrap") is None:
        from slurm.devcluster.install import ensure_mmdebstrap

        ensure_mmdebstrap()
    final.parent.mkdir(parents=True, exist_ok=True)
    # One build of a root at a time on the machine (two test sessions may start at once):
    # the second waits, then finds the first's root.
    with open_lock(final.with_name(f"{final.name}.lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ROOT_MARKER).is_file():
            return final
        _build(release, packages, final)
    _remove_stale(release, packages, final)
    return final


def _build(release: Release, packages: tuple[str, ...], final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)  # a root without its marker is half-built
    building = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    log = final.with_name(f"{final.name}.log")
    started = time.monotonic()
    try:
        out = run(
            _mmdebstrap_argv(release, building, packages), check=False, timeout=_BUILD_TIMEOUT
        )
        log.write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise DevclusterError(
                f"Could not build the root of Slurm {release.name} (Debian {release.suite}) "
                f"with mmdebstrap (exit {out.returncode}); nothing was started. Debian's "
                f"archive ({mirror()}) must be reachable from this machine: check the "
                f"network or set ${ENV_MIRROR} to a mirror that is, then run `up` again. "
                f"Full output: {log}\n--- last lines ---\n{tail(log, 15)}"
            )
        meta = {
            "release": release.name,
            "suite": release.suite,
            "packages": sorted(packages),
            "mirror": mirror(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (building / ROOT_MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        building.rename(final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def shared_dirs(state_dir: Path, top_level: list[str] | None = None) -> list[Path]:
    """The directories of this machine shared into a root at their own paths: every
    top-level directory that is not the operating system's, ``/usr/local``, ``/var/tmp``
    and the state directory (when none of those holds it)."""
    names = sorted(os.listdir("/")) if top_level is None else sorted(top_level)
    dirs = [Path("/", name) for name in names if name not in _OS_DIRS]
    if top_level is None:
        dirs = [d for d in dirs if d.is_dir() and not d.is_symlink()]
    dirs += [Path("/usr/local"), Path("/var/tmp")]  # noqa: S108 (shared as on this machine)
    if not any(d == state_dir or d in state_dir.parents for d in dirs):
        dirs.append(state_dir)
    return dirs


def render_apptainer_conf(original: str) -> str:
    """The root's ``apptainer.conf`` as the dev cluster runs it: root keeps no capabilities
    in a container (``root default capabilities = no``; the default, ``full``, asks for
    every capability, and Apptainer refuses to start on a machine whose own set lacks
    one, as a container or VM may). Everything else as Debian ships it."""
    lines = []
    for line in original.splitlines():
        if line.strip().replace(" ", "").startswith("rootdefaultcapabilities="):
            lines.append("# slurm devcluster: root keeps no capabilities (see rootfs.py)")
            line = "root default capabilities = no"
        lines.append(line)
    return "\n".join(lines) + "\n"


def mount_script(
    root: Path,
    shared: list[Path],
    mysql_socket: Path | None = None,
    files: dict[str, Path] | None = None,
) -> str:
    """The shell script the root holder runs in its private mount namespace: the mounts
    listed in the module docstring, the ``files`` (path in the root: the file of this
    machine bound there), then ``exec sleep infinity``. ``mysql_socket``
    becomes the root's ``/run/mysqld/mysqld.sock``, where slurmdbd's client library
    looks for ``StorageHost=localhost``: over TCP, the MariaDB client of trixie and
    later insists on TLS, which the dev cluster's MariaDB does not offer."""
    r = shlex.quote(str(root))
    lines = [
        "set -e",
        f"mount --rbind /proc {r}/proc",
        f"mount --rbind /sys {r}/sys",
        f"mount --rbind /dev {r}/dev",
        f"mount -t tmpfs -o mode=0755,size=64m tmpfs {r}/run",
        f"mkdir -p {r}/run/munge {r}/run/sshd",
        f"mount --bind /run/munge {r}/run/munge",
        f"mount --bind /tmp {r}/tmp",  # noqa: S108 (the login host's own /tmp)
        f"mount --bind /etc/hosts {r}/etc/hosts",
        f"if [ -e /etc/resolv.conf ]; then mount --bind /etc/resolv.conf {r}/etc/resolv.conf; fi",
    ]
    if mysql_socket is not None:
        for directory in ("mysqld", "mariadbd"):  # trixie's default, sid's
            lines += [
                f"mkdir -p {r}/run/{directory}",
                f"ln -s {shlex.quote(str(mysql_socket))} {r}/run/{directory}/mysqld.sock",
            ]
    for inside_path, source in (files or {}).items():
        inside = shlex.quote(f"{root}{inside_path}")
        lines.append(f"mount --bind {shlex.quote(str(source))} {inside}")
    for path in shared:
        q = shlex.quote(str(path))
        inside = shlex.quote(f"{root}{path}")
        lines += [f"mkdir -p {inside}", f"mount --rbind {q} {inside}"]
    lines.append("exec sleep infinity")
    return "\n".join(lines) + "\n"


def enter_argv(
    root: Path, holder_pid: int, *, namespaces: tuple[str, ...] = ("--mount",)
) -> list[str]:
    """The argv prefix that runs a program of ``root`` inside the holder ``holder_pid``'s
    namespaces (the login holder's mount namespace, or a node holder's)."""
    nsenter = find_program("nsenter") or "nsenter"
    chroot = find_program("chroot") or "chroot"
    return [nsenter, f"--target={holder_pid}", *namespaces, "--", chroot, str(root)]


def render_client_wrapper(
    root: Path,
    holder_pid_file: Path,
    command: str,
    release: str,
    *,
    nsenter: str = "/usr/bin/nsenter",
    chroot: str = "/usr/sbin/chroot",
) -> str:
    """``<state dir>/bin/COMMAND``: the release's own ``COMMAND``, run in the root (in the
    caller's working directory, which is shared when it is under a shared path)."""
    program = f"/usr/bin/{command}"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Generated by `slurm devcluster up`: Slurm {release}'s {command}, run from its",
            f"# root {root} (needs root: it enters the cluster's mount namespace).",
            f"pid=$(cat {shlex.quote(str(holder_pid_file))} 2>/dev/null) || {{",
            f'  echo "{command}: the dev cluster is not up (no {holder_pid_file})" >&2; exit 1; }}',
            f'exec {nsenter} --target="$pid" --mount -- {chroot} {shlex.quote(str(root))} '
            '/bin/sh -c \'cd "$1" 2>/dev/null || cd /; shift; exec "$@"\' '
            f'sh "$PWD" {program} "$@"',
            "",
        ]
    )
