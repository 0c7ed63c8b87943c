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
from slurm.devcluster.install import ensure_installed
from slurm.devcluster.proc import DevclusterError, run
from slurm.devcluster.render import (
    render_my_cnf,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
)
from slurm.devcluster.safefiles import check_state_dir, open_lock, write_file
from slurm.devcluster.settings import PARTITIONS, SSH_ALIAS, Settings, detect_settings
from slurm.devcluster.sshsetup import (
    ensure_keys,
    install_user_ssh_config,
    write_ssh_files,
)
from slurm.devcluster.status import SshInfo, Status

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


def _settings(state_dir: Path | str | None, accounting: bool | None) -> Settings:
    """Settings for this machine; ``accounting=None`` keeps the mode of the last ``up``."""
    s = detect_settings(state_dir)
    if accounting is None:
        accounting = bool(_load_saved(s).get("accounting", True))
    return s.with_accounting(accounting)


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
    for directory in (s.log_dir, s.run_dir, s.spool_ctld, s.spool_slurmd, s.my_cnf.parent):
        directory.mkdir(parents=True, exist_ok=True)


def up(state_dir: Path | str | None = None, *, accounting: bool = True) -> Status:
    """Bring the dev cluster up (or leave it be if it already runs as asked).

    Args:
        state_dir: where configs, logs, pid files and data live; default
            :func:`~slurm.devcluster.settings.default_state_dir`.
        accounting: run MariaDB + slurmdbd so ``sacct`` answers.

    Raises:
        DevclusterError: a package is missing and cannot be installed here, or a
            daemon failed to start (the message holds its log's path and tail).

    Example::

        st = up()
        print(st.ssh.port, st.partitions)
    """
    ensure_installed()
    if os.geteuid() != 0:
        raise DevclusterError(
            "`slurm devcluster up` must run as root: munged, slurmd and sshd need it "
            "(try `sudo slurm devcluster up`)."
        )
    s = _settings(state_dir, accounting)
    with _locked(s):
        _prepare_dirs(s)
        s = replace(s, db_password=_db_password(s.state_dir))
        conf_changed = _write(s.slurm_conf, render_slurm_conf(s))
        cnf_changed = _write(s.my_cnf, render_my_cnf(s))
        dbd_changed = s.accounting and _write(
            s.slurmdbd_conf, render_slurmdbd_conf(s), 0o600, owner=s.user
        )
        sshd_changed = _write(s.sshd_config, render_sshd_config(s), 0o600)
        ensure_keys(s)
        write_ssh_files(s)

        d.start_munged(s)
        if s.accounting:
            d.start_mariadb(s, restart=cnf_changed)
            d.start_slurmdbd(s, restart=dbd_changed or cnf_changed)
        else:
            d.stop_daemon(s, d.SLURMDBD)
            d.stop_daemon(s, d.MARIADB)
        d.start_slurmctld(s, restart=conf_changed)
        d.start_slurmd(s, restart=conf_changed)
        d.start_sshd(s, restart=sshd_changed)
        # Only a cluster that started takes over the machine-wide pointers to it.
        _link_system_conf(s)
        install_user_ssh_config(s)
        _write(s.settings_file, json.dumps({"accounting": s.accounting}) + "\n")
        return _status(s)


def down(state_dir: Path | str | None = None) -> Status:
    """Stop the daemons this state directory started; keep the state for a fast next ``up``."""
    s = _settings(state_dir, None)
    if not s.state_dir.is_dir():
        return _status(s)
    with _locked(s):
        for daemon in reversed(d.DAEMONS):
            d.stop_daemon(s, daemon)
        return _status(s)


def status(state_dir: Path | str | None = None) -> Status:
    """Report on the dev cluster without changing anything."""
    return _status(_settings(state_dir, None))


def _slurm_version() -> str:
    out = run(["sinfo", "-V"], check=False, timeout=10)
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else ""


def _status(s: Settings) -> Status:
    required = [d.SLURMCTLD, d.SLURMD, d.SSHD]
    if s.accounting:
        required += [d.MARIADB, d.SLURMDBD]
    pids = {daemon.name: d.running_pid(s, daemon) for daemon in d.DAEMONS}
    running = all(pids[daemon.name] for daemon in required) and d.munge_works(s)
    return Status(
        running=running,
        state_dir=str(s.state_dir),
        accounting=s.accounting,
        slurm_version=_slurm_version(),
        cluster_name=s.cluster_name,
        node_name=s.node_name,
        cpus=s.cpus,
        real_memory_mb=s.real_memory_mb,
        partitions=[name for name, _ in PARTITIONS],
        default_partition=PARTITIONS[0][0],
        slurm_conf=str(s.slurm_conf),
        log_dir=str(s.log_dir),
        ssh=SshInfo(
            host="127.0.0.1",
            port=s.ssh_port,
            username=s.user,
            key_file=str(s.ssh_client_key),
            alias=SSH_ALIAS,
            config_file=str(s.ssh_client_config),
            known_hosts_file=str(s.ssh_known_hosts),
        ),
        daemons=pids,
    )
