"""Starting, checking and stopping each daemon of the dev cluster.

Each ``start_*`` function starts its daemon only when it is not already running
from our pid file (or restarts it when ``restart`` is true), then waits until it
answers. A daemon that fails to start raises :class:`DevclusterError` carrying
its log file path and the log's last lines.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slurm.devcluster.proc import (
    DevclusterError,
    find_program,
    is_alive,
    port_open,
    read_pid,
    run,
    spawn_daemon,
    stop_pid,
    wait_for,
)
from slurm.devcluster.rootfs import enter_argv, mount_script, render_apptainer_conf, shared_dirs
from slurm.devcluster.settings import ACCOUNT, NodeSpec, Settings

__all__ = [
    "DAEMONS",
    "ROOTNS",
    "Daemon",
    "ensure_association",
    "in_root",
    "munge_works",
    "node_state",
    "refuse_taken_port",
    "running_pid",
    "spawn",
    "start_mariadb",
    "start_munged",
    "start_root_holder",
    "start_slurmctld",
    "start_slurmd",
    "start_slurmdbd",
    "start_sshd",
    "stop_daemon",
    "stop_stray_slurmds",
    "wait",
]


@dataclass(frozen=True)
class Daemon:
    name: str  # names its pid file and log file
    program: str  # the executable, checked against /proc/PID/exe
    own_log: bool = True  # writes its own log file; our capture of its output goes to .out

    def output_file(self, s: Settings) -> Path:
        return s.log_dir / f"{self.name}.out" if self.own_log else s.log_file(self.name)

    def logs(self, s: Settings) -> list[Path]:
        return [s.log_file(self.name), *([self.output_file(s)] if self.own_log else [])]


MUNGED = Daemon("munged", "munged", own_log=False)
MARIADB = Daemon("mariadb", "mariadbd")
SLURMDBD = Daemon("slurmdbd", "slurmdbd")
SLURMCTLD = Daemon("slurmctld", "slurmctld")
SSHD = Daemon("sshd", "sshd", own_log=False)
# A release's root holder: keeps the mount namespace its daemons enter (rootfs.py).
ROOTNS = Daemon("rootns", "sleep", own_log=False)
# The login host's daemons in start order; stop in reverse. Each node's slurmd is
# its own Daemon ``slurmd-NODE`` (see nodes.py).
DAEMONS = (MUNGED, MARIADB, SLURMDBD, SLURMCTLD, SSHD)
START_TIMEOUT = 60.0
#: Where Apptainer reads its configuration in a root (the dev cluster binds its own there).
APPTAINER_CONF = "/etc/apptainer/apptainer.conf"


def _pid_file(s: Settings, d: Daemon) -> Path:
    # slurmctld/slurmd/slurmdbd/sshd/mariadb also write their own pid to this file;
    # it is the same pid since they run in the foreground.
    return s.run_dir / f"{d.name}.sdk.pid"


def running_pid(s: Settings, d: Daemon) -> int | None:
    """The pid of ``d`` if we started it and it still runs."""
    pid = read_pid(_pid_file(s, d))
    return pid if is_alive(pid, d.program) else None


def stop_daemon(s: Settings, d: Daemon) -> bool:
    """Stop ``d`` if we started it (found through our pid file). True if it was running."""
    pid = running_pid(s, d)
    if pid is not None:
        stop_pid(pid, d.program)
    _pid_file(s, d).unlink(missing_ok=True)
    return pid is not None


def spawn(
    s: Settings, d: Daemon, argv: list[str], *, user: str | None = None, restart: bool = False
) -> tuple[int, bool]:
    """Start ``d`` (``argv[0]`` looked up on PATH and in sbin) unless it runs;
    returns (pid, started_now)."""
    pid = running_pid(s, d)
    if pid is not None and not restart:
        return pid, False
    if pid is not None:
        stop_daemon(s, d)
    program = find_program(argv[0])
    if program is None:
        raise DevclusterError(f"{argv[0]} is not installed")
    new_pid = spawn_daemon(
        [program, *argv[1:]],
        pid_file=_pid_file(s, d),
        log_file=d.output_file(s),
        user=user,
        env={"SLURM_CONF": str(s.slurm_conf)},
    )
    return new_pid, True


def refuse_taken_port(s: Settings, d: Daemon, port: int) -> None:
    """Before ``d`` starts afresh: refuse a port another program already listens on (its
    readiness check would take that program for ``d``)."""
    if running_pid(s, d) is None and port_open(port):
        raise DevclusterError(
            f"Port {port}, where the dev cluster's {d.name} listens (port base "
            f"{s.port_base} + {port - s.port_base}), is taken by another program, so "
            f"{d.name} cannot start. Choose another --port-base (the cluster uses "
            f"{s.port_base}-{s.port_base + 5}) or stop what listens there "
            f"(`ss -ltnp 'sport = :{port}'` shows it)."
        )


def wait(s: Settings, d: Daemon, pid: int, ready: Callable[[], bool], what: str) -> None:
    wait_for(
        ready,
        what=f"{what} (log: {s.log_file(d.name)})",
        timeout=START_TIMEOUT,
        pid=pid,
        logs=d.logs(s),
    )


# ---- a release's root -----------------------------------------------------------------


def root_program(s: Settings, name: str) -> str:
    """The absolute path, inside the cluster's root, of the program ``name``."""
    root = s.require_root()
    for directory in ("usr/sbin", "usr/bin", "sbin", "bin"):
        if (root / directory / name).exists():
            return f"/{directory}/{name}"
    raise DevclusterError(
        f"{name} is missing from the root {s.root} of Slurm {s.release}: remove that "
        "directory so that `up` builds it again."
    )


