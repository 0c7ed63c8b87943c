"""Bringing the dev cluster up, reporting on it and taking it down.

``up`` is idempotent: it renders every config, rewrites only the files that
changed, restarts only the daemons whose config changed or that are not running,
and returns quickly when everything already runs as configured.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from slurm.devcluster import daemons as d
from slurm.devcluster import nodes as n
from slurm.devcluster.containers import (
    REGISTRY,
    containers_status,
    ensure_containers,
    put_enroot_on_nodes,
    serve_containers,
    stop_containers,
)
from slurm.devcluster.install import ensure_installed
from slurm.devcluster.proc import DevclusterError, find_program, run
from slurm.devcluster.releases import (
    HOST_RELEASE,
    check_cluster_python,
    get_release,
    root_packages,
)
from slurm.devcluster.render import (
    render_cgroup_conf,
    render_hosts,
    render_my_cnf,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
)
from slurm.devcluster.rootfs import (
    CLIENT_COMMANDS,
    ensure_root,
    render_client_wrapper,
    root_path,
)
from slurm.devcluster.safefiles import check_state_dir, open_lock, write_file
from slurm.devcluster.settings import (
    DEFAULT_NODES,
    ENV_NODES,
    ENV_PORT_BASE,
    ENV_RELEASE,
    MAX_NODES,
    PARTITIONS,
    Settings,
    detect_settings,
    env_nodes,
    env_port_base,
)
from slurm.devcluster.sshsetup import (
    ensure_keys,
    install_user_ssh_config,
    write_ssh_files,
)
from slurm.devcluster.status import NodeStatus, SshInfo, Status
from slurm.errors import CommandError

__all__ = ["SYSTEM_SLURM_CONF", "down", "status", "up"]

SYSTEM_SLURM_CONF = Path("/etc/slurm/slurm.conf")


@contextlib.contextmanager
def _locked(s: Settings) -> Iterator[None]:
    """One ``up``/``down`` at a time per state directory (test sessions run concurrently)."""
    s.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_state_dir(s.state_dir)
    with open_lock(s.state_dir / ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: Path, text: str, mode: int = 0o644, owner: str | None = None) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; True if written."""
    try:
        if (
            not path.is_symlink()
            and path.read_text() == text
            and (path.stat().st_mode & 0o777) == mode
        ):
            return False
    except OSError:
        pass
    write_file(path, text, mode, owner)
    return True


def _db_password(state_dir: Path) -> str:
    path = state_dir / "mysql" / "slurm-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_hex(16)
    _write(path, password + "\n", 0o600)
    return password


