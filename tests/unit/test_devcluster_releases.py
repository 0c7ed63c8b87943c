"""The dev cluster's Slurm releases: the table, the checks, and what differs per release
in the rendered configs, the root's mounts and the client commands (all pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from slurm.cli import main
from slurm.devcluster import cluster
from slurm.devcluster.releases import (
    HOST_RELEASE,
    RELEASES,
    ROOT_PACKAGES,
    check_cluster_python,
    get_release,
    root_key,
)
from slurm.devcluster.render import (
    HEADER,
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
)
from slurm.devcluster.rootfs import (
    CLIENT_COMMANDS,
    mount_script,
    render_client_wrapper,
    shared_dirs,
)
from slurm.devcluster.settings import Settings
from slurm.errors import DevclusterError

ROOT = Path("/var/cache/slurm-sdk/devcluster-roots/trixie-0123456789ab")


def _settings(release: str = HOST_RELEASE, root: Path | None = None) -> Settings:
    return Settings(
        state_dir=Path("/state"),
        node_name="login",
        user="alice",
        real_memory_mb=8000,
        db_password="s3cret",
        home=Path("/home/alice"),
        release=release,
        root=root,
    )


def _conf(text: str) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in text.splitlines() if line and line[0] != "#")


# --- the table ------------------------------------------------------------------------


def test_the_three_releases_and_their_suites() -> None:
    assert [(r.name, r.suite, r.python) for r in RELEASES] == [
        ("22.05", "bookworm", "3.11"),
        ("24.11", "trixie", "3.13"),
        ("26.05", "sid", "3.14"),
    ]
    assert HOST_RELEASE == "22.05"


@pytest.mark.parametrize(
    ("name", "want"),
    [("24.11", "24.11"), ("24.11.5", "24.11"), (" 26.05 ", "26.05"), ("22.05.8", "22.05")],
)
def test_get_release_takes_a_version_with_or_without_its_patch_level(name: str, want: str) -> None:
    assert get_release(name).name == want


@pytest.mark.parametrize("name", ["23.02", "25", "latest", ""])
def test_an_unknown_release_says_which_ones_exist(name: str) -> None:
    with pytest.raises(DevclusterError) as info:
        get_release(name)
    message = str(info.value)
    assert f"does not know Slurm {name!r}" in message
    assert "22.05 (Debian bookworm), 24.11 (Debian trixie), 26.05 (Debian sid)" in message
    assert "--slurm" in message


def test_at_least() -> None:
    assert get_release("24.11").at_least(23, 2)
    assert get_release("24.11").at_least(24, 11)
    assert not get_release("22.05").at_least(23, 2)
    assert get_release("26.05").at_least(24, 5)


def test_root_key_names_the_suite_and_changes_with_the_package_list() -> None:
    trixie = get_release("24.11")
    key = root_key(trixie, ROOT_PACKAGES, "http://deb.debian.org/debian")
    assert key.startswith("trixie-") and len(key) == len("trixie-") + 12
    assert key == root_key(trixie, tuple(reversed(ROOT_PACKAGES)), "http://deb.debian.org/debian")
    assert key != root_key(trixie, (*ROOT_PACKAGES, "vim"), "http://deb.debian.org/debian")
    assert key != root_key(trixie, ROOT_PACKAGES, "http://mirror.example/debian")


@pytest.mark.parametrize("version", ["3.11.2", "3.13.5", "3.14.10", "4.0.0"])
def test_a_cluster_python_of_3_11_or_later_passes(version: str) -> None:
    check_cluster_python(version, "python3")


def test_a_cluster_python_older_than_3_11_is_refused_saying_what_to_do() -> None:
    with pytest.raises(DevclusterError) as info:
        check_cluster_python("3.9.2", "The python3 of the root /r")
    message = str(info.value)
    assert message.startswith("The python3 of the root /r is Python 3.9.2, older than the 3.11")
    assert "--slurm 22.05, 24.11, 26.05" in message
    assert "nothing was started" in message


@pytest.mark.parametrize("version", ["", "Python", "garbage\n"])
def test_an_unreadable_cluster_python_is_refused(version: str) -> None:
    with pytest.raises(DevclusterError, match="Could not read the version"):
        check_cluster_python(version, "python3")


# --- what differs per release in the configs ------------------------------------------


def test_slurm_conf_is_the_same_on_every_release() -> None:
    """The 22.05 keys the dev cluster uses are all still valid on 24.11 and 26.05 (their
    daemons start with them and log no unknown or deprecated key)."""
    host = render_slurm_conf(_settings())
    for release in ("24.11", "26.05"):
        assert render_slurm_conf(_settings(release, ROOT)) == host


def test_cgroup_conf_only_where_the_release_reads_one() -> None:
    assert render_cgroup_conf(_settings()) is None  # 22.05: no file, as before
    for release in ("24.11", "26.05"):
        text = render_cgroup_conf(_settings(release, ROOT))
        assert text == HEADER + "CgroupPlugin=disabled\n"


def test_slurmdbd_reaches_mariadb_over_tcp_on_the_host_and_on_its_socket_from_a_root() -> None:
    host = _conf(render_slurmdbd_conf(_settings()))
    assert (host["StorageHost"], host["StoragePort"]) == ("127.0.0.1", "6820")
    rooted = _conf(render_slurmdbd_conf(_settings("24.11", ROOT)))
    assert rooted["StorageHost"] == "localhost"
    assert "StoragePort" not in rooted
    assert {k: v for k, v in host.items() if not k.startswith("Storage")} == {
        k: v for k, v in rooted.items() if not k.startswith("Storage")
    }


# --- the root's mounts and client commands --------------------------------------------


def test_shared_dirs_are_every_top_level_directory_but_the_system_s() -> None:
    listing = ["bin", "etc", "home", "lib64", "opt", "proc", "root", "srv", "tmp", "usr",
               "var", "work", "lost+found", "old_root"]  # fmt: skip
    got = shared_dirs(Path("/work/state"), listing)
    want = ("/home", "/opt", "/root", "/srv", "/work", "/usr/local", "/var/tmp")
    assert got == [Path(p) for p in want]
    # A state directory outside all of them is shared too.
    assert shared_dirs(Path("/var/lib/dc"), ["root"])[-1] == Path("/var/lib/dc")


def test_mount_script() -> None:
    script = mount_script(ROOT, [Path("/root"), Path("/my work")], Path("/state/mysql/s.sock"))
    lines = script.splitlines()
    assert lines[0] == "set -e"
    assert lines[-1] == "exec sleep infinity"
    r = str(ROOT)
    for line in [
        f"mount --rbind /proc {r}/proc",
        f"mount -t tmpfs -o mode=0755,size=64m tmpfs {r}/run",
        f"mount --bind /run/munge {r}/run/munge",
        f"mount --bind /tmp {r}/tmp",
        f"ln -s /state/mysql/s.sock {r}/run/mysqld/mysqld.sock",
        f"ln -s /state/mysql/s.sock {r}/run/mariadbd/mysqld.sock",
        f"mount --rbind /root {r}/root",
        f"mount --rbind '/my work' '{r}/my work'",
    ]:
        assert line in lines
    # /run is a fresh tmpfs before anything is put in it
    assert lines.index(f"mount -t tmpfs -o mode=0755,size=64m tmpfs {r}/run") < lines.index(
        f"mount --bind /run/munge {r}/run/munge"
    )


def test_client_wrapper_runs_the_release_s_own_command_in_the_caller_s_directory() -> None:
    text = render_client_wrapper(ROOT, Path("/state/run/rootns.sdk.pid"), "sbatch", "24.11")
    assert text.startswith("#!/bin/sh\n")
    assert "Slurm 24.11's sbatch" in text
    assert (
        f'exec /usr/bin/nsenter --target="$pid" --mount -- /usr/sbin/chroot {ROOT} /bin/sh -c '
        '\'cd "$1" 2>/dev/null || cd /; shift; exec "$@"\' sh "$PWD" /usr/bin/sbatch "$@"'
    ) in text
    assert {"sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo", "srun"} <= set(
        CLIENT_COMMANDS
    )


# --- settings: a state directory keeps its release ------------------------------------


def test_a_state_directory_keeps_its_release(tmp_path: Path) -> None:
    (tmp_path / "devcluster.json").write_text(json.dumps({"release": "22.05", "nodes": 2}))
    with pytest.raises(DevclusterError) as info:
        cluster._settings(tmp_path, None, release="24.11")
    message = str(info.value)
    assert f"{tmp_path} holds a Slurm 22.05 cluster" in message
    assert "--state-dir and --port-base" in message
    assert cluster._settings(tmp_path, None).release == "22.05"


def test_a_release_from_a_root_has_no_containers(tmp_path: Path) -> None:
    s = cluster._settings(tmp_path, None, release="24.11")
    assert s.release == "24.11" and s.root is not None and s.root.name.startswith("trixie-")
    assert not s.containers
    with pytest.raises(DevclusterError, match=r"do not run on a Slurm 24\.11 cluster"):
        cluster._settings(tmp_path, None, containers=True, release="24.11")


def test_status_and_down_use_the_root_the_last_up_ran_from(tmp_path: Path) -> None:
    saved = {"release": "26.05", "root": "/roots/sid-abc", "nodes": 2}
    (tmp_path / "devcluster.json").write_text(json.dumps(saved))
    s = cluster._settings(tmp_path, None)
    assert (s.release, s.root) == ("26.05", Path("/roots/sid-abc"))
    assert replace(s, root=None).root is None


def test_cli_refuses_an_unknown_release_before_doing_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["devcluster", "up", "--slurm", "21.08", "--state-dir", str(tmp_path / "dc")]
    )
    assert result.exit_code == 1
    assert "does not know Slurm '21.08'" in result.output
    assert not (tmp_path / "dc").exists()


def test_status_and_down_follow_the_state_directory_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`down --state-dir D` of a cluster beside another stops D's cluster, namespaces
    included, even while the environment names the other one's port base."""
    saved = {"release": "24.11", "root": "/r", "nodes": 2, "port_base": 7360}
    (tmp_path / "devcluster.json").write_text(json.dumps(saved))
    monkeypatch.setenv("SLURM_SDK_DEVCLUSTER_PORT_BASE", "7300")
    s = cluster._settings(tmp_path, None, existing=True)
    assert (s.port_base, s.net_prefix, s.ssh_port) == (7360, "sdk7360", 7365)
    assert cluster._settings(tmp_path, None).port_base == 7300  # `up`: the environment wins


def test_up_refuses_a_root_whose_python_is_too_old_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "ensure_installed", lambda: None)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(cluster, "ensure_root", lambda release, packages=(): tmp_path / "root")
    monkeypatch.setattr(cluster, "_python_version", lambda s: "3.10.12")
    state = tmp_path / "dc"
    with pytest.raises(DevclusterError) as info:
        cluster.up(state, release="24.11")
    assert "Python 3.10.12, older than the 3.11" in str(info.value)
    assert not state.exists()  # not even the state directory


def test_the_release_from_the_environment_for_up_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_SDK_DEVCLUSTER_RELEASE", "26.05")
    assert cluster._settings(tmp_path, None).release == "26.05"
    assert cluster._settings(tmp_path, None, release="24.11").release == "24.11"
    assert cluster._settings(tmp_path, None, existing=True).release == HOST_RELEASE
    monkeypatch.setenv("SLURM_SDK_DEVCLUSTER_RELEASE", "19.05")
    result = CliRunner().invoke(main, ["devcluster", "up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "does not know Slurm '19.05'" in result.output