def in_root(s: Settings, argv: list[str]) -> list[str]:
    """``argv`` (a Slurm command or daemon, or sshd) as the cluster's release runs it:
    unchanged on this machine's own release, else inside the root holder's namespace."""
    if s.root is None:
        return list(argv)
    pid = running_pid(s, ROOTNS)
    if pid is None:
        raise DevclusterError(
            f"The root holder of the Slurm {s.release} cluster in {s.state_dir} is not "
            "running: run `slurm devcluster up` with this --state-dir."
        )
    program = argv[0] if argv[0].startswith("/") else root_program(s, argv[0])
    return [*enter_argv(s.root, pid), program, *argv[1:]]


def start_root_holder(s: Settings) -> bool:
    """Start the root holder (its mounts, then ``sleep infinity``) unless it runs with
    the same root; True when it started now (every daemon in the root must restart)."""
    root = s.require_root()
    marker = s.run_dir / "rootns.script"  # what the running holder mounted
    files = {}
    if s.apptainer:  # the dev cluster's apptainer.conf (render_apptainer_conf)
        conf = APPTAINER_CONF
        text = render_apptainer_conf((root / conf.lstrip("/")).read_text())
        s.apptainer_conf.parent.mkdir(parents=True, exist_ok=True)
        s.apptainer_conf.write_text(text)
        s.apptainer_conf.chmod(0o644)
        files[conf] = s.apptainer_conf
    script = mount_script(root, shared_dirs(s.state_dir), s.mysql_socket, files)
    pid = running_pid(s, ROOTNS)
    if pid is not None and marker.is_file() and marker.read_text() == script:
        return False
    stop_daemon(s, ROOTNS)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    pid, _ = spawn(s, ROOTNS, argv)

    def ready() -> bool:  # the script ends with `exec sleep`: every mount is in place
        return is_alive(pid, "sleep")

    wait(s, ROOTNS, pid, ready, "the root holder did not start")
    marker.write_text(script)
    return True


# ---- munge ---------------------------------------------------------------------------


def munge_works(s: Settings) -> bool:
    """True when a munged answers on the socket slurm.conf names (ours or the system's)."""
    if not s.munge_socket.exists():
        return False
    cred = run(["munge", "-n", "-S", str(s.munge_socket)], check=False, timeout=10)
    if cred.returncode != 0:
        return False
    check = run(["unmunge", "-S", str(s.munge_socket)], input=cred.stdout, check=False, timeout=10)
    return check.returncode == 0


def _prepare_munge_dirs(key: Path) -> None:
    munge = pwd.getpwnam("munge")
    for directory, mode in (
        (Path("/run/munge"), 0o755),
        (Path("/var/lib/munge"), 0o700),
        (Path("/var/log/munge"), 0o700),
        (Path("/etc/munge"), 0o700),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, munge.pw_uid, munge.pw_gid)
        directory.chmod(mode)
    if not key.exists():
        mungekey = find_program("mungekey")
        if mungekey:
            run([mungekey, "--create", f"--keyfile={key}"])
        else:
            key.write_bytes(os.urandom(1024))
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o600)


