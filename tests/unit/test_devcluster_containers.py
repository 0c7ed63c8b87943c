"""The dev cluster's container configs (pyxis, enroot, registry), rendered from Settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from slurm.devcluster.containers import (
    patched_musl_specs,
    render_enroot_conf,
    render_plugstack_conf,
    render_registry_config,
    vendor_dir,
)
from slurm.devcluster.proc import DevclusterError
from slurm.devcluster.render import render_slurm_conf
from slurm.devcluster.settings import Settings

# Debian bookworm's /usr/lib/x86_64-linux-musl/musl-gcc.specs, the lines that change.
DEBIAN_SPECS = """*startfile:
%{!shared: /usr/lib/x86_64-linux-musl/Scrt1.o} /usr/lib/x86_64-linux-musl/crti.o crtbeginS.o%s

*link:
-dynamic-linker /lib/ld-musl-x86_64.so.1 -nostdlib %{shared:-shared} %{static:-static}
"""


@pytest.fixture
def settings() -> Settings:
    return Settings(
        state_dir=Path("/state"),
        node_name="login",
        user="alice",
        real_memory_mb=8000,
        port_base=7017,
        containers=True,
    )


def test_musl_specs_gain_static_pie() -> None:
    specs = patched_musl_specs(DEBIAN_SPECS)
    lib = "/usr/lib/x86_64-linux-musl"
    assert f"%{{static-pie: {lib}/rcrt1.o}} %{{!static-pie: %{{!shared: {lib}/Scrt1.o}}}} " in specs
    assert (
        "%{static-pie:-no-dynamic-linker -static -pie} "
        "%{!static-pie:-dynamic-linker /lib/ld-musl-x86_64.so.1} -nostdlib" in specs
    )


def test_unexpected_musl_specs_are_refused() -> None:
    with pytest.raises(DevclusterError, match=r"musl-gcc\.specs"):
        patched_musl_specs("*link:\n-nostdlib\n")


def test_plugstack_loads_pyxis_with_a_runtime_dir_per_cluster(settings: Settings) -> None:
    text = render_plugstack_conf(Path("/state/containers/pyxis/spank_pyxis.so"), settings)
    assert text == (
        "required /state/containers/pyxis/spank_pyxis.so "
        "runtime_path=/run/pyxis-devcluster7017 container_scope=job\n"
    )


def test_slurm_conf_names_plugstack_only_with_containers(settings: Settings) -> None:
    assert "PlugStackConfig=/state/containers/plugstack.conf\n" in render_slurm_conf(settings)
    assert "PlugStackConfig" not in render_slurm_conf(replace(settings, containers=False))


def test_enroot_keeps_containers_on_disk_per_node(settings: Settings) -> None:
    conf = dict(line.split(" ", 1) for line in render_enroot_conf(settings).splitlines())
    assert conf["ENROOT_DATA_PATH"] == "/state/containers/enroot-data/$(hostname)/user-$(id -u)"
    assert conf["ENROOT_ALLOW_HTTP"] == "yes"
    assert "ENROOT_ALLOW_SUPERUSER" not in conf  # pyxis would skip the user namespace


def test_registry_listens_on_the_bridge_only(settings: Settings) -> None:
    text = render_registry_config(settings)
    assert "  addr: 10.217.105.1:7021\n" in text  # the bridge, which the nodes reach
    assert "    rootdirectory: /state/containers/registry\n" in text


def test_vendor_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_SDK_VENDOR_DIR", "/somewhere/vendor")
    assert vendor_dir() == Path("/somewhere/vendor")
    monkeypatch.delenv("SLURM_SDK_VENDOR_DIR")
    assert vendor_dir().parts[-2:] == ("shared", "vendor")


def test_a_vendored_tarball_that_was_changed_is_refused_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm.devcluster import containers

    name = f"enroot-{containers.ENROOT_VERSION}.tar.gz"
    (tmp_path / name).write_bytes(b"not the release")
    monkeypatch.setenv("SLURM_SDK_VENDOR_DIR", str(tmp_path))
    with pytest.raises(DevclusterError, match="it was changed or damaged"):
        containers._tarball(name)
    if (vendor := Path(__file__).resolve().parents[3] / "shared" / "vendor" / name).is_file():
        monkeypatch.setenv("SLURM_SDK_VENDOR_DIR", str(vendor.parent))
        assert containers._tarball(name) == vendor  # the released one passes


def test_the_database_password_is_never_an_argument(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Every user's ``ps`` shows arguments: the SQL that sets the password goes on stdin."""
    from slurm.devcluster import daemons

    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(daemons, "run", lambda argv, **kw: calls.append((argv, kw.get("input"))))
    daemons._mysql(settings, "ALTER USER x IDENTIFIED BY 'secret';")
    [(argv, given)] = calls
    assert "secret" not in " ".join(argv) and given is not None and "secret" in given