def _settings(
    state_dir: Path | str | None,
    accounting: bool | None,
    nodes: int | None = None,
    port_base: int | None = None,
    containers: bool | None = None,
    enforce_associations: bool | None = None,
    release: str | None = None,
    apptainer: bool | None = None,
    *,
    existing: bool = False,
) -> Settings:
    """Settings for this machine, resolved once: ``accounting=None`` (and
    ``enforce_associations=None``) keeps the mode of the last ``up``; ``nodes=None``
    takes ``$SLURM_SDK_DEVCLUSTER_NODES``, else the last ``up``'s layout, else 2. Ports
    start at ``$SLURM_SDK_DEVCLUSTER_PORT_BASE``, else at the last ``up``'s base, else
    6817."""
    s = detect_settings(state_dir)
    saved = _load_saved(s)
    if existing:  # status/down of a cluster: its own ports (and network names), whatever
        port_base = port_base or _saved_int(saved, "port_base")  # $..._PORT_BASE says
    if accounting is None:
        accounting = bool(saved.get("accounting", True))
    if nodes is None:
        nodes = env_nodes() if os.environ.get(ENV_NODES) else _saved_int(saved, "nodes")
        nodes = nodes or DEFAULT_NODES
    if not 1 <= nodes <= MAX_NODES:
        raise DevclusterError(f"--nodes must be from 1 to {MAX_NODES}, not {nodes}.")
    if port_base is None:
        from_env = os.environ.get(ENV_PORT_BASE)
        port_base = env_port_base() if from_env else _saved_int(saved, "port_base")
    saved_release = str(saved.get("release", HOST_RELEASE))
    if release is None and not existing:
        release = os.environ.get(ENV_RELEASE, "").strip() or None
    wanted = get_release(release if release is not None else saved_release)
    if saved and wanted.name != get_release(saved_release).name:
        raise DevclusterError(
            f"The state directory {s.state_dir} holds a Slurm {saved_release} cluster; "
            f"one of Slurm {wanted.name} needs a state directory of its own (its "
            "controller's and database's state do not carry over): pass another "
            "--state-dir and --port-base, or `slurm devcluster down` this one and remove "
            "the directory."
        )
    if apptainer is None:  # the last up's, else off
        apptainer = bool(saved.get("apptainer", False))
    if apptainer and wanted.name == HOST_RELEASE:
        raise DevclusterError(
            f"Apptainer comes from Debian's archive in a release's root (trixie and later), "
            f"not from this machine's Slurm {HOST_RELEASE}: bring up a cluster of another "
            "release with it (--slurm 26.05 --apptainer, with its own --state-dir and "
            "--port-base), or leave out --apptainer."
        )
    packages = root_packages(apptainer=apptainer)
    root = None if wanted.name == HOST_RELEASE else root_path(wanted, packages)
    if release is None and root is not None and isinstance(saved.get("root"), str):
        root = Path(str(saved["root"]))  # status/down: the root the last up ran from
    if root is not None and containers:
        raise DevclusterError(
            f"Containers (pyxis + enroot) are built against this machine's Slurm "
            f"{HOST_RELEASE} and do not run on a Slurm {wanted.name} cluster: leave out "
            "--containers (or pass --no-containers)."
        )
    if containers is None:  # the last up's, else on; never on the one-node layout
        containers = bool(saved.get("containers", True)) and nodes > 1 and root is None
    if enforce_associations is None:
        enforce_associations = bool(saved.get("enforce_associations", False)) and accounting
    if enforce_associations and not accounting:
        raise DevclusterError(
            "--enforce-associations needs accounting (slurmdbd keeps the associations): "
            "leave out --no-accounting."
        )
    return replace(
        s,
        accounting=accounting,
        apptainer=apptainer,
        containers=containers,
        enforce_associations=enforce_associations,
        nodes=nodes,
        port_base=port_base or s.port_base,
        release=wanted.name,
        root=root,
    )


def _saved_int(saved: dict[str, object], key: str) -> int | None:
    value = saved.get(key)
    return value if isinstance(value, int) else None