def start_munged(s: Settings) -> int | None:
    """Make sure a munged answers; start ours (as the ``munge`` user) if none does."""
    pid = running_pid(s, MUNGED)
    if munge_works(s):
        return pid
    if pid is not None:
        stop_daemon(s, MUNGED)
    _prepare_munge_dirs(Path("/etc/munge/munge.key"))
    pid, _ = spawn(s, MUNGED, ["munged", "--foreground", "--force"], user="munge")
    wait(s, MUNGED, pid, lambda: munge_works(s), "munged did not start")
    return pid


# ---- MariaDB -------------------------------------------------------------------------


def _mysql(s: Settings, sql: str) -> None:
    """Run ``sql`` as MariaDB's root, given on stdin: a password in it would show in every
    user's ``ps`` as an argument."""
    run(["mariadb", f"--defaults-file={s.my_cnf}", "-u", "root"], input=sql, timeout=60)


def start_mariadb(s: Settings, *, restart: bool = False) -> int:
    """Initialise the datadir once, start mariadbd, create the ``slurm`` database user."""
    if not (s.mysql_datadir / "mysql").is_dir():
        shutil.rmtree(s.mysql_datadir, ignore_errors=True)
        s.mysql_datadir.mkdir(parents=True)
        init = run(
            [
                "mariadb-install-db",
                f"--defaults-file={s.my_cnf}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--user=root",
            ],
            check=False,
            timeout=300,
        )
        if init.returncode != 0:
            raise DevclusterError(
                f"mariadb-install-db failed (exit {init.returncode}):\n{init.stdout}{init.stderr}"
            )
    refuse_taken_port(s, MARIADB, s.mysql_port)
    pid, started = spawn(s, MARIADB, ["mariadbd", f"--defaults-file={s.my_cnf}"], restart=restart)
    wait(
        s,
        MARIADB,
        pid,
        lambda: s.mysql_socket.exists() and port_open(s.mysql_port),
        "MariaDB did not start",
    )
    if started:
        pw = s.db_password
        statements = []
        for host in ("127.0.0.1", "localhost"):
            user = f"'slurm'@'{host}'"
            statements += [
                f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{pw}'",
                f"ALTER USER {user} IDENTIFIED BY '{pw}'",
                f"GRANT ALL ON slurm_acct_db.* TO {user}",
            ]
        _mysql(s, "; ".join(statements) + ";")
    return pid


# ---- slurmdbd ------------------------------------------------------------------------


def start_slurmdbd(s: Settings, *, restart: bool = False) -> int:
    """Start slurmdbd and register the cluster (``sacctmgr -i add cluster NAME``)."""
    pid, _ = spawn(s, SLURMDBD, in_root(s, ["slurmdbd", "-D"]), restart=restart)
    env = {"SLURM_CONF": str(s.slurm_conf)}
    argv = in_root(s, ["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"])
    clusters: list[str] = []

    def ready() -> bool:  # a real query, not a bare TCP probe (which slurmdbd logs as an error)
        out = run(argv, env=env, check=False, timeout=30)
        clusters[:] = out.stdout.split()
        return out.returncode == 0

    wait(s, SLURMDBD, pid, ready, "slurmdbd did not start")
    if s.cluster_name not in clusters:
        run(in_root(s, ["sacctmgr", "-i", "add", "cluster", s.cluster_name]), env=env, timeout=30)
    return pid


def ensure_association(s: Settings) -> None:
    """Give the user who runs ``up`` an association (account ``sdk`` on this cluster), so
    that a cluster enforcing associations takes their jobs; once, idempotently."""
    env = {"SLURM_CONF": str(s.slurm_conf)}
    sacctmgr = in_root(s, ["sacctmgr"])
    show = [
        *sacctmgr, "-n", "-P", "show", "associations",
        "where", f"cluster={s.cluster_name}", f"account={ACCOUNT}", f"user={s.user}",
        "format=user",
    ]  # fmt: skip
    if s.user in run(show, env=env, timeout=30).stdout.split():
        return
    accounts = run([*sacctmgr, "-n", "-P", "show", "account", ACCOUNT, "format=account"],
                   env=env, timeout=30).stdout.split()  # fmt: skip
    if ACCOUNT not in accounts:
        run([*sacctmgr, "-i", "add", "account", ACCOUNT, f"cluster={s.cluster_name}",
             "description=slurm-sdk dev cluster", "organization=slurm-sdk"],
            env=env, timeout=30)  # fmt: skip
    run([*sacctmgr, "-i", "add", "user", s.user, f"account={ACCOUNT}",
         f"cluster={s.cluster_name}"], env=env, timeout=30)  # fmt: skip
    if s.user not in run(show, env=env, timeout=30).stdout.split():
        raise DevclusterError(
            f"sacctmgr did not record the association of {s.user} with account {ACCOUNT} on "
            f"{s.cluster_name}; see {s.log_file('slurmdbd')}"
        )


