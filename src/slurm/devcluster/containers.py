"""Container support of the dev cluster: enroot and pyxis built from vendored sources,
a registry on loopback and a base image with Python made offline.

Everything lives under ``<state dir>/containers``:

- ``enroot/`` and ``pyxis/``: the installed tools, built from the tarballs in the
  repository's ``../shared/vendor`` (or ``$SLURM_SDK_VENDOR_DIR``) only when missing;
- ``plugstack.conf``: loads ``spank_pyxis.so`` for slurmd and srun (slurm.conf's
  ``PlugStackConfig`` names it); each slurmd runs with enroot's ``bin`` first on PATH;
- ``registry/``: the storage of Debian's ``docker-registry``, listening on
  ``<login address>:<port base + 4>`` (the bridge: the nodes have their own loopback);
- ``enroot-data/<node>/``: each node's unpacked containers (on disk, not its /tmp).

The base image (``python3`` on Debian's ``minbase``, made with mmdebstrap from the
mirror apt uses) is slow to make, so it is cached for the whole machine in
:data:`IMAGE_CACHE` and only linked into the state directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from pathlib import Path

from slurm.devcluster.daemons import Daemon, spawn, stop_daemon, wait
from slurm.devcluster.install import ensure_container_packages
from slurm.devcluster.proc import DevclusterError, port_open, run
from slurm.devcluster.registry import (
    BASE_IMAGE_REPOSITORY,
    IMAGE_CACHE,
    image_cache_lock,
    push_image,
)
from slurm.devcluster.settings import Settings

__all__ = [
    "BASE_IMAGE_PACKAGES",
    "ENROOT_VERSION",
    "ENV_VENDOR_DIR",
    "IMAGE_CACHE",
    "PYXIS_VERSION",
    "REGISTRY",
    "base_image_path",
    "build_base_image",
    "build_enroot",
    "build_pyxis",
    "containers_status",
    "ensure_containers",
    "image_cache_lock",
    "put_enroot_on_nodes",
    "registry_address",
    "render_enroot_conf",
    "render_plugstack_conf",
    "render_registry_config",
    "serve_containers",
    "stop_containers",
    "vendor_dir",
]

ENROOT_VERSION = "4.1.2"
PYXIS_VERSION = "0.24.0"
ENV_VENDOR_DIR = "SLURM_SDK_VENDOR_DIR"
BASE_IMAGE_SUITE = "bookworm"
BASE_IMAGE_PACKAGES = ("python3",)
BASE_IMAGE_TAG = BASE_IMAGE_SUITE
_MUSL_LIB = "/usr/lib/x86_64-linux-musl"


def vendor_dir() -> Path:
    """Where the enroot and pyxis tarballs are: ``$SLURM_SDK_VENDOR_DIR``, else
    ``../shared/vendor`` next to this checkout of the repository."""
    explicit = os.environ.get(ENV_VENDOR_DIR)
    if explicit:
        return Path(explicit).expanduser().absolute()
    repo = Path(__file__).resolve().parents[3]  # src/slurm/devcluster/containers.py
    return (repo.parent / "shared" / "vendor").absolute()


#: The SHA-256 of each vendored source tarball: they are built and installed as root, so
#: one that was swapped or damaged is refused before it is unpacked.
VENDOR_SHA256 = {
    f"enroot-{ENROOT_VERSION}.tar.gz": (
        "65d7098241b5a86faf48ba29bbca1462e19682bf49d6b89c8a2d934f0196b4da"
    ),
    f"pyxis-{PYXIS_VERSION}.tar.gz": (
        "ede95ba2d48542881f137d9c07c417c5c765994710a74c593a21b3328f311f5d"
    ),
}


def _tarball(name: str) -> Path:
    path = vendor_dir() / name
    if not path.is_file():
        raise DevclusterError(
            f"{path} is missing: `slurm devcluster up --containers` builds enroot and pyxis "
            f"from vendored sources. Put enroot-{ENROOT_VERSION}.tar.gz and "
            f"pyxis-{PYXIS_VERSION}.tar.gz in a directory and set ${ENV_VENDOR_DIR} to it."
        )
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != VENDOR_SHA256[name]:
        raise DevclusterError(
            f"{path} has SHA-256 {digest}, not the {VENDOR_SHA256[name]} of the release this "
            "version builds: it was changed or damaged. Put the released tarball there."
        )
    return path


def _unpack(tarball: Path, into: Path) -> Path:
    """Unpack into a fresh ``into`` and return the single top directory."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