def _load_saved(s: Settings) -> dict[str, object]:
    try:
        data = json.loads(s.settings_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _link_system_conf(s: Settings) -> None:
    """Point /etc/slurm/slurm.conf at ours so every client finds it; never clobber a real file."""
    link = SYSTEM_SLURM_CONF
    if link.is_symlink():
        if Path(os.readlink(link)) == s.slurm_conf:
            return
        link.unlink()
    elif link.exists():
        raise DevclusterError(
            f"{link} exists and is not a link to the dev cluster's config. Slurm clients read "
            f"that file first, so the dev cluster cannot take it over. Move it away "
            f"(e.g. `mv {link} {link}.orig`) and run `slurm devcluster up` again."
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(s.slurm_conf)


def _prepare_dirs(s: Settings) -> None:
    s.state_dir.mkdir(parents=True, exist_ok=True)
    spool = s.spool_ctld.parent
    for directory in (s.log_dir, s.run_dir, s.spool_ctld, spool, s.my_cnf.parent):
        directory.mkdir(parents=True, exist_ok=True)


def up(
    state_dir: Path | str | None = None,
    *,
    accounting: bool = True,
    nodes: int | None = None,
    port_base: int | None = None,
    containers: bool | None = None,
    enforce_associations: bool | None = None,
    release: str | None = None,
    apptainer: bool | None = None,
) -> Status:
    """Bring the dev cluster up (or leave it be if it already runs as asked).

    Args:
        state_dir: where configs, logs, pid files and data live; default
            :func:`~slurm.devcluster.settings.default_state_dir`. With more than one
            node it must not be under ``/tmp`` (each node has its own ``/tmp``).
        accounting: run MariaDB + slurmdbd so ``sacct`` answers.
        nodes: compute nodes, each in its own namespaces (``node1`` ... ``nodeN``);
            1 runs slurmd on this machine itself. Default ``$SLURM_SDK_DEVCLUSTER_NODES``,
            else the last ``up``'s, else 2.
        port_base: the first of six ports (slurmctld, slurmd, slurmdbd, MariaDB, -, sshd);
            a cluster on other than the default 6817 runs beside the default one, under
            its own cluster name, network names and SSH alias
            (``slurm-devcluster-<port base>``), and leaves ``/etc/slurm/slurm.conf``
            alone. Default ``$SLURM_SDK_DEVCLUSTER_PORT_BASE``,
            else the last ``up``'s, else 6817.
        containers: build and enable pyxis + enroot, run a registry on
            ``127.0.0.1:<port base + 4>`` and provide a base image with Python
            (docs/containers.md). Default: the last ``up``'s, else on (off on the
            one-node layout, which cannot have them, and on another release).
        enforce_associations: ``AccountingStorageEnforce=associations,qos``: only
            users with an association may submit, and an unknown account or QOS is
            refused. The user running ``up`` gets one (account ``sdk``). Needs
            accounting. Default: the last ``up``'s, else off.
        release: the Slurm release, ``"22.05"`` (this machine's packages), ``"24.11"``
            or ``"26.05"`` (run from a root built with mmdebstrap, cached for the
            machine). Default ``$SLURM_SDK_DEVCLUSTER_RELEASE``, else the last ``up``'s,
            else 22.05. A state directory keeps
            its release: another needs another state directory (and port base).
        apptainer: put Debian's ``apptainer`` in the release's root, so that tasks run
            in ``.sif`` images with ``container_runtime="apptainer"``
            (docs/containers.md). Needs a release other than 22.05 (its root is a root
            of its own, cached beside the plain one). Default: the last ``up``'s, else off.

    Raises:
        DevclusterError: a package is missing and cannot be installed here, a daemon
            failed to start (the message holds its log's path and tail), a setting
            is out of range, the release is unknown, its root could not be built, or
            its Python is older than 3.11. When the cluster was not running before,
            whatever this call started is stopped again.

    Example::

        st = up(nodes=2, release="24.11")
        print([node.name for node in st.nodes], st.slurm_version, st.python_version)
    """
    if release is not None or os.environ.get(ENV_RELEASE):
        get_release(release or os.environ[ENV_RELEASE])  # fails before anything is installed
    ensure_installed()
    if os.geteuid() != 0:
        raise DevclusterError(
            "`slurm devcluster up` must run as root: munged, slurmd, sshd and the nodes' "
            "namespaces need it (try `sudo slurm devcluster up`)."
        )
    s = _settings(
        state_dir, accounting, nodes, port_base, containers, enforce_associations, release,
        apptainer,
    )  # fmt: skip
    if s.root is not None:
        # Built (or found in the cache) before anything starts, and its Python checked:
        # a failure here leaves nothing running.
        built = ensure_root(s.slurm_release, root_packages(apptainer=s.apptainer))
        s = replace(s, root=built)
        check_cluster_python(_python_version(s), f"The python3 of Slurm {s.release}'s root {built}")
    with _locked(s):
        was_running = _status(s).running
        try:
            return _up_locked(s)
        except BaseException:
            if not was_running:  # nothing half-made left running
                _down_locked(s)
            raise


def _up_locked(s: Settings) -> Status:
    _prepare_dirs(s)
    if s.containers:  # before slurm.conf names pyxis: slurmd needs the plugin there
        if not s.multi_node:
            put_enroot_on_nodes(s, [])  # raises: explains why
        ensure_containers(s)
    else:
        stop_containers(s)
    s = replace(s, db_password=_db_password(s.state_dir))
    conf_changed = _write(s.slurm_conf, render_slurm_conf(s))
    cgroup_conf = render_cgroup_conf(s)
    if cgroup_conf is not None:
        conf_changed |= _write(s.cgroup_conf, cgroup_conf)
    cnf_changed = _write(s.my_cnf, render_my_cnf(s))
    dbd_changed = s.accounting and _write(
        s.slurmdbd_conf, render_slurmdbd_conf(s), 0o600, owner=s.user
    )
    sshd_changed = _write(s.sshd_config, render_sshd_config(s), 0o600)
    _write(s.hosts_file, render_hosts(s))
    ensure_keys(s)
    write_ssh_files(s)

    d.start_munged(s)
    # A new root holder (first up, or another root): every daemon in it starts again.
    fresh_root = d.start_root_holder(s) if s.root is not None else False
    if s.root is not None:
        _write_client_wrappers(s)
    if s.multi_node:
        n.ensure_network(s)  # before the daemons: they are reached on the bridge
    else:
        n.remove_network(s)
    if s.accounting:
        d.start_mariadb(s, restart=cnf_changed)
        d.start_slurmdbd(s, restart=dbd_changed or cnf_changed or fresh_root)
        if s.enforce_associations:  # before slurmctld loads them
            d.ensure_association(s)
    else:
        d.stop_daemon(s, d.SLURMDBD)
        d.stop_daemon(s, d.MARIADB)
    d.start_slurmctld(s, restart=conf_changed or fresh_root)
    if fresh_root:
        n.down_nodes(s)  # the nodes' holders live in the old root holder's namespace
        if s.multi_node:
            n.ensure_network(s)
    n.start_nodes(s, restart=conf_changed or fresh_root)
    if s.containers:
        serve_containers(s, n.holder_pids(s))
    d.start_sshd(s, restart=sshd_changed or fresh_root)
    # Only a cluster that started, on the default ports, takes over the machine-wide
    # /etc/slurm/slurm.conf; another one runs beside it (its clients set SLURM_CONF).
    # Each has its own SSH alias (slurm-devcluster, slurm-devcluster-<port base>).
    if s.is_default_instance:
        _link_system_conf(s)
    install_user_ssh_config(s)
    saved = {
        "accounting": s.accounting,
        "apptainer": s.apptainer,
        "containers": s.containers,
        "enforce_associations": s.enforce_associations,
        "nodes": s.nodes,
        "port_base": s.port_base,
        "release": s.release,
        **({"root": str(s.root)} if s.root is not None else {}),
    }
    _write(s.settings_file, json.dumps(saved) + "\n")
    return _status(s)


def _write_client_wrappers(s: Settings) -> None:
    root = s.require_root()
    pid_file = s.run_dir / f"{d.ROOTNS.name}.sdk.pid"
    nsenter = find_program("nsenter") or "/usr/bin/nsenter"
    chroot = find_program("chroot") or "/usr/sbin/chroot"
    for command in CLIENT_COMMANDS:
        text = render_client_wrapper(
            root, pid_file, command, s.release, nsenter=nsenter, chroot=chroot
        )
        _write(s.bin_dir / command, text, 0o755)


def down(state_dir: Path | str | None = None) -> Status:
    """Stop the daemons this state directory started and remove the nodes' namespaces and
    interfaces; keep the state for a fast next ``up``."""
    s = _settings(state_dir, None, existing=True)
    if not s.state_dir.is_dir():
        return _status(s)
    with _locked(s):
        _down_locked(s)
        return _status(s)


def _down_locked(s: Settings) -> None:
    d.stop_daemon(s, d.SSHD)
    stop_containers(s)
    n.down_nodes(s)
    for daemon in reversed(d.DAEMONS):
        d.stop_daemon(s, daemon)
    d.stop_daemon(s, d.ROOTNS)  # last: every daemon of a release's root ran in it


def status(state_dir: Path | str | None = None) -> Status:
    """Report on the dev cluster without changing anything."""
    return _status(_settings(state_dir, None, existing=True))


def _slurm_version(s: Settings) -> str:
    """The release's Slurm version (``sinfo -V``; for a root, its package's version)."""
    if s.root is not None:
        out = run(["chroot", str(s.root), "dpkg-query", "-W", "-f=${Version}", "slurm-client"],
                  check=False, timeout=30)  # fmt: skip
        return out.stdout.split("-")[0].strip() if out.returncode == 0 else ""
    out = run(["sinfo", "-V"], check=False, timeout=10)
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else ""


_PYTHON_VERSION = "import platform; print(platform.python_version())"


def _python_version(s: Settings) -> str:
    """The version of ``python3`` as the cluster's jobs find it (``/usr/bin/python3`` of
    the release's root, or of this machine)."""
    argv = ["/usr/bin/python3", "-c", _PYTHON_VERSION]
    if s.root is not None:
        argv = ["chroot", str(s.root), *argv]
    try:
        out = run(argv, check=False, timeout=30)
    except CommandError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _apptainer_version(s: Settings) -> str:
    """``apptainer --version`` of the release's root when up with ``--apptainer``, else ""."""
    if not s.apptainer or s.root is None:
        return ""
    try:
        out = run(["chroot", str(s.root), "apptainer", "--version"], check=False, timeout=30)
    except CommandError:
        return ""
    return out.stdout.strip().split()[-1] if out.returncode == 0 and out.stdout.strip() else ""


def _status(s: Settings) -> Status:
    required = [d.SLURMCTLD, d.SSHD]
    if s.accounting:
        required += [d.MARIADB, d.SLURMDBD]
    daemons = (*d.DAEMONS, d.ROOTNS) if s.root is not None else d.DAEMONS
    pids = {daemon.name: d.running_pid(s, daemon) for daemon in daemons}
    running = all(pids[daemon.name] for daemon in required)
    running = running and n.nodes_running(s) and d.munge_works(s)
    if s.root is not None:
        running = running and pids[d.ROOTNS.name] is not None
    if s.containers:
        running = running and d.running_pid(s, REGISTRY) is not None
    states = n.node_states(s) if pids[d.SLURMCTLD.name] else {}
    return Status(
        running=running,
        state_dir=str(s.state_dir),
        accounting=s.accounting,
        enforce_associations=s.enforce_associations,
        slurm_version=_slurm_version(s),
        release=s.release,
        python_version=_python_version(s),
        slurm_bin=str(s.bin_dir) if s.root is not None else "",
        cluster_name=s.cluster_name,
        node_name=s.node_name,
        cpus=s.cpus,
        real_memory_mb=s.node_memory_mb,
        partitions=[name for name, _ in PARTITIONS],
        default_partition=PARTITIONS[0][0],
        slurm_conf=str(s.slurm_conf),
        log_dir=str(s.log_dir),
        ssh=SshInfo(
            host="127.0.0.1",
            port=s.ssh_port,
            username=s.user,
            key_file=str(s.ssh_client_key),
            alias=s.ssh_alias,
            config_file=str(s.ssh_client_config),
            known_hosts_file=str(s.ssh_known_hosts),
        ),
        daemons=pids,
        nodes=[
            NodeStatus(
                name=node.name,
                address=node.address,
                state=states.get(node.name, ""),
                cpus=s.cpus,
                netns=node.netns,
            )
            for node in s.compute_nodes
        ],
        containers=containers_status(s),
        apptainer=_apptainer_version(s),
    )