# ---- slurmctld, slurmd ---------------------------------------------------------------


def start_slurmctld(s: Settings, *, restart: bool = False) -> int:
    refuse_taken_port(s, SLURMCTLD, s.slurmctld_port)
    pid, _ = spawn(s, SLURMCTLD, in_root(s, ["slurmctld", "-D"]), restart=restart)
    argv = in_root(s, ["scontrol", "ping"])
    env = {"SLURM_CONF": str(s.slurm_conf)}

    def ready() -> bool:
        out = run(argv, env=env, check=False, timeout=15)
        return out.returncode == 0 and "UP" in out.stdout

    wait(s, SLURMCTLD, pid, ready, "slurmctld did not start")
    return pid


def node_state(s: Settings, node: str) -> str:
    """``node``'s state as ``sinfo`` prints it (``idle``, ``mixed``, ``down*``, ...)."""
    out = run(
        in_root(s, ["sinfo", "-h", "-N", "-n", node, "-o", "%T"]),
        env={"SLURM_CONF": str(s.slurm_conf)},
        check=False,
        timeout=15,
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


_NOT_USABLE = ("down", "drain", "fail", "unk", "power", "boot", "future", "inval", "not_resp")


def stop_stray_slurmds(s: Settings, keep: set[str]) -> None:
    """Stop every slurmd our pid files know whose daemon name is not in ``keep``
    (nodes of an earlier layout, or the one-node layout's former ``slurmd``)."""
    for pid_file in sorted(s.run_dir.glob("slurmd*.sdk.pid")):
        name = pid_file.name.removesuffix(".sdk.pid")
        if (name == "slurmd" or name.startswith("slurmd-")) and name not in keep:
            stop_daemon(s, Daemon(name, "slurmd"))


def start_slurmd(
    s: Settings, node: NodeSpec, daemon: Daemon, enter: list[str], *, restart: bool = False
) -> int:
    """Start ``node``'s slurmd (through the ``enter`` argv prefix) and wait until it is usable."""
    if s.root is not None:  # ``enter`` ends with ``chroot ROOT``
        argv = [*enter, root_program(s, "slurmd"), "-D", "-N", node.name]
    elif enter:
        argv = [*enter, find_program("slurmd") or "slurmd", "-D", "-N", node.name]
    else:
        argv = ["slurmd", "-D", "-N", node.name]
    Path(s.spool_slurmd_pattern.replace("%n", node.name)).mkdir(parents=True, exist_ok=True)
    pid, _ = spawn(s, daemon, argv, restart=restart)
    env = {"SLURM_CONF": str(s.slurm_conf)}

    def ready() -> bool:
        state = node_state(s, node.name)
        responding = bool(state) and not state.endswith("*")
        if responding and any(bad in state for bad in ("drain", "down", "fail")):
            # Left drained or down by an earlier run (e.g. a kill that timed out).
            run(
                in_root(s, ["scontrol", "update", f"nodename={node.name}", "state=resume"]),
                env=env,
                check=False,
            )
        return responding and not any(bad in state for bad in _NOT_USABLE)

    wait_for(
        ready,
        what=f"slurmd did not register node {node.name} (log: {s.log_file(daemon.name)})",
        timeout=START_TIMEOUT,
        pid=pid,
        logs=[*daemon.logs(s), s.log_file("slurmctld")],
    )
    return pid


# ---- sshd ----------------------------------------------------------------------------


def start_sshd(s: Settings, *, restart: bool = False) -> int:
    if s.root is None:  # a root's /run/sshd is made by its holder (rootfs.mount_script)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
    sshd = root_program(s, "sshd") if s.root is not None else "sshd"
    if restart:
        check = run(in_root(s, [sshd, "-t", "-f", str(s.sshd_config)]), check=False)
        if check.returncode != 0:
            raise DevclusterError(f"sshd rejects {s.sshd_config}:\n{check.stderr}")
    refuse_taken_port(s, SSHD, s.ssh_port)
    argv = in_root(s, [sshd, "-D", "-e", "-f", str(s.sshd_config)])
    pid, _ = spawn(s, SSHD, argv, restart=restart)
    wait(s, SSHD, pid, lambda: port_open(s.ssh_port), "sshd did not start")
    return pid