def _make(directory: Path, *args: str) -> None:
    out = run(["make", "-C", str(directory), *args], check=False, timeout=600)
    if out.returncode != 0:
        raise DevclusterError(
            f"`make {' '.join(args)}` in {directory} failed (exit {out.returncode}):\n"
            f"{out.stdout[-3000:]}{out.stderr[-3000:]}"
        )


def patched_musl_specs(specs: str) -> str:
    """Debian's ``musl-gcc.specs`` with the static-PIE support enroot's ``deps/musl.patch``
    adds to musl's own (start file ``rcrt1.o``, no dynamic linker)."""
    specs, n1 = re.subn(
        r"%\{!shared: (\S+)/Scrt1\.o\}",
        r"%{static-pie: \1/rcrt1.o} %{!static-pie: %{!shared: \1/Scrt1.o}}",
        specs,
    )
    specs, n2 = re.subn(
        r"-dynamic-linker (\S+)",
        r"%{static-pie:-no-dynamic-linker -static -pie} %{!static-pie:-dynamic-linker \1}",
        specs,
    )
    if n1 != 1 or n2 != 1:
        raise DevclusterError("musl-gcc.specs does not look as expected; cannot patch it")
    return specs


def _prepare_enroot_deps(src: Path) -> None:
    """Stand Debian's musl, Linux headers and makeself in for enroot's git submodules."""
    dist = src / "deps" / "dist"
    musl_bin = dist / "musl" / "bin"
    musl_bin.mkdir(parents=True, exist_ok=True)
    specs = musl_bin / "musl-gcc.specs"
    specs.write_text(patched_musl_specs(Path(_MUSL_LIB, "musl-gcc.specs").read_text()))
    wrapper = musl_bin / "musl-gcc"
    wrapper.write_text(f'#!/bin/sh\nexec "${{REALGCC:-gcc}}" "$@" -specs "{specs}"\n')
    wrapper.chmod(0o755)
    include = dist / "linux" / "include"
    include.mkdir(parents=True, exist_ok=True)
    for name in ("linux", "asm-generic"):
        shutil.copytree(Path("/usr/include", name), include / name, dirs_exist_ok=True)
    shutil.copytree("/usr/include/x86_64-linux-gnu/asm", include / "asm", dirs_exist_ok=True)
    makeself = dist / "makeself" / "bin" / "enroot-makeself"
    makeself.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/makeself", makeself)
    for dep in ("musl", "linux-headers", "makeself"):
        (src / "deps" / dep).mkdir(exist_ok=True)
        (src / "deps" / dep / ".stamp").touch()


def build_enroot(s: Settings) -> Path:
    """Build and install enroot under the state directory unless it is there; its bin dir."""
    prefix = s.enroot_bin.parent
    if (prefix / "bin" / "enroot").is_file():
        return prefix / "bin"
    src = _unpack(_tarball(f"enroot-{ENROOT_VERSION}.tar.gz"), s.containers_dir / "build")
    _prepare_enroot_deps(src)
    _make(src, f"prefix={prefix}")
    _make(src, "install", f"prefix={prefix}")
    _make(src, "setcap", f"prefix={prefix}")
    shutil.rmtree(src.parent, ignore_errors=True)
    return prefix / "bin"


