"""`slurm devcluster up --apptainer`: the root's package list, its cache name, the
apptainer.conf the dev cluster binds and the refusals (pure parts)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from slurm.devcluster import cluster
from slurm.devcluster.releases import (
    APPTAINER_PACKAGES,
    ROOT_PACKAGES,
    get_release,
    root_key,
    root_packages,
    stale_pattern,
)
from slurm.devcluster.rootfs import mount_script, render_apptainer_conf
from slurm.errors import DevclusterError

MIRROR = "http://deb.debian.org/debian"


def test_apptainer_adds_its_packages_to_the_root() -> None:
    assert root_packages() == ROOT_PACKAGES
    assert root_packages(apptainer=True) == (*ROOT_PACKAGES, *APPTAINER_PACKAGES)
    assert "apptainer" in APPTAINER_PACKAGES


def test_a_root_with_apptainer_is_cached_beside_the_plain_one_and_never_replaces_it() -> None:
    sid = get_release("26.05")
    plain = root_key(sid, root_packages(), MIRROR)
    with_apptainer = root_key(sid, root_packages(apptainer=True), MIRROR)
    assert plain.startswith("sid-") and with_apptainer.startswith("sid+apptainer-")
    # A new root of one kind removes older roots of that kind only.
    assert fnmatch.fnmatchcase(plain, stale_pattern(sid, root_packages()))
    assert not fnmatch.fnmatchcase(with_apptainer, stale_pattern(sid, root_packages()))
    assert fnmatch.fnmatchcase(with_apptainer, stale_pattern(sid, root_packages(apptainer=True)))
    assert not fnmatch.fnmatchcase(plain, stale_pattern(sid, root_packages(apptainer=True)))
    for leftover in (f"{plain}.log", f"{plain}.lock", f"{plain}.tmp-123"):
        assert not fnmatch.fnmatchcase(leftover, stale_pattern(sid, root_packages()))


def test_the_apptainer_conf_keeps_root_without_capabilities() -> None:
    debian = "# ROOT DEFAULT CAPABILITIES\nroot default capabilities = full\nallow setuid = yes\n"
    out = render_apptainer_conf(debian)
    assert "root default capabilities = no" in out.splitlines()
    assert "root default capabilities = full" not in out
    assert "allow setuid = yes" in out.splitlines()


def test_the_root_holder_binds_the_files_it_is_given() -> None:
    root = Path("/cache/sid+apptainer-0123456789ab")
    conf = Path("/state/apptainer/apptainer.conf")
    script = mount_script(root, [Path("/home")], None, {"/etc/apptainer/apptainer.conf": conf})
    assert f"mount --bind {conf} {root}/etc/apptainer/apptainer.conf" in script.splitlines()
    assert "apptainer.conf" not in mount_script(root, [Path("/home")])


def test_apptainer_needs_a_release_root(tmp_path: Path) -> None:
    with pytest.raises(DevclusterError, match=r"--slurm 26.05 --apptainer"):
        cluster._settings(tmp_path / "dc", None, 2, 7100, False, None, "22.05", True)
    s = cluster._settings(tmp_path / "dc2", None, 2, 7100, False, None, "26.05", True)
    assert s.apptainer and s.root is not None and s.root.name.startswith("sid+apptainer-")