def build_pyxis(s: Settings) -> Path:
    """Build pyxis against libslurm-dev unless built; the path of ``spank_pyxis.so``."""
    target = s.containers_dir / "pyxis" / "spank_pyxis.so"
    if target.is_file():
        return target
    src = _unpack(_tarball(f"pyxis-{PYXIS_VERSION}.tar.gz"), s.containers_dir / "build")
    _make(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "spank_pyxis.so", target)
    shutil.rmtree(src.parent, ignore_errors=True)
    return target


def render_plugstack_conf(pyxis_so: Path, s: Settings) -> str:
    """``plugstack.conf``: pyxis for slurmd, slurmstepd and srun, runtime state per cluster."""
    runtime = f"/run/pyxis-{s.cluster_name}"
    return f"required {pyxis_so} runtime_path={runtime} container_scope=job\n"


def render_enroot_conf(s: Settings) -> str:
    """enroot's config: unpacked containers on disk per node (not in the node's small /tmp),
    plain HTTP allowed (the registry on loopback), the job's user as root inside, and
    images squashed without compression: each job imports a registry image anew
    (squash, then unpack), about a third quicker so; the file lives only during the job."""
    base = s.containers_dir
    return "".join(
        f"{key} {value}\n"
        for key, value in (
            ("ENROOT_RUNTIME_PATH", "/run/enroot-" + s.cluster_name + "/user-$(id -u)-$(hostname)"),
            ("ENROOT_CACHE_PATH", f"{base}/enroot-cache/user-$(id -u)"),
            ("ENROOT_DATA_PATH", f"{base}/enroot-data/$(hostname)/user-$(id -u)"),
            ("ENROOT_ALLOW_HTTP", "yes"),
            ("ENROOT_ROOTFS_WRITABLE", "yes"),
            ("ENROOT_MOUNT_HOME", "no"),
            ("ENROOT_SQUASH_OPTIONS", "-noI -noD -noF -noX -no-duplicates -exit-on-error"),
        )
    )


def render_registry_config(s: Settings) -> str:
    """Debian's ``docker-registry`` on the login host's address only (the bridge the
    nodes reach, which never leaves the machine), storing under the state directory."""
    root = s.containers_dir / "registry"
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {root}",
            "  delete:",
            "    enabled: true",
            # enroot's first request (a HEAD without Accept) asks for the old schema 1;
            # without this the registry answers 400 and enroot gives up.
            "compatibility:",
            "  schema1:",
            "    enabled: true",
            "http:",
            f"  addr: {s.login_address}:{s.registry_port}",
            "",
        ]
    )


def _cached_image_name() -> str:
    return f"debian-{BASE_IMAGE_SUITE}-{'-'.join(BASE_IMAGE_PACKAGES)}.sqsh"


def _apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (mmdebstrap fetches from it)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            uri = m.group(1) or m.group(2)
            if "security" not in uri:
                return uri
    raise DevclusterError("No Debian mirror found in apt's sources; cannot build the base image.")


def build_base_image() -> Path:
    """The base image (a squashfs file), made once per machine with mmdebstrap + mksquashfs."""
    target = IMAGE_CACHE / _cached_image_name()
    if target.is_file():
        return target
    with image_cache_lock():
        if not target.is_file():  # another cluster's up may have made it meanwhile
            _make_base_image(target)
    return target


def _make_base_image(target: Path) -> None:
    rootfs = IMAGE_CACHE / "rootfs.tmp"
    shutil.rmtree(rootfs, ignore_errors=True)
    include = ",".join(BASE_IMAGE_PACKAGES)
    argv = ["mmdebstrap", "--variant=minbase", f"--include={include}"]
    argv += [BASE_IMAGE_SUITE, str(rootfs), _apt_mirror()]
    out = run(argv, check=False, timeout=1200)
    if out.returncode != 0:
        raise DevclusterError(f"mmdebstrap failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    squash = ["mksquashfs", str(rootfs), str(tmp), "-comp", "lzo", "-noD", "-quiet"]
    out = run(squash, check=False, timeout=1200)
    shutil.rmtree(rootfs, ignore_errors=True)
    if out.returncode != 0:
        raise DevclusterError(f"mksquashfs failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    tmp.replace(target)


REGISTRY = Daemon("registry", "docker-registry", own_log=False)


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def base_image_path(s: Settings) -> Path:
    """The base image as the cluster's jobs name it (a link to the machine-wide cache)."""
    return s.containers_dir / "images" / _cached_image_name()


def ensure_containers(s: Settings) -> None:
    """Install, build and configure everything ``up --containers`` needs, start the registry.

    Call before slurm.conf is written with ``PlugStackConfig`` (slurmd refuses to start
    when a ``required`` plugin is missing)."""
    ensure_container_packages()
    build_enroot(s)
    pyxis_so = build_pyxis(s)
    _write_if_changed(s.enroot_bin.parent / "etc" / "enroot" / "enroot.conf", render_enroot_conf(s))
    _write_if_changed(s.plugstack_conf, render_plugstack_conf(pyxis_so, s))
    image = build_base_image()
    link = base_image_path(s)
    if not link.is_file():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(image)


def serve_containers(s: Settings, holder_pids: list[int]) -> None:
    """Once the nodes run: enroot on each node's PATH, the registry started on the login
    host's address (the bridge, which the nodes reach), the base image pushed to it."""
    put_enroot_on_nodes(s, holder_pids)
    registry_conf = s.containers_dir / "registry.yml"
    restart = _write_if_changed(registry_conf, render_registry_config(s))
    (s.containers_dir / "registry").mkdir(parents=True, exist_ok=True)
    pid, _ = spawn(s, REGISTRY, ["docker-registry", "serve", str(registry_conf)], restart=restart)
    wait(
        s,
        REGISTRY,
        pid,
        lambda: port_open(s.registry_port, s.login_address),
        "the registry did not start",
    )
    push_image(registry_address(s), base_image_path(s).resolve(), BASE_IMAGE_TAG)


def _mounted(pid: int, target: str) -> bool:
    try:
        mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False
    return any(line.split()[4] == target for line in mountinfo.splitlines())


def put_enroot_on_nodes(s: Settings, holder_pids: list[int]) -> None:
    """Show this cluster's enroot in each node's ``/usr/local/bin`` (a read-only overlay in
    the node's own mount namespace): pyxis looks for ``enroot`` only on
    ``/usr/local/bin:/usr/bin:/bin`` (its job epilog runs with that PATH), and the login
    host and other clusters keep their own."""
    if not s.multi_node:
        raise DevclusterError(
            "--containers needs the multi-node layout (--nodes 2 or more): each node shows "
            "the cluster's enroot in its own /usr/local/bin."
        )
    target = "/usr/local/bin"
    for pid in holder_pids:
        if _mounted(pid, target):
            continue
        lower = f"lowerdir={s.enroot_bin}:{target}"
        enter = ["nsenter", f"--target={pid}", "--mount", "--"]
        run([*enter, "mount", "-t", "overlay", "overlay", "-o", lower, target], timeout=30)


def stop_containers(s: Settings) -> None:
    stop_daemon(s, REGISTRY)


def registry_address(s: Settings) -> str:
    return f"{s.login_address}:{s.registry_port}"


def containers_status(s: Settings) -> dict[str, str] | None:
    """When containers are on: ``registry`` (``ADDRESS:PORT``), ``base_image`` (the
    ``.sqsh`` file, the quickest to start) and ``base_image_ref`` (the same image in the
    registry, as pyxis spells it: ``ADDRESS:PORT#sdk/python:bookworm``)."""
    if not s.containers:
        return None
    return {
        "registry": registry_address(s),
        "base_image": str(base_image_path(s)),
        "base_image_ref": f"{registry_address(s)}#{BASE_IMAGE_REPOSITORY}:{BASE_IMAGE_TAG}",
    }
